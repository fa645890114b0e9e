"""``feature_node``: keypoints and descriptors of each colour image, published as a PointCloud2 in the layout of
``rapnet_loc.nodes.feature_cloud`` with the image's header.

Topics: subscribes ``/d400/color/image_raw`` (sensor_msgs/Image, sensor-data QoS); publishes
``/rapnet_loc/features`` (sensor_msgs/PointCloud2, sensor-data QoS). The extractor is the one
``rapnet-loc replay --features FEATURES --config CONFIG_FILE`` uses.
"""
from __future__ import annotations

from sensor_msgs.msg import Image, PointCloud2

from rapnet_loc.features.base import create_extractor
from rapnet_loc.nodes import qos
from rapnet_loc.nodes.base import FEATURE_PARAMS, RapnetNode, Stamped, slam_config, spin
from rapnet_loc.nodes.convert import rgb_image, stamp_ns
from rapnet_loc.nodes.feature_cloud import encode_features

IMAGE_TOPIC = '/d400/color/image_raw'
FEATURES_TOPIC = '/rapnet_loc/features'


class FeatureNode(RapnetNode):
    PARAMETERS = FEATURE_PARAMS

    def __init__(self, **kwargs):
        super().__init__('feature_node', **kwargs)
        config = slam_config(self.params)
        self.extractor = create_extractor(config.features, config.feature_conf)
        self.pub = self.create_publisher(PointCloud2, FEATURES_TOPIC, qos.SENSOR)
        self.sub = self.create_subscription(Image, IMAGE_TOPIC, self.guarded(self.on_image), qos.SENSOR)
        self.get_logger().info(f'extracting {config.features} features from {self.sub.topic_name} to '
                               f'{self.pub.topic_name}')

    def on_image(self, msg: Image) -> None:
        self.worker.put(Stamped(stamp_ns(msg.header.stamp), (msg,)))

    def process(self, item: Stamped) -> None:
        msg, = item.data
        features = self.extractor.extract(rgb_image(msg, self.sub.topic_name))
        self.pub.publish(encode_features(features, msg.header))


def main(args: list[str] | None = None) -> None:
    spin(FeatureNode, args)


if __name__ == '__main__':
    main()
