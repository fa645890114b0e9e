"""Smooth planar robot paths through free space, timed with speed, curvature and acceleration limits.

Planning, by path style (``PATH_STYLES``):

- ``loop``: the robot drives laps that start and end at its start point, as OpenLORIS robots drive
  rounds through a room: each lap is a quadrilateral (a rectangle of random aspect and orientation with jittered
  corners, its edges clear by ``clearance + WAYPOINT_MARGIN_M``) whose perimeter is what the robot covers in the
  sequence at ``LOOP_SPEED``, within ``LOOP_PERIMETER_M``; a long sequence drives several laps, each a new
  quadrilateral through the start, so it closes loops and revisits places. A 300-frame (10 s) sequence turns at
  one or two corners (a lap's 360 deg of turning alone takes over 10 s at ``OMEGA_MAX``); laps close from about
  20 s on. Where no lap fits, even at ``LOOP_SMALLEST_M``, the robot explores instead.
- ``explore`` (the default): the robot drives to random far goals in free space along cheapest grid routes
  (``skimage.graph``) that prefer roomy cells; line-of-sight shortcuts (segments clear by ``clearance +
  WAYPOINT_MARGIN_M``) turn each route into waypoints. Short sequences then run along nearly straight lines. It
  stays the default until the front end tracks ``loop`` paths as well as these (BENCHMARKS.md, session 18).

Smoothing: corners sharper than ``MAX_SMOOTH_TURN`` (and any corner whose rounded curve
would come too close to an obstacle) become turns on the spot; between them, each leg is a clamped cubic B-spline
over the waypoint polygon (densified near corners), so the path is C2 within a leg and the robot stops, turns in
place and starts again between legs, like a differential-drive base.

Timing: along each leg a nominal speed varies smoothly between ``V_MIN`` and ``V_MAX`` and is capped by
``OMEGA_MAX / |curvature|`` and ``sqrt(A_LAT / |curvature|)``; forward/backward passes enforce ``A_MAX``. Turns on the
spot use a trapezoidal angular-velocity profile. The result is a dense table (``BaseTrajectory``) interpolated
at any time.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy.interpolate import BSpline
from skimage.graph import route_through_array

from rapnet_loc.synth.world import FreeSpace, yaw_matrix

LOG = logging.getLogger(__name__)

V_MIN, V_MAX = 0.3, 0.6            # m/s
A_MAX = 0.4                         # m/s^2 along the path
A_LAT = 0.35                        # m/s^2 sideways
OMEGA_MAX = 0.6                     # rad/s
ALPHA_MAX = 1.2                     # rad/s^2 when turning on the spot
START_SPEED = 0.4                   # m/s: sequences start with the robot already driving
MAX_SMOOTH_TURN = np.deg2rad(100.0)
WAYPOINT_MARGIN_M = 0.1
START_RUN_M = 1.0                   # a given start pose is followed by this straight run (explore)
PATH_STYLES = ('loop', 'explore')
LOOP_SPEED = 0.3                    # m/s: mean speed (turns included) that sizes a lap to the sequence
LOOP_PERIMETER_M = (5.0, 10.0)      # a lap's perimeter bounds
LOOP_SMALLEST_M = 3.0               # the smallest lap tried where no lap of that size fits
LOOP_ASPECT = (1.0, 2.5)            # long side over short side of a lap's rectangle
LOOP_JITTER = 0.15                  # standard deviation of a corner's offset, in short sides
LOOP_MAX_TURN = np.deg2rad(95.0)    # a lap's corners are driven round, not turned on the spot
LOOP_TRIES = 300
ROOMY_M = 0.2                       # goals lie where there is this much more room, if anywhere
MAX_GOALS = 10_000
STEP_M = 0.01                       # arc-length sampling of the dense table
SPIN_STEP_S = 0.01


@dataclass
class BaseTrajectory:
    """Dense timed samples of the base_link pose in the world (planar: z = 0, roll = pitch = 0).

    Attributes:
        t: (M,) seconds from the first frame, increasing.
        xy: (M, 2) positions; yaw: (M,) unwrapped headings (rad).
        v: (M,) forward speed (m/s); omega: (M,) yaw rate (rad/s).
    """

    t: np.ndarray
    xy: np.ndarray
    yaw: np.ndarray
    v: np.ndarray
    omega: np.ndarray

    @property
    def duration(self) -> float:
        return float(self.t[-1])

    def sample(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Position (K, 2), yaw (K,), speed (K,) and yaw rate (K,) at times ``t`` (K,) (linear interpolation)."""
        t = np.asarray(t, float)
        xy = np.column_stack([np.interp(t, self.t, self.xy[:, 0]), np.interp(t, self.t, self.xy[:, 1])])
        return xy, np.interp(t, self.t, self.yaw), np.interp(t, self.t, self.v), np.interp(t, self.t, self.omega)

    def poses(self, t: np.ndarray) -> np.ndarray:
        """(K, 4, 4) poses ``T_world_base`` at times ``t`` (K,)."""
        xy, yaw, _, _ = self.sample(t)
        return np.array([yaw_matrix(x, y, a) for (x, y), a in zip(xy, yaw)]).reshape(-1, 4, 4)


