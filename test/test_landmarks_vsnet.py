"""VS-Net training and the ``vsnet`` pose estimator (rapnet_loc.landmarks.train / vsnet, ``rapnet-loc train-vsnet``,
``localize --estimator vsnet``) on a synthetic scene: the model localizes the frames it was trained on, the front
end recovers from a kidnap with its landmark poses as priors (and only with them), training resumes bit-identically,
and bad input is a clear error or a clean "no pose"."""
import cv2
import numpy as np
import plugins  # noqa: F401 (registers test_never_recognizes)
import pytest
import torch
from landmarkscene import NO_CHALLENGES

from rapnet_loc.cli.main import main
from rapnet_loc.errors import ConfigError, DatasetError
from rapnet_loc.io.source import open_source
from rapnet_loc.io.trajectory import read_tum
from rapnet_loc.io.types import RGBDFrame
from rapnet_loc.landmarks import Scene, create_estimator
from rapnet_loc.landmarks.train import VSNetTrainConfig, train_vsnet
from rapnet_loc.slam.run import localize_frames, open_map, replay
from rapnet_loc.synth import generate
from rapnet_loc.synth.frames import write_training_folder

TINY = dict(image_width=64, steps=4, checkpoint_every=2, seed_resolution=0.4, batch=2, stride=5)


def errors(results, trajectory):
    """Translation (m) and rotation (deg) errors of the localized results against ``trajectory`` (same stamps)."""
    want = dict(zip(trajectory.stamps_ns.tolist(), trajectory.matrices))
    t, r = [], []
    for res in results:
        if res.estimate is not None:
            T, ref = res.estimate.T_wc, want[res.stamp_ns]
            t.append(np.linalg.norm(T[:3, 3] - ref[:3, 3]))
            cos = (np.trace(ref[:3, :3].T @ T[:3, :3]) - 1) / 2
            r.append(np.degrees(np.arccos(np.clip(cos, -1, 1))))
    return np.array(t), np.array(r)


def test_model_localizes_its_scene(landmark_scene):
    with open_source(landmark_scene['bag']) as source:
        estimator = create_estimator('vsnet', {'model': str(landmark_scene['model'])}, Scene(source.camera))
        results = localize_frames(source, estimator)
    t, r = errors(results, landmark_scene['replay'])
    assert len(t) >= 0.7 * len(results), f'{len(t)} of {len(results)} frames localized'
    assert np.median(t) < 0.05 and np.median(r) < 2.0, (np.median(t), np.median(r))
    found = next(res.estimate for res in results if res.estimate is not None)
    assert found.inliers >= 6 and np.all(np.linalg.eigvalsh(found.covariance) > 0)


@pytest.mark.parametrize('estimator', ['vsnet', None])
def test_frontend_recovers_from_a_kidnap_with_landmark_priors(landmark_scene, tmp_path, estimator):
    """Localization on the scene's map from frame 10 on with no pose: the map's place recognizer is replaced by one
    that never recognizes anything, so only the landmark poses can place the front end."""
    map_file, config = open_map(landmark_scene['map'], place_recognition='test_never_recognizes',
                                pose_estimator=estimator)
    if estimator:
        config.pose_estimator_conf['model'] = str(landmark_scene['model'])
    with open_source(landmark_scene['bag'], '0.33:') as source:      # the robot is put down at frame 10
        report = replay(source, config, tmp_path, map_file=map_file)
    tracked = read_tum(tmp_path / 'trajectory.tum')
    if estimator is None:
        assert report['tracked'] == 0 and report['relocalized'] == 0
        return
    assert report['relocalized'] >= 1 and report['tracked_ratio'] > 0.7, report
    want = dict(zip(landmark_scene['replay'].stamps_ns.tolist(), landmark_scene['replay'].matrices))
    first = tracked.stamps_ns[0]
    assert first <= sorted(want)[13], 'relocalized within the first 3 frames after the kidnap'
    err = [np.linalg.norm(T[:3, 3] - want[s][:3, 3]) for s, T in zip(tracked.stamps_ns.tolist(), tracked.matrices)]
    assert np.median(err) < 0.03


