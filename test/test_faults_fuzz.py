"""Fuzzing of every parser with ``hypothesis`` (issue P11): whatever the input, a parser returns a valid result or
raises the project's error for that input (a ``RapnetLocError`` naming it), never anything else.

Parsers: image messages in every encoding and step (``rapnet_loc.nodes.convert``), camera info, TUM and OpenLORIS
trajectory files, YAML configurations, map files, bag message payloads and PointCloud2 feature clouds. Each test
runs ``FUZZ_EXAMPLES`` examples (``make test``); ``benchmarks/fuzz_parsers.py`` runs each for minutes.
"""
import io
import os
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from rosbags.rosbag1 import Writer
from sensor_msgs.msg import CameraInfo as CameraInfoMsg
from sensor_msgs.msg import PointField

from rapnet_loc.errors import MapFormatError, RapnetLocError
from rapnet_loc.features.base import Features
from rapnet_loc.io.bag import open_bag, ros1_typestore
from rapnet_loc.io.images import BYTES_PER_PIXEL, to_depth_m, to_rgb
from rapnet_loc.io.trajectory import read_openloris, read_tum
from rapnet_loc.nodes.convert import camera_info
from rapnet_loc.nodes.feature_cloud import decode_features
from rapnet_loc.slam.camera import Camera
from rapnet_loc.slam.config import SlamConfig
from rapnet_loc.slam.map_io import load_map

FUZZ_EXAMPLES = int(os.environ.get('RAPNET_FUZZ_EXAMPLES', '60'))
FUZZ = settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

UINT32 = st.integers(0, 2**32 - 1)
FLOATS = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0.0, -1.0, 1e-300, 1e300])


def random_bytes(draw, size: int) -> bytes:
    """``size`` random bytes from a drawn seed (float fields then hold every bit pattern, NaN included)."""
    return np.random.default_rng(draw(UINT32)).integers(0, 256, size, dtype=np.uint8).tobytes()


def temp_file(data: bytes | str, suffix: str) -> Path:
    fd, name = tempfile.mkstemp(suffix=suffix)
    with os.fdopen(fd, 'wb') as fh:
        fh.write(data.encode('utf-8', 'surrogatepass') if isinstance(data, str) else data)
    return Path(name)


def parses(parse, data: bytes | str, suffix: str):
    """``parse(path)`` of a temporary file holding ``data``: its result, or None after a ``RapnetLocError``."""
    path = temp_file(data, suffix)
    try:
        return parse(path)
    except RapnetLocError:
        return None
    finally:
        path.unlink()


# --- image messages ------------------------------------------------------------------------------------------------

@st.composite
def image_messages(draw):
    encoding = draw(st.sampled_from([*BYTES_PER_PIXEL, 'yuv422', '8UC3', '']))
    height, width = draw(st.integers(0, 24)), draw(st.integers(0, 24))
    row = width * BYTES_PER_PIXEL.get(encoding, 1)
    step = draw(st.sampled_from([row, row + 3, max(row - 1, 0)]) | st.integers(0, 200) | UINT32)
    size = draw(st.sampled_from([height * step, height * step + 1]) if height * step < 50_000
                else st.integers(0, 5000))
    return SimpleNamespace(encoding=encoding, height=height, width=width, step=step,
                           is_bigendian=draw(st.integers(0, 1)), data=random_bytes(draw, size))


@FUZZ
@given(image_messages())
@example(SimpleNamespace(encoding='rgb8', height=0, width=0, step=0, is_bigendian=0, data=b''))   # found: decoded
def test_image_messages_decode_or_are_refused(msg):
    try:
        rgb = to_rgb(msg, '/fuzz/color')
        assert rgb.shape == (msg.height, msg.width, 3) and rgb.dtype == np.uint8 and rgb.size > 0
    except RapnetLocError:
        pass
    try:
        depth = to_depth_m(msg, '/fuzz/depth')
        assert depth.shape == (msg.height, msg.width) and depth.dtype == np.float32 and depth.size > 0
        assert np.isfinite(depth).all() and (depth >= 0).all()
    except RapnetLocError:
        pass


# --- camera info ---------------------------------------------------------------------------------------------------

@FUZZ
@given(UINT32, UINT32, st.lists(FLOATS, min_size=9, max_size=9), st.lists(FLOATS, max_size=14),
       st.sampled_from(['plumb_bob', 'rational_polynomial', 'equidistant', '', 'x']))
