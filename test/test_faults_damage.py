"""Damaged input (issue P11): a damaged bag chunk or a truncated image ends the input there; ``replay`` and
``localize`` keep everything computed before it, name the damage in report.json and on stderr, and exit 2."""
import json
import shutil

import cv2
import numpy as np
import pytest
from rosbags.rosbag1 import Reader

from rapnet_loc.cli.main import main
from rapnet_loc.errors import ImageFormatError
from rapnet_loc.io.sevenscenes import read_image
from rapnet_loc.io.trajectory import read_tum
from rapnet_loc.synth import generate


def jpeg_bytes() -> bytes:
    image = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    return cv2.imencode('.jpg', image)[1].tobytes()


def test_a_truncated_jpeg_is_refused_and_a_whole_one_read(tmp_path):
    whole, cut = tmp_path / 'whole.jpg', tmp_path / 'cut.jpg'
    whole.write_bytes(jpeg_bytes() + b'\0' * 16)    # zero padding after the end marker is harmless
    cut.write_bytes(jpeg_bytes()[:-200])
    assert read_image(whole, cv2.IMREAD_COLOR, 'colour').shape == (48, 64, 3)
    with pytest.raises(ImageFormatError, match=r'colour image .*cut.jpg is a truncated JPEG'):
        read_image(cut, cv2.IMREAD_COLOR, 'colour')


def jpeg_folder(shared_data, folder, frames: int, damaged: int):
    """The first ``frames`` 7-Scenes dev frames (JPEG colour) in ``folder``, frame ``damaged``'s JPEG cut in half."""
    source = shared_data / '7scenes-redkitchen-seq01-dev'
    folder.mkdir()
    shutil.copy(source / 'camera-intrinsics.txt', folder)
    for i in range(frames):
        for part in ('color.jpg', 'depth.png', 'pose.txt'):
            shutil.copy(source / f'frame-{i:06d}.{part}', folder)
    cut = folder / f'frame-{damaged:06d}.color.jpg'
    cut.write_bytes(cut.read_bytes()[:cut.stat().st_size // 2])
    return folder


def test_replay_keeps_the_frames_before_a_truncated_jpeg(shared_data, tmp_path, capsys):
    folder = jpeg_folder(shared_data, tmp_path / 'frames', 16, damaged=12)
    out = tmp_path / 'out'
    assert main(['replay', str(folder), '--out', str(out), '--sequential']) == 2
    err = capsys.readouterr().err
    assert 'frame-000012.color.jpg is a truncated JPEG' in err and 'Traceback' not in err
    report = json.loads((out / 'report.json').read_text())
    assert report['frames'] == 12 and 'frame-000012.color.jpg is a truncated JPEG' in report['input_error']
    assert len((out / 'status.csv').read_text().splitlines()) == 13
    assert len(read_tum(out / 'trajectory.tum')) == report['tracked'] >= 10


def test_localize_keeps_the_poses_before_a_truncated_jpeg(shared_data, tmp_path, capsys):
    folder = jpeg_folder(shared_data, tmp_path / 'frames', 8, damaged=5)
    out = tmp_path / 'poses.tum'
    assert main(['localize', str(folder), '--estimator', 'vsnet', '--model', 'vsnet_redkitchen',
                 '--out', str(out)]) == 2
    captured = capsys.readouterr()
    assert 'frame-000005.color.jpg is a truncated JPEG' in captured.err and 'Traceback' not in captured.err
    localized = int(captured.out.split('localized ')[1].split('/')[0])
    assert 'localized' in captured.out and '/5 frames' in captured.out
    assert len(read_tum(out)) == localized > 0


def test_a_damaged_frame_first_is_an_error_with_no_outputs_kept(shared_data, tmp_path, capsys):
    folder = jpeg_folder(shared_data, tmp_path / 'frames', 3, damaged=0)
    assert main(['replay', str(folder), '--out', str(tmp_path / 'out')]) == 2
    err = capsys.readouterr().err
    assert 'frame-000000.color.jpg is a truncated JPEG' in err and 'Traceback' not in err
    assert not (tmp_path / 'out' / 'report.json').exists()


@pytest.fixture(scope='module')
def damaged_bag(tmp_path_factory):
    """A synthetic 120-frame bag (bz2 chunks of about 37 frames) whose third chunk is overwritten in part."""
    out = tmp_path_factory.mktemp('damaged')
    bag = generate(out, scene='office', sequences=1, frames=120, width=320, height=240, progress=False,
                   path='loop').bags[0]
    with Reader(bag) as reader:
        at = reader.chunk_infos[2].pos + 2000
    data = bytearray(bag.read_bytes())
    data[at:at + 400] = b'\x55' * 400
    bag.write_bytes(bytes(data))
    return bag


def test_replay_keeps_the_frames_before_a_damaged_bag_chunk(damaged_bag, tmp_path, capsys):
    out = tmp_path / 'out'
    assert main(['replay', str(damaged_bag), '--out', str(out), '--odom-prior']) == 2
    err = capsys.readouterr().err
    assert 'damaged or unreadable' in err and 'Traceback' not in err
    report = json.loads((out / 'report.json').read_text())
    assert 30 <= report['frames'] < 120 and 'damaged or unreadable' in report['input_error']
    rows = (out / 'status.csv').read_text().splitlines()[1:]
    assert len(rows) == report['frames'] and report['tracked'] > 0
    assert len(read_tum(out / 'trajectory.tum')) == report['tracked']
    assert (out / 'trajectory_openloris.txt').is_file() and report['ate']['matches'] == report['tracked']
