"""OpenLORIS-style calibration: which robot recorded a scene, its static sensor transforms, colour intrinsics
and the official correctness thresholds.

The file schema is the dataset's ``calibration.yaml`` (``scenes``, ``robots`` with ``parent``/``child``/
``translation``/``rotation_xyzw`` entries, ``d400_color_intrinsics``, ``depth_scale_m_per_unit``,
``evaluation_thresholds``). The package ships the OpenLORIS values (``openloris_calibration.yaml``); the
synthetic generator writes its own file of the same schema next to its bags.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import resources

import numpy as np
import yaml

from rapnet_loc.errors import CalibrationError
from rapnet_loc.geometry import invert, pose_matrix
from rapnet_loc.io.types import CameraInfo
from rapnet_loc.io.yamlfile import read_yaml_mapping

PACKAGED = 'openloris_calibration.yaml'


@dataclass
class Calibration:
    """Parsed calibration.

    Attributes:
        scenes: scene name -> robot name.
        transforms: robot -> {(parent, child): (4, 4) pose of child in parent}.
        color: colour camera model, when the file has ``d400_color_intrinsics``.
        depth_scale: metres per depth unit.
        ate_thresholds: scene -> ATE threshold in metres.
        aoe_threshold_deg, max_pose_interval_s, reloc_score_factor_s: the other official evaluation constants.
        source: file it was read from.
    """

    scenes: dict[str, str]
    transforms: dict[str, dict[tuple[str, str], np.ndarray]]
    color: CameraInfo | None = None
    depth_scale: float = 0.001
    ate_thresholds: dict[str, float] = field(default_factory=dict)
    aoe_threshold_deg: float = 30.0
    max_pose_interval_s: float = 1.0
    reloc_score_factor_s: float = 60.0
    source: str = ''

    @classmethod
    def load(cls, path: str | os.PathLike | None = None) -> 'Calibration':
        """Read a calibration file; ``None`` reads the packaged OpenLORIS calibration."""
        if path is None:
            ref = resources.files('rapnet_loc.io').joinpath(PACKAGED)
            return cls.from_dict(yaml.safe_load(ref.read_text()), source=f'<packaged {PACKAGED}>')
        return cls.from_dict(read_yaml_mapping(path, CalibrationError, 'calibration file'), source=str(path))

    @classmethod
    def from_dict(cls, data: dict, source: str = '<dict>') -> 'Calibration':
        if not isinstance(data, dict) or 'scenes' not in data or 'robots' not in data:
            raise CalibrationError(f'calibration {source} needs "scenes" and "robots" sections')
        try:
            transforms = {
                robot: {(e['parent'], e['child']): pose_matrix(e['translation'], e['rotation_xyzw']) for e in entries}
                for robot, entries in data['robots'].items()
            }
            thresholds = data.get('evaluation_thresholds', {})
            intr = data.get('d400_color_intrinsics')
            color = None
            if intr:
                k = np.array([[intr['fx'], 0, intr['cx']], [0, intr['fy'], intr['cy']], [0, 0, 1]], dtype=np.float64)
                color = CameraInfo(int(intr['width']), int(intr['height']), k,
                                   np.asarray(intr.get('distortion', [0] * 5), dtype=np.float64),
                                   intr.get('model', 'plumb_bob'), 'd400_color')
            return cls(
                scenes=dict(data['scenes']),
                transforms=transforms,
                color=color,
                depth_scale=float(data.get('depth_scale_m_per_unit', 0.001)),
                ate_thresholds={k: float(v) for k, v in thresholds.get('ate_m', {}).items()},
                aoe_threshold_deg=float(thresholds.get('aoe_deg', 30.0)),
                max_pose_interval_s=float(thresholds.get('max_pose_interval_s', 1.0)),
                reloc_score_factor_s=float(thresholds.get('reloc_score_factor_s', 60.0)),
                source=source,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CalibrationError(f'malformed calibration {source}: {type(exc).__name__}: {exc}') from None

    def robot(self, scene: str) -> str:
        """Robot that recorded ``scene``."""
        if scene not in self.scenes:
            raise CalibrationError(f'unknown scene {scene!r} in calibration {self.source}; '
                                   f'known scenes: {", ".join(sorted(self.scenes))}')
        return self.scenes[scene]

    def transform(self, scene: str, parent: str, child: str) -> np.ndarray:
        """(4, 4) pose of frame ``child`` in frame ``parent`` on the robot of ``scene``."""
        if parent == child:
            return np.eye(4)
        table = self.transforms.get(self.robot(scene), {})
        if (parent, child) in table:
            return table[(parent, child)].copy()
        if (child, parent) in table:
            return invert(table[(child, parent)])
        frames = sorted({f for pair in table for f in pair})
        raise CalibrationError(f'no transform between frames {parent!r} and {child!r} for scene {scene!r} '
                               f'(robot {self.robot(scene)!r}); known frames: {", ".join(frames)}')

    def ate_threshold(self, scene: str) -> float:
        """Official ATE correctness threshold (metres) of ``scene``."""
        if scene not in self.ate_thresholds:
            raise CalibrationError(f'no ATE threshold for scene {scene!r} in calibration {self.source}; '
                                   f'pass one explicitly')
        return self.ate_thresholds[scene]
