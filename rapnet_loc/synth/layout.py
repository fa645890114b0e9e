"""Furniture placement per sequence: the lifelong setting, where movable objects stand elsewhere each visit."""
from __future__ import annotations

import numpy as np

from rapnet_loc.synth.world import FreeSpace, SceneSpec, Thing

MOVE_PROBABILITY = 0.7
MOVE_RANGE_M = (0.3, 1.2)
MAX_TURN_RAD = 1.0
FIT_MARGIN_M = 0.05
KEEP_ROAM_FRACTION = 0.93


def fits(thing: Thing, free: FreeSpace, margin: float = FIT_MARGIN_M) -> bool:
    """Whether ``thing``'s footprint keeps ``margin`` metres from the walls and obstacles of ``free``."""
    corners = thing.footprint()
    a, b = corners[1] - corners[0], corners[3] - corners[0]
    na = max(2, int(np.ceil(np.linalg.norm(a) / free.resolution)) + 1)
    nb = max(2, int(np.ceil(np.linalg.norm(b) / free.resolution)) + 1)
    s, t = np.meshgrid(np.linspace(0, 1, na), np.linspace(0, 1, nb))
    points = corners[0] + s.reshape(-1, 1) * a + t.reshape(-1, 1) * b
    return bool(np.all(free.clearance(points) >= margin))


def sequence_things(spec: SceneSpec, seq: int, moved: bool, robot_clearance: float,
                    rng: np.random.Generator) -> tuple[Thing, ...]:
    """Objects of ``spec`` as they stand in sequence ``seq`` (1-based).

    Sequence 1, or any sequence when ``moved`` is False, has the base placement. Otherwise each movable object
    is, with probability ``MOVE_PROBABILITY``, shifted by ``MOVE_RANGE_M`` in a random direction and turned by up
    to ``MAX_TURN_RAD`` to a spot where it fits and where the area that a robot needing ``robot_clearance``
    can roam keeps at least ``KEEP_ROAM_FRACTION`` of its size (so nothing blocks a corridor); it stays put
    when 10 tries find none.
    """
    things = list(spec.things)
    if seq == 1 or not moved:
        return tuple(things)
    roam = FreeSpace.of(spec.room, spec.things).region(robot_clearance).sum()
    for i, thing in enumerate(things):
        if not thing.movable or rng.random() > MOVE_PROBABILITY:
            continue
        free = FreeSpace.of(spec.room, tuple(things[:i] + things[i + 1:]))
        for _ in range(10):
            dist, angle = rng.uniform(*MOVE_RANGE_M), rng.uniform(0, 2 * np.pi)
            candidate = thing.moved(thing.x + dist * np.cos(angle), thing.y + dist * np.sin(angle),
                                    thing.yaw + rng.uniform(-MAX_TURN_RAD, MAX_TURN_RAD))
            trial = tuple(things[:i] + [candidate] + things[i + 1:])
            if fits(candidate, free) and \
                    FreeSpace.of(spec.room, trial).region(robot_clearance).sum() >= KEEP_ROAM_FRACTION * roam:
                things[i] = candidate
                break
    return tuple(things)
