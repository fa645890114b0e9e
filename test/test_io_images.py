"""Image message decoding and encoding (rapnet_loc.io.images)."""
from types import SimpleNamespace

import numpy as np
import pytest

from rapnet_loc.errors import ImageFormatError
from rapnet_loc.io.images import BYTES_PER_PIXEL, ENCODINGS, decode_image, encode_image, to_depth_m, to_rgb

RNG = np.random.default_rng(0)


def sample(encoding, height=5, width=7):
    enc = ENCODINGS[encoding]
    shape = (height, width, enc.channels) if enc.channels else (height, width)
    if enc.dtype == np.float32:
        return RNG.uniform(0.1, 10.0, shape).astype(np.float32)
    return RNG.integers(0, np.iinfo(enc.dtype).max, shape, endpoint=True).astype(enc.dtype)


def message(fields, **changes):
    values = dict(height=fields.height, width=fields.width, encoding=fields.encoding,
                  is_bigendian=fields.is_bigendian, step=fields.step, data=fields.data)
    values.update(changes)
    return SimpleNamespace(**values)


@pytest.mark.parametrize('encoding', sorted(ENCODINGS))
def test_round_trip_every_encoding(encoding):
    array = sample(encoding)
    fields = encode_image(array, encoding)
    assert fields.is_bigendian == 0
    assert fields.step == array.shape[1] * BYTES_PER_PIXEL[encoding]
    assert fields.data.dtype == np.uint8 and fields.data.ndim == 1
    out = decode_image(message(fields))
    assert out.dtype == array.dtype and out.shape == array.shape
    np.testing.assert_array_equal(out, array)
    # rclpy gives bytes / array.array rather than an ndarray
    np.testing.assert_array_equal(decode_image(message(fields, data=fields.data.tobytes())), array)


@pytest.mark.parametrize('encoding', ['rgb8', 'mono16', '32FC1'])
def test_padded_step(encoding):
    array = sample(encoding)
    fields = encode_image(array, encoding)
    pad = 5
    rows = fields.data.reshape(fields.height, fields.step)
    padded = np.concatenate([rows, np.full((fields.height, pad), 0xAB, np.uint8)], axis=1)
    out = decode_image(message(fields, step=fields.step + pad, data=padded.reshape(-1)))
    np.testing.assert_array_equal(out, array)


@pytest.mark.parametrize('encoding,dtype', [('16UC1', '>u2'), ('mono16', '>u2'), ('32FC1', '>f4')])
def test_big_endian(encoding, dtype):
    array = sample(encoding)
    data = np.ascontiguousarray(array.astype(dtype)).view(np.uint8).reshape(-1)
    msg = SimpleNamespace(height=array.shape[0], width=array.shape[1], encoding=encoding, is_bigendian=1,
                          step=array.shape[1] * array.itemsize, data=data)
    out = decode_image(msg)
    assert out.dtype == array.dtype
    np.testing.assert_array_equal(out, array)


def test_to_rgb_converts_channel_orders():
    rgb = sample('rgb8')
    rgba = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=2)
    variants = {'rgb8': rgb, 'bgr8': rgb[:, :, ::-1], 'rgba8': rgba, 'bgra8': rgba[:, :, [2, 1, 0, 3]]}
    for encoding, array in variants.items():
        out = to_rgb(message(encode_image(np.ascontiguousarray(array), encoding)))
        assert out.shape == rgb.shape and out.dtype == np.uint8
        np.testing.assert_array_equal(out, rgb, err_msg=encoding)
    mono = sample('mono8')
    out = to_rgb(message(encode_image(mono, 'mono8')))
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], mono)


def test_to_depth_m():
    mm = np.array([[0, 1000, 65535]], np.uint16)
    for encoding in ('16UC1', 'mono16'):
        depth = to_depth_m(message(encode_image(mm, encoding)), depth_scale=0.001)
        assert depth.dtype == np.float32
        np.testing.assert_allclose(depth, [[0.0, 1.0, 65.535]], rtol=1e-6)
    metres = np.array([[1.5, np.nan, np.inf, -2.0, 0.0]], np.float32)
    depth = to_depth_m(message(encode_image(metres, '32FC1')))
    assert depth.dtype == np.float32
    np.testing.assert_array_equal(depth, [[1.5, 0, 0, 0, 0]])


def test_unsupported_encoding_names_encoding_and_topic():
    fields = encode_image(sample('rgb8'), 'rgb8')
    with pytest.raises(ImageFormatError, match=r"unsupported image encoding 'yuv422'.*'/cam/image'"):
        decode_image(message(fields, encoding='yuv422'), topic='/cam/image')
    with pytest.raises(ImageFormatError, match=r"'16UC1' on topic '/cam/depth' is not a colour encoding"):
        to_rgb(message(encode_image(sample('16UC1'), '16UC1')), topic='/cam/depth')
    with pytest.raises(ImageFormatError, match=r"'rgb8' on topic '/cam/image' is not a depth encoding"):
        to_depth_m(message(fields), topic='/cam/image')


def test_size_not_matching_step():
    fields = encode_image(sample('mono16'), 'mono16')
    with pytest.raises(ImageFormatError, match=r"'/d'.*mono16.*data has 69 bytes, expected height \* step"):
        decode_image(message(fields, data=fields.data[:-1]), topic='/d')
    with pytest.raises(ImageFormatError, match=r"'/d'.*mono16.*step 13 is smaller than width \* bytes per pixel = 14"):
        decode_image(message(fields, step=13, data=fields.data[:65]), topic='/d')


def test_encode_validates_dtype_and_shape():
    with pytest.raises(ImageFormatError, match=r"shape \(5, 7\) and dtype uint8 as 'rgb8'"):
        encode_image(sample('mono8'), 'rgb8')
    with pytest.raises(ImageFormatError, match=r"dtype float64 as '16UC1'"):
        encode_image(np.zeros((2, 2)), '16UC1')
    with pytest.raises(ImageFormatError, match="unsupported image encoding 'jpeg'"):
        encode_image(np.zeros((2, 2), np.uint8), 'jpeg')
