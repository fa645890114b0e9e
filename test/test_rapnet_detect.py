"""RaP-Net keypoint detection and selection (rapnet_loc.rapnet.detect) on hand-made tensors."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rapnet_loc.features.base import rap_scores
from rapnet_loc.rapnet.detect import detect, hard_detection, nms, pooled_descriptors, subpixel_offsets


def d2net_hard_detection(batch: torch.Tensor, edge_threshold: float = 5) -> torch.Tensor:
    """D2-Net's HardDetectionModule as published (convolution filters, 27x27 max pool over every channel)."""
    b, c, h, w = batch.shape
    dii_filter = torch.tensor([[0, 1., 0], [0, -2., 0], [0, 1., 0]]).view(1, 1, 3, 3)
    dij_filter = 0.25 * torch.tensor([[1., 0, -1.], [0, 0., 0], [-1., 0, 1.]]).view(1, 1, 3, 3)
    djj_filter = torch.tensor([[0, 0, 0], [1., -2., 1.], [0, 0, 0]]).view(1, 1, 3, 3)
    is_depth_wise_max = batch == torch.max(batch, dim=1)[0]
    is_local_max = batch == F.max_pool2d(batch, 27, stride=1, padding=13)
    dii = F.conv2d(batch.view(-1, 1, h, w), dii_filter, padding=1).view(b, c, h, w)
    dij = F.conv2d(batch.view(-1, 1, h, w), dij_filter, padding=1).view(b, c, h, w)
    djj = F.conv2d(batch.view(-1, 1, h, w), djj_filter, padding=1).view(b, c, h, w)
    det, tr = dii * djj - dij * dij, dii + djj
    is_not_edge = torch.min(tr * tr / det <= (edge_threshold + 1) ** 2 / edge_threshold, det > 0)
    return torch.min(is_depth_wise_max, torch.min(is_local_max, is_not_edge))


def blob(shape, center, height, sigma=(1.5, 1.5)):
    i, j = np.mgrid[:shape[0], :shape[1]]
    return height * np.exp(-0.5 * (((i - center[0]) / sigma[0]) ** 2 + ((j - center[1]) / sigma[1]) ** 2))


def positions(ij: torch.Tensor) -> list[tuple[int, int]]:
    return sorted(map(tuple, ij.tolist()))


def test_hard_detection_on_hand_made_peaks():
    shape = (40, 60)
    c0 = (blob(shape, (10, 10), 1.0)            # isotropic peak: detected
          + blob(shape, (10, 20), 0.8)          # 10 px from a higher peak of its channel: not a 27x27 maximum
          + blob(shape, (10, 36), 0.5)          # 16 px from the 0.8 one, 26 from the 1.0 one: detected
          + blob(shape, (30, 15), 0.9, (1.0, 6.0)))  # elongated ridge: fails the edge test
    c1 = (blob(shape, (30, 45), 0.7)            # the other channel's peak: detected
          + blob(shape, (10, 10), 0.6))         # below channel 0 at that pixel: not the channel maximum
    features = torch.tensor(np.stack([c0, c1]), dtype=torch.float32)
    ij, p = hard_detection(features)
    assert positions(ij) == [(10, 10), (10, 36), (30, 45)]
    assert torch.allclose(p, features.max(dim=0)[0][ij[:, 0], ij[:, 1]])


def test_edge_test_keeps_round_peaks_and_drops_ridges():
    for sigma, kept in [((2.0, 2.0), True), ((2.0, 3.0), True), ((1.0, 6.0), False), ((6.0, 1.0), False)]:
        features = torch.tensor(blob((31, 31), (15, 15), 1.0, sigma), dtype=torch.float32)[None]
        assert (len(hard_detection(features)[0]) == 1) == kept, sigma


