"""A synthetic scene with a map and a VS-Net model in the map's frame, shared by the landmark tests (session fixture
``landmark_scene`` in conftest): a short bag (home, no people or other challenge), the map and trajectory that
``rapnet-loc replay`` builds from it, and a model trained by ``rapnet-loc train-vsnet BAG --poses
replay/trajectory.tum``, as an operator without ground truth would."""
from pathlib import Path

from rapnet_loc.geometry import find_chain
from rapnet_loc.io.openloris import OpenLORISBag
from rapnet_loc.io.source import open_source
from rapnet_loc.io.trajectory import read_tum
from rapnet_loc.landmarks.train import VSNetTrainConfig, train_vsnet
from rapnet_loc.slam.config import SlamConfig
from rapnet_loc.slam.run import replay
from rapnet_loc.synth import Challenges, generate

FRAMES = 30
CONFIG = """features: {name: orb, conf: {max_keypoints: 800}}
local_mapping: {ba_window: 4, ba_iterations: 3}
"""
NO_CHALLENGES = Challenges(people=0, repetitive=False, featureless=False, illumination=False, moved_furniture=False,
                           motion_blur=False)
# the tests localize the training frames: no random warps, which would only slow the fit of so short a run
TRAINING = dict(steps=300, seed_resolution=0.25, batch=4, warp_scale=0.0, warp_rotation=0.0, warp_shift=0.0)


def landmark_scene(root: Path) -> dict:
    """The scene's bag, configuration file, replay trajectory (map frame), map, model and camera mount."""
    bag = generate(root, scene='home', sequences=1, frames=FRAMES, width=320, height=240, compression='none',
                   challenges=NO_CHALLENGES, progress=False).bags[0]
    config = root / 'config.yaml'
    config.write_text(CONFIG)
    with open_source(bag) as source:
        replay(source, SlamConfig.load(config), root / 'replay', map_out=root / 'scene.map', sequential=True)
    trajectory = root / 'replay' / 'trajectory.tum'
    model = train_vsnet(VSNetTrainConfig(str(bag), str(root / 'vsnet.pt'), poses=str(trajectory), **TRAINING),
                        progress=False).model
    with OpenLORISBag(bag) as ob:
        T_base_cam = find_chain(ob.static_transforms(), 'base_link', 'd400_color')
    return {'bag': bag, 'config': config, 'replay': read_tum(trajectory), 'map': root / 'scene.map', 'model': model,
            'T_base_cam': T_base_cam, 'dir': root}
