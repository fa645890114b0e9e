"""Walking people: articulated box figures that cross the robot's view on straight lanes.

Each person walks back and forth along a straight lane through free space at a constant speed, swinging legs
and arms. Lanes are chosen to cross the robot's path a few metres ahead of it (so people are seen and occlude
the scene) and are kept only if the person never comes closer than ``MIN_DISTANCE_M`` to the robot's base or
camera at any frame.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rapnet_loc.synth.path import BaseTrajectory
from rapnet_loc.synth.textures import N_FABRICS, TextureBank
from rapnet_loc.synth.world import FreeSpace, LabelInfo, Part, QuadSet, part_quads, transform_quads, yaw_matrix

MIN_DISTANCE_M = 0.9
BODY_RADIUS_M = 0.3
STRIDE_M = 1.3
HIP_Z, SHOULDER_Z = 0.88, 1.46
LANE_HALF_M = 3.5
LOOKAHEAD_S = (3.0, 6.0)


@dataclass
class Person:
    """A person walking along ``start``-``end`` (world xy) at ``speed`` m/s, at ``start`` at ``t = -phase_s``."""

    label: LabelInfo
    start: np.ndarray
    end: np.ndarray
    speed: float
    phase_s: float
    clothes: int
    _parts: dict[str, QuadSet] = field(default_factory=dict, repr=False)

    def state(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Position (K, 2), heading (K,) and walked distance (K,) at times ``t`` (K,) seconds."""
        t = np.atleast_1d(np.asarray(t, float))
        length = float(np.linalg.norm(self.end - self.start))
        walked = (t + self.phase_s) * self.speed
        along = np.mod(walked, 2 * length)
        forward = along <= length
        frac = np.where(forward, along, 2 * length - along) / length
        pos = self.start + frac[:, None] * (self.end - self.start)
        d = self.end - self.start
        heading = np.arctan2(d[1], d[0]) + np.where(forward, 0.0, np.pi)
        return pos, heading, walked

    def _body(self, textures: TextureBank) -> dict[str, QuadSet]:
        """Quads of torso + head (body frame) and of one leg and one arm (hanging from their pivot), built once."""
        if not self._parts:
            shirt, trousers = f'fabric_{self.clothes % N_FABRICS}', f'fabric_{(self.clothes + 3) % N_FABRICS}'
            label = self.label.value
            self._parts['trunk'] = QuadSet.concat([part_quads(textures, p, label) for p in (
                Part((0.0, 0.0, 1.17), (0.24, 0.42, 0.58), shirt),
                Part((0.0, 0.0, 1.62), (0.2, 0.17, 0.24), 'hair', front='face'))])
            self._parts['leg'] = part_quads(textures, Part((0.0, 0.0, -0.43), (0.14, 0.14, 0.86), trousers), label)
            self._parts['arm'] = part_quads(textures, Part((0.0, 0.0, -0.3), (0.09, 0.09, 0.6), shirt), label)
        return self._parts

    def quads(self, textures: TextureBank, t: float) -> QuadSet:
        """World quads of the body at time ``t``: legs and arms swing with the stride."""
        pos, heading, walked = self.state(np.array([t]))
        swing = 0.45 * np.sin(2 * np.pi * walked[0] / STRIDE_M)
        body = yaw_matrix(pos[0, 0], pos[0, 1], heading[0])
        parts = self._body(textures)
        sets = [transform_quads(parts['trunk'], body)]
        for limb, side, angle, pivot_z in (('leg', 0.1, swing, HIP_Z), ('leg', -0.1, -swing, HIP_Z),
                                           ('arm', 0.27, -swing, SHOULDER_Z), ('arm', -0.27, swing, SHOULDER_Z)):
            c, s = np.cos(angle), np.sin(angle)
            pitch = np.array([[c, 0, s, 0], [0, 1, 0, side], [-s, 0, c, pivot_z], [0, 0, 0, 1.0]])
            sets.append(transform_quads(parts[limb], body @ pitch))
        return QuadSet.concat(sets)


def plan_people(count: int, free: FreeSpace, trajectory: BaseTrajectory, T_base_cam: np.ndarray,
                frame_times: np.ndarray, first_id: int, rng: np.random.Generator) -> list[Person]:
    """Up to ``count`` people crossing the robot's path, never closer than ``MIN_DISTANCE_M`` to it.

    Args:
        free: free space of the sequence's world.
        trajectory: the robot's base path; ``T_base_cam`` (4, 4) its camera mount.
        frame_times: (N,) seconds of the frames at which distances are checked.
        first_id: label id of the first person (ids follow the static objects).
    """
    poses = trajectory.poses(frame_times)
    robot_pts = np.concatenate([poses[:, :2, 3], (poses @ T_base_cam)[:, :2, 3]])
    robot_times = np.concatenate([frame_times, frame_times])
    duration = float(frame_times[-1]) if len(frame_times) else 0.0
    people: list[Person] = []
    for k in range(count):
        label = LabelInfo(first_id + k, f'person_{k + 1}', dynamic=True)
        for _ in range(30):
            person = _candidate(label, free, trajectory, duration, rng, k, count)
            if person is None:
                continue
            pos, _, _ = person.state(robot_times)
            if np.min(np.linalg.norm(pos - robot_pts, axis=1)) >= MIN_DISTANCE_M:
                people.append(person)
                break
    return people


def _candidate(label: LabelInfo, free: FreeSpace, trajectory: BaseTrajectory, duration: float,
               rng: np.random.Generator, k: int, count: int) -> Person | None:
    """A lane across the robot's path ahead of it at a time spread over the sequence, or None."""
    t_seen = (k + rng.uniform(0.1, 0.9)) / count * duration
    t_cross = min(t_seen + rng.uniform(*LOOKAHEAD_S), trajectory.duration)
    pose = trajectory.poses(np.array([t_cross]))[0]
    centre = pose[:2, 3]
    angle = np.arctan2(pose[1, 0], pose[0, 0]) + np.pi / 2 + rng.uniform(-0.5, 0.5)
    direction = np.array([np.cos(angle), np.sin(angle)])
    ends = []
    for sign in (-1.0, 1.0):
        steps = np.arange(0.0, LANE_HALF_M, free.resolution)
        ok = free.clearance(centre + sign * steps[:, None] * direction) >= BODY_RADIUS_M
        reach = steps[np.argmin(ok)] - free.resolution if not ok.all() else steps[-1]
        ends.append(centre + sign * max(reach, 0.0) * direction)
    length = float(np.linalg.norm(ends[1] - ends[0]))
    if length < 1.5:
        return None
    speed = float(rng.uniform(0.9, 1.4))
    # Reach the crossing point (walked distance |centre - start|) when the robot is still some way off.
    to_centre = float(np.linalg.norm(centre - ends[0]))
    t_at_centre = t_seen + rng.uniform(0.0, 1.0)
    return Person(label, ends[0], ends[1], speed, to_centre / speed - t_at_centre, int(rng.integers(N_FABRICS)))
