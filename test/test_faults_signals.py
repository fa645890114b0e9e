"""Real signals (issue P11): a SIGINT or SIGTERM during ``rapnet-loc replay`` or ``localize`` finishes the frame at
hand, and the outputs of the frames processed before it are written; a SIGKILL mid-replay (no handler runs) leaves
the status and trajectory of the frames processed before it."""
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from rapnet_loc.io.trajectory import read_tum


def progress_frames(stderr: bytes, bar: bytes = rb'replay [^:]*') -> int:
    """Frames done, from the last update of the progress bar ``bar`` (a regex) in ``stderr``."""
    done = re.findall(bar + rb':\s+\d+%\|[^|]*\|\s*(\d+)/\d+', stderr)
    return int(done[-1]) if done else 0


def signal_after(command: list[str], sig: int, frames: int, bar: bytes = rb'replay [^:]*') -> tuple[int, bytes, bytes]:
    """Run ``rapnet-loc COMMAND`` in a subprocess, send it ``sig`` once its progress bar shows ``frames`` done; its
    exit status, stdout and stderr."""
    proc = subprocess.Popen([sys.executable, '-m', 'rapnet_loc.cli.main', *command], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, 'COLUMNS': '120'})
    os.set_blocking(proc.stderr.fileno(), False)
    stderr, deadline = b'', time.monotonic() + 120
    while progress_frames(stderr, bar) < frames and time.monotonic() < deadline and proc.poll() is None:
        stderr += proc.stderr.read() or b''
        time.sleep(0.05)
    assert proc.poll() is None, 'the run ended before the signal could be sent'
    proc.send_signal(sig)
    stdout, rest = proc.communicate(timeout=120)
    return proc.returncode, stdout, stderr + (rest or b'')


@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM])
def test_a_signal_mid_replay_leaves_the_outputs_of_the_frames_before_it(shared_data, tmp_path, sig):
    out = tmp_path / 'out'
    returncode, stdout, stderr = signal_after(['replay', str(shared_data / '7scenes-redkitchen-seq01-dev'),
                                               '--frames', '0:499', '--out', str(out), '--map-out',
                                               str(tmp_path / 'k.map')], sig, 10)
    assert returncode == 130, stderr.decode(errors='replace')[-2000:]
    assert b'Traceback' not in stderr and f'{sig.name}: finishing the current frame'.encode() in stderr
    assert f'interrupted by {sig.name}'.encode() in stdout
    report = json.loads((out / 'report.json').read_text())
    assert report['interrupted'] == sig.name and 10 <= report['frames'] < 500
    lines = (out / 'status.csv').read_text().splitlines()
    assert len(lines) == report['frames'] + 1
    assert len(read_tum(out / 'trajectory.tum')) == report['tracked'] > 0
    assert (tmp_path / 'k.map').is_file()


def test_a_kill_mid_replay_leaves_the_status_and_poses_of_the_frames_before_it(shared_data, tmp_path):
    out = tmp_path / 'out'
    returncode, _, stderr = signal_after(['replay', str(shared_data / '7scenes-redkitchen-seq01-dev'), '--frames',
                                          '0:499', '--out', str(out)], signal.SIGKILL, 20)
    assert returncode == -signal.SIGKILL
    rows = [line.split(',') for line in (out / 'status.csv').read_text().splitlines()]
    assert rows[0] == ['stamp', 'state', 'keypoints', 'tracked', 'ms'] and len(rows) >= 15
    assert all(len(row) == 5 for row in rows[1:])
    trajectory = read_tum(out / 'trajectory.tum')
    assert len(trajectory) == sum(row[1] in ('ok', 'relocalized') for row in rows[1:]) >= 10
    assert '(in progress: poses as tracked)' in (out / 'trajectory.tum').read_text().splitlines()[0]
    assert not (out / 'report.json').exists()


def test_a_signal_mid_localize_leaves_the_poses_of_the_frames_before_it(shared_data, tmp_path):
    out = tmp_path / 'poses.tum'
    returncode, stdout, stderr = signal_after(['localize', str(shared_data / '7scenes-redkitchen-seq01-dev'),
                                               '--estimator', 'vsnet', '--model', 'vsnet_redkitchen', '--out',
                                               str(out)], signal.SIGINT, 10, rb'localize')
    assert returncode == 130 and b'Traceback' not in stderr, stderr.decode(errors='replace')[-2000:]
    localized, frames = map(int, re.search(rb'localized (\d+)/(\d+) frames', stdout).groups())
    assert b'interrupted by SIGINT' in stdout and 10 <= frames < 500
    assert len(read_tum(out)) == localized > 0
