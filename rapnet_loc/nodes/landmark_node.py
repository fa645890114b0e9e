"""``landmark_node``: the pose of each colour image from a VS-Net scene model (``rapnet_loc.landmarks.vsnet``), for
the front end's pose-input contract.

Each image is localized as ``rapnet-loc localize --estimator vsnet --model MODEL`` does: per-pixel landmark labels
and votes, RANSAC vote intersection, RANSAC-PnP. The model's world frame must be the front end's map's (train it
on the poses of the run that built the map: ``rapnet-loc train-vsnet BAG --poses RUN/trajectory.tum``, or on the
ground truth the map was built with by ``build-map``). Topics and frames as ``rapnet_loc.nodes.pose_node``
describes: publishes ``/rapnet_loc/landmark_pose`` (covariance from the PnP residuals) and
``/rapnet_loc/landmark_diagnostics`` (landmarks found, PnP inliers, ms per image).
"""
from __future__ import annotations

from diagnostic_msgs.msg import KeyValue

from rapnet_loc.errors import ConfigError
from rapnet_loc.io.types import CameraInfo
from rapnet_loc.landmarks.base import PoseEstimate, Scene
from rapnet_loc.landmarks.vsnet import VSNetEstimator, load_model, model_path
from rapnet_loc.nodes.base import spin
from rapnet_loc.nodes.params import Param
from rapnet_loc.nodes.pose_node import FRAME_PARAMS, PoseNode

POSE_TOPIC = '/rapnet_loc/landmark_pose'
DIAGNOSTIC_TOPIC = '/rapnet_loc/landmark_diagnostics'
DIAGNOSTIC_NAME = 'rapnet_loc: landmarks'

PARAMETERS = (
    Param('model', '', 'VS-Net scene model: a file from rapnet-loc train-vsnet or the name of one in '
                       'models/', required=True),
    Param('min_segment', VSNetEstimator.default_conf['min_segment'],
          'landmark segments of fewer output cells are dropped', (2, 100000)),
    Param('reprojection_px', VSNetEstimator.default_conf['reprojection_px'], 'RANSAC-PnP inlier threshold (pixels)',
          (0.1, 1000.0)),
    Param('min_correspondences', VSNetEstimator.default_conf['min_correspondences'],
          'no pose with fewer landmarks or inliers', (4, 100000)),
    *FRAME_PARAMS,
)
ESTIMATOR_PARAMS = ('model', 'min_segment', 'reprojection_px', 'min_correspondences')


class LandmarkNode(PoseNode):
    PARAMETERS = PARAMETERS
    POSE_TOPIC, DIAGNOSTIC_TOPIC, DIAGNOSTIC_NAME = POSE_TOPIC, DIAGNOSTIC_TOPIC, DIAGNOSTIC_NAME

    def __init__(self, **kwargs):
        super().__init__('landmark_node', **kwargs)
        if not self.params['model']:
            raise ConfigError('landmark_node needs a VS-Net model: set the model parameter (a file from rapnet-loc '
                              'train-vsnet, or the name of one in models/)')
        path = model_path(self.params['model'])
        # a bad model is an error at start-up, not per image; the estimator reuses the model read here
        landmarks = len(load_model(path).landmarks)
        self.get_logger().info(f'localizing {self.sub.topic_name} with VS-Net model {path} ({landmarks} landmarks)')

    def make_estimator(self, camera: CameraInfo) -> VSNetEstimator:
        return VSNetEstimator({name: self.params[name] for name in ESTIMATOR_PARAMS}, Scene(camera))

    def diagnostic_values(self, estimate: PoseEstimate | None) -> list[KeyValue]:
        """The number of landmarks located in the image."""
        return [KeyValue(key='landmarks', value=str(self.estimator.last_landmarks))]


def main(args: list[str] | None = None) -> None:
    spin(LandmarkNode, args)


if __name__ == '__main__':
    main()
