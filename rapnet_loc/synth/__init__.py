"""Synthetic OpenLORIS-style RGB-D sequences with exact ground truth (ROS-free).

``generate(out_dir, scene='home', sequences=2, frames=300, ...)`` renders textured indoor scenes (``office``,
``corridor``, ``home``, ``cafe``, ``market``) along smooth robot paths and writes one ROS 1 bag per sequence,
the OpenLORIS ground-truth file and ``calibration.yaml``. ``Challenges`` switches people, repetitive textures,
featureless walls, illumination changes, moved furniture and motion blur.

Modules: ``textures`` (texture library), ``world`` (quads, objects, labels, free space), ``scenes`` (layouts),
``layout`` (furniture moves), ``path`` (robot paths), ``people``, ``robot`` (mounts, odometry), ``camera``
(intrinsics per image size), ``render`` (z-buffer renderer), ``challenges`` (switches, lighting, blur), ``bag``
(ROS 1 output), ``output`` (ground truth, calibration) and ``generate``.
"""
from rapnet_loc.synth.challenges import Challenges
from rapnet_loc.synth.generate import SequenceSummary, SynthSummary, generate
from rapnet_loc.synth.scenes import SCENES
from rapnet_loc.synth.world import DYNAMIC, ID_MASK

__all__ = ['Challenges', 'DYNAMIC', 'ID_MASK', 'SCENES', 'SequenceSummary', 'SynthSummary', 'generate']
