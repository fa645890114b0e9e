"""landmark_node: colour images and camera info -> /rapnet_loc/landmark_pose (the base in the map frame, from a VS-Net
scene model: landmark segmentation and votes, RANSAC vote intersection, PnP) for frontend_node's pose priors, and
/rapnet_loc/landmark_diagnostics. Needs a model (rapnet-loc train-vsnet) in the map's frame."""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument('model', description='VS-Net model file or name in models/'),
        DeclareLaunchArgument('landmark_params', description='ROS parameters of landmark_node (file)',
                              default_value=PathJoinSubstitution([FindPackageShare('rapnet_loc'), 'config',
                                                                  'landmark_node.yaml'])),
        DeclareLaunchArgument('use_sim_time', default_value='false', description='use /clock'),
        DeclareLaunchArgument('image_topic', default_value='/d400/color/image_raw'),
        DeclareLaunchArgument('camera_info_topic', default_value='/d400/color/camera_info'),
        Node(package='rapnet_loc', executable='landmark_node', name='landmark_node', output='screen',
             parameters=[LaunchConfiguration('landmark_params'),
                         {'model': LaunchConfiguration('model'),
                          'use_sim_time': LaunchConfiguration('use_sim_time')}],
             remappings=[('/d400/color/image_raw', LaunchConfiguration('image_topic')),
                         ('/d400/color/camera_info', LaunchConfiguration('camera_info_topic'))]),
    ])