@example(1, 1, [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0], [float('inf')], 'plumb_bob')     # found: accepted
def test_camera_info_gives_a_usable_camera_or_is_refused(width, height, k, d, model):
    msg = CameraInfoMsg(width=width, height=height, k=k, d=d, distortion_model=model)
    try:
        info = camera_info(msg, '/fuzz/camera_info')
    except RapnetLocError:
        return
    camera = Camera.from_info(info)
    assert camera.width > 0 and camera.height > 0 and camera.fx > 0 and camera.fy > 0
    assert np.isfinite(camera.K).all() and np.isfinite(camera.D).all()


# --- trajectory files ----------------------------------------------------------------------------------------------

NUMBER_TEXT = (st.floats(allow_nan=True, allow_infinity=True).map(repr) | st.integers(-2**70, 2**70).map(str)
               | st.sampled_from(['nan', '-inf', '1e400', '0x10', '', '1,5', '--1', '1e-400']))
SEPARATOR = st.sampled_from([' ', '  ', '\t', ',', ', '])


@st.composite
def tum_text(draw):
    lines = []
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.integers(0, 9))
        if kind == 0:
            lines.append('# ' + draw(st.text(max_size=20)))
        elif kind == 1:
            lines.append(draw(st.text(max_size=40)))
        else:
            values = draw(st.lists(NUMBER_TEXT, min_size=6, max_size=9)) if kind == 2 else \
                [draw(NUMBER_TEXT)] + [repr(v) for v in draw(st.lists(st.floats(-10, 10), min_size=7, max_size=7))]
            lines.append(draw(SEPARATOR).join(values))
    return '\n'.join(lines)


def check_trajectory(traj) -> None:
    assert np.isfinite(traj.positions).all() and np.isfinite(traj.quats).all()
    assert np.allclose(np.linalg.norm(traj.quats, axis=1), 1.0, atol=1e-6)
    assert (np.diff(traj.stamps_ns) >= 0).all()


@FUZZ
@given(tum_text() | st.binary(max_size=300))
@example('0.0 0.0 0.0 0.0 0.0 0.0 0.0 2.0')         # found: a quaternion of norm 2 was kept as it was
def test_tum_files_read_or_are_refused(text):
    traj = parses(read_tum, text, '.tum')
    if traj is not None:
        check_trajectory(traj)


@st.composite
def openloris_text(draw):
    lines = [f'{draw(st.sampled_from(["scene", "robot", "", "seq"]))}: {draw(st.text(max_size=10))}'
             for _ in range(draw(st.integers(0, 2)))]
    for _ in range(draw(st.integers(0, 3))):
        lines.append(f'seq: {draw(NUMBER_TEXT)}')
        lines += draw(tum_text()).splitlines()
    return '\n'.join(lines)


@FUZZ
@given(openloris_text() | st.binary(max_size=300))
@example('seq: 0\n1 0 0 0 0 0 0 1\n0 0 0 0 0 0 0 1')     # found: poses out of time order were not sorted
def test_openloris_files_read_or_are_refused(text):
    result = parses(read_openloris, text, '.txt')
    for traj in [] if result is None else result.sequences.values():
        check_trajectory(traj)


# --- YAML configurations -------------------------------------------------------------------------------------------

CONFIG_KEYS = ['features', 'feature_conf', 'tracking', 'local_mapping', 'place_recognition', 'pose_estimator',
               'max_keypoints', 'ba_window', 'min_frames', 'depth_max', 'conf', 'name', 'hamming', 'l2', 'x']
YAML_VALUES = st.recursive(
    st.none() | st.booleans() | FLOATS | st.integers(-2**40, 2**40) | st.text(max_size=8)
    | st.sampled_from(['orb', 'xfeat', 'bow', 'map', 'vsnet']),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(CONFIG_KEYS), inner, max_size=4),
    max_leaves=12)


@FUZZ
@given(st.dictionaries(st.sampled_from(CONFIG_KEYS), YAML_VALUES, max_size=5).map(yaml.safe_dump)
       | st.text(max_size=200))
def test_yaml_configurations_load_or_are_refused(text):
    config = parses(SlamConfig.load, text, '.yaml')
    if config is not None:
        SlamConfig.from_dict(config.as_dict())      # what loads is valid: it round-trips


# --- map files -----------------------------------------------------------------------------------------------------

class MapBytes(bytes):
    """A map file's bytes, shown by their size in hypothesis' reports."""

    def __repr__(self) -> str:
        return f'<map file of {len(self)} bytes>'


@pytest.fixture(scope='module')
def map_bytes(office_mapped, tmp_path_factory) -> MapBytes:
    """A real map file (the office sequence's) as bytes."""
    system, _ = office_mapped
    path = tmp_path_factory.mktemp('map') / 'office.map'
    system.save_map(path)
    return MapBytes(path.read_bytes())