def test_resumed_training_equals_an_uninterrupted_run(landmark_scene, tmp_path):
    bag = str(landmark_scene['bag'])
    whole = train_vsnet(VSNetTrainConfig(bag, str(tmp_path / 'whole.pt'), **TINY), progress=False)
    part = VSNetTrainConfig(bag, str(tmp_path / 'part.pt'), **{**TINY, 'steps': 2})
    train_vsnet(part, progress=False)
    resumed = train_vsnet(VSNetTrainConfig(bag, str(tmp_path / 'part.pt'), **TINY), resume=True, progress=False)
    assert resumed.losses == whole.losses and len(whole.losses) == TINY['steps']
    a, b = (torch.load(p, weights_only=True) for p in (whole.model, resumed.model))
    assert all(torch.equal(a['state_dict'][k], b['state_dict'][k]) for k in a['state_dict'])
    assert torch.equal(a['landmarks'], b['landmarks'])
    assert (tmp_path / 'part.pt.losses.csv').read_text().count('\n') == TINY['steps'] + 1
    with pytest.raises(ConfigError, match='cannot resume.*image_width'):
        train_vsnet(VSNetTrainConfig(bag, str(tmp_path / 'part.pt'), **{**TINY, 'image_width': 96}), resume=True,
                    progress=False)


def test_cli_trains_and_localizes(landmark_scene, tmp_path, capsys):
    model = tmp_path / 'cli.pt'
    args = ['train-vsnet', str(landmark_scene['bag']), '--out', str(model), '--poses',
            str(landmark_scene['dir'] / 'replay' / 'trajectory.tum'), '--image-width', '64', '--steps', '2',
            '--stride', '5', '--seed-resolution', '0.4', '--no-progress']
    assert main(args) == 0 and model.is_file()
    assert 'landmarks; final loss' in capsys.readouterr().out
    out = tmp_path / 'poses.tum'
    assert main(['localize', str(landmark_scene['bag']), '--estimator', 'vsnet', '--model',
                 str(landmark_scene['model']), '--out', str(out)]) == 0
    assert 'localized' in capsys.readouterr().out and len(read_tum(out)) > 0
    assert main(['localize', str(landmark_scene['bag']), '--estimator', 'vsnet', '--out', str(out)]) == 2
    assert "pose estimator 'vsnet' needs a model" in capsys.readouterr().err
    assert main(['localize', str(landmark_scene['bag']), '--out', str(out)]) == 2
    assert "pose estimator 'map' localizes against a map: give a map file" in capsys.readouterr().err


def test_bad_models_are_clear_errors(landmark_scene, tmp_path):
    with open_source(landmark_scene['bag']) as source:
        scene = Scene(source.camera)
    record = torch.load(landmark_scene['model'], weights_only=True)
    fewer = tmp_path / 'fewer.pt'
    torch.save({**record, 'landmarks': record['landmarks'][:-3]}, fewer)
    with pytest.raises(ConfigError, match=r'does not fit its \d+ landmarks'):
        create_estimator('vsnet', {'model': str(fewer)}, scene)
    truncated = tmp_path / 'truncated.pt'
    truncated.write_bytes(landmark_scene['model'].read_bytes()[:5000])
    with pytest.raises(ConfigError, match='cannot read VS-Net model .*truncated.pt'):
        create_estimator('vsnet', {'model': str(truncated)}, scene)
    other = tmp_path / 'other.pt'
    torch.save({'model': {}}, other)
    with pytest.raises(ConfigError, match='is not a VS-Net model'):
        create_estimator('vsnet', {'model': str(other)}, scene)
    partial = tmp_path / 'partial.pt'
    torch.save({key: value for key, value in record.items() if key != 'config'}, partial)
    with pytest.raises(ConfigError, match="partial.pt lacks part of its record .*'config'"):
        create_estimator('vsnet', {'model': str(partial)}, scene)
    with pytest.raises(ConfigError, match='VS-Net model not found: nowhere'):
        create_estimator('vsnet', {'model': 'nowhere'}, scene)
    with pytest.raises(ConfigError, match='min_segment'):
        create_estimator('vsnet', {'model': str(landmark_scene['model']), 'min_segment': 0}, scene)


