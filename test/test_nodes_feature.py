"""feature_node and the PointCloud2 feature layout, with real rclpy."""
from dataclasses import replace

import numpy as np
import pytest
from ros_env import Recorder, graph, image_msg, ros_context, textured_image, wait_for  # noqa: F401
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image, PointCloud2, PointField
from std_msgs.msg import Header

from rapnet_loc.errors import TopicError
from rapnet_loc.features.base import Features, create_extractor
from rapnet_loc.nodes import qos
from rapnet_loc.nodes.convert import to_stamp
from rapnet_loc.nodes.feature_cloud import decode_features, encode_features
from rapnet_loc.nodes.feature_node import FEATURES_TOPIC, IMAGE_TOPIC, FeatureNode


def assert_same_features(got: Features, want: Features) -> None:
    for name in ('keypoints', 'scores', 'descriptors', 'levels', 'weights'):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)
    assert (got.distance, got.scale_factor, got.n_levels) == (want.distance, want.scale_factor, want.n_levels)


def test_orb_features_round_trip_exactly():
    features = create_extractor('orb').extract(textured_image(0))
    assert len(features) > 100
    msg = encode_features(features, Header(frame_id='cam'))
    assert [(f.name, f.offset, f.datatype, f.count) for f in msg.fields] == [
        ('u', 0, PointField.FLOAT32, 1), ('v', 4, PointField.FLOAT32, 1), ('score', 8, PointField.FLOAT32, 1),
        ('weight', 12, PointField.FLOAT32, 1), ('level', 16, PointField.UINT8, 1),
        ('descriptor', 20, PointField.UINT8, 32)]
    assert msg.point_step == 52 and msg.width == len(features) and msg.header.frame_id == 'cam'
    assert_same_features(decode_features(msg, 't', 1.2, 8), features)


def test_float_descriptors_and_a_foreign_layout_decode():
    rng = np.random.default_rng(1)
    features = Features(rng.uniform(0, 300, (7, 2)), rng.uniform(0, 1, 7), rng.normal(size=(7, 16)), 'l2',
                        weights=rng.uniform(0.5, 2.0, 7))
    assert_same_features(decode_features(encode_features(features, Header()), 't'), features)
    # another publisher: big-endian, descriptor first, no weight or level fields
    dtype = np.dtype({'names': ['descriptor', 'u', 'v', 'score'], 'formats': [('>f4', (16,)), '>f4', '>f4', '>f4'],
                      'offsets': [0, 64, 68, 72], 'itemsize': 80})
    points = np.zeros(7, dtype)
    points['descriptor'], points['score'] = features.descriptors, features.scores
    points['u'], points['v'] = features.keypoints.T
    msg = PointCloud2(height=1, width=7, is_bigendian=True, point_step=80, row_step=560, data=points.tobytes(),
                      fields=[PointField(name='descriptor', offset=0, datatype=PointField.FLOAT32, count=16),
                              *(PointField(name=n, offset=o, datatype=PointField.FLOAT32, count=1)
                                for n, o in (('u', 64), ('v', 68), ('score', 72)))])
    assert_same_features(decode_features(msg, 't'), replace(features, weights=None))   # weights 1 when absent


def test_bad_feature_clouds_raise_topic_errors():
    msg = encode_features(create_extractor('orb').extract(textured_image(2)), Header())
    truncated = PointCloud2(header=msg.header, height=1, width=msg.width, fields=msg.fields,
                            point_step=msg.point_step, data=bytes(msg.data)[:-1])
    with pytest.raises(TopicError, match="'/f'.*point_step"):
        decode_features(truncated, '/f')
    no_desc = PointCloud2(height=1, width=0, fields=msg.fields[:3], point_step=12)
    with pytest.raises(TopicError, match="'descriptor'"):
        decode_features(no_desc, '/f')


@pytest.mark.parametrize('name, pyramid', [('orb', (1.2, 8)), ('xfeat', (1.0, 1))])
def test_feature_node_publishes_the_extractors_output_and_survives_bad_images(graph, name, pyramid):
    node = graph.add(FeatureNode(context=graph.context, parameter_overrides=[Parameter('features', value=name)]))
    test = graph.node('feature_test')
    rec = Recorder(test, {FEATURES_TOPIC: (PointCloud2, qos.SENSOR)})
    pub = test.create_publisher(Image, IMAGE_TOPIC, qos.SENSOR)
    wait_for(lambda: pub.get_subscription_count() and node.pub.get_subscription_count(), 10, 'discovery')
    bad = image_msg(np.zeros((240, 320), np.float32), 1_000, '32FC1')
    pub.publish(bad)
    wait_for(lambda: node.rejected['bad_input'] == 1, 10, 'the wrong encoding to be rejected')
    rgb = textured_image(3)
    pub.publish(image_msg(rgb, 2_000_000_123))
    wait_for(lambda: rec[FEATURES_TOPIC], 20, 'features')
    msg, = rec[FEATURES_TOPIC]
    assert msg.header.stamp == to_stamp(2_000_000_123) and msg.header.frame_id == 'd400_color'
    assert_same_features(decode_features(msg, FEATURES_TOPIC, *pyramid), create_extractor(name).extract(rgb))
