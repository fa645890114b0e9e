"""NetVLAD, IntegralVLAD, whitening and official checkpoints (rapnet_loc.vpr.netvlad_model), and Patch-NetVLAD's
patch matching and spatial scores (rapnet_loc.vpr.patch_matching)."""
import numpy as np
import pytest
import torch

from rapnet_loc.errors import ConfigError
from rapnet_loc.vpr.backbones import vgg16_encoder
from rapnet_loc.vpr.netvlad_model import (NetVLAD, PatchNetVLAD, fit_wpca, global_vlad, load_checkpoint,
                                          patch_grid, patch_vlad, read_checkpoint, vlad_normalise)
from rapnet_loc.vpr.patch_matching import (fuse, grid_indices, mutual_nearest, patch_centres, ransac_score,
                                           rapid_spatial_score)

K, C, H, W = 4, 8, 9, 11


@pytest.fixture(scope='module')
def pool():
    rng = np.random.default_rng(0)
    descriptors = rng.standard_normal((500, C)).astype(np.float32)
    descriptors /= np.linalg.norm(descriptors, axis=1, keepdims=True)
    layer = NetVLAD(K, C)
    layer.initialise(descriptors[:K] * 0.9, descriptors)
    return layer


def brute_force_vlad(features: torch.Tensor, layer: NetVLAD) -> torch.Tensor:
    """NetVLAD of one (1, C, h, w) map written out cluster by cluster, as the authors' loop does."""
    x = torch.nn.functional.normalize(features, dim=1)[0].reshape(C, -1)          # (C, N)
    assign = torch.softmax(layer.conv.weight[:, :, 0, 0] @ x, dim=0)             # (K, N)
    vlad = torch.stack([((x - layer.centroids[k][:, None]) * assign[k]).sum(1) for k in range(K)])
    return vlad_normalise(vlad.reshape(1, -1), K)


def test_assignment_initialisation_follows_the_authors_alpha(pool):
    unit = pool.centroids.detach().numpy() / np.linalg.norm(pool.centroids.detach().numpy(), axis=1, keepdims=True)
    weight = pool.conv.weight.detach().numpy()[:, :, 0, 0]
    alpha = np.linalg.norm(weight, axis=1)
    assert np.allclose(alpha, alpha[0]) and np.allclose(weight / alpha[:, None], unit, atol=1e-6)
    rng = np.random.default_rng(0)
    descriptors = rng.standard_normal((500, C))
    descriptors /= np.linalg.norm(descriptors, axis=1, keepdims=True)
    dots = np.sort(descriptors @ unit.T, axis=1)
    assert alpha[0] == pytest.approx(-np.log(0.01) / np.mean(dots[:, -1] - dots[:, -2]), rel=1e-4)


