"""Bag reading (rapnet_loc.io.bag) on the shared real ROS 1 bags, their ROS 2 conversions and broken bags."""
import dataclasses
import sqlite3

import numpy as np
import pytest
from rosbags.convert import convert
from rosbags.rosbag1 import Writer
from rosbags.rosbag2 import StoragePlugin
from rosbags.rosbag2 import Writer as Writer2

from rapnet_loc.errors import BagError, TopicError
from rapnet_loc.io.bag import TF_MSGTYPES, open_bag, ros1_typestore, ros2_typestore
from rapnet_loc.io.images import decode_image

TURTLE_TOPICS = ['/rosout', '/tf', '/tf_static', '/turtle1/cmd_vel', '/turtle1/color_sensor', '/turtle1/pose',
                 '/turtle2/cmd_vel', '/turtle2/color_sensor', '/turtle2/pose']


@pytest.fixture(scope='module')
def bags(shared_data):
    return shared_data / 'rosbags'


def plain(value):
    """Message as nested dicts/lists for comparison, without type names and ROS 1 ``seq`` fields (ROS 2 has none)."""
    if dataclasses.is_dataclass(value):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)
                if f.name != 'seq' and not f.name.startswith('__')}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [plain(v) for v in value]
    return value


@pytest.mark.parametrize('name,count', [('example-bz2.bag', 8647), ('example-lz4.bag', 8647),
                                        ('t265_trimmed_locoffice.bag', 50)])
def test_real_bags_read_completely(bags, name, count):
    with open_bag(bags / name) as bag:
        assert not bag.is_ros2
        assert bag.message_count == count
        assert sum(t.count for t in bag.topics.values()) == count
        messages = list(bag.messages())
        assert len(messages) == count
        stamps = [m.stamp_ns for m in messages]
        assert stamps == sorted(stamps) and stamps[0] == bag.start_ns and stamps[-1] == bag.end_ns


def test_turtle_bag_topics_and_tf_types(bags):
    with open_bag(bags / 'example-bz2.bag') as bag:
        assert sorted(bag.topics) == TURTLE_TOPICS
        assert bag.msgtype('/tf') == 'tf/msg/tfMessage'
        assert bag.msgtype('/tf_static') == 'tf2_msgs/msg/TFMessage'
        assert bag.topics['/tf'].count == 2688
        assert (bag.end_ns - bag.start_ns) / 1e9 == pytest.approx(21.7, abs=0.01)
        tf = next(bag.messages(['/tf']))
        static = next(bag.messages(['/tf_static']))
    assert tf.header is None and tf.msg.transforms[0].header.frame_id == 'world'
    assert tf.msg.transforms[0].child_frame_id in ('turtle1', 'turtle2')
    carrot = static.msg.transforms[0]
    assert (carrot.header.frame_id, carrot.child_frame_id) == ('turtle1', 'carrot')
    assert (carrot.transform.translation.x, carrot.transform.rotation.w) == (1.0, 1.0)


def test_t265_fisheye_images_decode(bags):
    with open_bag(bags / 't265_trimmed_locoffice.bag') as bag:
        images = list(bag.messages(['/camera/fisheye1/image_raw', '/camera/fisheye2/image_raw']))
        odom = list(bag.messages(['/camera/odom/sample']))
    assert len(images) == 6 and len(odom) == 19
    for m in images:
        assert m.header.frame_id and m.header.stamp.sec > 1_500_000_000
        image = decode_image(m.msg, m.topic)
        assert image.shape == (800, 848) and image.dtype == np.uint8 and image.std() > 1.0


def test_bz2_and_lz4_bags_hold_identical_messages(bags):
    with open_bag(bags / 'example-bz2.bag') as bz2, open_bag(bags / 'example-lz4.bag') as lz4:
        a, b = list(bz2.raw_messages()), list(lz4.raw_messages())
    assert len(a) == len(b) == 8647
    assert a == b


def test_time_window_is_inclusive(bags):
    with open_bag(bags / 'example-lz4.bag') as bag:
        all_pose = [m.stamp_ns for m in bag.raw_messages(['/turtle1/pose'])]
        window = [m.stamp_ns for m in bag.raw_messages(['/turtle1/pose'], all_pose[10], all_pose[20])]
    assert window == all_pose[10:21]


@pytest.mark.parametrize('storage', ['sqlite3', 'mcap'])
def test_ros2_conversion_reads_back_identically(bags, tmp_path, storage):
    src, dst = bags / 'example-bz2.bag', tmp_path / f'ros2_{storage}'
    topics = ['/tf', '/tf_static', '/turtle1/pose']
    convert([src], dst, storage, 9, None, 'none', None, None, [], topics, [], [])
    with open_bag(src) as ros1, open_bag(dst) as ros2:
        assert ros2.is_ros2 and sorted(ros2.topics) == topics
        assert ros2.msgtype('/tf') == 'tf2_msgs/msg/TFMessage'  # converted from tf/tfMessage
        a, b = list(ros1.messages(topics)), list(ros2.messages(topics))
    assert len(a) == len(b) == 2688 + 1 + 1344
    assert [(m.topic, m.stamp_ns) for m in a] == [(m.topic, m.stamp_ns) for m in b]
    assert all(plain(x.msg) == plain(y.msg) for x, y in zip(a, b))
    storage_file = next(dst.glob('*.mcap' if storage == 'mcap' else '*.db3'))
    with open_bag(storage_file) as bare:
        assert bare.message_count == len(b)


