"""landmark_node with real rclpy: it localizes a scene's frames with a VS-Net model (trained on the poses of the run
that built the map, ``landmarkscene``) and publishes ``/rapnet_loc/landmark_pose``, from which frontend_node
(localizing on that map with a recognizer that never recognizes anything) relocalizes at start and after a kidnap
(``test_nodes_vpr.kidnap_through``). Bad parameters are clear errors."""
import plugins  # noqa: F401 (registers test_never_recognizes)
import pytest
from ros_env import graph, ros_context  # noqa: F401,F811 (fixtures)
from rclpy.parameter import Parameter
from test_nodes_vpr import kidnap_through

from rapnet_loc.errors import ConfigError
from rapnet_loc.nodes.feature_node import IMAGE_TOPIC
from rapnet_loc.nodes.landmark_node import DIAGNOSTIC_NAME, DIAGNOSTIC_TOPIC, POSE_TOPIC, LandmarkNode

LANDMARK_IMAGES = '/landmarks/image_raw'


def test_frontend_relocalizes_from_the_landmark_pose_after_a_kidnap(graph, landmark_scene):
    node = graph.add(LandmarkNode(context=graph.context, parameter_overrides=[
        Parameter('model', value=str(landmark_scene['model'])), Parameter('queue_size', value=10)],
        cli_args=['--ros-args', '-r', f'{IMAGE_TOPIC}:={LANDMARK_IMAGES}']))
    out = kidnap_through(graph, landmark_scene, landmark_scene['map'], node, 2, POSE_TOPIC, DIAGNOSTIC_TOPIC,
                         LANDMARK_IMAGES, max_error=0.06)
    values = {kv.key: kv.value for kv in out['status'].values}
    assert out['status'].name == DIAGNOSTIC_NAME and values['pose'] == 'found'
    assert int(values['landmarks']) >= int(values['inliers']) >= 6 and float(values['ms']) > 0


def test_bad_model_is_a_clear_error(graph, tmp_path):
    with pytest.raises(ConfigError, match='landmark_node needs a VS-Net model: set the model parameter'):
        LandmarkNode(context=graph.context)
    (tmp_path / 'bad.pt').write_text('not a model')
    with pytest.raises(ConfigError, match='cannot read VS-Net model .*bad.pt'):
        LandmarkNode(context=graph.context, parameter_overrides=[Parameter('model', value=str(tmp_path / 'bad.pt'))])