def test_global_vlad_is_the_authors_netvlad(pool):
    features = torch.randn(1, C, H, W, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.allclose(global_vlad(pool.residuals(features)), brute_force_vlad(features, pool), atol=1e-6)


@pytest.mark.parametrize('size,stride', [(1, 1), (2, 1), (3, 2), (5, 1), (5, 3), (8, 1), (9, 2)])
def test_integral_vlad_equals_brute_force_patch_vlad(pool, size, stride):
    features = torch.randn(1, C, H, W, generator=torch.Generator().manual_seed(size * 10 + stride))
    with torch.no_grad():
        patches = patch_vlad(pool.residuals(features), size, stride)
        rows, cols = patch_grid(H, W, size, stride)
        assert patches.shape == (rows * cols, K * C)
        expected = torch.cat([brute_force_vlad(features[:, :, r * stride:r * stride + size,
                                                        c * stride:c * stride + size], pool)
                              for r in range(rows) for c in range(cols)])
    assert torch.allclose(patches, expected, atol=1e-5)


def test_patches_larger_than_the_map_are_a_clear_error(pool):
    with pytest.raises(ConfigError, match='smaller than the 12x12 patches'):
        patch_vlad(pool.residuals(torch.randn(1, C, H, W)), 12, 1)


@pytest.mark.parametrize('n', [2000, 40])      # covariance and Gram-matrix paths
def test_wpca_whitens_the_samples(n):
    rng = np.random.default_rng(n)
    samples = rng.standard_normal((n, 6)) @ rng.standard_normal((6, 64)) + 3.0
    weight, bias = fit_wpca(samples, 5)
    assert weight.shape == (5, 64) and bias.shape == (5,)
    projected = samples @ weight.T + bias
    assert np.allclose(projected.mean(0), 0, atol=1e-3)
    assert np.allclose(np.cov(projected.T, bias=True), np.eye(5), atol=2e-3)


def test_wpca_keeps_at_most_samples_minus_one_components():
    weight, _ = fit_wpca(np.random.default_rng(0).standard_normal((10, 64)), 128)
    assert weight.shape == (9, 64)


def official_state(k: int = 16, pcs: int = 32) -> dict[str, torch.Tensor]:
    """A state dict with the key names, shapes and dtypes of the authors' checkpoints."""
    state = {f'encoder.{key}': value for key, value in vgg16_encoder().state_dict().items()}
    state['pool.centroids'] = torch.randn(k, 512)
    state['pool.conv.weight'] = torch.randn(k, 512, 1, 1)
    state['WPCA.0.weight'] = torch.randn(pcs, k * 512, 1, 1)
    state['WPCA.0.bias'] = torch.randn(pcs, dtype=torch.float64)
    return state


def test_official_checkpoint_names_load_strictly(tmp_path):
    state = official_state()
    assert sorted({k.split('.')[1] for k in state if k.startswith('encoder.')}, key=int) == \
        ['0', '2', '5', '7', '10', '12', '14', '17', '19', '21', '24', '26', '28']
    path = tmp_path / 'mapillary_WPCA32.pth.tar'
    torch.save({'num_pcs': 32, 'state_dict': state}, path)
    num_pcs, read = read_checkpoint(path)
    model = PatchNetVLAD(vgg16_encoder(), 512, 64, 4096)
    load_checkpoint(model, read, str(path))
    assert num_pcs == 32 and model.num_pcs == 32 and model.pool.clusters == 16
    assert torch.equal(model.pool.centroids, state['pool.centroids'])
    assert torch.allclose(model.WPCA[0].bias.double(), state['WPCA.0.bias'])


@pytest.mark.parametrize('change,named', [
    (lambda s: s.update({'encoder.28.weight': torch.zeros(512, 256, 3, 3)}), r'encoder\.28\.weight \(512, 256'),
    (lambda s: s.pop('encoder.5.bias'), r'missing keys: encoder\.5\.bias'),
    (lambda s: s.update({'pool.bias': torch.zeros(16)}), r'unexpected keys: pool\.bias'),
    (lambda s: s.update({'WPCA.0.weight': torch.zeros(32, 100, 1, 1)}), r'WPCA\.0\.weight \(32, 100, 1, 1\)'),
])
def test_checkpoint_that_does_not_fit_names_the_problem(change, named):
    state = official_state()
    change(state)
    with pytest.raises(ConfigError, match=named):
        load_checkpoint(PatchNetVLAD(vgg16_encoder(), 512, 16, 32), state)


def test_unreadable_checkpoint_is_a_clear_error(tmp_path):
    (tmp_path / 'bad.pth').write_bytes(b'not a checkpoint')
    with pytest.raises(ConfigError, match='cannot read Patch-NetVLAD checkpoint'):
        read_checkpoint(tmp_path / 'bad.pth')
    torch.save({'weights': 1}, tmp_path / 'other.pth')
    with pytest.raises(ConfigError, match='not a Patch-NetVLAD checkpoint'):
        read_checkpoint(tmp_path / 'other.pth')


# --- patch matching: two "images" whose patch grids show the same scene shifted by known cells -------------------

ROWS, COLS, SIZE, STRIDE, CELL = 12, 16, 3, 1, 16


def shifted_grids(dx: int, dy: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Patch descriptors (N, 32) of a query grid and of another image showing the scene shifted by (dx, dy)
    cells: the patch at (c, r) of the other image is the query's patch at (c + dx, r + dy). The scene's patches
    span the first 16 dimensions; patches of the other image that the query does not see span the last 16, so that
    none of them is anyone's nearest neighbour by chance."""
    rng = np.random.default_rng(seed)
    unit = (lambda v: v / np.linalg.norm(v, axis=-1, keepdims=True))
    query = unit(np.concatenate([rng.standard_normal((ROWS, COLS, 16)), np.zeros((ROWS, COLS, 16))], axis=2))
    other = unit(np.concatenate([np.zeros((ROWS, COLS, 16)), rng.standard_normal((ROWS, COLS, 16))], axis=2))
    for r in range(ROWS):
        for c in range(COLS):
            if 0 <= r + dy < ROWS and 0 <= c + dx < COLS:
                other[r, c] = query[r + dy, c + dx]
    return query.reshape(-1, 32), other.reshape(-1, 32)


@pytest.mark.parametrize('dx,dy', [(0, 0), (3, 0), (-2, 4), (5, -3)])
def test_mutual_matches_recover_a_known_shift(dx, dy):
    query, other = shifted_grids(dx, dy)
    qi, oi = mutual_nearest(query, other)
    ij = grid_indices(ROWS, COLS)
    assert len(qi) == (ROWS - abs(dy)) * (COLS - abs(dx))
    assert np.all(ij[qi] - ij[oi] == [dx, dy])      # query patch (c + dx, r + dy) is the other's (c, r)


@pytest.mark.parametrize('dx,dy', [(0, 0), (3, 0), (-2, 4)])
def test_ransac_score_counts_the_overlap(dx, dy):
    query, other = shifted_grids(dx, dy)
    qi, oi = mutual_nearest(query, other)
    centres = patch_centres(ROWS, COLS, SIZE, STRIDE, CELL)
    assert centres[0].tolist() == [SIZE / 2 * CELL, SIZE / 2 * CELL]
    overlap = (ROWS - abs(dy)) * (COLS - abs(dx))
    score = ransac_score(centres[qi], centres[oi], len(query), 1.5 * STRIDE * CELL)
    assert score == pytest.approx(overlap / len(query))


def test_ransac_score_rejects_incoherent_matches():
    query, other = shifted_grids(2, 1)
    qi, oi = mutual_nearest(query, other)
    centres = patch_centres(ROWS, COLS, SIZE, STRIDE, CELL)
    scrambled = np.random.default_rng(0).permutation(oi)
    assert ransac_score(centres[qi], centres[scrambled], len(query), 24.0) < 0.2
    assert ransac_score(centres[qi][:3], centres[oi][:3], len(query), 24.0) == 0.0


@pytest.mark.parametrize('dx,dy', [(0, 0), (3, 0), (-2, 4)])
def test_rapid_spatial_score_of_a_coherent_shift(dx, dy):
    query, other = shifted_grids(dx, dy)
    qi, oi = mutual_nearest(query, other)
    ij = grid_indices(ROWS, COLS)
    grid_max = np.array([COLS - 1, ROWS - 1])
    overlap = (ROWS - abs(dy)) * (COLS - abs(dx))
    score = rapid_spatial_score(ij[qi], ij[oi], len(query), grid_max)
    assert score == pytest.approx(overlap * ((COLS - 1) ** 2 + (ROWS - 1) ** 2) / len(query))
    scrambled = rapid_spatial_score(ij[qi], ij[np.random.default_rng(1).permutation(oi)], len(query), grid_max)
    assert rapid_spatial_score(ij[qi][:10], ij[oi][:10], len(query), grid_max) < 0.1 * score
    assert scrambled < 0.7 * score
    assert rapid_spatial_score(ij[:0], ij[:0], len(query), grid_max) == 0.0


def test_fusion_standardises_each_patch_size_over_the_shortlist():
    scores = np.array([[0.5, 40.0, 0.1], [0.3, 10.0, 0.1], [0.1, 25.0, 0.1]])      # 3 candidates, 3 patch sizes
    weights = [0.45, 0.15, 0.4]
    z = (scores[:, :2] - scores[:, :2].mean(axis=0)) / scores[:, :2].std(axis=0)
    np.testing.assert_allclose(fuse(scores, weights), z @ weights[:2])     # a constant column adds nothing
    np.testing.assert_allclose(fuse(scores * [1, 100, 1], weights), fuse(scores, weights))     # scale-free
    np.testing.assert_allclose(fuse(scores[:, 1:2], [1.0]), scores[:, 1])       # one patch size: the raw scores

