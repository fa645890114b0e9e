"""Outputs that cannot be written (issue P11): found before any work, named, exit 2, no traceback; ``-v`` shows the
traceback."""
import pytest

from rapnet_loc.cli.main import main
from rapnet_loc.errors import DatasetError


@pytest.fixture
def blocker(tmp_path):
    """A regular file where the outputs' folder should be: nothing can be written under it, even by root."""
    path = tmp_path / 'blocker'
    path.write_text('a file, not a folder\n')
    return path


@pytest.mark.parametrize('argv, what', [
    (['replay', '{frames}', '--frames', '0:5', '--out', '{blocker}/out'], '--out folder'),
    (['replay', '{frames}', '--frames', '0:5', '--out', '{tmp}/ok', '--map-out', '{blocker}/k.map'], '--map-out file'),
    (['build-map', '{frames}', '--poses', 'gt', '--frames', '0:5', '--out', '{blocker}/k.map'], '--out map file'),
    (['evaluate', '{tum}', '--tum-gt', '{tum}', '--json', '{blocker}/m.json'], '--json file'),
    (['evaluate', '{tum}', '--tum-gt', '{tum}', '--json', '{tmp}'], '--json file'),
    (['synth', '--out', '{blocker}/bags', '--frames', '2'], '--out folder'),
    (['export-onnx', '--network', 'xfeat', '--out', '{blocker}/x.onnx'], '--out ONNX file'),
])
def test_an_output_that_cannot_be_written_is_named_first(shared_data, tmp_path, blocker, capsys, argv, what):
    tum = tmp_path / 'est.tum'
    tum.write_text('1.0 0 0 0 0 0 0 1\n2.0 0.1 0 0 0 0 0 1\n3.0 0.2 0.1 0 0 0 0 1\n')
    names = {'frames': shared_data / '7scenes-redkitchen-seq01-dev', 'blocker': blocker, 'tmp': tmp_path, 'tum': tum}
    assert main([a.format(**names) for a in argv]) == 2
    captured = capsys.readouterr()
    assert f'cannot write the {what}' in captured.err and 'Traceback' not in captured.err
    assert '%|' not in captured.err      # no progress bar: nothing was processed


def test_verbose_shows_the_traceback(tmp_path):
    (tmp_path / 'empty').mkdir()
    with pytest.raises(DatasetError, match='neither a frame folder'):
        main(['-v', 'replay', str(tmp_path / 'empty'), '--out', str(tmp_path / 'out')])
