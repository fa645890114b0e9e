"""Keypoints and descriptors of one image as a ``sensor_msgs/PointCloud2``: the contract between a feature node and
the front end, so that any node publishing this layout can replace ``feature_node``.

Layout (one point per keypoint, ``height = 1``, ``width = N``, dense, little-endian; the header is the image's):

=============  ========  ======  =====  ===========================================================================
field          datatype  offset  count  meaning
=============  ========  ======  =====  ===========================================================================
``u``          FLOAT32   0       1      x pixel coordinate in the full-resolution image
``v``          FLOAT32   4       1      y pixel coordinate
``score``      FLOAT32   8       1      detector response (larger is stronger)
``weight``     FLOAT32   12      1      region weight of the keypoint (RaP-Net's R); 1 for extractors without one
``level``      UINT8     16      1      pyramid level (0 = full resolution)
``descriptor`` UINT8     20      D      packed binary descriptor, compared by Hamming distance (ORB: D = 32), or
               FLOAT32                  a float descriptor compared by L2 distance (RaP-Net)
=============  ========  ======  =====  ===========================================================================

``point_step = 20 + D * (1 or 4)``. Readers find fields by name, so other offsets, padding and big-endian data are
accepted; ``weight`` and ``level`` are optional (1 and 0 when absent). The pyramid's scale factor and level count
are properties of the extractor, not of an image: the subscriber is told them (front-end parameters
``feature_scale_factor`` and ``feature_levels``).
"""
from __future__ import annotations

import numpy as np
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import Header

from rapnet_loc.errors import TopicError
from rapnet_loc.features.base import Features

# PointField datatype constants -> numpy element types
DATATYPES = {PointField.INT8: np.int8, PointField.UINT8: np.uint8, PointField.INT16: np.int16,
             PointField.UINT16: np.uint16, PointField.INT32: np.int32, PointField.UINT32: np.uint32,
             PointField.FLOAT32: np.float32, PointField.FLOAT64: np.float64}
DESCRIPTOR_TYPES = {PointField.UINT8: 'hamming', PointField.FLOAT32: 'l2'}
DESCRIPTOR_OFFSET = 20


def _dtype(fields: list[tuple[str, int, int, int]], point_step: int, big_endian: bool) -> np.dtype:
    """Structured dtype of ``(name, offset, datatype, count)`` fields."""
    order = '>' if big_endian else '<'
    formats = [(np.dtype(DATATYPES[dt]).newbyteorder(order), (count,)) if count != 1
               else np.dtype(DATATYPES[dt]).newbyteorder(order) for _, _, dt, count in fields]
    return np.dtype({'names': [f[0] for f in fields], 'formats': formats, 'offsets': [f[1] for f in fields],
                     'itemsize': point_step})


def encode_features(features: Features, header: Header) -> PointCloud2:
    """PointCloud2 of ``features`` (N keypoints, (N, D) descriptors) in the module's layout."""
    n, d = features.descriptors.shape
    desc_type = PointField.UINT8 if features.distance == 'hamming' else PointField.FLOAT32
    layout = [('u', 0, PointField.FLOAT32, 1), ('v', 4, PointField.FLOAT32, 1), ('score', 8, PointField.FLOAT32, 1),
              ('weight', 12, PointField.FLOAT32, 1), ('level', 16, PointField.UINT8, 1),
              ('descriptor', DESCRIPTOR_OFFSET, desc_type, d)]
    step = DESCRIPTOR_OFFSET + d * np.dtype(DATATYPES[desc_type]).itemsize
    points = np.zeros(n, _dtype(layout, step, False))
    points['u'], points['v'] = features.keypoints[:, 0], features.keypoints[:, 1]
    points['score'] = features.scores
    points['weight'] = features.weights
    points['level'] = features.levels
    points['descriptor'] = features.descriptors.reshape(n, d)
    msg = PointCloud2(header=header, height=1, width=n, is_bigendian=False, point_step=step, row_step=step * n,
                      is_dense=True)
    msg.fields = [PointField(name=name, offset=offset, datatype=dt, count=count) for name, offset, dt, count in layout]
    msg.data = points.tobytes()
    return msg


def decode_features(msg: PointCloud2, topic: str, scale_factor: float = 1.0,
                    n_levels: int = 1) -> Features:
    """``Features`` of a PointCloud2 in the module's layout (``weight``, when present, becomes ``weights``).

    Args:
        scale_factor, n_levels: the publishing extractor's pyramid.
    Raises:
        TopicError: a required field is missing or of the wrong type, the data size does not match, or a float
            value is NaN or infinite.
    """
    fields = {f.name: (f.name, int(f.offset), int(f.datatype), int(f.count)) for f in msg.fields}
    for name in ('u', 'v', 'score'):
        if name not in fields or fields[name][2:] != (PointField.FLOAT32, 1):
            raise TopicError(f"feature cloud on '{topic}' needs a FLOAT32 field '{name}' of count 1; fields: "
                             f"{sorted(fields)}")
    desc = fields.get('descriptor')
    if desc is None or desc[2] not in DESCRIPTOR_TYPES or desc[3] < 1:
        raise TopicError(f"feature cloud on '{topic}' needs a field 'descriptor' of UINT8 or FLOAT32 with count "
                         f">= 1; fields: {sorted(fields)}")
    bad = [name for name, (_, _, dt, _) in fields.items() if dt not in DATATYPES]
    if bad:
        raise TopicError(f"feature cloud on '{topic}' has fields of unknown datatype: {bad}")
    n, step = int(msg.width) * int(msg.height), int(msg.point_step)
    data = np.frombuffer(bytes(msg.data), np.uint8) if not isinstance(msg.data, np.ndarray) else msg.data
    if step * n != data.size or (n and max(o + np.dtype(DATATYPES[dt]).itemsize * c
                                           for _, o, dt, c in fields.values()) > step):
        raise TopicError(f"feature cloud on '{topic}': {data.size} bytes of data for {n} points of point_step "
                         f"{step}, or a field beyond point_step")
    points = np.frombuffer(data.tobytes(), _dtype(list(fields.values()), step, bool(msg.is_bigendian)), count=n)
    descriptors = points['descriptor'].reshape(n, desc[3])
    levels = points['level'] if 'level' in fields else None
    weights = points['weight'] if 'weight' in fields else None
    floats = [points['u'], points['v'], points['score'], *([weights] if weights is not None else []),
              *([descriptors] if DESCRIPTOR_TYPES[desc[2]] == 'l2' else [])]
    if not all(np.isfinite(a).all() for a in floats if a.dtype.kind == 'f'):
        raise TopicError(f"feature cloud on '{topic}' holds NaN or infinite coordinates, scores, weights or "
                         f"descriptors")
    return Features(np.stack([points['u'], points['v']], axis=1), points['score'], descriptors,
                    DESCRIPTOR_TYPES[desc[2]], levels, scale_factor, n_levels, weights)
