"""The ``netvlad`` and ``patchnetvlad`` place recognizers: fitted on a map's keyframes as it grows, saved in and
restored from map files, used for relocalization after a kidnap (during SLAM and after a map reload), ranking real
7-Scenes frames, and clear errors for bad input."""
import numpy as np
import pytest
import torch
from synthscene import OFFICE_CONFIG
from test_vpr_bow import KIDNAP_TO, assert_relocalizes_after_kidnap

from rapnet_loc.errors import ConfigError, ImageFormatError, MapFormatError
from rapnet_loc.io.sevenscenes import SevenScenesFolder
from rapnet_loc.slam import SlamConfig, System
from rapnet_loc.slam.map_io import load_map
from rapnet_loc.vpr import View, create_recognizer

SMALL = {'clusters': 8, 'num_pcs': 64, 'kmeans_samples': 5000, 'wpca_samples': 2000}


def patch_config(**conf) -> SlamConfig:
    return SlamConfig.from_dict({**OFFICE_CONFIG, 'place_recognition': {'name': 'patchnetvlad', 'conf': conf}})


@pytest.fixture(scope='module')
def patch_mapped(office_sequence):
    """A ``System`` with ``patchnetvlad`` (default preset) that tracked the office sequence, and its poses."""
    camera, frames = office_sequence
    system = System(camera, patch_config())
    poses = [system.process(frame).T_wc for frame in frames]
    assert all(T is not None for T in poses)
    return system, poses


def test_keyframes_are_held_until_fitted_then_encoded(patch_mapped):
    system, _ = patch_mapped
    recognizer = system.keyframe_db.recognizer
    assert recognizer.name == 'patchnetvlad' and sorted(recognizer.ids) == sorted(system.map.keyframes)
    recognizer.fit()
    state = recognizer.state()
    rows, cols = recognizer.grids[0]
    assert state['patches_5'].shape == (len(system.map.keyframes), rows * cols, state['vectors'].shape[1])
    assert state['patches_5'].dtype == np.float16 and state['vectors'].dtype == np.float16
    assert all(kf.frame.image is None for kf in system.map.keyframes.values()), 'images dropped once described'


def test_kidnapped_robot_relocalizes_during_slam(office_sequence, patch_mapped):
    camera, frames = office_sequence
    _, poses = patch_mapped
    system = System(camera, patch_config())
    for frame in frames:
        system.process(frame)
    assert_relocalizes_after_kidnap(system, frames, poses)
    recognizer = system.keyframe_db.recognizer
    ranking = recognizer.query(recognizer.describe(View(None, frames[KIDNAP_TO].color)), 1)
    first_kf = system.map.keyframes[int(ranking.ids[0])]
    assert abs(first_kf.frame.stamp_ns - frames[KIDNAP_TO].stamp_ns) <= 6 * (frames[1].stamp_ns - frames[0].stamp_ns)


def test_kidnapped_robot_relocalizes_after_a_map_reload(office_sequence, patch_mapped, tmp_path):
    camera, frames = office_sequence
    system, poses = patch_mapped
    path = tmp_path / 'office.map'
    system.save_map(path)
    map_file = load_map(path)
    config = map_file.settings()
    recognizer = map_file.recognizer_for(config)
    assert recognizer is map_file.recognizer and recognizer.frozen
    assert all(isinstance(patches[0].base, np.memmap) for patches in recognizer._patches.values()), \
        'patch descriptors are memory-mapped from the map file'
    localizer = System(camera, config, slam_map=map_file.map, recognizer=recognizer)
    assert_relocalizes_after_kidnap(localizer, frames, poses)


