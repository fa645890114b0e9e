"""docs/errors.md (every error and warning message, read from the source by scripts/error_reference.py) is current."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_error_reference_is_current():
    done = subprocess.run([sys.executable, str(ROOT / 'scripts' / 'error_reference.py'), '--check'],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_error_reference_lists_errors_warnings_and_rejections():
    text = (ROOT / 'docs' / 'errors.md').read_text()
    for message in ('cannot read messages from bag …: damaged or unreadable (…)',      # an error
                    '… ground-truth pose(s) with NaN or infinite values left out',    # a core warning
                    '[out_of_order] frame … dropped: not after the last processed frame …'):   # a node rejection
        assert message in text
