"""All nodes: feature_node -> frontend_node (their launch files, which declare features, config_file,
use_sim_time and the topic arguments) and RViz. Swap the feature node with feature_node:=false and your own node
publishing the feature layout on /rapnet_loc/features (or features_topic:=...)."""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.conditions import IfCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument('params_file', description='ROS parameters of both nodes (a preset in config/)',
                              default_value=PathJoinSubstitution([FindPackageShare('rapnet_loc'), 'config',
                                                                  'openloris.yaml'])),
        DeclareLaunchArgument('use_sim_time', default_value='false', description='use /clock'),
        DeclareLaunchArgument('rviz', default_value='true', description='start RViz'),
        DeclareLaunchArgument('feature_node', default_value='true', description='start our feature node'),
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(PathJoinSubstitution([FindPackageShare('rapnet_loc'), 'launch',
                                                                'feature_node.launch.py'])),
            launch_arguments=[('feature_params', LaunchConfiguration('params_file'))],
            condition=IfCondition(LaunchConfiguration('feature_node'))),
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(PathJoinSubstitution([FindPackageShare('rapnet_loc'), 'launch',
                                                                'frontend_node.launch.py'])),
            launch_arguments=[('frontend_params', LaunchConfiguration('params_file'))]),
        Node(package='rviz2', executable='rviz2', name='rviz2', output='screen',
             condition=IfCondition(LaunchConfiguration('rviz')),
             arguments=['-d', PathJoinSubstitution([FindPackageShare('rapnet_loc'), 'rviz', 'rapnet_loc.rviz'])],
             parameters=[{'use_sim_time': LaunchConfiguration('use_sim_time')}]),
    ])
