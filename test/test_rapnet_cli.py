"""The ``export-onnx`` and ``train-rapnet`` subcommand modules (rapnet_loc.cli.export_onnx, .train_rapnet)."""
import argparse

import pytest

from rapnet_loc.cli import export_onnx, train_rapnet
from rapnet_loc.errors import ConfigError
from rapnet_loc.rapnet.runtime import OnnxRunner
from rapnet_loc.rapnet.weights import load_model


def parse(module, argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    module.add_parser(parser.add_subparsers())
    return parser.parse_args(argv)


def test_export_onnx_writes_a_file_with_metadata(tmp_path, capsys):
    out = tmp_path / 'net.onnx'
    assert export_onnx.run(parse(export_onnx, ['export-onnx', '--random-init', '--width', '0.125', '--out',
                                               str(out)])) == 0
    assert 'max |dF|' in capsys.readouterr().out
    runner = OnnxRunner(out, device='cpu')
    assert runner.info.width == 0.125 and runner.info.region and runner.info.preprocessing == 'torch'


def test_export_onnx_without_weights_says_where_they_should_be(tmp_path):
    with pytest.raises(ConfigError, match=r'rapnet_w012\.pt'):
        export_onnx.run(parse(export_onnx, ['export-onnx', '--width', '0.125', '--weights',
                                            str(tmp_path / 'rapnet_w012.pt'), '--out', str(tmp_path / 'x.onnx')]))


def test_train_rapnet_runs_one_step(shared_data, tmp_path, capsys):
    args = parse(train_rapnet, ['train-rapnet', str(shared_data / '7scenes-redkitchen-seq01-dev'), '--out',
                                str(tmp_path), '--width', '0.125', '--max-edge', '48', '--last', '20', '--stride',
                                '10', '--steps', '1', '--correspondences', '32', '--no-progress',
                                '--descriptor-scales', '0.5', '0.25'])
    assert args.descriptor_scales == [0.5, 0.25]
    assert train_rapnet.run(args) == 0
    weights = capsys.readouterr().out.strip()
    assert weights.endswith('rapnet_w012_base.pt') and load_model(weights)[1].width == 0.125
    assert (tmp_path / 'train_state.pt').is_file() and (tmp_path / 'losses.csv').is_file()
