"""Map files: a whole ``Map`` with its camera, feature extractor, place recognizer and configuration in one
versioned ``.npz``.

Layout (numpy ``.npz``, a zip of ``.npy`` arrays, read with ``allow_pickle=False``; no pickled objects)::

    format, version       header: 'rapnet-loc-map' and the format version (``VERSION``)
    meta                  JSON: features {name, conf, distance, scale_factor, n_levels}, place_recognition
                          {name, conf}, camera, config
    kf_id, kf_frame_id, kf_stamp_ns, kf_name (K,)   keyframes (ids increasing, with gaps where keyframes were
                          culled; names of their source frames); kf_T_cw (K, 4, 4); kf_offsets (K + 1,) rows of each
                          keyframe in the keypoint arrays
    kp_<name>             the keyframes' keypoints, concatenated (N rows): keypoints, scores, descriptors, levels
                          (``Features``), keypoints_un, depth, points_c, u_right, inv_sigma2 (``Frame``) and
                          point_ids (``KeyFrame``)
    pt_<column>           every ``MapPoints`` column (M rows)
    obs_point, obs_kf, obs_kp (O,)         observations: point id, keyframe id, keypoint index
    cov_kf, cov_other, cov_weight (E,)     covisibility edges (both directions)
    vpr_<key>             the place recognizer's state (``PlaceRecognizer.state``); arrays of ``MMAP_BYTES`` or
                          more are stored uncompressed and memory-mapped on loading (``rapnet_loc.io.npz``)
    kf_map_id (K,)        the map of each keyframe, when the front end made several (``rapnet_loc.slam.map``); then
                          meta also holds ``maps`` {active, anchored, merged: {src: [dst, S as 16 numbers]}}.
                          Files without it hold one map, map 0.

Version 1 files (rapnet-loc before the place-recognizer registry) have no ``kf_name``, no ``place_recognition`` and
no ``vpr_`` arrays, and give the descriptor thresholds as single Hamming values; they still load: keyframes are
named by their stamps, the thresholds become the ``hamming`` entries, and the place recognizer is rebuilt from the
keyframes (logged).

Files are written atomically (``rapnet_loc.io.atomic``): a failed save leaves the previous file as it was.
Every problem on loading raises ``MapFormatError`` naming the file and what is wrong with it.
"""
from __future__ import annotations

import copy
import json
import logging
import os
import zipfile
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from rapnet_loc.errors import ConfigError, MapFormatError
from rapnet_loc.features.base import DISTANCES, Features
from rapnet_loc.io.atomic import atomic_write
from rapnet_loc.io.npz import read_npz, write_npz
from rapnet_loc.io.trajectory import format_stamp
from rapnet_loc.slam.camera import Camera
from rapnet_loc.slam.config import SlamConfig
from rapnet_loc.slam.frame import Frame
from rapnet_loc.slam.keyframe_database import KeyFrameDatabase
from rapnet_loc.slam.map import KeyFrame, Map, MapPoints
from rapnet_loc.vpr.base import PlaceRecognizer, create_recognizer

LOG = logging.getLogger(__name__)

FORMAT = 'rapnet-loc-map'
VERSION = 2
READABLE_VERSIONS = (1, 2)
ZIP_MAGIC = b'PK\x03\x04'
FEATURE_ARRAYS = ('keypoints', 'scores', 'descriptors', 'levels')
FRAME_ARRAYS = ('keypoints_un', 'depth', 'points_c', 'u_right', 'inv_sigma2')
POINT_COLUMNS = MapPoints.columns()
ARRAYS = ('format', 'version', 'meta', 'kf_id', 'kf_frame_id', 'kf_stamp_ns', 'kf_T_cw', 'kf_offsets', 'kp_point_ids',
          *(f'kp_{name}' for name in (*FEATURE_ARRAYS, *FRAME_ARRAYS)), *(f'pt_{name}' for name in POINT_COLUMNS),
          'obs_point', 'obs_kf', 'obs_kp', 'cov_kf', 'cov_other', 'cov_weight')
ARRAYS_V2 = ('kf_name',)
VPR_PREFIX = 'vpr_'
MMAP_BYTES = 1 << 20        # place-recognizer arrays this large are memory-mapped (patch descriptors, at scale)