@st.composite
def byte_mutations(draw, data: bytes) -> bytes:
    """``data`` cut short, with bytes changed, inserted or removed."""
    kind = draw(st.integers(0, 3))
    if kind == 0 or not data:
        return data[:draw(st.integers(0, len(data)))]
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 8))):
        if not out:
            break
        at = draw(st.integers(0, len(out) - 1))
        if kind == 1:
            out[at] = draw(st.integers(0, 255))
        elif kind == 2:
            out[at:at] = random_bytes(draw, draw(st.integers(1, 64)))
        else:
            out[at:at + 64] = b''
    return bytes(out)


@st.composite
def array_mutations(draw, data: bytes) -> bytes:
    """The map's arrays with one of them replaced: another dtype, shape, or non-finite values."""
    arrays = dict(np.load(io.BytesIO(data), allow_pickle=False))
    name = draw(st.sampled_from(sorted(arrays)))
    a = arrays[name]
    kind = draw(st.integers(0, 4))
    if kind == 0:
        arrays[name] = a.reshape(-1)[:draw(st.integers(0, a.size))]
    elif kind == 1 and a.dtype.kind == 'f' and a.size:
        b = a.copy().reshape(-1)
        b[draw(st.integers(0, b.size - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf, 1e30]))
        arrays[name] = b.reshape(a.shape)
    elif kind == 2 and a.dtype.kind in 'biuf':
        arrays[name] = a.astype(draw(st.sampled_from([np.int8, np.float32, np.uint64, np.bool_, 'U3'])))
    elif kind == 3 and a.size:
        b = a.copy().reshape(-1)
        if a.dtype.kind in 'iu':
            info = np.iinfo(a.dtype)
            b[draw(st.integers(0, b.size - 1))] = draw(st.integers(int(info.min), int(info.max)))
        arrays[name] = b.reshape(a.shape)
    else:
        del arrays[name]
    out = io.BytesIO()
    np.savez(out, **arrays)
    return out.getvalue()


@FUZZ
@given(data=st.data())
def test_map_files_load_or_are_refused(map_bytes, data):
    mutated = data.draw(byte_mutations(map_bytes) | array_mutations(map_bytes))
    map_file = parses(load_map, mutated, '.map')
    if map_file is not None:
        m = map_file.map
        assert np.isfinite(m.points.positions[~m.points.bad]).all()
        assert all(np.isfinite(kf.T_cw).all() for kf in m.keyframes.values())


def test_a_map_file_whose_place_recognizer_state_has_another_type_is_refused(map_bytes, tmp_path):
    """Found by fuzzing: a string array where the recognizer's keyframe words are raised TypeError."""
    arrays = dict(np.load(io.BytesIO(map_bytes), allow_pickle=False))
    arrays['vpr_kf_words'] = arrays['vpr_kf_words'].astype('U3')
    np.savez(tmp_path / 'bad.npz', **arrays)
    with pytest.raises(MapFormatError, match='is corrupt: bad place recognizer state'):
        load_map(tmp_path / 'bad.npz')


# --- bag message payloads ------------------------------------------------------------------------------------------

TYPESTORE = ros1_typestore()
PAYLOAD_TYPES = ['sensor_msgs/msg/Image', 'sensor_msgs/msg/CameraInfo', 'tf2_msgs/msg/TFMessage',
                 'nav_msgs/msg/Odometry']


@st.composite
def payloads(draw) -> tuple[str, bytes]:
    """A message type and a payload: random bytes, or a valid message's bytes mutated."""
    msgtype = draw(st.sampled_from(PAYLOAD_TYPES))
    if draw(st.booleans()):
        return msgtype, random_bytes(draw, draw(st.integers(0, 200)))
    image = SimpleNamespace(height=2, width=2, encoding='rgb8', step=6, is_bigendian=0, data=bytes(12))
    valid = {'sensor_msgs/msg/Image': image, 'sensor_msgs/msg/CameraInfo': None,
             'tf2_msgs/msg/TFMessage': None, 'nav_msgs/msg/Odometry': None}[msgtype]
    raw = TYPESTORE.serialize_ros1(TYPESTORE.types[msgtype](**_fields(msgtype, valid)), msgtype)
    return msgtype, draw(byte_mutations(bytes(raw)))


