"""Region weighting of other extractors (rapnet_loc.features.region): ``train-rapnet --stage region --backbone
xfeat`` on generated frames, and the ``xfeat_r`` / ``orb_r`` variants that load its head."""
import argparse

import numpy as np
import pytest
import torch
from ros_env import textured_image

from rapnet_loc.cli import train_rapnet
from rapnet_loc.errors import ConfigError
from rapnet_loc.features import available_extractors, create_extractor
from rapnet_loc.features.base import rap_scores
from rapnet_loc.features.region import load_region_head, new_region_head, save_region_head
from rapnet_loc.rapnet.train import TrainConfig, train
from rapnet_loc.synth import Challenges, generate
from rapnet_loc.synth.frames import write_training_folder

CPU = {'device': 'cpu'}


@pytest.fixture(scope='module')
def head_file(tmp_path_factory):
    """``rapnet-loc train-rapnet FOLDER --stage region --backbone xfeat --steps 2`` on a generated sequence with
    people."""
    out = tmp_path_factory.mktemp('region')
    summary = generate(out / 'bags', 'office', 1, 12, 160, 128, seed=3, challenges=Challenges(people=2),
                       compression='none', progress=False)
    write_training_folder(summary.bags, out / 'frames', progress=False)
    parser = argparse.ArgumentParser()
    train_rapnet.add_parser(parser.add_subparsers())
    args = parser.parse_args(['train-rapnet', str(out / 'frames'), '--out', str(out / 'run'), '--stage', 'region',
                              '--backbone', 'xfeat', '--steps', '2', '--first', '0', '--last', '11', '--stride',
                              '1', '--max-edge', '160', '--loc-distance', '0.1', '--no-progress'])
    assert train_rapnet.run(args) == 0
    return out / 'run' / 'region_xfeat.pt'


def test_two_training_steps_write_a_head_that_differs_from_its_start(head_file):
    trained = load_region_head(head_file)
    start = new_region_head(0)
    assert {'xfeat_r', 'orb_r'} <= set(available_extractors())
    assert any(not torch.equal(a, b) for a, b in zip(trained.state_dict().values(), start.state_dict().values()))
    assert (head_file.parent / 'losses.csv').read_text().count('\n') == 3      # header + 2 steps


@pytest.mark.parametrize('name, plain', [('xfeat_r', 'xfeat'), ('orb_r', 'orb')])
def test_the_variant_loads_the_head_and_reranks_the_plain_extractors_candidates(head_file, name, plain):
    image = textured_image(11, 320, 240)
    weighted = create_extractor(name, {'max_keypoints': 300, **CPU, 'region_weights': str(head_file)}).extract(image)
    unweighted = create_extractor(plain, {'max_keypoints': 300, **(CPU if plain == 'xfeat' else {})}).extract(image)
    assert len(weighted) == len(unweighted) == 300
    assert np.ptp(weighted.weights) > 0 and np.all(unweighted.weights == 1)      # R (softplus > 0) at each one
    assert np.all(weighted.weights > 0)
    # another ranking keeps (partly) other keypoints; the descriptors stay those of the plain extractor
    ours = {tuple(k) for k in weighted.keypoints}
    theirs = {tuple(k) for k in unweighted.keypoints}
    assert ours != theirs and len(ours & theirs) > 100


def test_rap_scores_promote_high_r():
    p, r = np.array([1.0, 1.0, 2.0]), np.array([0.0, 2.0, 0.0])
    scores = rap_scores(p, r)
    assert scores[1] > scores[2] > scores[0]


def test_a_head_with_a_region_weight_of_zero_spread_keeps_xfeats_ranking(tmp_path):
    """With a constant R, exp(R - mean R) = 1: xfeat_r keeps exactly xfeat's keypoints (ties may change order)."""
    head = new_region_head(1)
    with torch.no_grad():
        for conv in head.branches:
            conv.weight.zero_()
    path = save_region_head(tmp_path / 'flat.pt', head)
    image = textured_image(12, 320, 240)
    a = create_extractor('xfeat_r', {**CPU, 'max_keypoints': 1000, 'region_weights': str(path)}).extract(image)
    b = create_extractor('xfeat', {**CPU, 'max_keypoints': 1000}).extract(image)
    assert len(a) == len(b) == 1000 and {tuple(k) for k in a.keypoints} == {tuple(k) for k in b.keypoints}
    np.testing.assert_allclose(np.sort(a.scores / a.scores.sum()), np.sort(b.scores / b.scores.sum()), rtol=1e-5)


def test_bad_region_weights_are_named(tmp_path):
    with pytest.raises(ConfigError, match='region head weights not found'):
        create_extractor('xfeat_r', {**CPU, 'region_weights': str(tmp_path / 'missing.pt')})
    (tmp_path / 'garbage.pt').write_bytes(b'not torch')
    with pytest.raises(ConfigError, match='cannot read region head weights'):
        create_extractor('orb_r', {'device': 'cpu', 'region_weights': str(tmp_path / 'garbage.pt')})
    torch.save({'model': {}}, tmp_path / 'other.pt')
    with pytest.raises(ConfigError, match="is not a region head of XFeat's map"):
        create_extractor('xfeat_r', {**CPU, 'region_weights': str(tmp_path / 'other.pt')})
    with pytest.raises(ConfigError, match='orb_r ranks oversampled candidates'):
        create_extractor('orb_r', {'device': 'cpu', 'grid_cell': 0, 'region_weights': str(tmp_path / 'other.pt')})
    with pytest.raises(ConfigError, match='--backbone xfeat trains a region head'):
        train(TrainConfig(data='unused', out=str(tmp_path), stage='base', backbone='xfeat'))
    with pytest.raises(ConfigError, match='unknown backbone'):
        train(TrainConfig(data='unused', out=str(tmp_path), stage='region', backbone='vgg'))


def test_the_shipped_head_is_the_default(repo_root):
    """models/region_xfeat.pt (card: models/region_xfeat.md) loads when region_weights is unset; its effect on
    keypoints on people is measured by benchmarks/bench_ablation.py, not asserted here."""
    assert all((repo_root / 'models' / name).is_file() for name in ('region_xfeat.pt', 'region_xfeat.md'))
    feats = create_extractor('xfeat_r', {**CPU, 'max_keypoints': 500}).extract(textured_image(13, 320, 240))
    assert len(feats) == 500 and np.all(feats.weights > 0) and np.ptp(feats.weights) > 0