@pytest.mark.parametrize('name', ['netvlad', 'patchnetvlad'])
def test_state_round_trip_gives_the_same_ranking(office_sequence, name):
    _, frames = office_sequence
    recognizer = create_recognizer(name, SMALL)
    for i, frame in enumerate(frames[::4]):
        recognizer.add(i, recognizer.describe(View(None, frame.color)))
    query = recognizer.describe(View(None, frames[9].color))
    ranking = recognizer.query(query, 5)
    assert recognizer.fitted and not recognizer.frozen
    restored = create_recognizer(name, SMALL)
    restored.load_state(recognizer.state())
    again = restored.query(query, 5)
    assert again.ids[0] == ranking.ids[0] and sorted(again.ids) == sorted(ranking.ids)
    score = dict(zip(ranking.ids.tolist(), ranking.scores))     # descriptors are stored as float16
    assert all(abs(s - score[i]) <= 0.01 * abs(score[i]) + 1e-3 for i, s in zip(again.ids.tolist(), again.scores))
    assert restored.frozen


def test_shortlist_is_reranked_by_patches_and_the_rest_follows_in_global_order(office_sequence):
    _, frames = office_sequence
    conf = {**SMALL, 'clusters': 16}
    patch, net = create_recognizer('patchnetvlad', {**conf, 'shortlist': 3}), create_recognizer('netvlad', conf)
    for i, frame in enumerate(frames[::4]):
        described = patch.describe(View(None, frame.color))
        patch.add(i, described)
        net.add(i, described)
    query = patch.describe(View(None, frames[21].color))
    ranking, global_ranking = patch.query(query), net.query(query)
    assert sorted(ranking.ids[:3]) == sorted(global_ranking.ids[:3])
    assert np.all(np.diff(ranking.scores[:3]) <= 0) and np.all(ranking.scores[:3] > 0)
    vector, patches = patch.encode(query)
    assert ranking.scores[0] == pytest.approx(patch.patch_scores(patches, patch._patches[int(ranking.ids[0])])[0])
    assert ranking.ids[3:].tolist() == global_ranking.ids[3:].tolist() and not ranking.scores[3:].any()
    assert patch.query(query, 2).ids.tolist() == ranking.ids[:2].tolist()


def test_refits_as_the_map_doubles_and_freezes_at_the_cap(office_sequence):
    _, frames = office_sequence
    recognizer = create_recognizer('netvlad', {**SMALL, 'fit_keyframes': 6})
    maps = [recognizer.describe(View(None, f.color)) for f in frames[::5]]
    for i in range(2):
        recognizer.add(i, maps[i])
    recognizer.query(maps[0])
    centroids = recognizer.model.pool.centroids.detach().clone()
    recognizer.add(2, maps[2])
    recognizer.query(maps[0])
    assert torch.equal(recognizer.model.pool.centroids, centroids), 'not refitted before the map doubled'
    recognizer.add(3, maps[3])
    recognizer.query(maps[0])
    assert not torch.equal(recognizer.model.pool.centroids, centroids), 'refitted on 4 keyframes'
    for i in range(4, 7):
        recognizer.add(i, maps[i])
    assert recognizer.frozen and sorted(recognizer.ids) == list(range(7))
    recognizer.remove(3)
    assert 3 not in recognizer.ids and 3 not in recognizer.query(maps[3]).ids


def test_empty_database_ranks_nothing():
    recognizer = create_recognizer('patchnetvlad', SMALL)
    query = recognizer.describe(View(None, np.full((240, 320, 3), 128, np.uint8)))
    ranking = recognizer.query(query)
    assert len(ranking.ids) == 0 and len(ranking.scores) == 0
    state = recognizer.state()
    restored = create_recognizer('patchnetvlad', SMALL)
    restored.load_state(state)
    assert len(restored.query(query).ids) == 0
    restored.add(7, query)                  # a map saved before its first keyframe still learns from later ones
    assert restored.query(query).ids.tolist() == [7]


