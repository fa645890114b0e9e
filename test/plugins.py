"""Plug-ins that the tests register as a user would add their own: each a few lines, no other change to the code.

- place recognizer ``test_mean_descriptor``: a global descriptor, the centred mean of the local descriptors' bits;
- place recognizer ``test_never_recognizes``: ranks no keyframe and counts the queries;
- pose estimator ``test_trajectory``: the pose of a known trajectory (TUM file, option ``trajectory``) at the
  frame's stamp, e.g. the ground truth.
"""
import numpy as np

from rapnet_loc.io.trajectory import read_tum
from rapnet_loc.landmarks import PoseEstimate, PoseEstimator
from rapnet_loc.landmarks import register as register_estimator
from rapnet_loc.vpr import GlobalDescriptorRecognizer, Ranking
from rapnet_loc.vpr import register as register_recognizer


@register_recognizer('test_mean_descriptor')
class MeanDescriptor(GlobalDescriptorRecognizer):
    def describe(self, view):
        return np.unpackbits(view.features.descriptors, axis=1).mean(axis=0) - 0.5


@register_recognizer('test_never_recognizes')
class NeverRecognizes(GlobalDescriptorRecognizer):
    asked = 0

    def describe(self, view):
        return view.features.descriptors.mean(axis=0)

    def query(self, descriptor, k=None):
        self.asked += 1
        return Ranking(np.zeros(0, np.int64), np.zeros(0))


@register_estimator('test_trajectory')
class KnownTrajectory(PoseEstimator):
    default_conf = {'trajectory': ''}

    def __init__(self, conf, scene):
        super().__init__(conf, scene)
        traj = read_tum(self.conf['trajectory'])
        self.poses = dict(zip(traj.stamps_ns.tolist(), traj.matrices))

    def estimate(self, rgbd):
        T_wc = self.poses.get(rgbd.stamp_ns)
        return None if T_wc is None else PoseEstimate(T_wc, np.eye(6) * 1e-4, 100)
