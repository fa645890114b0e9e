"""A place recognizer and a pose estimator added as a user adds them (test/plugins.py: a few lines each, registered
by name, no other change to the code) are used by ``rapnet-loc build-map``, ``retrieve``, ``localize`` and
``replay`` through ``--place-recognition``, ``--estimator`` and the configuration file. (frontend_node takes them
by parameter: test_nodes_frontend.py.)"""
import json

import numpy as np
import plugins  # noqa: F401 (registers the plug-ins)
import pytest

from rapnet_loc.cli.main import main
from rapnet_loc.geometry import rotation_angle
from rapnet_loc.io.source import open_source
from rapnet_loc.io.trajectory import Trajectory, format_stamp, read_tum, write_tum
from rapnet_loc.slam.map_io import load_map
from rapnet_loc.synth import Challenges, generate

FRAMES = 30


@pytest.fixture(scope='module')
def scene(tmp_path_factory):
    """A synthetic bag, its ground-truth camera trajectory (TUM file) and a configuration naming the test pose
    estimator with that trajectory."""
    root = tmp_path_factory.mktemp('plugins')
    bag = generate(root / 'data', scene='office', sequences=1, frames=FRAMES, width=320, height=240, seed=2,
                   challenges=Challenges.none(), compression='none', progress=False).bags[0]
    with open_source(bag) as source:
        gt = Trajectory.from_matrices(*source.ground_truth())
    write_tum(root / 'gt.tum', gt)
    config = root / 'estimator.yaml'
    config.write_text(f"pose_estimator: {{name: test_trajectory, conf: {{trajectory: '{root / 'gt.tum'}'}}}}\n")
    return {'bag': bag, 'gt': gt, 'config': config, 'root': root}


@pytest.fixture(scope='module')
def built(scene):
    path = scene['root'] / 'mean.map'
    assert main(['build-map', str(scene['bag']), '--poses', 'gt', '--place-recognition', 'test_mean_descriptor',
                 '--out', str(path)]) == 0
    return path


def errors(traj: Trajectory, gt: Trajectory) -> tuple[np.ndarray, np.ndarray]:
    """Translation (m) and rotation (deg) errors of ``traj`` against ``gt`` at the same stamps."""
    ref = dict(zip(gt.stamps_ns.tolist(), gt.matrices))
    R = np.array([ref[s] for s in traj.stamps_ns.tolist()])
    return (np.linalg.norm(traj.matrices[:, :3, 3] - R[:, :3, 3], axis=1),
            np.degrees(rotation_angle(np.swapaxes(R[:, :3, :3], 1, 2) @ traj.matrices[:, :3, :3])))


def test_build_map_saves_the_named_recognizer(built):
    map_file = load_map(built)
    assert map_file.recognizer.name == 'test_mean_descriptor'
    assert sorted(map_file.recognizer.ids) == sorted(map_file.map.keyframes) and len(map_file.map.keyframes) >= 3
    assert map_file.config.place_recognition == 'test_mean_descriptor'


def test_retrieve_writes_pairs_named_after_the_frames(scene, built, tmp_path, capsys):
    pairs = tmp_path / 'pairs.txt'
    assert main(['retrieve', str(built), str(scene['bag']), '--top-k', '2', '--out', str(pairs)]) == 0
    assert f'{FRAMES} query frames' in capsys.readouterr().out
    lines = [line.split() for line in pairs.read_text().splitlines()]
    assert len(lines) == 2 * FRAMES
    keyframes = {kf.frame.name for kf in load_map(built).map.keyframes.values()}
    queries = [format_stamp(s) for s in scene['gt'].stamps_ns]
    assert [q for q, _, _ in lines[::2]] == queries and {k for _, k, _ in lines} <= keyframes
    for q, k, score in lines[::2]:
        if q in keyframes:
            assert k == q and float(score) == pytest.approx(1.0), 'a keyframe retrieves itself first'


def test_localize_with_the_map_estimator_and_the_named_recognizer(scene, built, tmp_path, capsys):
    out = tmp_path / 'loc.tum'
    assert main(['localize', str(built), str(scene['bag']), '--out', str(out)]) == 0
    traj = read_tum(out)
    assert len(traj) >= FRAMES - 2
    t_err, r_err = errors(traj, scene['gt'])
    assert np.median(t_err) < 0.02 and np.median(r_err) < 1.0


def test_localize_with_a_named_pose_estimator(scene, built, tmp_path):
    out = tmp_path / 'loc.tum'
    assert main(['localize', str(built), str(scene['bag']), '--config', str(scene['config']), '--out', str(out)]) == 0
    traj = read_tum(out)
    assert np.array_equal(traj.stamps_ns, scene['gt'].stamps_ns)
    np.testing.assert_allclose(traj.matrices, scene['gt'].matrices, atol=1e-9)


def test_replay_relocalizes_from_the_estimator_where_recognition_fails(scene, built, tmp_path):
    """Localization mode with a recognizer that never recognizes: only the estimator's poses (seeding the search
    of the map) can place the frames."""
    out = tmp_path / 'replay'
    assert main(['replay', str(scene['bag']), '--map-in', str(built), '--place-recognition', 'test_never_recognizes',
                 '--config', str(scene['config']), '--out', str(out)]) == 0
    report = json.loads((out / 'report.json').read_text())
    assert report['place_recognition'] == 'test_never_recognizes'
    assert report['relocalized'] >= 1 and report['tracked'] == FRAMES and report['keyframes'] == 0
    t_err, _ = errors(read_tum(out / 'trajectory.tum'), scene['gt'])
    assert t_err.max() < 0.02
    assert main(['replay', str(scene['bag']), '--map-in', str(built), '--place-recognition', 'test_never_recognizes',
                 '--out', str(tmp_path / 'alone')]) == 0
    assert json.loads((tmp_path / 'alone' / 'report.json').read_text())['tracked'] == 0, 'nothing else places them'


def test_replay_builds_and_saves_the_named_recognizer(scene, tmp_path):
    path = tmp_path / 'slam.map'
    assert main(['replay', str(scene['bag']), '--place-recognition', 'test_mean_descriptor', '--map-out', str(path),
                 '--out', str(tmp_path / 'out')]) == 0
    map_file = load_map(path)
    assert map_file.recognizer.name == 'test_mean_descriptor'
    assert sorted(map_file.recognizer.ids) == sorted(map_file.map.keyframes)


def test_unknown_names_are_clear_errors(scene, built, tmp_path, capsys):
    for argv in (['replay', str(scene['bag']), '--place-recognition', 'nope', '--out', str(tmp_path)],
                 ['localize', str(built), str(scene['bag']), '--estimator', 'nope', '--out', str(tmp_path / 'x.tum')],
                 ['retrieve', str(built), str(scene['bag']), '--top-k', '0', '--out', str(tmp_path / 'p.txt')],
                 ['replay', str(scene['bag']), '--estimator', 'map', '--out', str(tmp_path)]):
        assert main(argv) == 2
    err = capsys.readouterr().err
    assert "unknown place recognizer 'nope'; available:" in err and "unknown pose estimator 'nope'" in err
    assert '--top-k must be at least 1' in err and "pose estimator 'map' localizes against a map" in err
    assert 'Traceback' not in err and not (tmp_path / 'x.tum').exists() and not (tmp_path / 'p.txt').exists()