def _fields(msgtype: str, image) -> dict:
    """Field values of a default message of ``msgtype`` (an Image with ``image``'s fields)."""
    T = TYPESTORE.types
    header = T['std_msgs/msg/Header'](seq=0, stamp=T['builtin_interfaces/msg/Time'](sec=1, nanosec=0),
                                      frame_id='camera')
    if msgtype == 'sensor_msgs/msg/Image':
        return dict(header=header, height=image.height, width=image.width, encoding=image.encoding,
                    is_bigendian=0, step=image.step, data=np.frombuffer(image.data, np.uint8))
    if msgtype == 'tf2_msgs/msg/TFMessage':
        return dict(transforms=[])
    if msgtype == 'nav_msgs/msg/Odometry':
        pose = T['geometry_msgs/msg/PoseWithCovariance'](
            pose=T['geometry_msgs/msg/Pose'](position=T['geometry_msgs/msg/Point'](x=0.0, y=0.0, z=0.0),
                                             orientation=T['geometry_msgs/msg/Quaternion'](x=0.0, y=0.0, z=0.0,
                                                                                           w=1.0)),
            covariance=np.zeros(36))
        twist = T['geometry_msgs/msg/TwistWithCovariance'](
            twist=T['geometry_msgs/msg/Twist'](linear=T['geometry_msgs/msg/Vector3'](x=0.0, y=0.0, z=0.0),
                                               angular=T['geometry_msgs/msg/Vector3'](x=0.0, y=0.0, z=0.0)),
            covariance=np.zeros(36))
        return dict(header=header, child_frame_id='base_link', pose=pose, twist=twist)
    roi = T['sensor_msgs/msg/RegionOfInterest'](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    return dict(header=header, height=480, width=640, distortion_model='plumb_bob', D=np.zeros(5),
                K=np.array([500.0, 0, 320, 0, 500, 240, 0, 0, 1]), R=np.eye(3).ravel(), P=np.zeros(12),
                binning_x=0, binning_y=0, roi=roi)


@FUZZ
@given(payloads())
def test_bag_message_payloads_deserialize_or_are_refused(payload):
    msgtype, raw = payload
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / 'fuzz.bag'
        with Writer(path) as writer:
            writer.write(writer.add_connection('/fuzz', msgtype, typestore=TYPESTORE), 42, raw)
        try:
            with open_bag(path) as bag:
                messages = list(bag.messages())
        except RapnetLocError:
            return
        if msgtype == 'sensor_msgs/msg/Image':
            for message in messages:
                try:
                    to_rgb(message.msg, '/fuzz')
                except RapnetLocError:
                    pass


# --- PointCloud2 feature clouds ------------------------------------------------------------------------------------

FIELD_NAMES = st.sampled_from(['u', 'v', 'score', 'weight', 'level', 'descriptor', 'x'])
DATATYPES = st.integers(0, 9)


@st.composite
def feature_clouds(draw):
    if draw(st.booleans()):      # the layout feature_node writes, with random counts and contents
        d, dt = draw(st.integers(0, 40)), draw(st.sampled_from([PointField.UINT8, PointField.FLOAT32, 3]))
        fields = [('u', 0, 7, 1), ('v', 4, 7, 1), ('score', 8, 7, 1), ('weight', 12, 7, 1), ('level', 16, 2, 1),
                  ('descriptor', 20, dt, d)]
        step = 20 + d * (4 if dt == PointField.FLOAT32 else 1)
    else:
        fields = [(draw(FIELD_NAMES), draw(st.integers(0, 64)), draw(DATATYPES), draw(st.integers(0, 8)))
                  for _ in range(draw(st.integers(0, 7)))]
        step = draw(st.integers(0, 96))
    width, height = draw(st.integers(0, 30)), draw(st.sampled_from([0, 1, 1, 1, 2]))
    size = draw(st.sampled_from([width * height * step, width * height * step + 1]))
    return SimpleNamespace(fields=[SimpleNamespace(name=n, offset=o, datatype=t, count=c) for n, o, t, c in fields],
                           width=width, height=height, point_step=step, row_step=width * step,
                           is_bigendian=draw(st.booleans()), is_dense=True, data=random_bytes(draw, size))


NAN_CLOUD = SimpleNamespace(   # found: a keypoint at NaN was accepted
    fields=[SimpleNamespace(name=n, offset=o, datatype=7, count=1) for n, o in (('u', 0), ('v', 4), ('score', 8))]
    + [SimpleNamespace(name='descriptor', offset=12, datatype=2, count=1)], width=1, height=1, point_step=13,
    row_step=13, is_bigendian=False, is_dense=True, data=np.array([np.nan, 1, 1], '<f4').tobytes() + b'\x07')


@FUZZ
@given(feature_clouds())
@example(NAN_CLOUD)
def test_feature_clouds_decode_or_are_refused(msg):
    try:
        features = decode_features(msg, '/fuzz/features', 1.2, 8)
    except RapnetLocError:
        return
    assert isinstance(features, Features)
    n = len(features.keypoints)
    assert features.keypoints.shape == (n, 2) and len(features.scores) == len(features.descriptors) == n
    assert np.isfinite(features.keypoints).all() and np.isfinite(features.scores).all()
