"""Trajectory files: exact nanosecond stamps, TUM and OpenLORIS round trips, malformed input, atomic writes."""
import os
import stat

import numpy as np
import pytest

from rapnet_loc.errors import TrajectoryFormatError
from rapnet_loc.geometry import yaw_quat
from rapnet_loc.io.trajectory import (OpenLORISResult, Trajectory, format_stamp, parse_stamp, read_openloris,
                                      read_tum, stamps_to_seconds, write_openloris, write_tum)


def _traj(n=5, t0=1560004885_415149450):
    rng = np.random.default_rng(1)
    return Trajectory(t0 + np.arange(n) * 33_333_333, rng.normal(size=(n, 3)), yaw_quat(rng.uniform(-3, 3, n)))


@pytest.mark.parametrize('ns', [0, 1, 999_999_999, 1560004885_415149451, -1_500_000_000, 17])
def test_stamps_round_trip_exactly(ns):
    assert parse_stamp(format_stamp(ns)) == ns


def test_stamp_parsing_is_exact_and_seconds_are_correctly_rounded():
    assert parse_stamp('1560004885.41514945') == 1560004885_415149450
    assert parse_stamp('1560004885') == 1560004885_000000000
    assert parse_stamp('1.5e9') == 1_500_000_000 * 10**9
    assert stamps_to_seconds(np.array([1560004885_415149450]))[0] == float('1560004885.41514945')
    with pytest.raises(ValueError, match='not a timestamp'):
        parse_stamp('12:30')


def test_tum_round_trip(tmp_path):
    traj = _traj()
    write_tum(tmp_path / 't.tum', traj, header='estimated camera poses\nframe d400_color')
    text = (tmp_path / 't.tum').read_text()
    assert text.startswith('# estimated camera poses\n# frame d400_color\n1560004885.415149450 ')
    back = read_tum(tmp_path / 't.tum')
    np.testing.assert_array_equal(back.stamps_ns, traj.stamps_ns)
    np.testing.assert_allclose(back.positions, traj.positions, atol=1e-9)
    np.testing.assert_allclose(back.quats, traj.quats, atol=1e-9)


def test_openloris_round_trip_with_reloc_and_nine_columns(tmp_path):
    t1, t2 = _traj(4), _traj(3, t0=1560100000_000000000)
    t2.output_ns = t2.stamps_ns + 20_000_000
    res = OpenLORISResult({'scene': 'home', 'slam': 'rapnet_loc', 'frame': 'd400_color'}, {1: t1, 2: t2},
                          reloc={2: 'true'})
    write_openloris(tmp_path / 'r.txt', res)
    back = read_openloris(tmp_path / 'r.txt')
    assert back.info == res.info and back.reloc == {2: 'true'} and list(back.sequences) == [1, 2]
    np.testing.assert_array_equal(back.sequences[2].output_ns, t2.output_ns)
    np.testing.assert_array_equal(back.sequences[1].stamps_ns, t1.stamps_ns)
    assert back.sequences[1].output_ns is None


def test_openloris_reader_follows_the_official_parser(tmp_path):
    path = tmp_path / 'r.txt'
    path.write_text('# comment\nscene: cafe\nframe: base_link\ntopics: /a, /b\nscene: ignored\n\nseq: 1\n'
                    '#DatasetTimestamp, position.x, y, z, quaterniond.x, y, z, w\n'
                    '10.0 1 2 3 0 0 0 1\n10.1 1 2 3 0 0 0 1\n10.2 nan 2 3 0 0 0 1\n10.3 1 2 4 0 0 0 1\n'
                    'seq: 2\n20.0 1 2 4 0 0 0 1\n20.1 5 2 4 0 0 0 1\n')
    res = read_openloris(path)
    assert res.scene == 'cafe' and res.info['topics'] == '/a, /b'
    assert len(res.sequences[1]) == 3            # NaN pose dropped
    res = read_openloris(path, remove_repeated=True)
    assert len(res.sequences[1]) == 2            # 10.1 repeats 10.0
    assert len(res.sequences[2]) == 1            # 20.0 repeats the last pose of seq 1, as officially


@pytest.mark.parametrize('body, message', [
    ('seq: one\n', 'invalid sequence number'),
    ('10.0 1 2 3 0 0 0 1\n', 'pose line before any "seq:" line'),
    ('seq: 1\n10.0 1 2 3 0 0 1\n', 'expected 8 or 9 columns, got 7'),
    ('seq: 1\n10.0 1 2 3 0 0 0 1 1 1\n', 'expected 8 or 9 columns, got 10'),
    ('seq: 1\n10.0 1 2 three 0 0 0 1\n', "could not convert string to float: 'three'"),
    ('seq: 1\nten 1 2 3 0 0 0 1\n', "not a timestamp: 'ten'"),
])
def test_malformed_openloris_lines_name_file_line_and_problem(tmp_path, body, message):
    path = tmp_path / 'bad.txt'
    path.write_text('scene: home\nframe: base_link\n' + body)
    with pytest.raises(TrajectoryFormatError, match='bad.txt:') as info:
        read_openloris(path)
    assert message in str(info.value)


def test_malformed_tum_and_missing_file(tmp_path):
    path = tmp_path / 'bad.tum'
    path.write_text('1.0 0 0 0 0 0 0 1\n2.0 0 0 0 0 0 1\n')
    with pytest.raises(TrajectoryFormatError, match='bad.tum:2: TUM lines have 8 columns, got 7'):
        read_tum(path)
    with pytest.raises(TrajectoryFormatError, match='cannot read TUM file'):
        read_tum(tmp_path / 'missing.tum')


def test_written_files_get_default_permissions(tmp_path):
    write_tum(tmp_path / 't.tum', _traj())
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE((tmp_path / 't.tum').stat().st_mode) == 0o666 & ~mask


def test_a_failed_write_keeps_the_previous_file(tmp_path):
    path = tmp_path / 't.tum'
    write_tum(path, _traj())
    before = path.read_text()
    broken = _traj()
    broken.positions = broken.positions[:2]      # inconsistent: writing fails half-way
    with pytest.raises(IndexError):
        write_tum(path, broken)
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ['t.tum']
