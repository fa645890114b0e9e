"""ORB-SLAM2-style RGB-D front end: frames, map, pose optimisation, tracking, local mapping, ``System``."""
from rapnet_loc.slam.config import LocalMappingConfig, SlamConfig, TrackingConfig
from rapnet_loc.slam.system import System, TrackResult

__all__ = ['LocalMappingConfig', 'SlamConfig', 'System', 'TrackResult', 'TrackingConfig']
