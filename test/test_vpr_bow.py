"""Place recognition by bag of words (rapnet_loc.vpr.bow) kept in step with a growing map
(rapnet_loc.slam.keyframe_database): incremental indexing, culled keyframes forgotten, the vocabulary learnt again as
the map doubles, state round trip, and relocalization after a kidnap during SLAM and after a map reload."""
import numpy as np
import pytest
from synthscene import OFFICE_CONFIG

from rapnet_loc.errors import ConfigError, MapFormatError
from rapnet_loc.io.types import CameraInfo, RGBDFrame
from rapnet_loc.slam import SlamConfig, System
from rapnet_loc.slam.keyframe_database import KeyFrameDatabase
from rapnet_loc.slam.map_io import load_map
from rapnet_loc.vpr import View, create_recognizer
from rapnet_loc.vpr.bow import BagOfWords

KIDNAP_TO = 3      # frame of the office sequence where the robot is put down again


def kidnapped(frames: list[RGBDFrame]) -> list[RGBDFrame]:
    """After the last frame: the camera is covered (black image) while the robot is carried back to the start of the
    sequence, then frames ``KIDNAP_TO`` .. ``KIDNAP_TO + 4``; stamps go on at the frame rate."""
    dt, last = frames[1].stamp_ns - frames[0].stamp_ns, frames[-1].stamp_ns
    seen = [frames[0]] + frames[KIDNAP_TO:KIDNAP_TO + 5]
    return [RGBDFrame(f.index, last + (n + 1) * dt, f.color if n else np.zeros_like(f.color), f.depth, f.frame_id)
            for n, f in enumerate(seen)]


def assert_relocalizes_after_kidnap(system: System, frames: list[RGBDFrame], poses: list[np.ndarray]) -> None:
    """``system`` given the ``kidnapped`` frames is lost while the camera is covered, relocalizes on the first frame
    after it and tracks on, within 2 cm of the ``poses`` found for those frames."""
    results = [system.process(frame) for frame in kidnapped(frames)]
    assert [r.state for r in results] == ['lost', 'relocalized', 'ok', 'ok', 'ok', 'ok']
    for r, i in zip(results[1:], range(KIDNAP_TO, KIDNAP_TO + 5)):
        assert np.linalg.norm(r.T_wc[:3, 3] - poses[i][:3, 3]) < 0.02


def test_keyframes_are_indexed_as_the_map_grows(office_mapped):
    system, _ = office_mapped
    recognizer = system.keyframe_db.recognizer
    assert recognizer.name == 'bow' and sorted(recognizer.ids) == sorted(system.map.keyframes)
    assert len(system.map.keyframes) >= 8


def test_kidnapped_robot_relocalizes_during_slam(office_sequence, office_mapped):
    camera, frames = office_sequence
    _, poses = office_mapped
    system = System(camera, SlamConfig.from_dict(OFFICE_CONFIG))
    for frame in frames:
        system.process(frame)
    n_keyframes = len(system.map.keyframes)
    assert_relocalizes_after_kidnap(system, frames, poses)
    # bag of words ranks a keyframe of the first frames first, where the newest keyframes are far away
    recognizer = system.keyframe_db.recognizer
    ranking = recognizer.query(recognizer.describe(View(system.extractor.extract(frames[KIDNAP_TO].color))), 1)
    first_kf = system.map.keyframes[int(ranking.ids[0])]
    assert abs(first_kf.frame.stamp_ns - frames[KIDNAP_TO].stamp_ns) <= 6 * (frames[1].stamp_ns - frames[0].stamp_ns)
    assert len(system.map.keyframes) >= n_keyframes


def test_kidnapped_robot_relocalizes_after_a_map_reload(office_sequence, office_mapped, tmp_path):
    camera, frames = office_sequence
    system, poses = office_mapped
    path = tmp_path / 'office.map'
    system.save_map(path)
    map_file = load_map(path)
    config = map_file.settings()
    recognizer = map_file.recognizer_for(config)
    assert recognizer is map_file.recognizer, 'the saved recognizer, not one rebuilt from the keyframes'
    localizer = System(camera, config, slam_map=map_file.map, recognizer=recognizer)
    assert_relocalizes_after_kidnap(localizer, frames, poses)


