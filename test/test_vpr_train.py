"""NetVLAD training (rapnet_loc.vpr.train, ``rapnet-loc train-netvlad``) on real 7-Scenes frames 0-349 (350-499 are
the benchmark's queries): the triplet objective drops, a resumed run equals an uninterrupted one, the checkpoint
loads into ``netvlad`` and ``patchnetvlad`` for its own backbone and clusters only, and bad input is a clear error.

The backbone maps of the training frames are computed once (by the ``trained`` run) and copied into the other runs'
output folders, where training reuses them as it does when resumed."""
import dataclasses
import shutil

import numpy as np
import pytest
import torch

from rapnet_loc.cli.main import build_parser, main
from rapnet_loc.errors import ConfigError, DatasetError
from rapnet_loc.vpr import create_recognizer
from rapnet_loc.vpr.netvlad_model import NetVLAD, global_vlad
from rapnet_loc.vpr.train import (MAPS_FILE, NetVLADTrainConfig, frame_relations, load_sources, mining_vectors,
                                  train_netvlad, tuple_anchors, vlad_vectors)

STEPS, CLUSTERS, CHANNELS = 40, 8, 64         # xfeat maps have 64 channels
# every 10th training frame (35); frames 0-349 span only 1.3 m and 45 deg, hence the tighter negative thresholds
SMALL = dict(last=349, stride=10, clusters=CLUSTERS, num_pcs=64, neg_distance=0.75, neg_angle=35.0, negatives=4,
             negative_pool=10, cache_every=4, checkpoint_every=5)


@pytest.fixture(scope='module')
def kitchen(shared_data):
    return shared_data / '7scenes-redkitchen-seq01-dev'


def config(kitchen, out, **changes) -> NetVLADTrainConfig:
    return NetVLADTrainConfig(data=str(kitchen), out=str(out), **{**SMALL, 'steps': STEPS, **changes})


@pytest.fixture(scope='module')
def trained(kitchen, tmp_path_factory):
    return train_netvlad(config(kitchen, tmp_path_factory.mktemp('trained')), progress=False)


def with_maps(trained, out):
    """``out`` holding the backbone maps of the ``trained`` run."""
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(trained.state.with_name(MAPS_FILE), out)
    return out


def pool_of(checkpoint) -> NetVLAD:
    state = torch.load(checkpoint, weights_only=True)['state_dict']
    pool = NetVLAD(CLUSTERS, CHANNELS)
    pool.load_state_dict({'centroids': state['pool.centroids'], 'conv.weight': state['pool.conv.weight']})
    return pool


def objective(pool: NetVLAD, maps: torch.Tensor, cfg: NetVLADTrainConfig) -> tuple[float, float]:
    """Mean triplet hinge and share of violated triplets over every anchor, its nearest positive and all its
    negatives."""
    positives, negatives = frame_relations(load_sources(cfg), cfg)
    vectors = mining_vectors(pool, maps)
    distance = torch.cdist(vectors, vectors).numpy()
    hinge = [distance[a, positives[a]].min() - distance[a, negatives[a]] + cfg.margin
             for a in tuple_anchors(positives, negatives, cfg)]
    return float(np.mean([np.maximum(h, 0).mean() for h in hinge])), float(np.mean([(h > 0).mean() for h in hinge]))


def test_training_lowers_the_triplet_objective(kitchen, trained, tmp_path):
    cfg = config(kitchen, with_maps(trained, tmp_path), steps=0)
    untrained = train_netvlad(cfg, progress=False)           # the k-means initialisation, whitened
    maps = torch.load(tmp_path / MAPS_FILE, weights_only=True)['maps']
    assert maps.shape == (35, CHANNELS, 30, 40) and maps.dtype == torch.float16
    (loss0, violated0), (loss1, violated1) = (objective(pool_of(r.checkpoint), maps, cfg) for r in (untrained, trained))
    assert loss1 < 0.6 * loss0 and violated1 < violated0 - 0.1, (loss0, loss1, violated0, violated1)
    assert len(trained.losses) == STEPS and np.all(np.isfinite(trained.losses))
    assert trained.state.with_name('losses.csv').read_text().count('\n') == STEPS + 1


def test_fast_vlad_equals_the_residual_sum(trained):
    maps = torch.load(trained.state.with_name(MAPS_FILE), weights_only=True)['maps'][:3]
    pool = pool_of(trained.checkpoint)
    with torch.no_grad():
        assert torch.allclose(vlad_vectors(pool, maps), global_vlad(pool.residuals(maps.float())), atol=1e-6)


