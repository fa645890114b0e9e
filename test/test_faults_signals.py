"""A real SIGINT or SIGTERM during ``rapnet-loc replay`` (issue P11): the frame at hand is finished, and the
trajectory, status and report.json of the frames processed before it are written."""
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from rapnet_loc.io.trajectory import read_tum


def progress_frames(stderr: bytes) -> int:
    """Frames done, from the last progress-bar update of ``replay`` in ``stderr``."""
    done = re.findall(rb'replay [^:]*:\s+\d+%\|[^|]*\|\s*(\d+)/\d+', stderr)
    return int(done[-1]) if done else 0


@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM])
def test_a_signal_mid_replay_leaves_the_outputs_of_the_frames_before_it(shared_data, tmp_path, sig):
    out = tmp_path / 'out'
    proc = subprocess.Popen([sys.executable, '-m', 'rapnet_loc.cli.main', 'replay',
                             str(shared_data / '7scenes-redkitchen-seq01-dev'), '--frames', '0:499', '--out',
                             str(out), '--map-out', str(tmp_path / 'k.map')],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, 'COLUMNS': '120'})
    os.set_blocking(proc.stderr.fileno(), False)
    stderr, deadline = b'', time.monotonic() + 120
    while progress_frames(stderr) < 10 and time.monotonic() < deadline and proc.poll() is None:
        stderr += proc.stderr.read() or b''
        time.sleep(0.05)
    assert proc.poll() is None, 'the replay ended before the signal could be sent'
    proc.send_signal(sig)
    stdout, rest = proc.communicate(timeout=120)
    stderr += rest or b''
    assert proc.returncode == 130, stderr.decode(errors='replace')[-2000:]
    assert b'Traceback' not in stderr and f'{sig.name}: finishing the current frame'.encode() in stderr
    assert f'interrupted by {sig.name}'.encode() in stdout
    report = json.loads((out / 'report.json').read_text())
    assert report['interrupted'] == sig.name and 10 <= report['frames'] < 500
    lines = (out / 'status.csv').read_text().splitlines()
    assert len(lines) == report['frames'] + 1
    assert len(read_tum(out / 'trajectory.tum')) == report['tracked'] > 0
    assert (tmp_path / 'k.map').is_file()
