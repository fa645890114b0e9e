"""Trajectory files: TUM (``t x y z qx qy qz qw``) and the OpenLORIS-Scene result format.

OpenLORIS result format (as read by the official evaluator)::

    scene: home            <- ``key: value`` header lines; the first value of a key wins
    frame: d400_color
    seq: 1                 <- starts a sequence block
    reloc: true            <- optional, per sequence (aided re-localization flag)
    <stamp> tx ty tz qx qy qz qw                 (8 columns)
    <stamp> <output_time> tx ty tz qx qy qz qw   (9 columns)

Lines starting with ``#`` and blank lines are ignored. Stamps are kept as integer nanoseconds, parsed exactly
from the decimal text and written back with all nine decimals.
"""
from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from rapnet_loc.errors import TrajectoryFormatError
from rapnet_loc.geometry import pose_matrix, pose_parts
from rapnet_loc.io.atomic import atomic_write

LOG = logging.getLogger(__name__)
NS_PER_S = 10**9


def parse_stamp(text: str) -> int:
    """Exact integer nanoseconds of a decimal seconds string (``'1560004885.415149450'``)."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f'not a timestamp: {text!r}') from None
    if not value.is_finite():
        raise ValueError(f'not a finite timestamp: {text!r}')
    ns = int((value * NS_PER_S).to_integral_value(ROUND_HALF_EVEN))
    if not -2**63 <= ns < 2**63:
        raise ValueError(f'timestamp out of range (more than 292 years from 1970): {text!r}')
    return ns


def format_stamp(ns: int) -> str:
    """Seconds with nine decimals, exact for any integer nanosecond stamp (negative ones included)."""
    ns = int(ns)
    sign = '-' if ns < 0 else ''
    sec, frac = divmod(abs(ns), NS_PER_S)
    return f'{sign}{sec}.{frac:09d}'


def stamps_to_seconds(stamps_ns: np.ndarray) -> np.ndarray:
    """Float seconds (N,) correctly rounded from integer ns (N,), i.e. equal to ``float(format_stamp(ns))``."""
    return np.array([int(ns) / NS_PER_S for ns in stamps_ns], dtype=np.float64)


@dataclass
class Trajectory:
    """A timed sequence of poses.

    Attributes:
        stamps_ns: (N,) int64 stamps.
        positions: (N, 3) float64 translations.
        quats: (N, 4) float64 quaternions ``[x, y, z, w]``.
        output_ns: optional (N,) int64 times at which each pose was produced (9-column OpenLORIS files).
    """

    stamps_ns: np.ndarray
    positions: np.ndarray
    quats: np.ndarray
    output_ns: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.stamps_ns = np.asarray(self.stamps_ns, dtype=np.int64).reshape(-1)
        self.positions = np.asarray(self.positions, dtype=np.float64).reshape(-1, 3)
        self.quats = np.asarray(self.quats, dtype=np.float64).reshape(-1, 4)
        n = len(self.stamps_ns)
        if len(self.positions) != n or len(self.quats) != n:
            raise ValueError(f'trajectory arrays disagree: {n} stamps, {len(self.positions)} positions, '
                             f'{len(self.quats)} quaternions')
        if self.output_ns is not None:
            self.output_ns = np.asarray(self.output_ns, dtype=np.int64).reshape(-1)

    def __len__(self) -> int:
        return len(self.stamps_ns)

    @property
    def stamps_s(self) -> np.ndarray:
        """(N,) float seconds, correctly rounded."""
        return stamps_to_seconds(self.stamps_ns)

    @property
    def matrices(self) -> np.ndarray:
        """(N, 4, 4) poses."""
        return pose_matrix(self.positions, self.quats)

    @classmethod
    def from_matrices(cls, stamps_ns: np.ndarray, poses: np.ndarray) -> 'Trajectory':
        """Build from (N,) stamps and (N, 4, 4) poses."""
        t, q = pose_parts(np.asarray(poses).reshape(-1, 4, 4))
        return cls(stamps_ns, t, q)

    @classmethod
    def empty(cls) -> 'Trajectory':
        return cls(np.zeros(0, np.int64), np.zeros((0, 3)), np.zeros((0, 4)))

    def subset(self, index: np.ndarray) -> 'Trajectory':
        """The poses selected by a boolean mask or an index array."""
        out = None if self.output_ns is None else self.output_ns[index]
        return Trajectory(self.stamps_ns[index], self.positions[index], self.quats[index], out)


@dataclass
class OpenLORISResult:
    """Contents of an OpenLORIS-format file.

    Attributes:
        info: header values (``scene``, ``frame``, ...); the first occurrence of a key wins.
        sequences: sequence number -> trajectory, in file order.
        reloc: sequence number -> value of its ``reloc:`` line, when present.
    """

    info: dict[str, str] = field(default_factory=dict)
    sequences: dict[int, Trajectory] = field(default_factory=dict)
    reloc: dict[int, str] = field(default_factory=dict)

    @property
    def scene(self) -> str | None:
        return self.info.get('scene')

    @property
    def frame(self) -> str | None:
        return self.info.get('frame')


QUATERNION_NORM_TOL = 1e-6  # quaternions further than this from unit norm are normalised on reading


def _pose_line(fields: list[str], where: str, line: str) -> tuple[int, int | None, list[float]]:
    if len(fields) not in (8, 9):
        raise TrajectoryFormatError(f'{where}: expected 8 or 9 columns, got {len(fields)}: {line!r}')
    try:
        stamp = parse_stamp(fields[0])
        output = parse_stamp(fields[1]) if len(fields) == 9 else None
        pose = [float(v) for v in fields[-7:]]
    except ValueError as exc:
        raise TrajectoryFormatError(f'{where}: {exc} in line {line!r}') from None
    if any(math.isinf(v) for v in pose):
        raise TrajectoryFormatError(f'{where}: infinite value in line {line!r}')
    norm = math.hypot(*pose[3:])
    if not any(math.isnan(v) for v in pose) and norm < 1e-6:
        raise TrajectoryFormatError(f'{where}: zero-norm quaternion (no rotation) in line {line!r}')
    if abs(norm - 1.0) > QUATERNION_NORM_TOL:       # the rotation it stands for, as a unit quaternion
        pose[3:] = [v / norm for v in pose[3:]]
    return stamp, output, pose


def read_openloris(path: str | os.PathLike, remove_repeated: bool = False) -> OpenLORISResult:
    """Read an OpenLORIS-format trajectory file.

    Poses containing NaN are skipped, as the official evaluator does. With ``remove_repeated``, a pose whose
    seven values equal the previous kept pose of the file is dropped (the official default for evaluation). Each
    sequence's poses are then sorted by stamp, as ``read_tum``'s are.

    Raises:
        TrajectoryFormatError: unreadable file, malformed ``seq:`` value, wrong column count, non-numeric
            values, or a pose before the first ``seq:`` line; the message gives ``path:line``.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise TrajectoryFormatError(f'cannot read trajectory file {path}: {exc}') from None
    result = OpenLORISResult()
    rows: dict[int, list[tuple[int, int | None, list[float]]]] = {}
    seq: int | None = None
    last_pose: list[float] | None = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        where = f'{path}:{lineno}'
        if not line or line.startswith('#'):
            continue
        if line.startswith('seq:'):
            try:
                seq = int(line[4:].strip())
            except ValueError:
                raise TrajectoryFormatError(f'{where}: invalid sequence number in {line!r}') from None
            rows[seq] = []
        elif line.startswith('reloc:'):
            if seq is None:
                raise TrajectoryFormatError(f'{where}: "reloc:" before any "seq:" line')
            result.reloc[seq] = line[6:].strip()
        elif ':' in line:
            key, value = (part.strip() for part in line.split(':', 1))
            result.info.setdefault(key, value.split(':')[0].strip())
        else:
            stamp, output, pose = _pose_line(line.split(), where, line)
            if seq is None:
                raise TrajectoryFormatError(f'{where}: pose line before any "seq:" line')
            if any(math.isnan(v) for v in pose):
                continue
            if remove_repeated and pose == last_pose:
                continue
            rows[seq].append((stamp, output, pose))
            last_pose = pose
    for seq_id, seq_rows in rows.items():
        result.sequences[seq_id] = _rows_to_trajectory(_in_time_order(seq_rows, f'{path} seq {seq_id}'))
    return result