def test_resumed_training_equals_an_uninterrupted_run(kitchen, trained, tmp_path):
    out = with_maps(trained, tmp_path)
    train_netvlad(config(kitchen, out, steps=STEPS // 4 + 1), progress=False)     # stops between two refreshes
    resumed = train_netvlad(config(kitchen, out), resume=True, progress=False)
    assert resumed.losses == trained.losses
    a, b = (torch.load(r.checkpoint, weights_only=True) for r in (trained, resumed))
    assert a.keys() == b.keys() and a['state_dict'].keys() == b['state_dict'].keys()
    assert all(torch.equal(a['state_dict'][key], b['state_dict'][key]) for key in a['state_dict'])
    with pytest.raises(ConfigError, match=r'cannot resume .*margin \(0\.316.*, now 0\.5\)'):
        train_netvlad(config(kitchen, out, margin=0.5), resume=True, progress=False)
    with pytest.raises(ConfigError, match=f'at step {STEPS} with --steps 3'):
        train_netvlad(config(kitchen, out, steps=3), resume=True, progress=False)


@pytest.mark.parametrize('name', ['netvlad', 'patchnetvlad'])
def test_checkpoint_loads_fitted_and_ranks_neighbours_first(trained, name):
    checkpoint = torch.load(trained.checkpoint, weights_only=True)
    assert checkpoint['backbone'] == 'xfeat' and checkpoint['clusters'] == CLUSTERS and checkpoint['num_pcs'] == 64
    assert sorted(checkpoint['state_dict']) == ['WPCA.0.bias', 'WPCA.0.weight', 'pool.centroids', 'pool.conv.weight']
    recognizer = create_recognizer(name, {'clusters': CLUSTERS, 'checkpoint': str(trained.checkpoint)})
    assert recognizer.fitted and recognizer.frozen and recognizer.model.num_pcs == 64
    maps = torch.load(trained.state.with_name(MAPS_FILE), weights_only=True)['maps'].numpy()
    for i in range(0, len(maps), 2):
        recognizer.add(i, maps[i])
    hits = [int(recognizer.query(maps[i], 1).ids[0]) in (i - 1, i + 1) for i in range(1, len(maps), 2)]
    assert sum(hits) >= 0.8 * len(hits), hits
    assert torch.equal(recognizer.model.pool.centroids, checkpoint['state_dict']['pool.centroids']), 'not refitted'


def test_checkpoint_of_another_backbone_or_cluster_count_is_a_clear_error(trained, tmp_path):
    path = str(trained.checkpoint)
    with pytest.raises(ConfigError, match="trained for backbone 'xfeat' with 8 clusters; the configuration has "
                                          "backbone 'xfeat' with 64 clusters"):
        create_recognizer('patchnetvlad', {'checkpoint': path})
    with pytest.raises(ConfigError, match="trained for backbone 'xfeat' .* has backbone 'rapnet' with 8 clusters"):
        create_recognizer('netvlad', {'backbone': 'rapnet', 'clusters': CLUSTERS, 'checkpoint': path})
    checkpoint = torch.load(path, weights_only=True)
    checkpoint['state_dict']['pool.centroids'] = torch.zeros(CLUSTERS, 32)
    torch.save(checkpoint, tmp_path / 'cut.pt')
    with pytest.raises(ConfigError, match=r'wrong shapes: pool\.centroids \(8, 32\) \(expected \(8, 64\)\)'):
        create_recognizer('netvlad', {'clusters': CLUSTERS, 'checkpoint': str(tmp_path / 'cut.pt')})


def test_bad_data_is_a_clear_error(kitchen, tmp_path):
    unposed = tmp_path / 'unposed'
    unposed.mkdir()
    for i in range(3):
        for suffix in ('color.jpg', 'depth.png'):
            (unposed / f'frame-{i:06d}.{suffix}').symlink_to(kitchen / f'frame-{i:06d}.{suffix}')
    with pytest.raises(DatasetError, match=r'cannot read 4x4 pose matrix from .*frame-000000\.pose\.txt'):
        train_netvlad(config(unposed, tmp_path / 'a', last=None, stride=1), progress=False)
    with pytest.raises(DatasetError, match=r'cannot form training tuples from 4 frames .*stride 100.*no frame has a '
                                           r'positive'):
        train_netvlad(config(kitchen, tmp_path / 'b', stride=100), progress=False)
    with pytest.raises(ConfigError, match='must be positive: negatives 0'):
        train_netvlad(config(kitchen, tmp_path / 'c', negatives=0), progress=False)
    with pytest.raises(ConfigError, match='negative_pool >= negatives'):
        train_netvlad(config(kitchen, tmp_path / 'd', negative_pool=2), progress=False)


def test_cli_trains_and_prints_the_checkpoint(kitchen, trained, tmp_path, capsys):
    out = with_maps(trained, tmp_path / 'out')
    flags = [f'--{key.replace("_", "-")}={value}' for key, value in {**SMALL, 'steps': 2}.items()]
    assert main(['train-netvlad', str(kitchen), '--out', str(out), *flags, '--no-progress']) == 0
    printed = capsys.readouterr().out.strip()
    assert printed == str(out / 'netvlad_xfeat_k8.pt') and (out / 'train_state.pt').is_file()
    assert main(['train-netvlad', str(tmp_path / 'missing'), '--out', str(out), '--no-progress']) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith('rapnet-loc train-netvlad: error: 7-Scenes frame folder not found') and '\n' not in error


def test_cli_flags_are_the_config_fields():
    args = build_parser().parse_args(['train-netvlad', 'a', 'b', '--out', 'o', '--shared-frame', '--last', '9'])
    fields = {f.name for f in dataclasses.fields(NetVLADTrainConfig)}
    assert fields <= set(vars(args)) and args.data == ['a', 'b'] and args.shared_frame and args.last == 9
