"""rapnet_loc: visual localization suite (RaP-Net keypoints, Patch-NetVLAD, VS-Net landmarks, RGB-D front end).

The algorithms live in ROS-free subpackages that take numpy arrays and dataclasses; ``rapnet_loc.nodes`` holds
the thin ROS 2 wrappers and ``rapnet_loc.cli`` the offline command line (``rapnet-loc``).
"""
__version__ = '0.1.0'
