"""Feature extractor registry and the ORB extractor (rapnet_loc.features) on real 7-Scenes images."""
import numpy as np
import pytest

from rapnet_loc.errors import ConfigError, ImageFormatError
from rapnet_loc.features import FeatureExtractor, Features, available_extractors, create_extractor, register
from rapnet_loc.features import base
from rapnet_loc.features.orb import ORB
from rapnet_loc.io.sevenscenes import SevenScenesFolder


@pytest.fixture(scope='module')
def images(shared_data):
    folder = SevenScenesFolder(shared_data / '7scenes-redkitchen-seq01-dev', 0, 0)
    return next(iter(folder)).color


@pytest.fixture(scope='module')
def orb():
    return create_extractor('orb')


def test_registry_creates_orb_with_merged_conf():
    extractor = create_extractor('orb', {'max_keypoints': 300})
    assert isinstance(extractor, ORB)
    assert extractor.conf == {**ORB.default_conf, 'max_keypoints': 300}
    assert 'orb' in available_extractors()


def test_unknown_extractor_lists_registered_ones():
    with pytest.raises(ConfigError, match=r"unknown feature extractor 'sift2'.*available: .*orb"):
        create_extractor('sift2')


def test_unknown_option_is_named():
    with pytest.raises(ConfigError, match=r'unknown option\(s\) max_kp, nlevels .*orb.*max_keypoints'):
        create_extractor('orb', {'max_kp': 10, 'nlevels': 3})


def test_orb_pyramid_options(images):
    single = create_extractor('orb', {'n_levels': 1, 'scale_factor': 1.0}).extract(images)
    assert len(single) > 100 and single.n_levels == 1 and single.scale_factor == 1.0 and np.all(single.levels == 0)
    for conf in ({'n_levels': 3, 'scale_factor': 1.0}, {'n_levels': 0}):
        with pytest.raises(ConfigError, match='ORB needs n_levels >= 1 and, with several levels, scale_factor > 1'):
            create_extractor('orb', conf)


def test_register_new_extractor():
    @register('test_centre')
    class Centre(FeatureExtractor):
        default_conf = {'size': 4}

        def extract(self, image):
            h, w = image.shape[:2]
            return Features([[w / 2, h / 2]], [1.0], np.zeros((1, self.conf['size']), np.float32), 'l2')

    try:
        feats = create_extractor('test_centre', {'size': 8}).extract(np.zeros((10, 20, 3), np.uint8))
        assert feats.keypoints.tolist() == [[10.0, 5.0]] and feats.descriptors.shape == (1, 8)
        with pytest.raises(ValueError, match='already registered'):
            register('test_centre')(ORB)
    finally:
        base.EXTRACTORS._classes.pop('test_centre', None)


def test_orb_on_real_image(images, orb):
    feats = orb.extract(images)
    n = len(feats)
    assert 900 <= n <= 1000
    assert feats.keypoints.dtype == np.float32 and feats.keypoints.shape == (n, 2)
    assert feats.scores.dtype == np.float32 and feats.scores.shape == (n,)
    assert feats.descriptors.dtype == np.uint8 and feats.descriptors.shape == (n, 32)
    assert feats.distance == 'hamming' and feats.scale_factor == 1.2 and feats.n_levels == 8
    assert np.all(feats.keypoints >= 0) and np.all(feats.keypoints[:, 0] < 640) and np.all(feats.keypoints[:, 1] < 480)
    assert set(np.unique(feats.levels)) == set(range(8))
    assert np.allclose(feats.level_scales, 1.2 ** feats.levels)


def _cells_covered(feats: Features) -> int:
    hist, _, _ = np.histogram2d(feats.keypoints[:, 0], feats.keypoints[:, 1], bins=(16, 12), range=((0, 640), (0, 480)))
    return int((hist > 0).sum())


def test_grid_selection_spreads_keypoints(images, orb):
    plain = create_extractor('orb', {'grid_cell': 0}).extract(images)
    balanced = orb.extract(images)
    assert _cells_covered(balanced) > _cells_covered(plain)


@pytest.mark.parametrize('image', [
    np.zeros((480, 640, 3), np.uint8),
    np.full((480, 640, 3), 200, np.uint8),
    np.zeros((0, 0, 3), np.uint8),
    np.zeros((1, 1, 3), np.uint8),
    np.zeros((30, 30), np.uint8),
], ids=['black', 'flat', 'empty', 'one-pixel', 'tiny-grey'])
def test_featureless_images_give_empty_features(orb, image):
    feats = orb.extract(image)
    assert len(feats) == 0
    assert feats.keypoints.shape == (0, 2) and feats.descriptors.shape == (0, 32) and feats.levels.shape == (0,)


def test_grey_and_rgba_input(images, orb):
    grey = (images.astype(np.float32) @ [0.299, 0.587, 0.114]).round().astype(np.uint8)
    for image in (grey, grey[:, :, None], np.dstack([images, np.full(images.shape[:2], 255, np.uint8)])):
        assert len(orb.extract(image)) > 900


def test_bad_input_raises(orb):
    with pytest.raises(ImageFormatError, match='uint8'):
        orb.extract(np.zeros((480, 640, 3), np.float32))
    with pytest.raises(ImageFormatError, match='shape'):
        orb.extract(np.zeros((480, 640, 2), np.uint8))


def test_features_validate():
    feats = Features(np.zeros((3, 2)), np.arange(3), np.zeros((3, 32)), levels=[0, 1, 2], scale_factor=2.0,
                     n_levels=3)
    assert feats.descriptors.dtype == np.uint8 and feats.levels.dtype == np.int16
    assert feats.level_scales.tolist() == [1.0, 2.0, 4.0]
    assert Features(np.zeros((2, 2)), np.zeros(2), np.zeros((2, 4))).levels.tolist() == [0, 0]
    with pytest.raises(ValueError, match='descriptors of 3 keypoints'):
        Features(np.zeros((3, 2)), np.zeros(3), np.zeros((2, 32)))
    with pytest.raises(ValueError, match='unknown descriptor distance'):
        Features(np.zeros((0, 2)), np.zeros(0), np.zeros((0, 4)), 'cosine')
