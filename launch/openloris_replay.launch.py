"""rapnet_loc.launch.py on a replayed OpenLORIS-Scene bag (converted to ROS 2, played with `ros2 bag play --clock`):
sim time, the OpenLORIS preset and the OpenLORIS topics (change them here for a bag with other names).

Lifelong runs: play a scene's bags one after another (office1-1, office1-2, ...) to the same running nodes. The
front end keeps its map; the first frame of each later bag, more than ``new_sequence_gap_s`` (30 s) after the last
frame of the bag before, starts a new sequence, which relocalizes in the map first, as ``rapnet-loc replay BAG1
BAG2 ...`` does offline."""
from launch import LaunchDescription
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    return LaunchDescription([
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(PathJoinSubstitution([FindPackageShare('rapnet_loc'), 'launch',
                                                                'rapnet_loc.launch.py'])),
            launch_arguments=[
                ('params_file', PathJoinSubstitution([FindPackageShare('rapnet_loc'), 'config', 'openloris.yaml'])),
                ('config_file', PathJoinSubstitution([FindPackageShare('rapnet_loc'), 'config', 'slam',
                                                      'openloris.yaml'])),
                ('use_sim_time', 'true'),
                ('color_topic', '/d400/color/image_raw'),
                ('depth_topic', '/d400/aligned_depth_to_color/image_raw'),
                ('camera_info_topic', '/d400/color/camera_info'),
                ('odom_topic', '/odom')]),
    ])
