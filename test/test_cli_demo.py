"""``rapnet-loc demo`` (rapnet_loc.cli.demo) at a tiny size: one synthetic sequence of 60 frames at 320x240 is
generated, replayed through the front end (a lifelong run of one sequence) and scored; the official tables of the
front end and of the wheel odometry are printed and the plots written."""
import json

from rapnet_loc.cli.main import main
from rapnet_loc.io.trajectory import read_openloris


def test_demo_tiny(tmp_path, capsys):
    out = tmp_path / 'demo'
    argv = ['demo', '--out', str(out), '--sequences', '1', '--frames', '60', '--width', '320', '--height', '240']
    assert main(argv) == 0
    text = capsys.readouterr().out
    front_end = text.index('RGB-D front end, lifelong')
    odometry = text.index('wheel odometry, home1-1.bag (aligned on its own):')
    assert front_end < odometry
    for table in (text[front_end:odometry], text[odometry:]):
        lines = table.splitlines()
        assert lines[1].split() == ['home', '1']
        assert [line.split()[0] for line in lines[2:4]] == ['poses', 'matches']
        assert 'correct rate' in table and 'ATE threshold: 3.0 m' in table
    assert (out / 'data' / 'home1-1.bag').is_file() and (out / 'data' / 'gt_home_1.txt').is_file()
    report = json.loads((out / 'replay' / 'home1-1' / 'report.json').read_text())
    assert report['frames'] == 60 and report['tracked'] > 0
    assert list(read_openloris(out / 'replay' / 'trajectory_openloris.txt').sequences) == [1]
    for stem in ('rapnet-lifelong', 'odom-home1-1'):
        for kind in ('trajectory', 'errors'):
            png = out / 'plots' / f'{stem}_{kind}.png'
            assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
