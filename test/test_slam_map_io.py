"""Map files (rapnet_loc.slam.map_io): exact round trip with the place recognizer's data, version 1 files of the
previous release, clear errors for every kind of bad file, atomic saves, and localization mode
(rapnet_loc.slam.System with a loaded map) leaving the map as it was."""
import json
import logging
import zipfile
from pathlib import Path

import numpy as np
import pytest

from rapnet_loc.errors import MapFormatError
from rapnet_loc.geometry import rotation_angle
from rapnet_loc.io.source import open_source
from rapnet_loc.slam import SlamConfig, System
from rapnet_loc.slam import map_io
from rapnet_loc.slam.map import Map
from rapnet_loc.slam.map_io import load_map, save_map
from rapnet_loc.slam.run import localize_frames, make_estimator
from rapnet_loc.synth import Challenges, generate
from rapnet_loc.vpr.base import View

FRAMES = 40    # the office_sequence fixture (conftest.py)
V1_MAP = Path(__file__).parent / 'data' / 'office_v1.map'


@pytest.fixture(scope='module')
def slam(office_mapped):
    """A ``System`` after tracking the sequence (its map has several keyframes)."""
    system, _ = office_mapped
    assert len(system.map.keyframes) >= 3
    return system


@pytest.fixture()
def saved(slam, tmp_path):
    path = tmp_path / 'office.map'
    save_map(path, slam.map, slam.camera, slam.config, slam.keyframe_db.recognizer)
    return path


def assert_same_map(a: Map, b: Map) -> None:
    assert (a.scale_factor, a.n_levels) == (b.scale_factor, b.n_levels)
    assert list(a.keyframes) == list(b.keyframes)
    for ka, kb in zip(a.keyframes.values(), b.keyframes.values()):
        assert (ka.id, ka.frame.id, ka.frame.stamp_ns) == (kb.id, kb.frame.id, kb.frame.stamp_ns)
        assert np.array_equal(ka.T_cw, kb.T_cw) and np.array_equal(ka.point_ids, kb.point_ids)
        fa, fb = ka.frame.features, kb.frame.features
        assert (fa.distance, fa.scale_factor, fa.n_levels) == (fb.distance, fb.scale_factor, fb.n_levels)
        for name in map_io.FEATURE_ARRAYS:
            assert getattr(fa, name).dtype == getattr(fb, name).dtype
            assert np.array_equal(getattr(fa, name), getattr(fb, name))
        for name in map_io.FRAME_ARRAYS:
            assert np.array_equal(getattr(ka.frame, name), getattr(kb.frame, name), equal_nan=True)
    assert len(a.points) == len(b.points)
    for name in map_io.POINT_COLUMNS:
        assert getattr(a.points, name).dtype == getattr(b.points, name).dtype
        assert np.array_equal(getattr(a.points, name), getattr(b.points, name))
    assert a.points.observations == b.points.observations
    assert a.covisibility == b.covisibility
    assert [k.map_id for k in a.keyframes.values()] == [k.map_id for k in b.keyframes.values()]
    assert (a.active_map, a.anchored, a.merged.keys()) == (b.active_map, b.anchored, b.merged.keys())
    assert all(np.array_equal(a.merged[k][1], b.merged[k][1]) and a.merged[k][0] == b.merged[k][0] for k in a.merged)


def test_round_trip_is_exact(slam, saved, tmp_path):
    loaded = load_map(saved, features='orb')
    assert_same_map(slam.map, loaded.map)
    assert loaded.camera.K.tolist() == slam.camera.K.tolist() and loaded.camera.bf == slam.camera.bf
    assert (loaded.camera.width, loaded.camera.height) == (slam.camera.width, slam.camera.height)
    assert loaded.config == slam.config and loaded.distance == 'hamming'
    again = tmp_path / 'again.map'
    save_map(again, loaded.map, loaded.camera, loaded.config, loaded.recognizer)
    assert_same_map(slam.map, load_map(again).map)


