"""RaP-Net training (rapnet_loc.rapnet.data, losses, train): labels, correspondences, losses, resumable runs."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rapnet_loc.errors import ConfigError, DatasetError
from rapnet_loc.rapnet.data import correspondences, load_frames, location_labels, sample_tuple
from rapnet_loc.rapnet.losses import (cosim_repeatability_loss, d2_triplet_loss, detection_map, global_descriptor,
                                     info_nce_loss, peak_alignment_loss, ratio_loss, soft_detection)
from rapnet_loc.rapnet.train import TrainConfig, pooled_maps, train
from rapnet_loc.rapnet.weights import load_model, random_model


def pose(x: float, yaw_deg: float = 0.0) -> np.ndarray:
    c, s = np.cos(np.radians(yaw_deg)), np.sin(np.radians(yaw_deg))
    T = np.eye(4)
    T[:3, :3] = [[c, -s, 0], [s, c, 0], [0, 0, 1]]
    T[0, 3] = x
    return T


@pytest.fixture(scope='module')
def scene(shared_data):
    return shared_data / '7scenes-redkitchen-seq01-dev'


def test_location_labels_follow_distance_and_orientation():
    poses = np.array([pose(0.0), pose(0.1), pose(0.2), pose(0.3), pose(0.4), pose(0.05, 40), pose(0.1, 45), pose(0.0)])
    # 0.3 m from the first location's first frame is too far; 40 degrees of yaw too much; back at the start: 0 again
    assert location_labels(poses, max_distance=0.25, max_angle_deg=20).tolist() == [0, 0, 0, 1, 1, 2, 2, 0]


def test_sample_tuple_draws_anchor_positive_and_negatives():
    labels = np.array([0, 0, 0, 1, 1, 2, 3, 3])
    rng = np.random.default_rng(0)
    for _ in range(20):
        t = sample_tuple(labels, rng, negatives=4)
        assert labels[t[0]] == labels[t[1]] and t[0] != t[1]
        assert np.all(labels[t[2:]] != labels[t[0]]) and len(set(t.tolist())) == 6
    with pytest.raises(DatasetError, match='tuples'):
        sample_tuple(np.arange(6), rng)
    # place 0 seen at frames 0-2 and again at 9-10: with min_gap 5 the pair spans the two visits
    labels = np.array([0, 0, 0, 1, 1, 2, 3, 3, 4, 0, 0])
    for _ in range(20):
        t = sample_tuple(labels, rng, negatives=3, min_gap=5)
        assert labels[t[0]] == labels[t[1]] == 0 and abs(t[0] - t[1]) >= 5
    with pytest.raises(DatasetError, match='5 frames apart'):
        sample_tuple(np.array([0, 0, 1, 1, 2, 2]), rng, negatives=2, min_gap=5)


def test_correspondences_of_a_frame_with_itself_are_the_identity(scene):
    frame = load_frames(scene, 0, 10, 10, 80)[0:1] * 2
    pos1, pos2 = correspondences(frame[0], frame[1], 100, np.random.default_rng(0))
    assert len(pos1) == 100 and np.allclose(pos1, pos2, atol=1e-6)


def test_ratio_loss_swaps_anchor_and_positive_to_the_harder_side():
    a, p = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    negatives = torch.tensor([[[0.8, 0.6], [0.6, 0.8], [1.0, 0.2], [0.9, 0.1]]])
    loss = ratio_loss(a, p, negatives)
    assert torch.isclose(loss, ratio_loss(p, a, negatives))
    d_ap = torch.tensor(2.0).sqrt()
    d_an = torch.minimum((a[:, None] - negatives).norm(dim=2).mean(), (p[:, None] - negatives).norm(dim=2).mean())
    expected = 2 * (d_ap.exp() / (d_ap.exp() + d_an.exp())) ** 2
    assert torch.isclose(loss, expected)


def test_global_descriptor_and_soft_detection_are_normalised():
    features, region = torch.rand(2, 16, 12, 10), torch.rand(2, 12, 10)
    assert torch.allclose(global_descriptor(features, region).norm(dim=1), torch.ones(2))
    assert torch.allclose(soft_detection(features).sum(dim=(1, 2)), torch.ones(2))


def test_d2_loss_vanishes_for_distinct_matched_descriptors():
    g = torch.Generator().manual_seed(0)
    f = torch.randn(256, 12, 16, generator=g).abs()
    f = f / f.norm(dim=0, keepdim=True)
    pos = torch.stack(torch.meshgrid(torch.arange(2, 10), torch.arange(2, 14), indexing='ij'), -1).reshape(-1, 2)
    assert d2_triplet_loss(f, f, pos, pos.double(), margin=0.1).item() < 1e-6
    shuffled = f.reshape(256, -1)[:, torch.randperm(192, generator=g)].reshape(256, 12, 16)
    assert d2_triplet_loss(f, shuffled, pos, pos.double(), margin=0.1).item() > 0.05


@pytest.mark.parametrize('radius, weighted', [(None, False), (0, False), (1, False), (1, True)])
def test_info_nce_prefers_distinct_matches_and_rates_collapse_at_log_n(radius, weighted):
    g = torch.Generator().manual_seed(1)
    f = torch.randn(256, 12, 16, generator=g).abs()
    pos = torch.stack(torch.meshgrid(torch.arange(2, 10, 2), torch.arange(2, 14, 2), indexing='ij'), -1).reshape(-1, 2)
    assert info_nce_loss(f, f, pos, pos.double(), radius, weighted, temperature=0.02).item() < 1e-3
    flat = torch.ones(8, 12, 16)
    candidates = len(pos) if radius is None else 12 * 16 - 8 * radius     # a 3x3 box has 8 neighbours
    loss = info_nce_loss(flat, flat, pos, pos.double(), radius, weighted).item()
    assert loss == pytest.approx(np.log(candidates), abs=1e-4)
    with pytest.raises(ConfigError, match='unknown base-stage loss'):
        train(TrainConfig(data='unused', out='unused', loss='triplet'))


def blobs(shape, centres, channels=4):
    """(channels, H, W): channel k holds Gaussian peaks at the centres with index = k mod channels."""
    i, j = np.mgrid[:shape[0], :shape[1]].astype(np.float64)
    f = np.zeros((channels,) + shape)
    for n, (ci, cj) in enumerate(centres):
        f[n % channels] += 10 * np.exp(-((i - ci) ** 2 + (j - cj) ** 2) / 8)
    return torch.tensor(f, dtype=torch.float32)


CENTRES = [(10, 10), (10, 40), (30, 12), (32, 44)]
SHAPE = (44, 56)


def shifted(di: float, dj: float, centres=CENTRES) -> torch.Tensor:
    return blobs(SHAPE, [(a + di, b + dj) for a, b in centres])


def shift_warp() -> torch.Tensor:
    """Image 2 = image 1 moved by (1, -2) pixels."""
    i, j = np.mgrid[:SHAPE[0], :SHAPE[1]].astype(np.float64)
    return torch.tensor(np.stack([i + 1, j - 2], -1))


def descend(loss, f1, start: torch.Tensor, lr: float, steps: int = 20) -> tuple[float, float]:
    """``loss(f1, f2, warp)`` before and after ``steps`` Adam steps on f2 = ``start``."""
    moving = start.clone().requires_grad_(True)
    optimiser = torch.optim.Adam([moving], lr=lr)
    before = loss(f1, moving, shift_warp()).item()
    for _ in range(steps):
        optimiser.zero_grad()
        loss(f1, moving, shift_warp()).backward()
        optimiser.step()
    return before, loss(f1, moving, shift_warp()).item()


def test_peak_alignment_rewards_peaks_where_the_warp_puts_them():
    f1, warp = shifted(0, 0), shift_warp()
    off = shifted(3, 0)                                                         # peaks 2 px from where they belong
    wrong_channel = shifted(1, -2, CENTRES[1:] + CENTRES[:1])
    good = peak_alignment_loss(f1, shifted(1, -2), warp).item()
    assert good < 0.01
    assert peak_alignment_loss(f1, off, warp).item() > good + 0.1
    assert peak_alignment_loss(f1, wrong_channel, warp).item() > good + 1.0
    assert peak_alignment_loss(f1, shifted(1, -2), torch.full(SHAPE + (2,), float('nan'), dtype=torch.float64)) is None
    before, after = descend(peak_alignment_loss, f1, off, lr=0.3)
    assert after < 0.5 * before


def test_detection_map_fires_where_the_hard_detection_does():
    s = detection_map(shifted(0, 0)[None])[0]
    assert s.shape == SHAPE and float(s.min()) >= 0 and float(s.max()) <= 1 + 1e-6
    assert all(s[c].item() > 0.99 for c in CENTRES)
    assert s[20, 26].item() < 0.01 and s[12, 10].item() < 0.5          # between the peaks; 2 px off a peak


def test_cosim_repeatability_rewards_maps_that_follow_the_warp():
    f1, warp = shifted(0, 0), shift_warp()
    good = cosim_repeatability_loss(f1, shifted(1, -2), warp, peaky_weight=0.0).item()
    assert good < 0.02
    assert cosim_repeatability_loss(f1, shifted(4, 1), warp, peaky_weight=0.0).item() > good + 0.2
    nan_warp = torch.full(SHAPE + (2,), float('nan'), dtype=torch.float64)
    assert cosim_repeatability_loss(f1, shifted(1, -2), nan_warp) is None
    before, after = descend(cosim_repeatability_loss, f1, shifted(2, -2), lr=0.1)     # 1 px off
    assert after < before - 0.1


def test_training_resumes_to_the_same_result(scene, tmp_path):
    common = dict(data=str(scene), width=0.125, max_edge=48, first=0, last=40, stride=10, checkpoint_every=2,
                  correspondences=64)
    straight = train(TrainConfig(out=str(tmp_path / 'a'), steps=4, **common), progress=False)
    train(TrainConfig(out=str(tmp_path / 'b'), steps=2, **common), progress=False)
    resumed = train(TrainConfig(out=str(tmp_path / 'b'), steps=4, **common), resume=True, progress=False)
    assert resumed.losses == straight.losses and len(straight.losses) == 4
    assert straight.weights.name == 'rapnet_w012_base.pt'
    a, b = load_model(straight.weights)[0], load_model(resumed.weights)[0]
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert (tmp_path / 'a' / 'losses.csv').read_text().count('\n') == 5
    with pytest.raises(ConfigError, match='cannot resume.*max_edge'):
        train(TrainConfig(out=str(tmp_path / 'b'), steps=6, **{**common, 'max_edge': 64}), resume=True,
              progress=False)
    with pytest.raises(ConfigError, match='at step 4 with --steps 3'):
        train(TrainConfig(out=str(tmp_path / 'b'), steps=3, **common), resume=True, progress=False)

    for repeat_loss in ('peak', 'cosim'):
        repeat = train(TrainConfig(out=str(tmp_path / repeat_loss), steps=2, loss='d2-nce', safe_radius=1,
                                   repeat_weight=1.0, repeat_loss=repeat_loss, **common), progress=False)
        assert len(repeat.losses) == 2 and np.all(np.isfinite(repeat.losses))
    with pytest.raises(ConfigError, match='unknown repeatability loss'):
        train(TrainConfig(data='unused', out='unused', repeat_weight=1.0, repeat_loss='r2d2'))

    region = train(TrainConfig(out=str(tmp_path / 'r'), stage='region', init=str(straight.weights), steps=2,
                               loc_distance=0.1, loc_angle=10.0, **{**common, 'last': 80}), progress=False)
    model, info = load_model(region.weights, width=0.125, need_region=True)
    assert region.weights.name == 'rapnet_w012.pt' and info.region and len(region.losses) == 2
    with pytest.raises(ConfigError, match='--init'):
        train(TrainConfig(out=str(tmp_path / 'x'), stage='region', **common), progress=False)


def test_region_spread_pulls_the_spread_of_r_to_its_target(scene, tmp_path):
    common = dict(data=str(scene), width=0.125, max_edge=48, first=0, last=80, stride=10, loc_distance=0.1,
                  loc_angle=10.0)
    base = train(TrainConfig(out=str(tmp_path / 'base'), steps=1, correspondences=64, **common), progress=False)
    runs = {spread: train(TrainConfig(out=str(tmp_path / str(spread)), stage='region', init=str(base.weights),
                                      steps=15, region_spread=spread, **common), progress=False)
            for spread in (None, 0.0)}
    # the same seeded head and tuple at the first step: the spread term is added to the ratio loss
    assert runs[0.0].losses[0] > runs[None].losses[0]
    image = torch.from_numpy(load_frames(str(scene), 0, 80, 10, 48)[0].image)
    spreads = {}
    for spread, run in runs.items():
        model = load_model(run.weights, width=0.125, need_region=True)[0].eval()
        with torch.no_grad():
            spreads[spread] = model(image)[1].std().item()
    assert spreads[0.0] < 0.5 * spreads[None], spreads
    with pytest.raises(ConfigError, match='region_spread must be >= 0'):
        train(TrainConfig(data='unused', out='unused', stage='region', region_spread=-1.0))
    with pytest.raises(ConfigError, match='pool_safe_radius and region_spread must be >= 0'):
        train(TrainConfig(data='unused', out='unused', pool_safe_radius=-2))


def test_pooled_maps_shrink_run_and_upsample(scene, tmp_path):
    backbone = random_model(0.125, seed=0, region=False)[0].backbone.eval()
    x = torch.randn(2, 3, 24, 32, generator=torch.Generator().manual_seed(0))
    whole = torch.zeros(2, 2, dtype=torch.int64), (24, 32)
    with torch.no_grad():
        assert torch.allclose(pooled_maps(backbone, x, *whole, [1.0]), backbone(x), atol=1e-6)
        half = F.interpolate(backbone(F.avg_pool2d(x, 2)), scale_factor=2, mode='bilinear', align_corners=False)
        quarter = F.interpolate(backbone(F.avg_pool2d(x, 4)), scale_factor=4, mode='bilinear', align_corners=False)
        assert torch.allclose(pooled_maps(backbone, x, *whole, [0.5, 0.25]), half + quarter, atol=1e-5)
        # windows (one inside, one on the border) get the whole images' values though the net sees only their context
        big = torch.randn(2, 3, 160, 224, generator=torch.Generator().manual_seed(1))
        corners = torch.tensor([[70, 90], [144, 0]])
        full = pooled_maps(backbone, big, torch.zeros(2, 2, dtype=torch.int64), (160, 224), [0.5, 0.25])
        windows = pooled_maps(backbone, big, corners, (16, 20), [0.5, 0.25])
        for n, (r, c) in enumerate(corners.tolist()):
            assert torch.allclose(windows[n], full[n, :, r:r + 16, c:c + 20], atol=1e-5)

    common = dict(data=str(scene), width=0.125, max_edge=48, first=0, last=40, stride=10, steps=2, loss='d2-nce',
                  safe_radius=1, correspondences=64)
    plain = train(TrainConfig(out=str(tmp_path / 'plain'), **common), progress=False)
    pooled = train(TrainConfig(out=str(tmp_path / 'pooled'), descriptor_scales=[0.5, 0.25], **common),
                   progress=False)
    # the same seeded network and pair at the first step; the pooled maps' InfoNCE is added to the loss on F
    assert pooled.losses[0] > plain.losses[0] + 1.0 and np.all(np.isfinite(pooled.losses))
    # a wider exclusion radius for the pooled maps' negatives leaves fewer of them: a smaller first loss
    wide = train(TrainConfig(out=str(tmp_path / 'wide'), descriptor_scales=[0.5, 0.25], pool_safe_radius=3,
                             **common), progress=False)
    assert plain.losses[0] < wide.losses[0] < pooled.losses[0]
    with pytest.raises(ConfigError, match=r'descriptor scales must lie in \(0, 1\]'):
        train(TrainConfig(data='unused', out='unused', descriptor_scales=[0.5, 0.0]))
