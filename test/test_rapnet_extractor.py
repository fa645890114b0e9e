"""The ``rapnet``/``rapnet_p`` extractors: registry, matching, PyTorch vs ONNX Runtime, bad input and weights.

Random-but-seeded weights at width 0.25 and small input sizes keep this fast; keypoints of such weights mean
nothing, but both runtimes must agree on them exactly.
"""
import logging

import numpy as np
import pytest
import torch

from rapnet_loc.errors import ConfigError, ImageFormatError
from rapnet_loc.features import Features, available_extractors, create_extractor
from rapnet_loc.features.matching import match_mutual
from rapnet_loc.features.rapnet import RaPNet, RaPNetP
from rapnet_loc.io.sevenscenes import SevenScenesFolder
from rapnet_loc.rapnet import weights
from rapnet_loc.rapnet.export import export_onnx
from rapnet_loc.rapnet.preprocess import normalize, resize_max_edge, to_rgb
from rapnet_loc.rapnet.weights import random_model, save_weights

WIDTH = 0.25
FAST = {'width': WIDTH, 'max_edge': 160}


@pytest.fixture(scope='module')
def images(shared_data):
    folder = SevenScenesFolder(shared_data / '7scenes-redkitchen-seq01-dev', 0, 10)
    return [f.color for f in folder if f.index in (0, 10)]


@pytest.fixture(scope='module')
def weight_files(tmp_path_factory):
    """A seeded width-0.25 network as a .pt file and its ONNX export; a D2-Net-style (no region) file."""
    folder = tmp_path_factory.mktemp('rapnet')
    model, info = random_model(WIDTH, seed=7)
    pt = save_weights(folder / 'rapnet_w025.pt', model)
    report = export_onnx(model, info, folder / 'rapnet_w025.onnx')
    assert report.max_diff_features < 1e-4 and report.max_diff_region < 1e-4
    base = save_weights(folder / 'base.pt', random_model(WIDTH, seed=7, region=False)[0])
    return {'pt': pt, 'onnx': report.path, 'base': base}


@pytest.fixture(scope='module')
def torch_rapnet(weight_files):
    return create_extractor('rapnet', {**FAST, 'weights': str(weight_files['pt'])})


def test_registered_under_both_names():
    assert {'rapnet', 'rapnet_p'} <= set(available_extractors())
    assert type(create_extractor('rapnet', {'random_init': True, 'width': 0.125})) is RaPNet
    assert type(create_extractor('rapnet_p', {'random_init': True, 'width': 0.125})) is RaPNetP


def test_features_on_a_real_pair_are_matchable(images, torch_rapnet):
    a, b = (torch_rapnet.extract(im) for im in images)
    for feats, image in ((a, images[0]), (b, images[1])):
        assert isinstance(feats, Features) and feats.distance == 'l2' and 10 <= len(feats) <= 520
        assert feats.descriptors.dtype == np.float32 and feats.descriptors.shape[1] == 128
        assert np.allclose(np.linalg.norm(feats.descriptors, axis=1), 1.0, atol=1e-5)
        assert np.all(np.diff(feats.scores) <= 0)
        h, w = image.shape[:2]
        assert np.all((feats.keypoints >= 0) & (feats.keypoints <= [w - 1, h - 1]))
        assert feats.keypoints.max() > 160          # reported in the original 640x480 pixels
        assert np.all(feats.weights > 0) and np.ptp(feats.weights) > 0   # R (softplus) at each keypoint
    pairs, dist = match_mutual(a.descriptors, b.descriptors, a.distance, ratio=1.0)
    assert len(pairs) > 0 and np.all(dist <= 2.0)


@pytest.mark.parametrize('name', ['rapnet', 'rapnet_p'])
def test_onnx_runtime_agrees_with_pytorch(images, weight_files, name, caplog):
    by_torch = create_extractor(name, {**FAST, 'weights': str(weight_files['pt'])})
    with caplog.at_level(logging.INFO, logger='rapnet_loc.rapnet.runtime'):
        by_onnx = create_extractor(name, {**FAST, 'backend': 'onnx', 'weights': str(weight_files['onnx'])})
    assert sum('running rapnet_w025.onnx on the CPU' in r.message for r in caplog.records) == 1
    pixels = {'subpixel': False}
    exact_torch = create_extractor(name, {**FAST, **pixels, 'weights': str(weight_files['pt'])})
    exact_onnx = create_extractor(name, {**FAST, **pixels, 'backend': 'onnx', 'weights': str(weight_files['onnx'])})
    for image in images:
        t, o = by_torch.extract(image), by_onnx.extract(image)
        assert len(t) > 10
        # the same keypoints; their sub-pixel offsets come from F, which the runtimes compute to ~1e-6
        assert np.array_equal(exact_torch.extract(image).keypoints, exact_onnx.extract(image).keypoints)
        assert np.abs(t.keypoints - o.keypoints).max() < 1e-3
        assert np.allclose(t.scores, o.scores, rtol=1e-4)
        assert np.abs(t.descriptors - o.descriptors).max() < 1e-4
        assert np.allclose(t.weights, o.weights, rtol=1e-4)