def test_round_trip_keeps_the_place_recognizer(office_sequence, slam, saved):
    """The saved recognizer is restored with the same state and ranks keyframes as the live one did, without being
    rebuilt; keyframes keep their names."""
    _, frames = office_sequence
    live, loaded = slam.keyframe_db.recognizer, load_map(saved)
    restored = loaded.recognizer
    assert restored.name == 'bow' and restored is loaded.recognizer_for(loaded.settings())
    state, again = live.state(), restored.state()
    assert sorted(state) == sorted(again)
    for key in state:
        assert np.array_equal(state[key], again[key]), key
    for frame in frames[::7]:
        query = live.describe(View(slam.extractor.extract(frame.color)))
        a, b = live.query(query), restored.query(query)
        assert np.array_equal(a.ids, b.ids) and np.allclose(a.scores, b.scores) and a.scores[0] > 0
    for k, kf in loaded.map.keyframes.items():
        assert kf.frame.name == slam.map.keyframes[k].frame.name and kf.frame.name
    rewrite(saved, vpr_kf_words=None)
    with pytest.raises(MapFormatError, match="place recognizer 'bow' lacks kf_words"):
        load_map(saved)


@pytest.fixture(scope='module')
def v1_bag(tmp_path_factory):
    """The synthetic bag the version 1 map was built from (same generator arguments, same bytes)."""
    summary = generate(tmp_path_factory.mktemp('v1'), scene='office', sequences=1, frames=30, width=320, height=240,
                       seed=2, challenges=Challenges.none(), compression='none', progress=False)
    return summary.bags[0]


def test_version_1_map_of_the_previous_release_loads(v1_bag, caplog):
    """test/data/office_v1.map was written by rapnet-loc at commit 5ff658b (see test/data/README.md). It loads, its
    thresholds and its single reloc_ratio become per-metric, its bag-of-words recognizer is rebuilt from the keyframes (logged) and it
    localizes the frames it was built from."""
    with caplog.at_level(logging.INFO, logger='rapnet_loc.slam.map_io'):
        map_file = load_map(V1_MAP, 'orb')
    assert 'version 1 map file' in caplog.text and map_file.recognizer is None
    config = map_file.settings()
    assert config.tracking.max_distance == {'hamming': 100.0, 'l2': 1.13}
    assert config.tracking.strict_distance == {'hamming': 50.0, 'l2': 0.55}
    assert config.tracking.reloc_ratio == {'hamming': 0.75, 'l2': 0.75}
    assert [kf.frame.name for kf in map_file.map.keyframes.values()] == [
        f'{kf.frame.stamp_ns // 10**9}.{kf.frame.stamp_ns % 10**9:09d}' for kf in map_file.map.keyframes.values()]
    with open_source(v1_bag) as source:
        stamps, poses = source.ground_truth()
        gt = dict(zip(stamps.tolist(), poses))
        with caplog.at_level(logging.INFO, logger='rapnet_loc.slam.map_io'):
            results = localize_frames(source, make_estimator(config.override(pose_estimator='map'), source.camera,
                                                             source.depth_camera, map_file))
    assert "place recognizer 'bow'" in caplog.text and 'rebuilt from the map' in caplog.text
    done = [r for r in results if r.estimate is not None]
    assert len(done) >= 28
    for r in done:
        ref = gt[r.stamp_ns]
        assert np.linalg.norm(r.estimate.T_wc[:3, 3] - ref[:3, 3]) < 0.05
        assert np.degrees(rotation_angle(ref[:3, :3].T @ r.estimate.T_wc[:3, :3])) < 2.0
        assert r.estimate.inliers >= 30 and np.all(np.linalg.eigvalsh(r.estimate.covariance) > 0)


def test_settings_take_the_maps_extractor(slam, saved):
    loaded = load_map(saved)
    settings = loaded.settings(SlamConfig.from_dict({'tracking': {'reloc_min_inliers': 40}}))
    assert settings.features == 'orb' and settings.feature_conf == {'max_keypoints': 600}
    assert settings.tracking.reloc_min_inliers == 40
    assert loaded.settings() == slam.config and loaded.settings() is not loaded.config


def rewrite(path, **changes):
    """Rewrite the map archive ``path`` with some arrays replaced (None: removed)."""
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    for key, value in changes.items():
        if value is None:
            del arrays[key]
        else:
            arrays[key] = value
    with open(path, 'wb') as fh:
        np.savez_compressed(fh, **arrays)


def test_bad_files_name_the_problem(saved, tmp_path):
    with pytest.raises(MapFormatError, match='map file not found'):
        load_map(tmp_path / 'missing.map')
    empty = tmp_path / 'empty.map'
    empty.write_bytes(b'')
    with pytest.raises(MapFormatError, match='not a rapnet-loc map file: it is empty'):
        load_map(empty)
    text = tmp_path / 'trajectory.tum'
    text.write_text('0.0 0 0 0 0 0 0 1\n')
    with pytest.raises(MapFormatError, match='not a rapnet-loc map file: it is not a .npz archive'):
        load_map(text)
    other = tmp_path / 'other.npz'
    np.savez(other, x=np.arange(3))
    with pytest.raises(MapFormatError, match="without the 'rapnet-loc-map' header"):
        load_map(other)


