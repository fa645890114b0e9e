"""Output messages of the front end, built from the core's ``TrackResult`` and map (poses (4, 4), points (n, 3))."""
from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Point, PoseStamped
from nav_msgs.msg import Odometry
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from rapnet_loc.geometry import invert, pose_difference
from rapnet_loc.nodes.convert import matrix_to_pose
from rapnet_loc.slam.system import TrackResult

DIAGNOSTIC_NAME = 'rapnet_loc: frontend'
LEVELS = {'ok': DiagnosticStatus.OK, 'relocalized': DiagnosticStatus.OK, 'lost': DiagnosticStatus.WARN}


def base_pose(T_wc: np.ndarray, covariance: np.ndarray, T_base_cam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(4, 4) ``T_map_base`` and its (6, 6) ROS-order covariance of a camera pose ``T_wc`` (4, 4) with covariance
    ``covariance`` (6, 6) in the map's world frame, which is the camera at the map's first keyframe
    (``T_map_world = T_base_cam``). The covariance is rotated into the map frame; the lever arm from camera to base
    is not propagated."""
    T_map_base = T_base_cam @ T_wc @ invert(T_base_cam)
    R = np.kron(np.eye(2), T_base_cam[:3, :3])
    return T_map_base, R @ covariance @ R.T


def jump(before: np.ndarray | None, after: np.ndarray, max_shift: float,
         max_turn_deg: float) -> tuple[float, float] | None:
    """Shift (metres) and turn (degrees) from transform ``before`` to ``after`` (4, 4) when either exceeds its
    limit (``max_shift``, ``max_turn_deg``); None otherwise, or when there is no ``before``."""
    if before is None:
        return None
    shift, turn = pose_difference(before, after)
    return (shift, turn) if shift > max_shift or turn > max_turn_deg else None


def pose_stamped(stamp: Time, frame: str, T: np.ndarray) -> PoseStamped:
    """``PoseStamped`` of pose ``T`` (4, 4) in ``frame``."""
    return PoseStamped(header=Header(stamp=stamp, frame_id=frame), pose=matrix_to_pose(T))


def odometry(stamp: Time, frame: str, child: str, T_frame_child: np.ndarray, covariance: np.ndarray) -> Odometry:
    """``Odometry`` of ``child`` in ``frame`` with its (6, 6) ROS-order pose ``covariance`` (no twist: the front
    end estimates poses only)."""
    msg = Odometry(header=Header(stamp=stamp, frame_id=frame), child_frame_id=child)
    msg.pose.pose = matrix_to_pose(T_frame_child)
    msg.pose.covariance = [float(c) for c in covariance.reshape(-1)]
    return msg


def map_points(stamp: Time, frame: str, positions: np.ndarray) -> MarkerArray:
    """One ``POINTS`` marker (namespace ``map_points``, id 0) of (n, 3) positions in ``frame``."""
    marker = Marker(header=Header(stamp=stamp, frame_id=frame), ns='map_points', id=0, type=Marker.POINTS,
                    action=Marker.ADD, color=ColorRGBA(r=0.1, g=0.6, b=1.0, a=1.0))
    marker.pose.orientation.w = 1.0
    marker.scale.x = marker.scale.y = 0.02
    marker.points = [Point(x=float(x), y=float(y), z=float(z)) for x, y, z in positions]
    return MarkerArray(markers=[marker])


def diagnostics(stamp: Time, hardware_id: str, result: TrackResult, counters: dict[str, int]) -> DiagnosticArray:
    """Tracking state and timing of one frame, with the counters (keyframes, map points, rejected inputs)."""
    values = {'state': result.state, 'keypoints': result.n_keypoints, 'tracked': result.n_tracked,
              'ms': f'{result.ms:.2f}', 'keyframe': result.keyframe, 'map': result.map_id, **counters}
    status = DiagnosticStatus(level=LEVELS.get(result.state, DiagnosticStatus.WARN), name=DIAGNOSTIC_NAME,
                              message=result.state, hardware_id=hardware_id,
                              values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])
    return DiagnosticArray(header=Header(stamp=stamp), status=[status])