def test_model_of_another_frame_is_refused_on_a_map(landmark_scene, tmp_path, capsys):
    """On the map it was trained for (the replay's poses) the model is used; the same landmarks 1 m and 90 deg away
    (a model trained on another frame's poses, or another scene) are refused with a message, not used."""
    out = tmp_path / 'poses.tum'
    assert main(['localize', str(landmark_scene['map']), str(landmark_scene['bag']), '--estimator', 'vsnet',
                 '--model', str(landmark_scene['model']), '--out', str(out)]) == 0
    assert len(read_tum(out)) > 0
    record = torch.load(landmark_scene['model'], weights_only=True)
    turn = torch.tensor([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]], dtype=record['landmarks'].dtype)
    moved = tmp_path / 'moved.pt'
    torch.save({**record, 'landmarks': record['landmarks'] @ turn.T + torch.tensor([1.0, 0, 0])}, moved)
    capsys.readouterr()
    assert main(['localize', str(landmark_scene['map']), str(landmark_scene['bag']), '--estimator', 'vsnet',
                 '--model', str(moved), '--out', str(out)]) == 2
    assert 'belongs to another scene or to another frame' in capsys.readouterr().err


def test_frames_of_another_scene_give_no_pose(landmark_scene, tmp_path):
    """Without a map there is nothing to check the model against: views of an office, given to the home's model,
    find too few landmarks that agree, and get no pose rather than a wrong one."""
    office = generate(tmp_path, scene='office', sequences=1, frames=10, width=320, height=240, compression='none',
                      challenges=NO_CHALLENGES, progress=False).bags[0]
    with open_source(office) as source:
        estimator = create_estimator('vsnet', {'model': str(landmark_scene['model'])}, Scene(source.camera))
        results = localize_frames(source, estimator)
    assert len(results) >= 5 and all(res.estimate is None for res in results)


def test_query_without_landmarks_gives_no_pose(landmark_scene):
    with open_source(landmark_scene['bag']) as source:
        camera = source.camera
    estimator = create_estimator('vsnet', {'model': str(landmark_scene['model'])}, Scene(camera))
    shape = (camera.height, camera.width)
    for color in (np.zeros((*shape, 3), np.uint8), np.full((*shape, 3), 200, np.uint8)):
        assert estimator.estimate(RGBDFrame(0, 0, color, np.zeros(shape, np.float32))) is None


def test_training_frames_without_depth_or_poses(landmark_scene, tmp_path):
    folder = tmp_path / 'frames'
    write_training_folder([landmark_scene['bag']], folder, progress=False)
    for depth in folder.glob('*.depth.png'):
        cv2.imwrite(str(depth), np.zeros((240, 320), np.uint16))
    with pytest.raises(DatasetError, match='depth'):
        train_vsnet(VSNetTrainConfig(str(folder), str(tmp_path / 'm.pt'), **TINY), progress=False)
    elsewhere = tmp_path / 'elsewhere.tum'
    elsewhere.write_text('1.0 0 0 0 0 0 0 1\n2.0 0 0 0 0 0 0 1\n')
    with pytest.raises(DatasetError, match='need at least 2 training frames with a pose, got 0'):
        train_vsnet(VSNetTrainConfig(str(landmark_scene['bag']), str(tmp_path / 'm.pt'), poses=str(elsewhere),
                                     **TINY), progress=False)