def test_descriptor_scales_keep_the_keypoints_and_pool_descriptors_from_smaller_runs(images, weight_files):
    exact = {**FAST, 'subpixel': False, 'weights': str(weight_files['pt'])}
    single = create_extractor('rapnet', exact).extract(images[0])
    unset = create_extractor('rapnet', {**exact, 'descriptor_scales': None}).extract(images[0])   # YAML null
    assert np.array_equal(unset.descriptors, single.descriptors)
    same_size = create_extractor('rapnet', {**exact, 'descriptor_scales': [1.0]}).extract(images[0])
    assert np.array_equal(same_size.keypoints, single.keypoints)
    assert np.abs(same_size.descriptors - single.descriptors).max() < 1e-5     # F sampled at its own pixels
    for backend, weights in (('torch', weight_files['pt']), ('onnx', weight_files['onnx'])):
        pooled = create_extractor('rapnet', {**exact, 'backend': backend, 'weights': str(weights),
                                             'descriptor_scales': [0.25, 0.5]}).extract(images[0])
        assert np.array_equal(pooled.keypoints, single.keypoints)
        assert np.allclose(pooled.scores, single.scores, rtol=1e-4)
        assert np.allclose(np.linalg.norm(pooled.descriptors, axis=1), 1.0, atol=1e-5)
        assert np.abs(pooled.descriptors - single.descriptors).max() > 0.1
        if backend == 'torch':
            by_torch = pooled
    assert np.abs(pooled.descriptors - by_torch.descriptors).max() < 1e-4


def test_region_scale_takes_r_from_a_smaller_run(images, weight_files):
    exact = {**FAST, 'subpixel': False, 'weights': str(weight_files['pt'])}
    single = create_extractor('rapnet', exact).extract(images[0])
    same_size = create_extractor('rapnet', {**exact, 'region_scale': 1.0}).extract(images[0])
    assert np.array_equal(same_size.keypoints, single.keypoints) and np.allclose(same_size.scores, single.scores)
    half = create_extractor('rapnet', {**exact, 'region_scale': 0.5, 'descriptor_scales': [0.5]}).extract(images[0])
    model = weights.load_model(weight_files['pt'], WIDTH)[0].eval()
    small = resize_max_edge(to_rgb(images[0]), 80)                    # half of max_edge 160
    with torch.no_grad():
        r = model.region(model.backbone(torch.from_numpy(normalize(small, 'torch'))))
    r = torch.nn.functional.interpolate(r[None], size=(120, 160), mode='bilinear', align_corners=False)[0, 0]
    ij = np.rint((half.keypoints[:, ::-1] + 0.5) / 4 - 0.5).astype(int)      # 640x480 pixels -> 160x120 input
    assert np.allclose(half.weights, r[ij[:, 0], ij[:, 1]].numpy(), rtol=1e-4, atol=1e-6)   # channels-last vs not
    assert not np.array_equal(half.keypoints, single.keypoints)       # R decides which detections are kept
    onnx = create_extractor('rapnet', {**exact, 'backend': 'onnx', 'weights': str(weight_files['onnx']),
                                       'region_scale': 0.5, 'descriptor_scales': [0.5]}).extract(images[0])
    assert np.array_equal(onnx.keypoints, half.keypoints) and np.abs(onnx.descriptors - half.descriptors).max() < 1e-4
    p_only = create_extractor('rapnet_p', {**exact, 'weights': str(weight_files['base']), 'region_scale': 0.5})
    assert np.all(p_only.extract(images[0]).weights == 1)             # rapnet_p has no R to take


def test_rapnet_p_ranks_by_p_and_takes_base_net_files(images, weight_files):
    p_only = create_extractor('rapnet_p', {**FAST, 'weights': str(weight_files['base'])})
    assert p_only.preprocessing == 'torch'       # our base-stage file says so; D2-Net files say caffe
    feats = p_only.extract(images[0])
    assert len(feats) > 10 and np.all(np.diff(feats.scores) <= 0) and np.all(feats.weights == 1)
    with pytest.raises(ConfigError, match='no region head'):
        create_extractor('rapnet', {**FAST, 'weights': str(weight_files['base'])})


def test_degenerate_images_give_empty_features(torch_rapnet):
    noise_row = np.random.default_rng(0).integers(0, 255, (1, 300, 3), dtype=np.uint8)
    for image in (np.zeros((120, 160, 3), np.uint8), np.full((120, 160), 200, np.uint8), np.zeros((1, 1, 3), np.uint8),
                  noise_row, np.zeros((0, 0, 3), np.uint8)):
        feats = torch_rapnet.extract(image)
        assert len(feats) == 0 and feats.descriptors.shape == (0, 128) and feats.distance == 'l2'


