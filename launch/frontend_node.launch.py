"""frontend_node: features (or colour), aligned depth, camera info, /odom -> poses, path, map points, TF. Topic
arguments remap the defaults (the OpenLORIS names)."""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument('features', default_value='orb', description='extractor of the received features'),
        DeclareLaunchArgument('frontend_params', description='ROS parameters of frontend_node (file)',
                              default_value=PathJoinSubstitution([FindPackageShare('rapnet_loc'), 'config',
                                                                  'frontend_node.yaml'])),
        DeclareLaunchArgument('config_file', description='rapnet_loc.slam.config YAML (tracking, local mapping)',
                              default_value=PathJoinSubstitution([FindPackageShare('rapnet_loc'), 'config', 'slam',
                                                                  'openloris.yaml'])),
        DeclareLaunchArgument('place_recognition', default_value='',
                              description='place recognizer of relocalization (bow, ...); empty: config_file\'s'),
        DeclareLaunchArgument('use_sim_time', default_value='false', description='use /clock'),
        DeclareLaunchArgument('features_topic', default_value='/rapnet_loc/features'),
        DeclareLaunchArgument('depth_topic', default_value='/d400/aligned_depth_to_color/image_raw'),
        DeclareLaunchArgument('camera_info_topic', default_value='/d400/color/camera_info'),
        DeclareLaunchArgument('odom_topic', default_value='/odom'),
        Node(package='rapnet_loc', executable='frontend_node', name='frontend_node', output='screen',
             parameters=[LaunchConfiguration('frontend_params'),
                         {'features': LaunchConfiguration('features'),
                          'config_file': LaunchConfiguration('config_file'),
                          'place_recognition': LaunchConfiguration('place_recognition'),
                          'use_sim_time': LaunchConfiguration('use_sim_time')}],
             remappings=[('/rapnet_loc/features', LaunchConfiguration('features_topic')),
                         ('/d400/aligned_depth_to_color/image_raw', LaunchConfiguration('depth_topic')),
                         ('/d400/color/camera_info', LaunchConfiguration('camera_info_topic')),
                         ('/odom', LaunchConfiguration('odom_topic'))]),
    ])