def _in_time_order(rows: list[tuple[int, int | None, list[float]]], where: str
                   ) -> list[tuple[int, int | None, list[float]]]:
    """``rows`` sorted by stamp (stable: rows of equal stamps keep their order). Metrics over consecutive poses
    (RPE) assume time order, which a file written out of order would silently break."""
    order = sorted(range(len(rows)), key=lambda k: rows[k][0])
    if order != list(range(len(rows))):
        LOG.info('%s: poses not in time order; sorted by stamp', where)
    return [rows[k] for k in order]


def _rows_to_trajectory(rows: list[tuple[int, int | None, list[float]]]) -> Trajectory:
    if not rows:
        return Trajectory.empty()
    poses = np.array([r[2] for r in rows], dtype=np.float64)
    outputs = [r[1] for r in rows]
    output_ns = None if any(o is None for o in outputs) else np.array(outputs, dtype=np.int64)
    return Trajectory(np.array([r[0] for r in rows], dtype=np.int64), poses[:, :3], poses[:, 3:], output_ns)


def _pose_text(traj: Trajectory, i: int) -> str:
    values = np.concatenate([traj.positions[i], traj.quats[i]])
    return ' '.join(f'{v:.9f}' for v in values)


def write_openloris(path: str | os.PathLike, result: OpenLORISResult) -> None:
    """Write ``result`` atomically (header lines from ``info``, then one block per sequence)."""
    with atomic_write(path) as fh:
        for key, value in result.info.items():
            fh.write(f'{key}: {value}\n')
        for seq_id, traj in result.sequences.items():
            fh.write(f'\nseq: {seq_id}\n')
            if seq_id in result.reloc:
                fh.write(f'reloc: {result.reloc[seq_id]}\n')
            for i in range(len(traj)):
                out = '' if traj.output_ns is None else format_stamp(traj.output_ns[i]) + ' '
                fh.write(f'{format_stamp(traj.stamps_ns[i])} {out}{_pose_text(traj, i)}\n')