def test_grey_and_rgba_inputs_equal_their_rgb(images, torch_rapnet):
    small = np.ascontiguousarray(images[0][::4, ::4])
    grey = small[:, :, 1]
    expected = torch_rapnet.extract(np.repeat(grey[:, :, None], 3, axis=2))
    assert len(expected) > 0
    for image in (grey, grey[:, :, None]):
        assert np.array_equal(torch_rapnet.extract(image).keypoints, expected.keypoints)
    rgba = np.concatenate([small, np.full(small.shape[:2] + (1,), 255, np.uint8)], axis=2)
    assert np.array_equal(torch_rapnet.extract(rgba).keypoints, torch_rapnet.extract(small).keypoints)


def test_bad_images_raise(torch_rapnet):
    nan_image = np.full((50, 60, 3), np.nan, np.float32)
    with pytest.raises(ImageFormatError, match='uint8'):
        torch_rapnet.extract(nan_image)
    with pytest.raises(ImageFormatError, match='shape'):
        torch_rapnet.extract(np.zeros((50, 60, 2), np.uint8))


def test_missing_weights_name_the_file_and_the_way_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setattr(weights, 'model_dirs', lambda: [tmp_path])
    with pytest.raises(ConfigError, match=r'rapnet_w025\.pt .*train-rapnet'):
        create_extractor('rapnet')
    with pytest.raises(ConfigError, match=r'rapnet_w050\.onnx .*export-onnx'):
        create_extractor('rapnet', {'backend': 'onnx', 'width': 0.5})
    with pytest.raises(ConfigError, match='not found: .*nope.pt'):
        create_extractor('rapnet_p', {'weights': str(tmp_path / 'nope.pt')})
    (tmp_path / 'rapnet_w025.pt').write_bytes(b'garbage')
    with pytest.raises(ConfigError, match='cannot read'):
        create_extractor('rapnet')
    (tmp_path / 'broken.onnx').write_bytes(b'garbage')
    with pytest.raises(ConfigError, match='ONNX Runtime cannot load'):
        create_extractor('rapnet', {'backend': 'onnx', 'weights': str(tmp_path / 'broken.onnx')})


def test_mismatched_weights_are_refused(weight_files):
    for backend, key in (('torch', 'pt'), ('onnx', 'onnx')):
        conf = {'width': 0.5, 'weights': str(weight_files[key]), 'backend': backend}
        with pytest.raises(ConfigError, match='width-0.25 network but width 0.5'):
            create_extractor('rapnet', conf)


def test_corrupt_weights_raise_instead_of_returning_garbage(tmp_path, images):
    model, _ = random_model(0.125, seed=0)
    with torch.no_grad():
        model.backbone.convs[4].weight[0, 0, 0, 0] = float('nan')
    path = save_weights(tmp_path / 'nan.pt', model)
    extractor = create_extractor('rapnet', {'width': 0.125, 'max_edge': 64, 'weights': str(path)})
    with pytest.raises(ConfigError, match='NaN or infinite.*corrupt'):
        extractor.extract(images[0])


@pytest.mark.parametrize('conf, message', [({'backend': 'tensorrt'}, 'unknown RaP-Net backend'),
                                           ({'precision': 'fp16'}, 'fp16 needs a CUDA device'),
                                           ({'precision': 'int8'}, 'unknown precision'),
                                           ({'preprocessing': 'tf'}, 'unknown preprocessing'),
                                           ({'max_edge': 0}, 'max_edge must be'),
                                           ({'descriptor_scales': [0.5, 0]}, r'descriptor_scales must be .* \(0, 1\]'),
                                           ({'descriptor_scales': [2]}, 'descriptor_scales must be'),
                                           ({'descriptor_scales': 0.5}, 'descriptor_scales must be'),
                                           ({'descriptor_scales': ['half']}, 'descriptor_scales must be'),
                                           ({'region_scale': 0}, r'region_scale must be empty or a factor in \(0, 1\]'),
                                           ({'region_scale': 1.5}, 'region_scale must be')])
def test_bad_options_raise(conf, message):
    with pytest.raises(ConfigError, match=message):
        create_extractor('rapnet', {'random_init': True, 'width': 0.125, 'device': 'cpu', **conf})


def test_bf16_runs_on_the_cpu(images):
    extractor = create_extractor('rapnet', {'random_init': True, 'width': 0.125, 'max_edge': 96, 'device': 'cpu',
                                            'precision': 'bf16'})
    feats = extractor.extract(images[0])
    assert feats.descriptors.dtype == np.float32 and feats.descriptors.shape[1] == 64