def test_truncated_or_corrupt_file(saved, tmp_path):
    data = saved.read_bytes()
    for cut in (len(data) // 2, len(data) - 30, 100):
        truncated = tmp_path / f'cut{cut}.map'
        truncated.write_bytes(data[:cut])
        with pytest.raises(MapFormatError, match=r'truncated or corrupt'):
            load_map(truncated)
    with zipfile.ZipFile(saved) as zf:
        info = zf.getinfo('kp_descriptors.npy')
    corrupt = bytearray(data)
    middle = info.header_offset + 100 + info.compress_size // 2
    corrupt[middle:middle + 16] = bytes(16)
    bad = tmp_path / 'corrupt.map'
    bad.write_bytes(bytes(corrupt))
    with pytest.raises(MapFormatError, match=r'truncated or corrupt'):
        load_map(bad)


def test_inconsistent_contents(saved):
    with np.load(saved) as npz:
        offsets, meta = npz['kf_offsets'], json.loads(str(npz['meta']))
    rewrite(saved, kf_offsets=offsets[:-1])
    with pytest.raises(MapFormatError, match='corrupt: inconsistent contents .*offsets'):
        load_map(saved)
    del meta['camera']
    rewrite(saved, kf_offsets=offsets, meta=np.array(json.dumps(meta)))
    with pytest.raises(MapFormatError, match='corrupt'):
        load_map(saved)


def test_other_format_version(saved):
    rewrite(saved, version=np.array(map_io.VERSION + 1))
    with pytest.raises(MapFormatError, match=f'format version {map_io.VERSION + 1}; this rapnet-loc reads versions '
                                             f'1, {map_io.VERSION}'):
        load_map(saved)
    rewrite(saved, version=np.array(map_io.VERSION), pt_normals=None)
    with pytest.raises(MapFormatError, match='corrupt or from another rapnet-loc version: it lacks pt_normals'):
        load_map(saved)
    rewrite(saved, version=None)
    with pytest.raises(MapFormatError, match='truncated or corrupt'):
        load_map(saved)


def test_other_feature_extractor(saved):
    with pytest.raises(MapFormatError, match="built with feature extractor 'orb', not 'superpoint' as requested"):
        load_map(saved, features='superpoint')


def test_failed_save_leaves_previous_file(slam, saved, monkeypatch):
    before = saved.read_bytes()

    def fail_midway(fh, arrays, stored):
        fh.write(b'PK\x03\x04 half a map')
        raise OSError('No space left on device')

    monkeypatch.setattr(map_io, 'write_npz', fail_midway)
    with pytest.raises(OSError, match='No space left'):
        save_map(saved, slam.map, slam.camera, slam.config, slam.keyframe_db.recognizer)
    assert saved.read_bytes() == before
    assert [p.name for p in saved.parent.iterdir()] == [saved.name]
    monkeypatch.undo()
    assert_same_map(slam.map, load_map(saved).map)


def test_empty_map_is_not_saved(slam, tmp_path):
    with pytest.raises(MapFormatError, match='no keyframe'):
        save_map(tmp_path / 'empty.map', Map(1.2, 8), slam.camera, slam.config, slam.keyframe_db.recognizer)
    assert not (tmp_path / 'empty.map').exists()


def test_localization_mode_relocalizes_and_leaves_the_map_alone(office_sequence, slam, saved):
    camera, frames = office_sequence
    loaded = load_map(saved)
    n_points = len(loaded.map.points)
    system = System(camera, loaded.settings(), slam_map=loaded.map)
    results = [system.process(frame) for frame in frames[FRAMES // 2::2]]
    assert results[0].state == 'relocalized'
    assert all(r.state == 'ok' for r in results[1:]) and not any(r.keyframe for r in results)
    assert len(loaded.map.keyframes) == len(slam.map.keyframes) and len(loaded.map.points) == n_points
    assert system.localize(frames[FRAMES // 3]).state == 'relocalized'
    with pytest.raises(ValueError, match='needs a map'):
        System(camera).localize(frames[0])
