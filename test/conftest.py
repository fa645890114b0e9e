"""Shared fixtures: the repository root, the read-only ``../shared/data`` folder (skips when absent), a short
synthetic sequence and the front end after tracking it."""
from pathlib import Path

import pytest
from landmarkscene import landmark_scene as landmark_scene_in
from synthscene import OFFICE_CONFIG, office_frames

from rapnet_loc.slam import SlamConfig, System

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


@pytest.fixture(scope='module')
def office_sequence(tmp_path_factory):
    """Camera info and the 40 RGB-D frames of a short synthetic sequence (``synthscene.office_frames``)."""
    return office_frames(tmp_path_factory.mktemp('synth'), 40)


@pytest.fixture(scope='module')
def office_mapped(office_sequence):
    """A ``System`` (``OFFICE_CONFIG``) that tracked the whole office_sequence, and the camera pose (4, 4) it found
    for every frame."""
    camera, frames = office_sequence
    system = System(camera, SlamConfig.from_dict(OFFICE_CONFIG))
    poses = [system.process(frame).T_wc for frame in frames]
    assert all(T is not None for T in poses)
    return system, poses


@pytest.fixture(scope='session')
def landmark_scene(tmp_path_factory):
    """A synthetic bag, its replay map and trajectory, and a VS-Net model trained in the map's frame
    (``landmarkscene.landmark_scene``)."""
    return landmark_scene_in(tmp_path_factory.mktemp('landmarks'))
