"""Poses from outside (``System.set_pose_prior``: Nav2's initial pose, place-recognition and landmark poses) and
features extracted elsewhere (``System.process_features``), on a short synthetic sequence."""
import numpy as np
import plugins  # noqa: F401 (registers test_never_recognizes, a place recognizer that never recognizes anything)
import pytest
from synthscene import OFFICE_CONFIG

from rapnet_loc.geometry import invert
from rapnet_loc.slam import SlamConfig, System


def localizer(office_sequence, office_mapped):
    camera, _ = office_sequence
    system, _ = office_mapped
    return System(camera, system.config.override(place_recognition='test_never_recognizes'), slam_map=system.map)


def offset(T_wc, dx, yaw_deg=0.0):
    """``T_wc`` moved by ``dx`` metres along the camera's x axis and turned by ``yaw_deg`` about its y axis."""
    c, s = np.cos(np.radians(yaw_deg)), np.sin(np.radians(yaw_deg))
    delta = np.eye(4)
    delta[:3, :3] = [[c, 0, s], [0, 1, 0], [-s, 0, c]]
    delta[0, 3] = dx
    return T_wc @ delta


def test_prior_relocalizes_where_place_recognition_finds_nothing(office_sequence, office_mapped):
    _, frames = office_sequence
    _, poses = office_mapped
    system = localizer(office_sequence, office_mapped)
    assert system.process(frames[25]).state == 'lost'
    system.set_pose_prior(offset(poses[26], 0.2, yaw_deg=10))
    result = system.process(frames[26])
    assert result.state == 'relocalized'
    assert np.linalg.norm(result.T_wc[:3, 3] - poses[26][:3, 3]) < 0.02
    assert system.process(frames[27]).state == 'ok'


def test_prior_looking_elsewhere_is_ignored(office_sequence, office_mapped):
    _, frames = office_sequence
    _, poses = office_mapped
    system = localizer(office_sequence, office_mapped)
    system.set_pose_prior(offset(poses[26], 0.0, yaw_deg=180))
    assert system.process(frames[26]).state == 'lost'
    assert system.process(frames[27]).state == 'lost', 'the prior is used by one frame only'


def test_prior_before_the_first_frame_places_the_map(office_sequence, office_mapped):
    camera, frames = office_sequence
    _, poses = office_mapped
    prior = offset(np.eye(4), 1.5, yaw_deg=30)
    prior[:3, 3] += [0.0, -0.4, 2.0]
    system = System(camera, SlamConfig.from_dict(OFFICE_CONFIG))
    system.set_pose_prior(prior)
    moved = [system.process(frame).T_wc for frame in frames[:20]]
    assert np.allclose(moved[0], prior)
    for T, T_ref in zip(moved, poses[:20]):
        assert np.allclose(invert(prior) @ T, T_ref, atol=1e-3)


def test_prior_must_be_a_finite_pose(office_sequence):
    camera, _ = office_sequence
    system = System(camera)
    bad = np.eye(4)
    bad[0, 3] = np.nan
    for value in (bad, np.eye(3)):
        with pytest.raises(ValueError, match='finite \\(4, 4\\)'):
            system.set_pose_prior(value)


def test_features_from_elsewhere_track_like_images(office_sequence, office_mapped):
    camera, frames = office_sequence
    _, poses = office_mapped
    system = System(camera, SlamConfig.from_dict(OFFICE_CONFIG))
    extractor = system.extractor
    for frame, T_ref in zip(frames, poses):
        result = system.process_features(frame.stamp_ns, extractor.extract(frame.color), frame.depth)
        assert np.array_equal(result.T_wc, T_ref)


def test_prior_seeds_a_projection_search_of_the_map(office_sequence, office_mapped):
    """With descriptor-only relocalization made impossible (ratio test 0), only the projection search seeded by the
    prior can place the frame: it does from a prior 5 cm and 3 degrees off, and not beyond the gate."""
    camera, frames = office_sequence
    system, poses = office_mapped
    config = system.config.override(place_recognition='test_never_recognizes')
    config.tracking.reloc_ratio = {'hamming': 0.0, 'l2': 0.0}
    near = System(camera, config, slam_map=system.map)
    near.set_pose_prior(offset(poses[26], 0.05, yaw_deg=3))
    result = near.process(frames[26])
    assert result.state == 'relocalized' and np.linalg.norm(result.T_wc[:3, 3] - poses[26][:3, 3]) < 0.01
    assert near.process(frames[27]).state == 'ok'
    config.tracking.prior_max_turn_deg = 1.0
    gated = System(camera, config, slam_map=system.map)
    gated.set_pose_prior(offset(poses[26], 0.05, yaw_deg=3))
    assert gated.process(frames[26]).state == 'lost', 'the pose found is 3 degrees from the prior: outside the gate'
