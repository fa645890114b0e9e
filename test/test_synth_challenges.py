"""Each challenge switch changes the synthetic data the way it should; the generator is deterministic; bad
arguments give clear errors."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from rapnet_loc.errors import ConfigError
from rapnet_loc.synth import DYNAMIC, Challenges, generate
from rapnet_loc.synth.camera import camera_for_size
from rapnet_loc.synth.generate import SequenceWorld
from rapnet_loc.synth.people import MIN_DISTANCE_M
from rapnet_loc.synth.render import Renderer
from rapnet_loc.synth.robot import Robot
from rapnet_loc.synth.scenes import SCENES, scene_spec
from rapnet_loc.synth.textures import TextureBank
from rapnet_loc.synth.world import yaw_matrix

OFF = Challenges.none()
TEXTURES = TextureBank()
RENDERER = Renderer(camera_for_size(160, 120), TEXTURES)


def world(challenges: Challenges, scene: str = 'home', seq: int = 1, frames: int = 90, seed: int = 0,
          revisit=None) -> SequenceWorld:
    return SequenceWorld(scene_spec(scene, challenges), Robot.for_scene(scene), seq, frames, challenges, seed,
                         TEXTURES, RENDERER, revisit)


def looking_at(target_xy, from_xy, height: float = 1.2) -> np.ndarray:
    """Camera pose (optical frame) at ``from_xy``, ``height`` m up, looking horizontally at ``target_xy``."""
    d = np.subtract(target_xy, from_xy)
    base = yaw_matrix(from_xy[0], from_xy[1], np.arctan2(d[1], d[0]), height)
    optical = np.array([[0, 0, 1, 0], [-1, 0, 0, 0], [0, -1, 0, 0], [0, 0, 0, 1.0]])
    return base @ optical


def test_people_are_dynamic_labels_and_keep_away_from_the_robot():
    with_people = world(Challenges(people=3, illumination=False, motion_blur=False))
    assert len(with_people.people) == 3
    seen = sum(np.any(with_people.render(float(t))[0].label & DYNAMIC) for t in with_people.frame_t[::3])
    assert seen >= 3                                   # people cross the view
    poses = with_people.trajectory.poses(with_people.frame_t)
    cams = (poses @ with_people.robot.T_base_color)[:, :2, 3]
    for person in with_people.people:
        pos, _, _ = person.state(with_people.frame_t)
        assert np.min(np.linalg.norm(pos - cams, axis=1)) >= MIN_DISTANCE_M
        assert np.min(np.linalg.norm(pos - poses[:, :2, 3], axis=1)) >= MIN_DISTANCE_M
    without = world(OFF)
    assert not without.people
    assert not any(np.any(without.render(float(t))[0].label & DYNAMIC) for t in without.frame_t[::10])


def test_illumination_changes_brightness_over_time_and_between_sequences():
    ch = Challenges(people=0, motion_blur=False)
    seq1, seq2 = world(ch, frames=300), world(ch, seq=2, frames=300)
    pose = seq1.camera_pose(0.0)
    means = [seq1.render(float(t), pose)[1].mean() for t in np.linspace(0.0, 10.0, 21)]
    assert np.ptp(means) > 5.0
    t_off = float(np.mean(seq1.illumination.off_interval))
    lit = seq1.render(0.0, pose)[0].irradiance
    dark = seq1.render(t_off, pose)[0].irradiance
    assert dark.mean() < lit.mean()                    # one light is switched off
    assert seq1.illumination.gain(0.0) != seq2.illumination.gain(0.0)
    static = world(OFF, frames=300)
    images = [static.render(float(t), pose)[1] for t in (0.0, 3.0, t_off, 9.0)]
    assert all(np.array_equal(images[0], im) for im in images[1:])


def test_moved_furniture_changes_the_static_geometry_of_later_sequences():
    ch = Challenges(people=0, illumination=False, motion_blur=False)
    first = world(ch)
    second = world(ch, seq=2, revisit=first.trajectory)
    assert second.moved and not first.moved
    assert all(t.movable for t in second.world.things if t.name in second.moved)
    name = second.moved[0]
    before = next(t for t in first.world.things if t.name == name)
    after = next(t for t in second.world.things if t.name == name)
    label = next(x.value for x in second.labels if x.name == name)
    pose = looking_at((before.x, before.y), (4.0, 3.0) if np.hypot(before.x - 4, before.y - 3) > 1.5 else (1.5, 3.0))
    depth1, label1 = first.render(0.0, pose)[0].depth, first.render(0.0, pose)[0].label
    depth2, label2 = second.render(0.0, pose)[0].depth, second.render(0.0, pose)[0].label
    assert (before.x, before.y, before.yaw) != (after.x, after.y, after.yaw)
    assert np.count_nonzero(label1 == label) != np.count_nonzero(label2 == label)
    assert not np.array_equal(depth1, depth2)
    unchanged = world(Challenges(people=0, illumination=False, motion_blur=False, moved_furniture=False), seq=2,
                      revisit=first.trajectory)
    assert not unchanged.moved and unchanged.world.things == first.world.things


def test_motion_blur_smooths_moving_frames_only_in_colour():
    sharp, blurred = world(Challenges(people=0, illumination=False, motion_blur=False), frames=600), \
        world(Challenges(people=0, illumination=False, motion_blur=True), frames=600)
    _, _, _, omega = sharp.trajectory.sample(sharp.frame_t)
    t = float(sharp.frame_t[np.argmax(np.abs(omega))])          # turning fastest: about 2 px of blur at 160x120
    (f1, im1), (f2, im2) = sharp.render(t), blurred.render(t)
    assert np.array_equal(f1.depth, f2.depth) and np.array_equal(f1.label, f2.label)

    def sharpness(img):
        return cv2.Laplacian(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var()

    assert sharpness(im2) < 0.9 * sharpness(im1)


def test_repetitive_textures_switch():
    on, off = scene_spec('office', Challenges(repetitive=True)), scene_spec('office', Challenges(repetitive=False))
    pillars_on = {p.parts[0].texture for p in on.things if p.name.startswith('pillar')}
    pillars_off = {p.parts[0].texture for p in off.things if p.name.startswith('pillar')}
    assert len(pillars_on) == 1 and len(pillars_off) == 2
    assert on.room.floor[0] == 'carpet' and off.room.floor[0] != 'carpet'
    home_on = scene_spec('home', Challenges(repetitive=True))
    home_off = scene_spec('home', Challenges(repetitive=False))
    assert any(t.name.startswith('carpet') for t in home_on.things)
    assert not any(t.name.startswith('carpet') for t in home_off.things)
    doors = {t.parts[0].front for t in scene_spec('corridor', Challenges(repetitive=True)).things
             if t.name.startswith('door')}
    assert doors == {'door_0'}


def test_featureless_walls_have_no_texture():
    pose = looking_at((4.0, 6.0), (4.0, 3.5))           # home: facing the north wall (a featureless one)

    def wall_std(challenges):
        sw = world(challenges)
        frame = sw.render(0.0, pose)[0]
        wall = next(x.value for x in sw.labels if x.name == 'wall_north')
        pixels = frame.albedo[frame.label == wall]
        assert len(pixels) > 1000
        return pixels.astype(float).std(axis=0).max()

    assert wall_std(Challenges(people=0, featureless=True)) < 1.0
    assert wall_std(Challenges(people=0, featureless=False)) > 3.0
    plain = scene_spec('home', Challenges(featureless=True))
    textured = scene_spec('home', Challenges(featureless=False))
    assert sum(t.name.startswith('poster') for t in plain.things) < \
        sum(t.name.startswith('poster') for t in textured.things)


@pytest.mark.parametrize('scene', list(SCENES))
def test_every_scene_renders_a_closed_room_without_collisions(scene):
    sw = world(Challenges(people=1), scene=scene, frames=60)
    assert sw.robot.name == ('gaussian' if scene == 'market' else 'tsinghua')
    xy = sw.trajectory.sample(sw.frame_t)[0]
    assert np.all(sw.world.free.clearance(xy) >= sw.robot.clearance_m - 0.03)
    for t in sw.frame_t[::20]:
        frame = sw.render(float(t))[0]
        assert np.all(frame.quad >= 0)                 # every pixel sees a surface: no cracks, no holes
        assert frame.depth.min() > 0.1                 # the camera is never inside or against an object


def test_same_seed_same_bytes_other_seed_other_data(tmp_path):
    kwargs = dict(scene='cafe', sequences=2, frames=4, width=160, height=120, compression='none', progress=False)
    a = generate(tmp_path / 'a', seed=11, **kwargs)
    b = generate(tmp_path / 'b', seed=11, **kwargs)
    c = generate(tmp_path / 'c', seed=12, **kwargs)
    for pa, pb, pc in zip(a.bags, b.bags, c.bags):
        assert pa.read_bytes() == pb.read_bytes()
        assert pa.read_bytes() != pc.read_bytes()
    assert a.gt_path.read_text() == b.gt_path.read_text() != c.gt_path.read_text()


@pytest.mark.parametrize('kwargs, message', [
    (dict(width=0), 'width'), (dict(height=-5), 'height'), (dict(width=64.5), 'width'),
    (dict(scene='garage'), 'unknown synthetic scene'), (dict(sequences=0), 'sequences'),
    (dict(frames=0), 'frames'), (dict(seed=-1), 'seed'), (dict(compression='zip'), 'compression'),
])
def test_bad_arguments_raise_config_errors(tmp_path, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        generate(tmp_path, progress=False, **kwargs)
    assert not list(tmp_path.iterdir())                 # nothing written


def test_bad_challenges_raise_config_errors():
    with pytest.raises(ConfigError, match='people'):
        Challenges(people=-1)
    with pytest.raises(ConfigError, match='motion_blur'):
        Challenges(motion_blur='yes')
