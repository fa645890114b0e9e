"""7-Scenes frame-folder reader (rapnet_loc.io.sevenscenes) on the shared redkitchen frames."""
import shutil

import cv2
import numpy as np
import pytest

from rapnet_loc.errors import ImageFormatError
from rapnet_loc.errors import DatasetError
from rapnet_loc.io.sevenscenes import COLOR_K, SevenScenesFolder, frame_stamp_ns

POSE_0 = np.array([[9.093129e-01, 2.7262229e-01, -3.1422433e-01, -3.4045634e-01],
                   [-2.7248618e-01, 9.610498e-01, 4.5279626e-02, 1.6469818e-02],
                   [3.1433925e-01, 4.4449646e-02, 9.4820935e-01, 2.9656917e-01],
                   [0.0, 0.0, 0.0, 1.0]])


@pytest.fixture(scope='module')
def redkitchen(shared_data):
    return shared_data / '7scenes-redkitchen-seq01-dev'


def copy_frames(src, dst, indices, parts=('color.jpg', 'depth.png', 'pose.txt')):
    dst.mkdir(exist_ok=True)
    for i in indices:
        for part in parts:
            shutil.copy(src / f'frame-{i:06d}.{part}', dst)
    return dst


def test_stamps_are_integer_ns_at_30_hz():
    assert [frame_stamp_ns(i) for i in (0, 1, 2, 3, 30, 499)] == [
        0, 33_333_333, 66_666_667, 100_000_000, 1_000_000_000, 16_633_333_333]


@pytest.mark.parametrize('first,last', [(0, 4), (495, 499)])
def test_read_frames(redkitchen, first, last):
    folder = SevenScenesFolder(redkitchen, first=first, last=last)
    assert len(folder) == 5
    frames = list(folder)
    assert [f.index for f in frames] == list(range(first, last + 1))
    assert [f.stamp_ns for f in frames] == [round(i * 1e9 / 30) for i in range(first, last + 1)]
    for frame in frames:
        assert frame.color.shape == (480, 640, 3) and frame.color.dtype == np.uint8
        assert frame.depth.shape == (480, 640) and frame.depth.dtype == np.float32
        assert frame.depth.min() == 0.0 and 0.5 < np.median(frame.depth[frame.depth > 0]) < 5.0
    stamps, poses = folder.poses()
    assert stamps.dtype == np.int64 and stamps.tolist() == [f.stamp_ns for f in frames]
    assert poses.shape == (5, 4, 4)
    # 7-Scenes rotations are orthonormal only to about 3e-4
    np.testing.assert_allclose(poses[:, :3, :3] @ poses[:, :3, :3].transpose(0, 2, 1),
                               np.broadcast_to(np.eye(3), (5, 3, 3)), atol=1e-3)
    np.testing.assert_array_equal(poses[:, 3], np.broadcast_to([0.0, 0.0, 0.0, 1.0], (5, 4)))


def test_pose_of_frame_0_and_camera_info(redkitchen):
    folder = SevenScenesFolder(redkitchen, last=0)
    np.testing.assert_allclose(folder.poses()[1][0], POSE_0, atol=1e-7)
    info = folder.camera_info()
    assert (info.width, info.height) == (640, 480)
    np.testing.assert_array_equal(info.K, COLOR_K)
    assert (info.fx, info.fy, info.cx, info.cy) == (525.0, 525.0, 320.0, 240.0)
    k585 = np.loadtxt(redkitchen / 'camera-intrinsics.txt')
    assert SevenScenesFolder(redkitchen, last=0, K=k585).camera_info().fx == 585.0


def test_depth_65535_is_invalid_and_matches_png(redkitchen, tmp_path):
    folder = copy_frames(redkitchen, tmp_path / 'seq', [0])
    png = folder / 'frame-000000.depth.png'
    raw = cv2.imread(str(png), cv2.IMREAD_UNCHANGED)
    raw[:10, :10] = 65535
    cv2.imwrite(str(png), raw)
    depth = next(iter(SevenScenesFolder(folder))).depth
    assert np.all(depth[:10, :10] == 0)
    np.testing.assert_allclose(depth[10:], raw[10:] * 0.001, rtol=1e-6)


def test_subset_starting_after_zero(redkitchen, tmp_path):
    folder = SevenScenesFolder(copy_frames(redkitchen, tmp_path / 'seq', [12, 13, 14]))
    assert folder.indices == [12, 13, 14]
    frames = list(folder)
    assert [f.index for f in frames] == [12, 13, 14]
    assert frames[0].stamp_ns == 400_000_000 and frames[1].stamp_ns == 433_333_333
    assert SevenScenesFolder(folder.path, first=13).indices == [13, 14]


def test_errors(redkitchen, tmp_path):
    with pytest.raises(DatasetError, match='7-Scenes frame folder not found: .*nowhere'):
        SevenScenesFolder(tmp_path / 'nowhere')
    (tmp_path / 'empty').mkdir()
    with pytest.raises(DatasetError, match=r'no frame-XXXXXX.color.jpg files in 7-Scenes folder .*empty'):
        SevenScenesFolder(tmp_path / 'empty')
    seq = copy_frames(redkitchen, tmp_path / 'seq', [0, 1])
    with pytest.raises(DatasetError, match=r'no frames numbered 5..9 in .*seq; it has frames 0..1'):
        SevenScenesFolder(seq, first=5, last=9)
    (seq / 'frame-000001.depth.png').unlink()
    with pytest.raises(DatasetError, match='colour frame frame-000001.color.jpg has no depth image '
                                           'frame-000001.depth.png'):
        SevenScenesFolder(seq)
    (seq / 'frame-000000.color.jpg').write_bytes(b'not a jpeg')
    with pytest.raises(ImageFormatError, match='cannot read colour image .*frame-000000.color.jpg'):
        list(SevenScenesFolder(seq, last=0))
    (seq / 'frame-000000.pose.txt').write_text('1 0 0\n')
    with pytest.raises(DatasetError, match='cannot read 4x4 pose matrix from .*frame-000000.pose.txt'):
        SevenScenesFolder(seq, last=0).poses()