@dataclass
class MapFile:
    """A map with the camera, feature extractor, place recognizer and settings it was built with.

    Attributes:
        map: keyframes, points and covisibility.
        camera: the colour camera of the keyframes.
        config: settings; ``config.features``/``config.feature_conf`` name the extractor of every descriptor,
            ``config.place_recognition``/``place_recognition_conf`` the recognizer saved with the map.
        distance: descriptor metric of the extractor (``'hamming'`` or ``'l2'``).
        recognizer: the saved place recognizer, restored; None for a version 1 file.
        path: the file.
    """

    map: Map
    camera: Camera
    config: SlamConfig
    distance: str
    recognizer: PlaceRecognizer | None = None
    path: Path | None = None

    def settings(self, config: SlamConfig | None = None) -> SlamConfig:
        """Settings to localize on this map: a copy of ``config`` (default: the map's own) with the map's feature
        extractor and its options."""
        settings = copy.deepcopy(config or self.config)
        settings.features, settings.feature_conf = self.config.features, dict(self.config.feature_conf)
        return settings

    def recognizer_for(self, config: SlamConfig) -> PlaceRecognizer:
        """The place recognizer that ``config`` names, indexing this map's keyframes: the saved one when it is
        that recognizer with the same options, else a new one built from the keyframes (logged).

        Raises:
            ConfigError: unknown recognizer or option, or one that needs the keyframes' images, which map files do
                not hold.
        """
        wanted = create_recognizer(config.place_recognition, config.place_recognition_conf)
        saved = self.recognizer
        if saved is not None and saved.name == wanted.name and saved.conf == wanted.conf:
            return saved
        if wanted.needs_image:
            differs = ''
            if saved is not None and saved.name == wanted.name:
                keys = sorted(k for k in wanted.conf if saved.conf.get(k) != wanted.conf[k])
                differs = (f' (the map\'s was made with {", ".join(f"{k}={saved.conf.get(k)!r}" for k in keys)}, '
                           f'the configuration asks for {", ".join(f"{k}={wanted.conf[k]!r}" for k in keys)})')
            raise ConfigError(f'place recognizer {wanted.name!r} needs the keyframes\' images, which the map file '
                              f'{self.path} does not hold{differs}; rebuild the map with --place-recognition '
                              f'{wanted.name} and these options')
        LOG.info('%s: place recognizer %r %s rebuilt from the map\'s %d keyframes', self.path or 'map', wanted.name,
                 wanted.conf, len(self.map.keyframes))
        KeyFrameDatabase(wanted, self.map).sync()
        return wanted