@pytest.mark.parametrize('seed', range(4))
def test_hard_detection_equals_d2net_on_random_maps(seed):
    g = torch.Generator().manual_seed(seed)
    features = F.avg_pool2d(torch.randn(1, 8, 48, 64, generator=g), 5, 1, 2)
    if seed % 2:
        features = F.relu(features)
    reference = d2net_hard_detection(features)[0].nonzero()[:, 1:]
    ij, _ = hard_detection(features[0])
    assert len(ij) > 5 and positions(ij) == positions(reference)


def test_nms_is_greedy_over_a_9x9_box():
    ij = np.array([[5, 5], [5, 9], [5, 10], [9, 9], [0, 0], [9, 10]])
    scores = np.array([1.0, 0.9, 0.8, 0.7, 0.5, 0.6])
    # (5, 9) and (9, 9) lie within 4 px of (5, 5); (9, 10) within 4 px of (5, 10); suppressed points suppress nothing
    assert nms(ij, scores, (12, 12), radius=4).tolist() == [0, 2, 4]
    assert nms(ij, scores, (12, 12), radius=0).tolist() == [0, 1, 2, 3, 5, 4]
    assert nms(np.zeros((0, 2), np.int64), np.zeros(0), (12, 12)).tolist() == []


def test_scores_order_like_p_times_exp_r():
    rng = np.random.default_rng(0)
    p, r = rng.uniform(0.1, 5.0, 200), rng.normal(0.0, 1.0, 200)
    scores = rap_scores(p, r)
    assert np.array_equal(np.argsort(-scores), np.argsort(-(p * np.exp(r))))
    assert np.allclose(scores, p / p.sum() * np.exp(r - r.mean()))
    assert np.array_equal(rap_scores(p, None), p)


def test_detect_selects_the_best_k_with_unit_descriptors():
    g = torch.Generator().manual_seed(5)
    features = F.relu(F.avg_pool2d(torch.randn(1, 16, 64, 80, generator=g), 5, 1, 2))[0]
    region = torch.rand(64, 80, generator=g) * 3
    everything = detect(features, region, max_keypoints=10_000)
    best = detect(features, region, max_keypoints=5)
    assert len(everything.ij) > 5
    assert np.array_equal(best.ij, everything.ij[:5])
    assert np.all(np.diff(everything.scores) <= 0)
    p = features.max(dim=0)[0][everything.ij[:, 0], everything.ij[:, 1]].numpy()
    r = region[everything.ij[:, 0], everything.ij[:, 1]].numpy()
    assert np.array_equal(np.argsort(-everything.scores, kind='stable'), np.argsort(-(p * np.exp(r)), kind='stable'))
    assert np.array_equal(everything.region, r.astype(np.float32))
    assert np.allclose(np.linalg.norm(best.descriptors, axis=1), 1.0, atol=1e-6)
    expected = features[:, best.ij[:, 0], best.ij[:, 1]].T.numpy()
    assert np.allclose(best.descriptors, expected / np.linalg.norm(expected, axis=1, keepdims=True), atol=1e-6)
    p_only = detect(features, None, max_keypoints=10_000)
    assert np.all(np.diff(p_only.scores) <= 0)
    assert sorted(map(tuple, p_only.ij)) == sorted(map(tuple, everything.ij))
    assert np.array_equal(p_only.region, np.ones(len(p_only.ij), np.float32))


def test_detect_on_a_flat_map_finds_nothing():
    found = detect(torch.zeros(8, 30, 40), torch.ones(30, 40), max_keypoints=100)
    assert found.ij.shape == (0, 2) and found.descriptors.shape == (0, 8) and found.region.shape == (0,)
    assert found.offsets.shape == (0, 2)


