"""Shared fixtures: the repository root and the read-only ``../shared/data`` folder (skips when absent)."""
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='session')
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope='session')
def shared_data() -> Path:
    """``../shared/data`` relative to the repository root; skips the test when it is not there."""
    path = REPO_ROOT.parent / 'shared' / 'data'
    if not path.is_dir():
        pytest.skip(f'shared test data not found at {path} (only present in the development checkout)')
    return path