def save_map(path: str | os.PathLike, slam_map: Map, camera: Camera, config: SlamConfig,
             recognizer: PlaceRecognizer) -> None:
    """Write ``slam_map`` (built with ``camera`` and ``config``'s feature extractor) and the state of the place
    recognizer that indexes its keyframes to ``path`` atomically.

    Raises:
        MapFormatError: the map has no keyframe, or a keyframe pose or map point that is not finite (never written).
    """
    if not slam_map.keyframes:
        raise MapFormatError(f'cannot save {path}: the map has no keyframe (tracking never initialised)')
    kfs = list(slam_map.keyframes.values())
    if bad := [kf.frame.name for kf in kfs if not np.isfinite(kf.T_cw).all()]:
        raise MapFormatError(f'cannot save {path}: {len(bad)} keyframe(s) with a NaN or infinite pose (first: '
                             f'{bad[0]}); check the poses the map was built from')
    if not np.isfinite(slam_map.points.positions[~slam_map.points.bad]).all():
        raise MapFormatError(f'cannot save {path}: map points with NaN or infinite positions')
    feats0 = kfs[0].frame.features
    if config.place_recognition != recognizer.name:
        config = config.override(place_recognition=recognizer.name)
        config.place_recognition_conf = dict(recognizer.conf)
    meta = {'features': {'name': config.features, 'conf': dict(config.feature_conf), 'distance': feats0.distance,
                         'scale_factor': feats0.scale_factor, 'n_levels': feats0.n_levels},
            'place_recognition': {'name': recognizer.name, 'conf': dict(recognizer.conf)},
            'camera': {**asdict(camera), 'D': np.asarray(camera.D).tolist()}, 'config': config.as_dict()}
    several = slam_map.merged or any(kf.map_id for kf in kfs)
    if several:
        meta['maps'] = {'active': slam_map.active_map, 'anchored': sorted(slam_map.anchored),
                        'merged': {str(k): [dst, S.reshape(-1).tolist()] for k, (dst, S) in slam_map.merged.items()}}
    arrays = {'format': np.array(FORMAT), 'version': np.array(VERSION), 'meta': np.array(json.dumps(meta)),
              'kf_id': np.array([kf.id for kf in kfs], np.int64),
              'kf_frame_id': np.array([kf.frame.id for kf in kfs], np.int64),
              'kf_stamp_ns': np.array([kf.frame.stamp_ns for kf in kfs], np.int64),
              'kf_name': np.array([kf.frame.name for kf in kfs], dtype=str),
              'kf_T_cw': np.array([kf.T_cw for kf in kfs]).reshape(-1, 4, 4),
              'kf_offsets': np.r_[0, np.cumsum([len(kf.frame) for kf in kfs])].astype(np.int64),
              'kp_point_ids': np.concatenate([kf.point_ids for kf in kfs])}
    if several:
        arrays['kf_map_id'] = np.array([kf.map_id for kf in kfs], np.int64)
    for name in FEATURE_ARRAYS:
        arrays[f'kp_{name}'] = np.concatenate([getattr(kf.frame.features, name) for kf in kfs])
    for name in FRAME_ARRAYS:
        arrays[f'kp_{name}'] = np.concatenate([getattr(kf.frame, name) for kf in kfs])
    pts = slam_map.points
    for name in POINT_COLUMNS:
        arrays[f'pt_{name}'] = getattr(pts, name)
    arrays['obs_point'], arrays['obs_kf'], arrays['obs_kp'] = slam_map.observation_arrays(np.arange(len(pts)))
    edges = [(a, b, w) for a, others in slam_map.covisibility.items() for b, w in others.items()]
    for key, col in zip(('cov_kf', 'cov_other', 'cov_weight'), zip(*edges) if edges else ((), (), ())):
        arrays[key] = np.array(col, np.int64)
    arrays.update({VPR_PREFIX + key: value for key, value in recognizer.state().items()})
    stored = {key for key, value in arrays.items() if key.startswith(VPR_PREFIX) and value.nbytes >= MMAP_BYTES}
    with atomic_write(path, 'wb') as fh:
        write_npz(fh, arrays, stored)


def load_map(path: str | os.PathLike, features: str | None = None) -> MapFile:
    """Read a map file.

    Args:
        path: the file.
        features: feature extractor the caller will use (None: any); it must be the one the map was built with.
    Raises:
        MapFormatError: missing file, not a map, truncated or corrupt, another format version, or another
            feature extractor than ``features``.
    """
    path = Path(path)
    arrays = _read_arrays(path)
    version = int(arrays['version'])
    required = ARRAYS + (ARRAYS_V2 if version >= 2 else ())
    if missing := [name for name in required if name not in arrays]:
        raise MapFormatError(f'map file {path} is corrupt or from another rapnet-loc version: it lacks '
                             f'{", ".join(missing)}; rebuild the map')
    try:
        meta = json.loads(str(arrays['meta']))
        built_with = meta['features']['name']
        config = SlamConfig.from_dict(_upgraded_config(meta['config'], version), f'{path} [config]')
    except (KeyError, TypeError, ValueError, ConfigError) as exc:
        raise MapFormatError(f'map file {path} is corrupt: bad metadata ({exc})') from None
    if features is not None and features != built_with:
        raise MapFormatError(f'map file {path} was built with feature extractor {built_with!r}, not {features!r} '
                             f'as requested; use --features {built_with} or rebuild the map')
    try:
        camera = Camera(**{**meta['camera'], 'D': np.asarray(meta['camera']['D'], np.float64)})
        slam_map = _build_map(arrays, meta)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise MapFormatError(f'map file {path} is corrupt: inconsistent contents ({exc})') from None
    map_file = MapFile(slam_map, camera, config, meta['features']['distance'], path=path)
    if version == 1:
        LOG.info('%s is a version 1 map file: its place recognizer is rebuilt from its keyframes', path)
    else:
        map_file.recognizer = _load_recognizer(path, meta, arrays, slam_map)
    return map_file


