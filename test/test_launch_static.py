"""Launch files, YAML presets and the RViz config, checked statically (launch and launch_ros are not installable
here): no logic in launch files, executables are entry points, parameters are declared by their nodes, remapped
and displayed topics exist (issue 5, acceptance 4)."""
import ast
import importlib.metadata
from pathlib import Path

import pytest
import yaml
from ros_env import ros_session
from rclpy.parameter import Parameter

from rapnet_loc.features import create_extractor
from rapnet_loc.nodes.feature_node import FeatureNode
from rapnet_loc.nodes.frontend_node import FrontendNode
from rapnet_loc.nodes.landmark_node import LandmarkNode
from rapnet_loc.nodes.vpr_node import VprNode
from rapnet_loc.slam.config import SlamConfig

REPO = Path(__file__).resolve().parents[1]
LAUNCH_FILES = sorted((REPO / 'launch').glob('*.launch.py'))
NODES = {'feature_node': FeatureNode, 'frontend_node': FrontendNode, 'vpr_node': VprNode,
         'landmark_node': LandmarkNode}
ROS_PARAMETERS = {'use_sim_time'}          # declared by every rclpy node
LOGIC = (ast.If, ast.For, ast.While, ast.Try, ast.IfExp, ast.BoolOp, ast.Compare, ast.Lambda, ast.comprehension,
         ast.With, ast.Assign, ast.AugAssign, ast.Raise)


def launch_nodes(path: Path) -> list[dict]:
    """Keyword arguments of every ``Node(...)`` call of a launch file, literals evaluated, substitutions as
    ``('LaunchConfiguration', name)`` / ``('PathJoinSubstitution', parts)``."""
    return [{kw.arg: _value(kw.value) for kw in call.keywords} for call in ast.walk(ast.parse(path.read_text()))
            if isinstance(call, ast.Call) and getattr(call.func, 'id', None) == 'Node']


def calls(path: Path, name: str) -> list:
    """Evaluated arguments ``(name, [args], {keywords})`` of every call of ``name`` in a launch file."""
    return [(name, [_value(a) for a in call.args], {kw.arg: _value(kw.value) for kw in call.keywords})
            for call in ast.walk(ast.parse(path.read_text()))
            if isinstance(call, ast.Call) and getattr(call.func, 'id', None) == name]


def _value(node: ast.AST):
    if isinstance(node, ast.Call):
        return (node.func.id, [_value(a) for a in node.args])
    if isinstance(node, ast.List):
        return [_value(e) for e in node.elts]
    if isinstance(node, ast.Tuple):
        return tuple(_value(e) for e in node.elts)
    if isinstance(node, ast.Dict):
        return {_value(k): _value(v) for k, v in zip(node.keys, node.values)}
    return ast.literal_eval(node)


def yaml_presets() -> dict[Path, dict]:
    return {path: yaml.safe_load(path.read_text()) for path in sorted((REPO / 'config').glob('*.yaml'))}


@pytest.fixture(scope='module')
def node_topics(landmark_scene):
    """{node name: set of topic names it subscribes or publishes}, from the real nodes with default parameters (and
    the files they need: a map, a VS-Net model)."""
    overrides = {'vpr_node': [Parameter('map_file', value=str(REPO / 'test' / 'data' / 'office_v1.map'))],
                 'landmark_node': [Parameter('model', value=str(landmark_scene['model']))]}
    topics = {}
    with ros_session() as context:
        for name, cls in NODES.items():
            node = cls(context=context, parameter_overrides=overrides.get(name, []))
            topics[name] = {e.topic_name for e in (*node.subscriptions, *node.publishers)}
            node.destroy_node()
    return topics


@pytest.mark.parametrize('path', LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_is_declarative(path):
    tree = ast.parse(path.read_text())
    body = [n for n in tree.body if not isinstance(n, (ast.Import, ast.ImportFrom))]
    assert isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant), 'a docstring first'
    func, = body[1:]
    assert isinstance(func, ast.FunctionDef) and func.name == 'generate_launch_description'
    assert len(func.body) == 1 and isinstance(func.body[0], ast.Return)
    assert not [type(n).__name__ for n in ast.walk(func) if isinstance(n, LOGIC)]
    imports = {n.module for n in tree.body if isinstance(n, ast.ImportFrom)}
    assert imports <= {'launch', 'launch.actions', 'launch.conditions', 'launch.launch_description_sources',
                       'launch.substitutions', 'launch_ros.actions', 'launch_ros.substitutions'}
    for _, (parts,), _ in calls(path, 'PathJoinSubstitution'):
        assert parts[0] == ('FindPackageShare', ['rapnet_loc'])
        assert REPO.joinpath(*parts[1:]).is_file(), parts


