"""``vpr_node``: "where am I?" for each colour image, against a saved map, for the front end's pose-input contract.

Each image is relocalized as ``rapnet-loc localize --estimator map`` does (``rapnet_loc.slam.localizer``): the map's
place recognizer (``patchnetvlad``, ``netvlad``, ``bow`` ...; the one saved in the map) ranks its keyframes, local
features are matched with the candidates' map points, PnP-RANSAC and a pose optimisation check the pose. Topics and
frames as ``rapnet_loc.nodes.pose_node`` describes: publishes ``/rapnet_loc/vpr_pose`` (covariance from the pose
optimisation's residuals) and ``/rapnet_loc/vpr_candidates`` (the top-k keyframes' ids, names and scores, and
whether a pose was found).
"""
from __future__ import annotations

from diagnostic_msgs.msg import KeyValue

from rapnet_loc.errors import ConfigError
from rapnet_loc.io.types import CameraInfo
from rapnet_loc.landmarks.base import PoseEstimate, Scene
from rapnet_loc.nodes.base import spin
from rapnet_loc.nodes.params import Param
from rapnet_loc.nodes.pose_node import FRAME_PARAMS, PoseNode
from rapnet_loc.slam.localizer import MapLocalizer
from rapnet_loc.slam.map_io import MapFile, load_map

POSE_TOPIC = '/rapnet_loc/vpr_pose'
CANDIDATES_TOPIC = '/rapnet_loc/vpr_candidates'
DIAGNOSTIC_NAME = 'rapnet_loc: vpr'

PARAMETERS = (
    Param('map_file', '', 'map file whose keyframes and place recognizer localize the images (rapnet-loc '
                          'build-map or replay --map-out)', required=True),
    Param('top_k', 5, 'keyframes listed on /rapnet_loc/vpr_candidates', (1, 1000)),
    *FRAME_PARAMS,
)


class VprNode(PoseNode):
    PARAMETERS = PARAMETERS
    POSE_TOPIC, DIAGNOSTIC_TOPIC, DIAGNOSTIC_NAME = POSE_TOPIC, CANDIDATES_TOPIC, DIAGNOSTIC_NAME

    def __init__(self, **kwargs):
        super().__init__('vpr_node', **kwargs)
        if not self.params['map_file']:
            raise ConfigError('vpr_node needs a map file: set the map_file parameter (a map from rapnet-loc '
                              'build-map or replay --map-out)')
        self.map_file: MapFile = load_map(self.params['map_file'])
        self.get_logger().info(f'localizing {self.sub.topic_name} against {self.params["map_file"]} '
                               f'({len(self.map_file.map.keyframes)} keyframes, place recognizer '
                               f'{self.map_file.config.place_recognition})')

    def make_estimator(self, camera: CameraInfo) -> MapLocalizer:
        return MapLocalizer({}, Scene(camera, None, self.map_file, None))

    def diagnostic_values(self, estimate: PoseEstimate | None) -> list[KeyValue]:
        """The top-k keyframes ranked for the image: ``keyframe ID`` -> ``NAME SCORE``."""
        ranking = self.estimator.ranking(int(self.params['top_k']))
        keyframes = self.estimator.system.map.keyframes
        return [KeyValue(key=f'keyframe {i}', value=f'{keyframes[i].frame.name if i in keyframes else ""} {s:.6g}')
                for i, s in zip(ranking.ids.tolist(), ranking.scores)]


def main(args: list[str] | None = None) -> None:
    spin(VprNode, args)


if __name__ == '__main__':
    main()