def test_bad_input_is_a_clear_error(office_sequence):
    _, frames = office_sequence
    recognizer = create_recognizer('patchnetvlad', {**SMALL, 'preset': 'performance', 'num_pcs': 64})
    with pytest.raises(ImageFormatError, match=r'at least 128 px on each side \(its largest patch\), got 100x60'):
        recognizer.describe(View(None, np.zeros((60, 100, 3), np.uint8)))
    with pytest.raises(ImageFormatError, match='uint8'):
        recognizer.describe(View(None, np.zeros((240, 320, 3), np.float32)))
    with pytest.raises(ConfigError, match='smaller than the 31x31 patches'):
        create_recognizer('patchnetvlad', {'patch_sizes': [31], 'patch_weights': [1.0]})
    with pytest.raises(ConfigError, match='one weight per patch size'):
        create_recognizer('patchnetvlad', {'patch_sizes': [2, 5], 'patch_weights': [1.0]})
    with pytest.raises(ConfigError, match="unknown Patch-NetVLAD preset 'fast'; available: performance, speed"):
        create_recognizer('patchnetvlad', {'preset': 'fast'})
    with pytest.raises(ConfigError, match="unknown NetVLAD backbone 'resnet'; available: vgg16, xfeat, rapnet"):
        create_recognizer('netvlad', {'backbone': 'resnet'})
    with pytest.raises(ConfigError, match='hold a VGG16 encoder; set backbone: vgg16'):
        create_recognizer('netvlad', {'checkpoint': 'pitts.pth.tar'})
    xfeat = create_recognizer('netvlad', SMALL)
    for i, frame in enumerate(frames[:6]):
        xfeat.add(i, xfeat.describe(View(None, frame.color)))
    state = xfeat.state()
    with pytest.raises(MapFormatError, match="does not fit backbone 'rapnet' with 8 clusters: centroids"):
        create_recognizer('netvlad', {**SMALL, 'backbone': 'rapnet'}).load_state(state)
    with pytest.raises(MapFormatError, match='lacks wpca_weight'):
        create_recognizer('netvlad', SMALL).load_state({k: v for k, v in state.items() if k != 'wpca_weight'})


def test_map_saved_with_another_backbone_or_num_pcs_is_a_clear_error(patch_mapped, tmp_path):
    system, _ = patch_mapped
    path = tmp_path / 'office.map'
    system.save_map(path)
    map_file = load_map(path)
    for conf in ({'backbone': 'rapnet'}, {'num_pcs': 64}):
        config = map_file.settings()
        config.place_recognition_conf = {**config.place_recognition_conf, **conf}
        key = next(iter(conf))
        with pytest.raises(ConfigError, match=rf"needs the keyframes' images.*made with {key}=.*asks for {key}="):
            map_file.recognizer_for(config)


def test_ranks_nearby_7scenes_frames_first(shared_data):
    folder = SevenScenesFolder(shared_data / '7scenes-redkitchen-seq01-dev', 0, 199)
    images = {frame.index: frame.color for frame in folder if frame.index % 10 == 0}
    recognizer = create_recognizer('patchnetvlad')
    for index in range(0, 200, 20):
        recognizer.add(index, recognizer.describe(View(None, images[index])))
    recognizer.fit()
    hits = [int(recognizer.query(recognizer.describe(View(None, images[index])), 1).ids[0]) in
            (index - 10, index + 10) for index in range(10, 190, 20)]
    assert sum(hits) >= 7, hits


def test_presets_set_the_authors_options_and_ours_is_the_default():
    """The default preset, ``storage-ransac``, is ``storage`` with RANSAC scoring; every preset re-ranks 100
    keyframes, as the authors do; a setting given explicitly overrides its preset's."""
    default, storage = create_recognizer('patchnetvlad'), create_recognizer('patchnetvlad', {'preset': 'storage'})
    assert default.conf['preset'] == 'storage-ransac'
    assert (default.conf['scoring'], storage.conf['scoring']) == ('ransac', 'rapid')
    assert default.patch_sizes == storage.patch_sizes == (5,) and default.conf['num_pcs'] == 128
    assert default.conf['shortlist'] == storage.conf['shortlist'] == 100
    speed = create_recognizer('patchnetvlad', {'preset': 'speed', 'scoring': 'ransac', 'shortlist': 7})
    assert (speed.conf['num_pcs'], speed.conf['scoring'], speed.conf['shortlist']) == (512, 'ransac', 7)
