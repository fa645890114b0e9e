"""ROS 2 nodes (rclpy): thin wrappers that convert messages, call the same core objects as the CLI, and publish.

- ``feature_node``: colour image -> features (PointCloud2, layout in ``feature_cloud``).
- ``frontend_node``: features (or colour) + aligned depth + camera info (+ /odom, /tf_static, pose priors) ->
  poses, path, map points, diagnostics, TF.

Modules: ``convert`` (message <-> numpy), ``feature_cloud`` (the feature layout), ``params`` (declared parameters),
``qos``, ``sync`` (approximate-time pairing), ``worker`` (drop-oldest processing thread), ``odometry`` (live
wheel odometry), ``tf`` (TF output, /tf_static input), ``outputs`` (front-end messages), ``base`` (shared node
behaviour and the entry-point runner).
"""