def test_ros2_bag_without_stored_definitions(tmp_path):
    """Older ROS 2 bags store no message definitions; both TF message types still deserialize."""
    typestore = ros2_typestore()
    T = typestore.types
    tf = T['geometry_msgs/msg/TransformStamped'](
        header=T['std_msgs/msg/Header'](stamp=T['builtin_interfaces/msg/Time'](sec=7, nanosec=5), frame_id='map'),
        child_frame_id='base_link',
        transform=T['geometry_msgs/msg/Transform'](translation=T['geometry_msgs/msg/Vector3'](1.0, 2.0, 3.0),
                                                   rotation=T['geometry_msgs/msg/Quaternion'](0.0, 0.0, 0.0, 1.0)))
    path = tmp_path / 'nodefs'
    with Writer2(path, version=8, storage_plugin=StoragePlugin.SQLITE3) as writer:
        for n, msgtype in enumerate(TF_MSGTYPES):
            conn = writer.add_connection(f'/tf{n}', msgtype, typestore=typestore)
            writer.write(conn, 100 + n, typestore.serialize_cdr(T[msgtype]([tf]), msgtype))
    with sqlite3.connect(next(path.glob('*.db3'))) as db:
        db.execute('DELETE FROM message_definitions')
    db.close()
    with open_bag(path) as bag:
        messages = list(bag.messages())
    assert [(m.topic, m.stamp_ns) for m in messages] == [('/tf0', 100), ('/tf1', 101)]
    for m in messages:
        assert plain(m.msg.transforms) == plain([tf])


def test_truncated_bag(bags, tmp_path):
    data = (bags / 'example-bz2.bag').read_bytes()
    path = tmp_path / 'half.bag'
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(BagError, match=r'bag is truncated .*half.bag'):
        open_bag(path)


def test_damaged_chunk(bags, tmp_path):
    for name in ('example-bz2.bag', 'example-lz4.bag'):
        data = bytearray((bags / name).read_bytes())
        data[60_000:60_400] = b'\x55' * 400
        path = tmp_path / name
        path.write_bytes(bytes(data))
        expected = rf'cannot read messages from bag .*{name}: damaged or unreadable'
        with open_bag(path) as bag, pytest.raises(BagError, match=expected):
            list(bag.messages())


def test_undecodable_message(tmp_path):
    path = tmp_path / 'garbage.bag'
    with Writer(path) as writer:
        conn = writer.add_connection('/chatter', 'std_msgs/msg/String', typestore=ros1_typestore())
        writer.write(conn, 42, b'\xff\xff\xff\x7f')  # string length far beyond the message
    with open_bag(path) as bag:
        assert [m.data for m in bag.raw_messages()] == [b'\xff\xff\xff\x7f']
        with pytest.raises(BagError, match=r"cannot deserialize a std_msgs/msg/String message on topic '/chatter' "
                                           r"at 42 ns in bag .*garbage.bag"):
            list(bag.messages())


def test_empty_bag(tmp_path):
    path = tmp_path / 'empty.bag'
    with Writer(path) as writer:
        writer.add_connection('/chatter', 'std_msgs/msg/String', typestore=ros1_typestore())
    with pytest.raises(BagError, match=r'bag has no messages: .*empty.bag'):
        open_bag(path)


def test_not_a_bag(tmp_path):
    text = tmp_path / 'notes.bag'
    text.write_text('hello\n' * 100)
    with pytest.raises(BagError, match=r'not a ROS 1 bag \(format 2.0 expected, found no ROS 1 bag header\): '
                                       r'.*notes.bag'):
        open_bag(text)
    other = tmp_path / 'notes.txt'
    other.write_text('hello\n')
    with pytest.raises(BagError, match=r'not a bag: expected a ROS 1 .bag file.*notes.txt'):
        open_bag(other)
    with pytest.raises(BagError, match=r'not a ROS 2 bag directory \(no metadata.yaml\)'):
        open_bag(tmp_path)
    renamed = tmp_path / 'recording.bag.active'
    renamed.write_bytes(b'#ROSBAG V2.0\n' + b'\0' * 100)
    with pytest.raises(BagError, match=r'ROS 1 bag must have the .bag extension to be read: .*recording.bag.active'):
        open_bag(renamed)


def test_missing_path(tmp_path):
    with pytest.raises(BagError, match=r'bag not found: .*nothing.bag'):
        open_bag(tmp_path / 'nothing.bag')


def test_missing_topic(bags):
    with open_bag(bags / 'example-lz4.bag') as bag:
        with pytest.raises(TopicError, match=r"topic '/camera/image' not in bag .*example-lz4.bag; it has: "
                                             r"/rosout, /tf, /tf_static, /turtle1/cmd_vel"):
            bag.messages(['/turtle1/pose', '/camera/image'])
        assert list(bag.messages([])) == []
        with pytest.raises(TopicError, match="topic '/odom' not in bag"):
            bag.msgtype('/odom')
