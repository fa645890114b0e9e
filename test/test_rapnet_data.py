"""RaP-Net training data from synthetic bags (rapnet_loc.synth.frames) and training crops (rapnet.data.crop_pair)."""
import numpy as np
import pytest

from rapnet_loc.rapnet.data import TrainFrame, correspondences, crop_pair, load_frames
from rapnet_loc.rapnet.train import TrainConfig, train
from rapnet_loc.synth import DYNAMIC, Challenges, generate
from rapnet_loc.synth.frames import bag_frames, write_training_folder

FRAMES, WIDTH, HEIGHT = 8, 96, 72


@pytest.fixture(scope='module')
def synthetic(tmp_path_factory):
    """A 2 x 8-frame synthetic scene with people, as bags and as a training folder."""
    out = tmp_path_factory.mktemp('synth')
    summary = generate(out / 'bags', 'home', 2, FRAMES, WIDTH, HEIGHT, seed=5, challenges=Challenges(people=4),
                       compression='none', progress=False)
    assert write_training_folder(summary.bags, out / 'train', progress=False) == 2 * FRAMES
    return summary, out / 'train'


def test_bag_frames_carry_labels_and_the_generator_poses(synthetic):
    summary, _ = synthetic
    K, items = bag_frames(summary.bags[1])
    items = list(items)
    assert np.allclose(K, summary.camera.K) and len(items) == FRAMES
    for item, T in zip(items, summary.sequences[1].T_world_cam):
        assert item.labels.shape == item.frame.depth.shape == (HEIGHT, WIDTH)
        assert np.allclose(item.T_wc, T, atol=1e-6)


def test_training_folder_has_static_depth_only_and_poses_across_sequences(synthetic):
    summary, folder = synthetic
    frames = load_frames(folder, 0, 2 * FRAMES - 1, 1, WIDTH)
    assert len(frames) == 2 * FRAMES and np.allclose(frames[0].K, summary.camera.K)
    assert np.allclose(frames[FRAMES].T_wc, summary.sequences[1].T_world_cam[0], atol=1e-6)
    dynamic = [(item.labels & DYNAMIC) > 0 for item in bag_frames(summary.bags[0])[1]]
    assert any(d.any() for d in dynamic), 'the people should be in view'
    for frame, mask in zip(frames, dynamic):
        assert np.all(frame.depth[mask] == 0) and np.all(frame.depth[~mask] > 0)
    pos1, pos2 = correspondences(frames[0], frames[0], 200, np.random.default_rng(0))
    assert len(pos1) == 200 and np.allclose(pos1, pos2, atol=1e-6)


def test_crop_pair_keeps_the_correspondences_inside_both_windows():
    h, w = 40, 60
    frame = TrainFrame(0, np.arange(3 * h * w, dtype=np.float32).reshape(1, 3, h, w), np.ones((h, w), np.float32),
                       np.eye(3), np.eye(4))
    ij = np.stack(np.meshgrid(np.arange(h), np.arange(w), indexing='ij'), -1).reshape(-1, 2)
    pos2 = ij + [3.0, -5.0]                      # image b is image a moved by (+3, -5) pixels
    c1, c2, p1, p2, corners = crop_pair(frame, frame, ij, pos2, 16, 10_000, np.random.default_rng(1))
    assert c1.shape == c2.shape == (1, 3, 16, 16) and 0 < len(p1) <= 256
    for crop, (r, c) in zip((c1, c2), corners):
        assert np.array_equal(crop, frame.image[..., r:r + 16, c:c + 16])
    assert np.all((p1 >= 0) & (p1 < 16)) and np.all((p2 >= 0) & (p2 <= 15))
    i1, j1 = p1.T
    i2, j2 = np.rint(p2).astype(int).T
    assert np.array_equal(c1[0, 0, i1, j1] + 3 * w - 5, c2[0, 0, i2, j2])   # pixel value i * w + j: same point


def test_training_draws_from_several_sources(synthetic, shared_data, tmp_path):
    _, folder = synthetic
    sevenscenes = str(shared_data / '7scenes-redkitchen-seq01-dev')
    cfg = TrainConfig(data=[sevenscenes, str(folder)], out=str(tmp_path), width=0.125, max_edge=64, first=0,
                      last=15, stride=3, steps=2, crop=32, correspondences=64, checkpoint_every=2, loss='dense-nce',
                      safe_radius=1)
    result = train(cfg, progress=False)
    assert len(result.losses) == 2 and np.all(np.isfinite(result.losses)) and result.weights.is_file()