def includes(path: Path) -> list[tuple[Path, set[str]]]:
    """(included launch file, names of the arguments passed) of every ``IncludeLaunchDescription``."""
    found = []
    for _, (source,), kwargs in calls(path, 'IncludeLaunchDescription'):
        _, [(_, [parts])] = source            # PythonLaunchDescriptionSource(PathJoinSubstitution([...]))
        found.append((REPO.joinpath(*parts[1:]), {name for name, _ in kwargs.get('launch_arguments', [])}))
    return found


def declared_arguments(path: Path) -> set[str]:
    """Launch arguments declared by a launch file and the files it includes."""
    names = {args[0] for _, args, _ in calls(path, 'DeclareLaunchArgument')}
    return names.union(*(declared_arguments(included) for included, _ in includes(path)))


@pytest.mark.parametrize('path', LAUNCH_FILES, ids=lambda p: p.name)
def test_included_launch_files_declare_the_arguments_passed(path):
    for included, passed in includes(path):
        assert passed <= declared_arguments(included), f'{included.name} lacks {passed - declared_arguments(included)}'


def test_every_node_and_every_launch_file_are_there():
    names = {p.name for p in LAUNCH_FILES}
    assert {'rapnet_loc.launch.py', 'openloris_replay.launch.py'} | {f'{n}.launch.py' for n in NODES} <= names
    scripts = {e.name: e.value for e in importlib.metadata.entry_points(group='console_scripts')}
    executables = {node['executable'] for path in LAUNCH_FILES for node in launch_nodes(path)
                   if node['package'] == 'rapnet_loc'}
    assert executables == set(NODES)
    for name in executables:
        assert scripts[name] == f'rapnet_loc.nodes.{name}:main'


@pytest.mark.parametrize('path', LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_parameters_remaps_and_files_exist(path, node_topics):
    for node in launch_nodes(path):
        if node['package'] == 'rviz2':
            assert ('PathJoinSubstitution', [[('FindPackageShare', ['rapnet_loc']), 'rviz', 'rapnet_loc.rviz']]) \
                in node['arguments']
            continue
        assert node['name'] == node['executable']
        declared = {p.name for p in NODES[node['executable']].PARAMETERS} | ROS_PARAMETERS
        for entry in node['parameters']:
            if isinstance(entry, dict):
                assert set(entry) <= declared, f'{node["name"]}: undeclared {set(entry) - declared}'
            elif entry[0] == 'PathJoinSubstitution':
                assert (REPO.joinpath(*entry[1][0][1:])).is_file(), entry
        for source, _ in node.get('remappings', []):
            assert source in node_topics[node['name']], f'{node["name"]} has no topic {source}'


@pytest.mark.parametrize('path', sorted((REPO / 'config').glob('*.yaml')), ids=lambda p: p.name)
def test_yaml_parameters_are_declared_typed_and_in_range(path):
    for node_name, section in yaml.safe_load(path.read_text()).items():
        params = {p.name: p for p in NODES[node_name].PARAMETERS}
        values = section['ros__parameters']
        assert set(values) <= set(params) | ROS_PARAMETERS, f'{node_name}: undeclared {set(values) - set(params)}'
        assert {n for n, p in params.items() if p.required} <= set(values), f'{node_name}: required missing'
        for name, val in values.items():
            default = params[name].default
            if isinstance(default, Parameter.Type):
                assert Parameter.Type.from_parameter_value(val) == default, name
            else:
                assert type(val) is type(default), f'{path.name}: {node_name}.{name} is not {type(default)}'
            if params[name].range is not None:
                assert params[name].range[0] <= val <= params[name].range[1], name


def test_node_defaults_file_lists_every_parameter():
    presets = yaml_presets()
    for name, cls in NODES.items():
        listed = set(presets[REPO / 'config' / f'{name}.yaml'][name]['ros__parameters'])
        optional = {p.name for p in cls.PARAMETERS if isinstance(p.default, Parameter.Type)}
        assert listed == {p.name for p in cls.PARAMETERS} - optional


@pytest.mark.parametrize('path', sorted((REPO / 'config' / 'slam').glob('*.yaml')), ids=lambda p: p.name)
def test_slam_presets_load(path):
    """Every preset loads, and its extractor (ORB for the datasets' own presets) can be built from it."""
    config = SlamConfig.load(path)
    assert config.features == ('rapnet' if path.stem.endswith('_rapnet') else 'orb')
    assert create_extractor(config.features, config.feature_conf).name == config.features


def test_rviz_shows_image_path_pose_map_points_and_tf(node_topics):
    config = yaml.safe_load((REPO / 'rviz' / 'rapnet_loc.rviz').read_text())['Visualization Manager']
    assert config['Global Options']['Fixed Frame'] == 'map'
    displays = {d['Class'].split('/')[-1]: d for d in config['Displays']}
    assert {'Image', 'Path', 'Pose', 'MarkerArray', 'TF'} <= set(displays)
    topics = set().union(*node_topics.values())
    for kind in ('Image', 'Path', 'Pose', 'MarkerArray'):
        assert displays[kind]['Topic']['Value'] in topics, kind
    assert displays['MarkerArray']['Topic']['Durability Policy'] == 'Transient Local'