def quadratic_peaks(shape=(24, 40)):
    """Two channels, each a quadratic peak at a sub-pixel position (the Newton step is exact on a quadratic);
    channel 1 is shifted by 100 so that it is the maximal channel near its peak, channel 0 elsewhere."""
    i, j = np.mgrid[:shape[0], :shape[1]].astype(np.float64)
    a = 50 - (i - 6.3) ** 2 - 2 * (j - 9.8) ** 2 + 0.5 * (i - 6.3) * (j - 9.8)
    b = 150 - 1.5 * (i - 15.6) ** 2 - (j - 28.25) ** 2 - 3 * np.hypot(i - 15.6, j - 28.25) ** 4
    return torch.tensor(np.stack([a, np.where(np.hypot(i - 15.6, j - 28.25) < 4, b, -1e3)]), dtype=torch.float32)


def test_subpixel_offsets_recover_a_quadratic_peak():
    features = quadratic_peaks()
    offsets = subpixel_offsets(features, torch.tensor([[6, 10]]))
    assert np.allclose(offsets.numpy(), [[0.3, -0.2]], atol=1e-4)
    found = detect(features, None, max_keypoints=10)
    assert [tuple(p) for p in found.ij] == [(16, 28), (6, 10)]
    assert np.allclose(found.offsets[1], [0.3, -0.2], atol=1e-4)
    assert np.allclose(found.offsets[0], [-0.4, 0.25], atol=0.06)   # quartic term: one Newton step, not exact
    assert np.array_equal(detect(features, None, max_keypoints=10, subpixel=False).offsets, np.zeros((2, 2)))


def test_subpixel_offsets_stay_within_half_a_pixel():
    g = torch.Generator().manual_seed(3)
    features = F.relu(torch.randn(8, 40, 50, generator=g))
    found = detect(features, None, max_keypoints=1000)
    assert len(found.ij) > 5
    assert np.all(np.abs(found.offsets) <= 0.5) and np.all(np.isfinite(found.offsets))


def test_pooled_descriptors_sample_smaller_maps_at_the_keypoints_own_place():
    """Maps linear in the pixel centre's position (in input pixels) give back that linear function at any keypoint
    inside them: the pixel-centre alignment between the input and a map of another size is right."""
    coeff = torch.tensor([[1.0, 0.0, 2.0], [0.0, 1.0, 3.0], [0.5, -0.25, 40.0]])   # (C, 3): row, column, constant

    def linear_map(h, w, shape=(48, 64)):
        row = (torch.arange(h, dtype=torch.float64) + 0.5) * shape[0] / h - 0.5
        col = (torch.arange(w, dtype=torch.float64) + 0.5) * shape[1] / w - 0.5
        rr, cc = torch.meshgrid(row, col, indexing='ij')
        return torch.einsum('ck,khw->chw', coeff.double(), torch.stack([rr, cc, torch.ones_like(rr)])).float()

    ij = np.array([[10.0, 20.0], [23.25, 40.5], [30.0, 7.75]])
    expected = torch.from_numpy(np.c_[ij, np.ones(3)]).float() @ coeff.T
    for maps in ([linear_map(24, 32)], [linear_map(12, 16)], [linear_map(24, 32), linear_map(12, 16)]):
        got = pooled_descriptors(maps, ij, (48, 64))
        assert got.dtype == np.float32 and got.shape == (3, 3)
        assert np.allclose(got, F.normalize(expected, dim=1).numpy(), atol=1e-5)


def test_pooled_descriptors_of_the_same_map_are_its_columns_and_clip_at_the_border():
    f = torch.rand(8, 6, 10, generator=torch.Generator().manual_seed(0))
    ij = np.array([[0, 0], [2, 7], [5, 9]])
    assert np.allclose(pooled_descriptors([f], ij, (6, 10)), F.normalize(f[:, ij[:, 0], ij[:, 1]].T, dim=1), atol=1e-6)
    corner = pooled_descriptors([f[:, ::2, ::2]], np.array([[0.0, 0.0]]), (6, 10))   # maps to (-0.25, -0.25)
    assert np.allclose(corner[0], F.normalize(f[:, 0, 0], dim=0), atol=1e-6)
    assert pooled_descriptors([f], np.zeros((0, 2)), (6, 10)).shape == (0, 8)
