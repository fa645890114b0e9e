"""feature_node: colour image -> features (PointCloud2 feature layout). Topic arguments remap the defaults."""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument('features', default_value='orb', description='feature extractor: orb, rapnet, ...'),
        DeclareLaunchArgument('feature_params', description='ROS parameters of feature_node (file)',
                              default_value=PathJoinSubstitution([FindPackageShare('rapnet_loc'), 'config',
                                                                  'feature_node.yaml'])),
        DeclareLaunchArgument('config_file', description='rapnet_loc.slam.config YAML (features.conf)',
                              default_value=PathJoinSubstitution([FindPackageShare('rapnet_loc'), 'config', 'slam',
                                                                  'openloris.yaml'])),
        DeclareLaunchArgument('use_sim_time', default_value='false', description='use /clock'),
        DeclareLaunchArgument('color_topic', default_value='/d400/color/image_raw'),
        DeclareLaunchArgument('features_topic', default_value='/rapnet_loc/features'),
        Node(package='rapnet_loc', executable='feature_node', name='feature_node', output='screen',
             parameters=[LaunchConfiguration('feature_params'),
                         {'features': LaunchConfiguration('features'),
                          'config_file': LaunchConfiguration('config_file'),
                          'use_sim_time': LaunchConfiguration('use_sim_time')}],
             remappings=[('/d400/color/image_raw', LaunchConfiguration('color_topic')),
                         ('/rapnet_loc/features', LaunchConfiguration('features_topic'))]),
    ])