def _wrap(angle: float) -> float:
    return float((angle + np.pi) % (2 * np.pi) - np.pi)


def _turn(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> float:
    """Absolute heading change at ``b`` of the polyline a-b-c."""
    h1, h2 = np.arctan2(*(b - a)[::-1]), np.arctan2(*(c - b)[::-1])
    return abs(_wrap(h2 - h1))


def _route(free: FreeSpace, cost: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(K, 2) world points of the cheapest 8-connected grid route from ``a`` to ``b`` over ``cost`` (rows, cols)."""
    cells = [tuple(np.round((p - free.origin) / free.resolution).astype(int)[::-1]) for p in (a, b)]
    route, _ = route_through_array(cost, cells[0], cells[1], fully_connected=True, geometric=True)
    return free.origin + np.array(route, float)[:, ::-1] * free.resolution


def _shortcut(free: FreeSpace, route: np.ndarray, clearance: float) -> list[np.ndarray]:
    """Corners of ``route`` (K, 2) after greedy line-of-sight shortcuts with ``clearance`` (first point excluded)."""
    corners, i = [], 0
    while i < len(route) - 1:
        j = len(route) - 1
        while j > i + 1 and not free.segment_clear(route[i], route[j], clearance):
            j -= 1
        corners.append(route[j])
        i = j
    return corners


def plan_waypoints(free: FreeSpace, clearance: float, length_m: float, rng: np.random.Generator,
                   start: tuple[np.ndarray, float] | None = None) -> np.ndarray:
    """(K, 2) waypoints whose polyline is at least ``length_m`` long, each segment clear by ``clearance + margin``.

    The robot starts at ``start`` = (xy, heading), driving ``START_RUN_M`` straight ahead, when that is clear;
    otherwise at a random place in the largest connected part of the free space. Then it drives to random goals
    there, each chosen far from the places already visited, along cheapest grid routes that prefer roomy cells,
    shortened by line-of-sight shortcuts.

    Raises:
        RuntimeError: the free space has no room for the robot.
    """
    margin = clearance + WAYPOINT_MARGIN_M
    region = free.region(margin)
    roomy = region & (free.grid >= margin + ROOMY_M)
    targets = roomy if roomy.any() else region
    cost = np.where(region, 1.0 + 2.0 * np.maximum(margin + ROOMY_M + 0.5 - free.grid, 0.0), np.inf)
    if start is not None:
        xy = np.asarray(start[0], float)
        ahead = xy + START_RUN_M * np.array([np.cos(start[1]), np.sin(start[1])])
        if free.clearance(xy)[0] >= margin and free.segment_clear(xy, ahead, margin) and \
                np.isfinite(cost[tuple(np.round((ahead - free.origin) / free.resolution).astype(int)[::-1])]):
            return _drive(free, cost, targets, margin, [xy, ahead], length_m, rng)
    first = free.sample(rng, targets, 1)
    if len(first) == 0:
        raise RuntimeError(f'no place in the scene has {margin:.2f} m of clearance for the robot')
    return _drive(free, cost, targets, margin, [first[0]], length_m, rng)


def _drive(free: FreeSpace, cost: np.ndarray, targets: np.ndarray, margin: float, points: list[np.ndarray],
           length_m: float, rng: np.random.Generator) -> np.ndarray:
    """Extend ``points`` by routes to far random goals in ``targets`` until the polyline is ``length_m`` long."""
    total = float(np.sum(np.linalg.norm(np.diff(points, axis=0), axis=1))) if len(points) > 1 else 0.0
    for _ in range(MAX_GOALS):
        if total >= length_m:
            return np.array(points)
        goals = free.sample(rng, targets, 60)
        novelty = np.min(np.linalg.norm(goals[:, None] - np.array(points)[None], axis=2), axis=1)
        goal = goals[int(np.argmax(novelty + rng.uniform(0.0, 2.0, len(goals))))]
        for corner in _shortcut(free, _route(free, cost, points[-1], goal), margin):
            total += float(np.linalg.norm(corner - points[-1]))
            points.append(corner)
    raise RuntimeError(f'robot path planning covered only {total:.1f} of {length_m:.1f} m (scene too cramped)')


def lap_perimeter(duration_s: float) -> float:
    """Perimeter (m) of the laps of a ``loop`` path for a sequence of ``duration_s`` seconds."""
    return float(np.clip(duration_s * LOOP_SPEED, *LOOP_PERIMETER_M))


def _lap(free: FreeSpace, margin: float, origin: np.ndarray, heading: float | None, perimeter: float,
         rng: np.random.Generator) -> list[np.ndarray] | None:
    """The 3 corners after ``origin`` of a lap of about ``perimeter`` metres whose edges are clear by ``margin``
    and whose corners turn by at most ``LOOP_MAX_TURN`` (see the module doc), leaving along ``heading`` (give or
    take) in the first half of the tries; None when ``LOOP_TRIES`` draws found none."""
    for attempt in range(LOOP_TRIES):
        aspect = rng.uniform(*LOOP_ASPECT)
        short = perimeter / (2.0 * (1.0 + aspect))
        first, second = (aspect * short, short) if rng.random() < 0.5 else (short, aspect * short)
        keep = heading is not None and attempt < LOOP_TRIES // 2
        angle = heading + rng.normal(0.0, 0.3) if keep else rng.uniform(-np.pi, np.pi)
        ahead = np.array([np.cos(angle), np.sin(angle)])
        side = rng.choice([-1.0, 1.0]) * np.array([-ahead[1], ahead[0]])
        corners = [origin + first * ahead + rng.normal(0.0, LOOP_JITTER * short, 2),
                   origin + first * ahead + second * side + rng.normal(0.0, LOOP_JITTER * short, 2),
                   origin + second * side + rng.normal(0.0, LOOP_JITTER * short, 2)]
        polygon = [origin, *corners, origin]
        if all(_turn(*polygon[i - 1:i + 2]) <= LOOP_MAX_TURN for i in (1, 2, 3)) and \
                all(free.segment_clear(a, b, margin) for a, b in zip(polygon[:-1], polygon[1:])):
            return corners
    return None


def plan_loops(free: FreeSpace, clearance: float, length_m: float, perimeter_m: float, rng: np.random.Generator,
               start: tuple[np.ndarray, float] | None = None) -> np.ndarray | None:
    """(K, 2) waypoints of laps through one point, at least ``length_m`` long (see the module doc), or None when no
    lap fits anywhere.

    The laps go through ``start`` = (xy, heading) when it has room, the first leaving along its heading where
    possible; otherwise through a random place of the largest connected part of the free space. Where no lap of
    ``perimeter_m`` fits, shorter ones are tried, down to ``LOOP_SMALLEST_M``.
    """
    margin = clearance + WAYPOINT_MARGIN_M
    if start is not None and free.clearance(start[0])[0] >= margin:
        origins = [(np.asarray(start[0], float), float(start[1]))]
    else:
        origins = [(xy, None) for xy in free.sample(rng, free.region(margin), 20)]
    perimeter = perimeter_m
    while True:
        for origin, heading in origins:
            points, total = [origin], 0.0
            while total < length_m and (lap := _lap(free, margin, origin, heading, perimeter, rng)) is not None:
                points += [*lap, origin]
                total += float(np.sum(np.linalg.norm(np.diff(points[-5:], axis=0), axis=1)))
                heading = None
            if total >= length_m:
                return np.array(points)
        if perimeter <= LOOP_SMALLEST_M:
            return None
        perimeter = max(LOOP_SMALLEST_M, 0.75 * perimeter)


def _leg_curve(points: np.ndarray) -> np.ndarray:
    """(M, 2) samples every ~``STEP_M`` of a clamped cubic B-spline over the densified polygon ``points`` (K, 2).

    Extra control points at a quarter of each segment (at most 0.6 m) from its ends keep the curve close to the
    polygon; the curve starts and ends at the end points, tangent to the first and last segments.
    """
    ctrl = [points[0]]
    for a, b in zip(points[:-1], points[1:]):
        seg = b - a
        f = min(0.25, 0.6 / max(np.linalg.norm(seg), 1e-9))
        ctrl += [a + f * seg, b - f * seg, b]
    ctrl = np.array(ctrl)
    n, k = len(ctrl), 3
    knots = np.concatenate([np.zeros(k), np.linspace(0.0, 1.0, n - k + 1), np.ones(k)])
    spline = BSpline(knots, ctrl, k)
    rough = spline(np.linspace(0.0, 1.0, 40 * n))
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(rough, axis=0), axis=1))])
    s = np.linspace(0.0, arc[-1], max(int(np.ceil(arc[-1] / STEP_M)), 1) + 1)
    return spline(np.interp(s, arc, np.linspace(0.0, 1.0, len(rough))))


def _legs(free: FreeSpace, clearance: float, waypoints: np.ndarray) -> list[np.ndarray]:
    """Split the waypoints at turns on the spot and return each leg's dense curve (clear by ``clearance``)."""
    spins = {0, len(waypoints) - 1}
    spins |= {i for i in range(1, len(waypoints) - 1)
              if _turn(waypoints[i - 1], waypoints[i], waypoints[i + 1]) > MAX_SMOOTH_TURN}
    while True:
        cuts = sorted(spins)
        curves, bad = [], None
        for a, b in zip(cuts[:-1], cuts[1:]):
            curve = _leg_curve(waypoints[a:b + 1])
            low = np.flatnonzero(free.clearance(curve) < clearance)
            if len(low) and b - a > 1:
                inner = np.arange(a + 1, b)
                bad = int(inner[np.argmin(np.linalg.norm(waypoints[inner] - curve[low[0]], axis=1))])
                break
            curves.append(curve)
        if bad is None:
            return curves
        spins.add(bad)


def _speed_profile(curve: np.ndarray, v_start: float, v_end: float, phase: float) -> tuple[np.ndarray, ...]:
    """Speeds (M,), headings (M,) and curvatures (M,) along a dense curve (M, 2)."""
    d1 = np.gradient(curve, axis=0)
    d2 = np.gradient(d1, axis=0)
    heading = np.unwrap(np.arctan2(d1[:, 1], d1[:, 0]))
    norm = np.maximum(np.linalg.norm(d1, axis=1), 1e-12)
    kappa = (d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0]) / norm ** 3
    ds = np.linalg.norm(np.diff(curve, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(ds)])
    nominal = (V_MIN + V_MAX) / 2 + (V_MAX - V_MIN) / 2 * (0.8 * np.sin(2 * np.pi * s / 7.0 + phase)
                                                          + 0.2 * np.sin(2 * np.pi * s / 2.3 + 2 * phase))
    cap = np.minimum(nominal, np.minimum(OMEGA_MAX / np.maximum(np.abs(kappa), 1e-9),
                                         np.sqrt(A_LAT / np.maximum(np.abs(kappa), 1e-9))))
    v = cap.copy()
    v[0] = min(v[0], v_start)
    for i in range(1, len(v)):
        v[i] = min(v[i], np.sqrt(v[i - 1] ** 2 + 2 * A_MAX * ds[i - 1]))
    v[-1] = min(v[-1], v_end)
    for i in range(len(v) - 2, -1, -1):
        v[i] = min(v[i], np.sqrt(v[i + 1] ** 2 + 2 * A_MAX * ds[i]))
    return v, heading, kappa


def _spin_profile(delta: float) -> tuple[np.ndarray, np.ndarray]:
    """Times (K,) from 0 and yaw offsets (K,) from 0 to ``delta`` of a trapezoidal turn on the spot."""
    angle = abs(delta)
    if angle < 1e-9:
        return np.zeros(1), np.zeros(1)
    omega = min(OMEGA_MAX, np.sqrt(angle * ALPHA_MAX))
    t_acc = omega / ALPHA_MAX
    t_total = 2 * t_acc + max(angle - omega * t_acc, 0.0) / omega
    t = np.linspace(0.0, t_total, max(int(np.ceil(t_total / SPIN_STEP_S)), 1) + 1)
    ramp_up = 0.5 * ALPHA_MAX * t ** 2
    ramp_down = angle - 0.5 * ALPHA_MAX * (t_total - t) ** 2
    cruise = 0.5 * ALPHA_MAX * t_acc ** 2 + omega * (t - t_acc)
    a = np.where(t < t_acc, ramp_up, np.where(t > t_total - t_acc, ramp_down, cruise))
    return t, np.sign(delta) * np.clip(a, 0.0, angle)


def plan_trajectory(free: FreeSpace, clearance: float, duration_s: float, rng: np.random.Generator,
                    start: tuple[np.ndarray, float] | None = None, style: str = 'explore') -> BaseTrajectory:
    """A timed path at least ``duration_s`` long whose base keeps ``clearance`` metres from every obstacle,
    starting at ``start`` = (xy, heading) when that is clear, in path ``style`` (``PATH_STYLES``; see
    ``plan_loops`` and ``plan_waypoints``)."""
    length = duration_s * V_MAX + 3.0
    waypoints = plan_loops(free, clearance, length, lap_perimeter(duration_s), rng, start) if style == 'loop' \
        else None
    if waypoints is None:
        if style == 'loop':
            LOG.warning('no lap of at least %.1f m fits in the free space; the robot explores instead',
                        LOOP_SMALLEST_M)
        waypoints = plan_waypoints(free, clearance, length, rng, start)
    curves = _legs(free, clearance, waypoints)
    phase = float(rng.uniform(0, 2 * np.pi))
    ts, xys, yaws, vs, omegas = [], [], [], [], []
    t0, yaw0 = 0.0, None
    for n, curve in enumerate(curves):
        v, heading, kappa = _speed_profile(curve, START_SPEED if n == 0 else 0.0,
                                           0.0 if n < len(curves) - 1 else V_MAX, phase)
        if yaw0 is not None:               # turn on the spot from the previous leg's heading
            delta = _wrap(heading[0] - yaw0)
            st, sa = _spin_profile(delta)
            ts.append(t0 + st[1:])
            xys.append(np.repeat(curve[:1], len(st) - 1, axis=0))
            yaws.append(yaw0 + sa[1:])
            vs.append(np.zeros(len(st) - 1))
            omegas.append(np.gradient(sa, st)[1:] if len(st) > 1 else np.zeros(0))
            t0 += st[-1]
            heading = heading - heading[0] + yaw0 + delta
        ds = np.linalg.norm(np.diff(curve, axis=0), axis=1)
        dt = 2 * ds / np.maximum(v[:-1] + v[1:], 1e-9)
        t = t0 + np.concatenate([[0.0], np.cumsum(dt)])
        first = 0 if n == 0 else 1
        ts.append(t[first:])
        xys.append(curve[first:])
        yaws.append(heading[first:])
        vs.append(v[first:])
        omegas.append((kappa * v)[first:])
        t0, yaw0 = float(t[-1]), float(heading[-1])
    return BaseTrajectory(np.concatenate(ts), np.concatenate(xys), np.concatenate(yaws), np.concatenate(vs),
                          np.concatenate(omegas))
