"""Absolute pose estimators: the ``PoseEstimator`` interface and its registry (``rapnet_loc.landmarks.base``)."""
from rapnet_loc.landmarks.base import PoseEstimate, PoseEstimator, Scene, create_estimator, register

__all__ = ['PoseEstimate', 'PoseEstimator', 'Scene', 'create_estimator', 'register']