def _upgraded_config(config: dict, version: int) -> dict:
    """A saved configuration in today's layout: a version 1 file's descriptor thresholds (single Hamming values)
    made per metric, and a single ``reloc_ratio`` (files written before session 21) applied to every metric."""
    tracking = dict(config.get('tracking') or {})
    for key in ('max_distance', 'strict_distance') if version == 1 else ():
        if key in tracking and not isinstance(tracking[key], dict):
            tracking[key] = {'hamming': tracking[key]}
    if 'reloc_ratio' in tracking and not isinstance(tracking['reloc_ratio'], dict):
        tracking['reloc_ratio'] = dict.fromkeys(DISTANCES, tracking['reloc_ratio'])
    return {**config, 'tracking': tracking}


def _load_recognizer(path: Path, meta: dict, arrays: dict[str, np.ndarray], slam_map: Map) -> PlaceRecognizer:
    """The place recognizer saved in a version 2 file, restored and checked to index exactly its keyframes."""
    try:
        name, conf = meta['place_recognition']['name'], meta['place_recognition']['conf']
        recognizer = create_recognizer(name, conf)
    except (KeyError, TypeError) as exc:
        raise MapFormatError(f'map file {path} is corrupt: bad place_recognition metadata ({exc})') from None
    except ConfigError as exc:
        raise MapFormatError(f'map file {path} was saved with a place recognizer this rapnet-loc cannot restore: '
                             f'{exc}') from None
    state = {key[len(VPR_PREFIX):]: value for key, value in arrays.items() if key.startswith(VPR_PREFIX)}
    try:
        recognizer.load_state(state)
    except MapFormatError as exc:
        raise MapFormatError(f'map file {path}: {exc}') from None
    except (KeyError, TypeError, ValueError, IndexError) as exc:     # arrays of another type or shape
        raise MapFormatError(f'map file {path} is corrupt: bad place recognizer state ({exc})') from None
    if sorted(recognizer.ids) != sorted(slam_map.keyframes):
        raise MapFormatError(f'map file {path} is corrupt: its place recognizer indexes {len(recognizer)} '
                             f'keyframes, not the map\'s {len(slam_map.keyframes)}')
    return recognizer


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of the archive, after checking that it is a map file of a version this release reads."""
    try:
        with open(path, 'rb') as fh:
            magic = fh.read(len(ZIP_MAGIC))
    except FileNotFoundError:
        raise MapFormatError(f'map file not found: {path}') from None
    except OSError as exc:
        raise MapFormatError(f'cannot read map file {path}: {exc}') from None
    if magic != ZIP_MAGIC:
        what = 'it is empty' if not magic else 'it is not a .npz archive'
        raise MapFormatError(f'{path} is not a rapnet-loc map file: {what}')
    try:
        arrays = read_npz(path)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
        raise MapFormatError(f'map file {path} is truncated or corrupt ({type(exc).__name__}: {exc})') from None
    if 'format' not in arrays or str(arrays['format']) != FORMAT:
        raise MapFormatError(f'{path} is not a rapnet-loc map file: an .npz archive without the {FORMAT!r} header')
    try:
        version = int(arrays['version'])
    except (KeyError, TypeError, ValueError):
        raise MapFormatError(f'map file {path} is truncated or corrupt: it has no format version') from None
    if version not in READABLE_VERSIONS:
        raise MapFormatError(f'map file {path} has format version {version}; this rapnet-loc reads versions '
                             f'{", ".join(map(str, READABLE_VERSIONS))}: rebuild the map')
    return arrays


def _check_counts(a: dict[str, np.ndarray]) -> None:
    """ValueError unless the arrays ``a`` agree on the numbers of keyframes, keypoints and points."""
    n_kfs, n_kp, n_points = len(a['kf_id']), len(a['kp_point_ids']), len(a['pt_positions'])
    offsets = a['kf_offsets']
    kf_ids = a['kf_id']
    if n_kfs and (kf_ids[0] < 0 or np.any(np.diff(kf_ids) <= 0)):
        raise ValueError('keyframe ids are not increasing non-negative numbers')
    if len(offsets) != n_kfs + 1 or offsets[0] != 0 or offsets[-1] != n_kp or np.any(np.diff(offsets) < 0):
        raise ValueError('keyframe offsets do not cover the keypoint arrays')
    for key in ('kf_name', 'kf_map_id'):
        if key in a and len(a[key]) != n_kfs:
            raise ValueError(f'{key} has {len(a[key])} rows, not {n_kfs}')
    for key, n in [*((f'kp_{name}', n_kp) for name in (*FEATURE_ARRAYS, *FRAME_ARRAYS)),
                   *((f'pt_{name}', n_points) for name in POINT_COLUMNS)]:
        if len(a[key]) != n:
            raise ValueError(f'{key} has {len(a[key])} rows, not {n}')
    for key, low, high in [('kp_point_ids', -1, n_points), ('obs_point', 0, n_points)]:
        if np.any((a[key] < low) | (a[key] >= high)):
            raise ValueError(f'{key} out of range')
    for key in ('obs_kf', 'cov_kf', 'cov_other'):
        if not np.isin(a[key], kf_ids).all():
            raise ValueError(f'{key} names a keyframe that is not in the file')


def _build_map(a: dict[str, np.ndarray], meta: dict) -> Map:
    """The ``Map`` stored in arrays ``a`` (see the module doc); ValueError, IndexError, KeyError or TypeError when
    they are inconsistent."""
    _check_counts(a)
    if not (np.isfinite(a['kf_T_cw']).all() and np.isfinite(a['pt_positions'][~a['pt_bad'].astype(bool)]).all()):
        raise ValueError('keyframe poses or map points that are NaN or infinite')
    feats = meta['features']
    slam_map = Map(feats['scale_factor'], feats['n_levels'])
    offsets = a['kf_offsets'].tolist()
    names = [str(n) for n in a['kf_name']] if 'kf_name' in a else [format_stamp(s) for s in a['kf_stamp_ns']]
    for row, (k, start, end) in enumerate(zip(a['kf_id'].tolist(), offsets[:-1], offsets[1:])):
        rows = slice(start, end)
        features = Features(keypoints=a['kp_keypoints'][rows], scores=a['kp_scores'][rows],
                            descriptors=a['kp_descriptors'][rows], distance=feats['distance'],
                            levels=a['kp_levels'][rows], scale_factor=feats['scale_factor'],
                            n_levels=feats['n_levels'])
        point_ids = a['kp_point_ids'][rows].astype(np.int64)
        frame = Frame(id=int(a['kf_frame_id'][row]), stamp_ns=int(a['kf_stamp_ns'][row]), features=features,
                      point_ids=point_ids.copy(), T_cw=a['kf_T_cw'][row].copy(), name=names[row],
                      **{name: a[f'kp_{name}'][rows] for name in FRAME_ARRAYS})
        kf = KeyFrame(k, frame, int(a['kf_map_id'][row]) if 'kf_map_id' in a else 0)
        kf.point_ids = point_ids
        slam_map.keyframes[k] = kf
        slam_map.covisibility[k] = {}
    pts = slam_map.points
    if len(a['pt_positions']):
        pts.add(a['pt_positions'], a['pt_descriptors'], 0)
        for name in POINT_COLUMNS:
            getattr(pts, name)[:] = a[f'pt_{name}']
    for pid, kf_id, i in zip(a['obs_point'].tolist(), a['obs_kf'].tolist(), a['obs_kp'].tolist()):
        pts.observations[pid][kf_id] = i
    for kf_id, other, weight in zip(a['cov_kf'].tolist(), a['cov_other'].tolist(), a['cov_weight'].tolist()):
        slam_map.covisibility[kf_id][other] = weight
    if maps := meta.get('maps'):
        slam_map.active_map = int(maps['active'])
        slam_map.anchored = {int(m) for m in maps['anchored']}
        slam_map.merged = {int(k): (int(dst), np.asarray(S, np.float64).reshape(4, 4))
                           for k, (dst, S) in maps['merged'].items()}
    return slam_map
