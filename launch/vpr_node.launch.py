"""vpr_node: colour images and camera info -> /rapnet_loc/vpr_pose (the base in the map frame, from the map's place
recognizer, feature matching and PnP) for frontend_node's pose priors, and /rapnet_loc/vpr_candidates. Needs a map
file (rapnet-loc build-map or replay --map-out, e.g. with --place-recognition patchnetvlad)."""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument('map_file', description='map file to localize against'),
        DeclareLaunchArgument('vpr_params', description='ROS parameters of vpr_node (file)',
                              default_value=PathJoinSubstitution([FindPackageShare('rapnet_loc'), 'config',
                                                                  'vpr_node.yaml'])),
        DeclareLaunchArgument('use_sim_time', default_value='false', description='use /clock'),
        DeclareLaunchArgument('image_topic', default_value='/d400/color/image_raw'),
        DeclareLaunchArgument('camera_info_topic', default_value='/d400/color/camera_info'),
        Node(package='rapnet_loc', executable='vpr_node', name='vpr_node', output='screen',
             parameters=[LaunchConfiguration('vpr_params'),
                         {'map_file': LaunchConfiguration('map_file'),
                          'use_sim_time': LaunchConfiguration('use_sim_time')}],
             remappings=[('/d400/color/image_raw', LaunchConfiguration('image_topic')),
                         ('/d400/color/camera_info', LaunchConfiguration('camera_info_topic'))]),
    ])