def test_culled_keyframes_are_forgotten(office_mapped):
    system, _ = office_mapped
    recognizer = BagOfWords()
    database = KeyFrameDatabase(recognizer, system.map)
    database.sync()
    assert sorted(recognizer.ids) == sorted(system.map.keyframes)
    gone = max(system.map.keyframes)
    kept = system.map.keyframes.pop(gone)       # as Map.erase_keyframe leaves the keyframe table
    try:
        database.sync()
        assert gone not in recognizer.ids and sorted(recognizer.ids) == sorted(system.map.keyframes)
        query = recognizer.describe(View(kept.frame.features))
        assert gone not in recognizer.query(query).ids.tolist()
    finally:
        system.map.keyframes[gone] = kept


def random_descriptors(rng, n):
    return rng.integers(0, 256, (n, 32), dtype=np.uint8)


def test_vocabulary_is_learnt_again_as_the_map_doubles():
    rng = np.random.default_rng(0)
    bow = BagOfWords({'n_words': 64})
    views = {k: random_descriptors(rng, 200) for k in range(9)}
    bow.add(0, views[0])
    assert bow.vocabulary is None
    assert bow.query(views[0], 1).ids.tolist() == [0] and bow.vocabulary is not None, 'learnt by the first query'
    first = bow.vocabulary
    assert bow.background_fit() is None, 'learnt from 1 keyframe, 1 indexed'
    bow.add(1, views[1])
    bow.query(views[1])
    assert bow.vocabulary is first, 'a query does not learn it again'
    learn = bow.background_fit()
    assert learn is not None, '2 keyframes: twice as many as when it was learnt'
    install = learn()
    assert bow.vocabulary is first, 'learning leaves the index alone'
    bow.add(2, views[2])                     # indexed while it was being learnt
    bow.remove(0)                            # forgotten meanwhile
    install()
    second = bow.vocabulary
    assert second is not first and sorted(bow.ids) == [1, 2] and bow.background_fit() is None
    assert bow.query(views[2], 1).ids.tolist() == [2], 'the keyframe indexed meanwhile has words of the new one'
    bow.add(0, views[0])
    assert bow.background_fit() is None, '3 keyframes: not yet twice as many as the 2 it was learnt from'
    for k in range(3, 9):
        bow.add(k, views[k])
    bow.background_fit()()()
    assert bow.vocabulary is not second
    for k, descriptors in views.items():
        assert bow.query(descriptors, 1).ids.tolist() == [k]
    bow.remove(4)
    assert 4 not in bow.query(views[4]).ids.tolist() and len(bow) == 8


def test_a_keyframe_indexed_again_while_the_vocabulary_is_learnt_gets_words_of_its_new_descriptors():
    rng = np.random.default_rng(2)
    bow = BagOfWords({'n_words': 64})
    views = [random_descriptors(rng, 200) for _ in range(3)]
    bow.add(0, views[0])
    bow.query(views[0])                       # learnt from keyframe 0
    bow.add(1, views[1])
    install = bow.background_fit()()
    bow.add(1, views[2])                      # keyframe 1 indexed again, with other descriptors
    install()
    best = bow.query(views[2], 1)
    assert best.ids.tolist() == [1] and best.scores[0] == pytest.approx(1.0)


def test_state_round_trip_and_restored_vocabulary_is_kept():
    rng = np.random.default_rng(1)
    bow = BagOfWords({'n_words': 32})
    views = {k: random_descriptors(rng, 100) for k in (3, 5, 8)}
    for k, d in views.items():
        bow.add(k, d)
    bow.fit()
    restored = create_recognizer('bow', {'n_words': 32})
    restored.load_state(bow.state())
    for d in views.values():
        a, b = bow.query(d), restored.query(d)
        assert np.array_equal(a.ids, b.ids) and np.allclose(a.scores, b.scores)
    words = restored.vocabulary.words.copy()
    restored.add(9, random_descriptors(rng, 100))
    restored.fit()
    assert np.array_equal(restored.vocabulary.words, words) and restored.query(views[3], 1).ids.tolist() == [3]
    state = bow.state()
    state['kf_words'] = state['kf_words'] + 1000
    with pytest.raises(MapFormatError, match="place recognizer 'bow' is inconsistent"):
        create_recognizer('bow').load_state(state)


def test_unknown_recognizer_or_option():
    with pytest.raises(ConfigError, match="unknown place recognizer 'nope'; available: .*bow"):
        create_recognizer('nope')
    with pytest.raises(ConfigError, match="unknown option\\(s\\) words for place recognizer 'bow'; valid options: "
                                          "iterations, n_words, seed, train_samples"):
        create_recognizer('bow', {'words': 3})
    with pytest.raises(ConfigError, match="unknown place recognizer 'nope'"):
        System(CameraInfo(320, 240, np.eye(3)), SlamConfig(place_recognition='nope'))