def read_tum(path: str | os.PathLike) -> Trajectory:
    """Read a TUM trajectory (``t x y z qx qy qz qw`` per line; ``#`` comments; commas allowed as separators),
    sorted by stamp (a stable sort: lines of equal stamps keep their order). Metrics over consecutive poses (RPE)
    assume time order, which a file written out of order would silently break."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise TrajectoryFormatError(f'cannot read TUM file {path}: {exc}') from None
    rows = []
    for lineno, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith('#'):
            continue
        fields = line.replace(',', ' ').split()
        if len(fields) != 8:
            raise TrajectoryFormatError(f'{path}:{lineno}: TUM lines have 8 columns, got {len(fields)}: {line!r}')
        stamp, _, pose = _pose_line(fields, f'{path}:{lineno}', line)
        if any(math.isnan(v) for v in pose):
            raise TrajectoryFormatError(f'{path}:{lineno}: NaN in line {line!r}')
        rows.append((stamp, None, pose))
    return _rows_to_trajectory(_in_time_order(rows, str(path)))


def write_tum(path: str | os.PathLike, traj: Trajectory, header: str | None = None) -> None:
    """Write a TUM trajectory atomically; ``header`` becomes ``#`` comment lines (readable by ``evo``)."""
    with atomic_write(path) as fh:
        fh.writelines(tum_lines(traj, header))


def tum_lines(traj: Trajectory, header: str | None = None) -> Iterator[str]:
    """The lines of ``traj`` in a TUM file (``write_tum``), each ending in a newline; ``header`` first, as ``#``
    comment lines."""
    for line in (header or '').splitlines():
        yield f'# {line}\n'
    for i in range(len(traj)):
        yield f'{format_stamp(traj.stamps_ns[i])} {_pose_text(traj, i)}\n'


def interpolate_poses(stamps_ns: np.ndarray, poses: np.ndarray, query_ns: np.ndarray,
                      max_gap_s: float = 0.5) -> Trajectory:
    """Poses (N, 4, 4) at stamps (N,) interpolated (linear, slerp) at ``query_ns`` (Q,) between neighbours at most
    ``max_gap_s`` apart; queries outside or in larger gaps are dropped."""
    order = np.argsort(stamps_ns, kind='stable')
    stamps_ns, poses = np.asarray(stamps_ns)[order], np.asarray(poses)[order]
    stamps_ns, first = np.unique(stamps_ns, return_index=True)
    poses = poses[first]
    query_ns = np.asarray(query_ns, dtype=np.int64)
    if len(stamps_ns) < 2:
        return Trajectory.empty()
    hi = np.clip(np.searchsorted(stamps_ns, query_ns), 1, len(stamps_ns) - 1)
    lo = hi - 1
    ok = (query_ns >= stamps_ns[0]) & (query_ns <= stamps_ns[-1])
    ok &= (stamps_ns[hi] - stamps_ns[lo]) <= max_gap_s * NS_PER_S
    query_ns, lo, hi = query_ns[ok], lo[ok], hi[ok]
    w = ((query_ns - stamps_ns[lo]) / (stamps_ns[hi] - stamps_ns[lo]))[:, None]
    t = (1 - w) * poses[lo, :3, 3] + w * poses[hi, :3, 3]
    slerp = Slerp((stamps_ns - stamps_ns[0]) / NS_PER_S, Rotation.from_matrix(poses[:, :3, :3]))
    out = np.tile(np.eye(4), (len(query_ns), 1, 1))
    out[:, :3, :3] = slerp((query_ns - stamps_ns[0]) / NS_PER_S).as_matrix()
    out[:, :3, 3] = t
    return Trajectory.from_matrices(query_ns, out)
