"""RaP-Net network and weight files (rapnet_loc.rapnet.model, rapnet_loc.rapnet.weights)."""
import argparse

import pytest
import torch

from rapnet_loc.errors import ConfigError
from rapnet_loc.rapnet.model import RapNet, count_parameters, descriptor_size
from rapnet_loc.rapnet.weights import load_model, random_model, save_weights

# the authors' layout, written out from the paper's table rather than from the code under test
VGG_CONVS = {0: (3, 64), 2: (64, 64), 5: (64, 128), 7: (128, 128), 10: (128, 256), 12: (256, 256), 14: (256, 256),
             17: (256, 512), 19: (512, 512), 21: (512, 512)}


def official_state(region: bool = True) -> dict:
    """A state dict with exactly the names and shapes of rapnet.*.pth (region) or d2_tf.pth (no region)."""
    g = torch.Generator().manual_seed(0)
    state = {}
    for index, (c_in, c_out) in VGG_CONVS.items():
        state[f'dense_feature_extraction.model.{index}.weight'] = torch.randn(c_out, c_in, 3, 3, generator=g) * 0.05
        state[f'dense_feature_extraction.model.{index}.bias'] = torch.randn(c_out, generator=g) * 0.01
    if region:
        for k, size in enumerate((3, 5, 7)):
            state[f'attention.branch_{k}.weight'] = torch.randn(32, 512, size, size, generator=g) * 0.01
            state[f'attention.norm_{k}.weight'] = torch.rand(32, generator=g) + 0.5
            state[f'attention.norm_{k}.bias'] = torch.randn(32, generator=g) * 0.1
            state[f'attention.norm_{k}.running_mean'] = torch.randn(32, generator=g) * 0.1
            state[f'attention.norm_{k}.running_var'] = torch.rand(32, generator=g) + 0.5
            state[f'attention.norm_{k}.num_batches_tracked'] = torch.tensor(1000)
        state['attention.attention_score.weight'] = torch.randn(1, 96, 1, 1, generator=g) * 0.1
        state['attention.attention_score.bias'] = torch.randn(1, generator=g)
    return state


@pytest.fixture(scope='module')
def official_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp('weights')
    rapnet, d2 = folder / 'rapnet.overall.pth', folder / 'd2_tf.pth'
    torch.save({'model': official_state(True), 'args': argparse.Namespace(lr=1e-3), 'epoch_idx': 30}, rapnet)
    torch.save({'model': official_state(False)}, d2)
    return rapnet, d2


def test_parameter_counts_at_full_width():
    model = RapNet(1.0)
    assert count_parameters(model.backbone) == 7_635_264
    assert count_parameters(model.region) == 1_360_161
    assert descriptor_size(1.0) == 512 and descriptor_size(0.25) == 128


@pytest.mark.parametrize('shape', [(1, 1), (7, 9), (24, 33)])
def test_output_shapes_keep_the_input_resolution(shape):
    model, _ = random_model(0.125, seed=1)
    with torch.inference_mode():
        features, region = model(torch.randn(2, 3, *shape))
    assert features.shape == (2, 64, *shape) and region.shape == (2, *shape)
    assert (features >= 0).all() and (region > 0).all()


def test_official_rapnet_file_loads_strictly_with_every_tensor_in_place(official_files):
    model, info = load_model(official_files[0], width=1.0, need_region=True)
    state = official_state(True)
    assert info.region and info.width == 1.0 and info.preprocessing == 'torch'
    for k, index in enumerate(VGG_CONVS):
        assert torch.equal(model.backbone.convs[k].weight, state[f'dense_feature_extraction.model.{index}.weight'])
    assert torch.equal(model.region.branches[2].weight, state['attention.branch_2.weight'])
    assert torch.equal(model.region.norms[1].running_var, state['attention.norm_1.running_var'])
    assert torch.equal(model.region.score.bias, state['attention.attention_score.bias'])
    assert not model.training


def test_d2net_file_is_a_caffe_base_net(official_files):
    model, info = load_model(official_files[1])
    assert model.region is None and not info.region and info.preprocessing == 'caffe'
    with pytest.raises(ConfigError, match='no region head.*rapnet_p'):
        load_model(official_files[1], need_region=True)


def test_missing_and_unexpected_keys_are_named(tmp_path):
    state = official_state(True)
    del state['attention.norm_1.running_mean']
    state['attention.branch_3.weight'] = torch.zeros(32, 512, 9, 9)
    torch.save({'model': state}, tmp_path / 'bad.pth')
    with pytest.raises(ConfigError, match=r'missing keys: attention\.norm_1\.running_mean; '
                                          r'unexpected keys: attention\.branch_3\.weight'):
        load_model(tmp_path / 'bad.pth')


def test_wrong_shapes_and_widths_are_named(tmp_path, official_files):
    state = official_state(False)
    state['dense_feature_extraction.model.5.weight'] = torch.zeros(128, 64, 5, 5)
    torch.save({'model': state}, tmp_path / 'shape.pth')
    with pytest.raises(ConfigError, match=r'dense_feature_extraction\.model\.5\.weight \(128, 64, 5, 5\) '
                                          r'\(expected \(128, 64, 3, 3\)\)'):
        load_model(tmp_path / 'shape.pth')
    with pytest.raises(ConfigError, match='width-1 network but width 0.25'):
        load_model(official_files[0], width=0.25)


@pytest.mark.parametrize('content, message', [(None, 'not found'), (b'not a checkpoint', 'cannot read'),
                                              ({'state_dict': {}}, 'no "model" state dict')])
def test_unusable_files_give_clear_errors(tmp_path, content, message):
    path = tmp_path / 'w.pth'
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        torch.save(content, path)
    with pytest.raises(ConfigError, match=message):
        load_model(path)


def test_saved_weights_round_trip(tmp_path):
    model, _ = random_model(0.25, seed=3)
    path = save_weights(tmp_path / 'rapnet_w025.pt', model, meta={'note': 'test'})
    loaded, info = load_model(path, width=0.25, need_region=True)
    assert info.width == 0.25 and info.preprocessing == 'torch'
    x = torch.randn(1, 3, 20, 28)
    with torch.inference_mode():
        for a, b in zip(model(x), loaded(x)):
            assert torch.equal(a, b)
