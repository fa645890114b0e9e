"""Local mapping in a thread of its own (ORB-SLAM2 ``LocalMapping::Run``), so that tracking seldom waits for it.

Tracking hands each new keyframe to ``MappingThread.process``, which queues it and returns. The thread integrates
the queued keyframes one at a time through ``LocalMapping.steps``; each step holds the map's lock, which tracking
holds for a whole frame, so the two never see the map half-changed by the other; bundle adjustment's solve, the
longest step, runs on copies without the lock, as does re-learning the place recognizer's vocabulary. A keyframe
queued while a bundle adjustment runs ends it early (ORB-SLAM2 ``InterruptBA``). The queue is bounded: when
``TrackingConfig.keyframe_queue`` keyframes wait, tracking refuses a keyframe of a frame that tracks well and
waits for room before it adds that of a weakly tracked one (``wait_for_room``; ``Tracking._need_keyframe``).

The map's lock is a ``FairLock``: threads get it in the order they asked for it. Python's own locks are not fair,
and tracking, which takes the lock again as soon as it lets it go (the next frame's features are ready), starved
local mapping of it for many frames at a time.

An exception raised in the thread stops it and is raised again in the tracking thread at its next call.
"""
from __future__ import annotations

import logging
import threading
from collections import deque

import numpy as np

from rapnet_loc.slam.local_mapping import LocalMapping, drive
from rapnet_loc.slam.map import KeyFrame

LOG = logging.getLogger(__name__)


class FairLock:
    """A re-entrant lock that threads get in the order they asked for it (a ticket lock); usable by
    ``threading.Condition``."""

    def __init__(self):
        self._state = threading.Condition(threading.Lock())
        self._next_ticket = self._serving = 0
        self._owner: int | None = None
        self._depth = 0

    def acquire(self) -> bool:
        me = threading.get_ident()
        with self._state:
            if self._owner == me:
                self._depth += 1
                return True
            ticket, self._next_ticket = self._next_ticket, self._next_ticket + 1
            self._state.wait_for(lambda: self._serving == ticket)
            self._owner, self._depth = me, 1
        return True

    def release(self) -> None:
        with self._state:
            if self._owner != threading.get_ident():
                raise RuntimeError('release of a FairLock not held by this thread')
            self._depth -= 1
            if self._depth == 0:
                self._owner, self._serving = None, self._serving + 1
                self._state.notify_all()

    __enter__ = acquire

    def __exit__(self, *exc) -> None:
        self.release()

    # the three methods threading.Condition uses to wait with a re-entrant lock held at any depth
    def _is_owned(self) -> bool:
        return self._owner == threading.get_ident()

    def _release_save(self) -> int:
        depth, self._depth = self._depth, 1
        self.release()
        return depth

    def _acquire_restore(self, depth: int) -> None:
        self.acquire()
        self._depth = depth


class MappingThread:
    """Runs ``local_mapping`` in a daemon thread; the same calls as ``LocalMapping`` for tracking.

    Args:
        local_mapping: the local mapping to run.
        lock: the map's lock (a ``FairLock``), held by tracking while it uses the map (``System``); the thread takes
            it for each step.
    """

    def __init__(self, local_mapping: LocalMapping, lock: FairLock):
        self.local_mapping = local_mapping
        self._lock = lock
        self._changed = threading.Condition(lock)
        self._queue: deque[tuple[KeyFrame, np.ndarray]] = deque()
        self._busy = False
        self._closed = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name='LocalMapping', daemon=True)
        self._thread.start()

    @property
    def n_queued(self) -> int:
        """Keyframes waiting to be integrated."""
        return len(self._queue)

    def process(self, kf: KeyFrame, new_ids: np.ndarray) -> None:
        """Queue keyframe ``kf``, which created the points ``new_ids``; a running bundle adjustment ends early."""
        with self._changed:
            self._raise()
            self._queue.append((kf, new_ids))
            if self._busy:
                self.local_mapping.abort_ba.set()
            self._changed.notify_all()

    def wait_for_room(self, limit: int) -> None:
        """Return once fewer than ``limit`` keyframes wait; a running bundle adjustment is interrupted first so that
        the queue moves sooner (``_wait``)."""
        with self._changed:
            if len(self._queue) >= limit and self._busy:
                self.local_mapping.abort_ba.set()
        self._wait(lambda: len(self._queue) < limit)

    def join_seam(self, kf: KeyFrame, match: KeyFrame) -> None:
        """``LocalMapping.join_seam`` once the queue is integrated (the map is then left to the caller)."""
        self.wait_idle()
        self.local_mapping.join_seam(kf, match)

    def wait_idle(self) -> None:
        """Return once every queued keyframe is integrated (``_wait``)."""
        self._wait(lambda: not self._busy and not self._queue)

    def _wait(self, ready) -> None:
        """Return once ``ready()`` holds, the thread failed or was closed; the lock, when the caller holds it, is let
        go meanwhile.

        Raises:
            the exception that stopped the thread, if one did.
        """
        with self._changed:
            self._changed.wait_for(lambda: ready() or self._error is not None or self._closed)
            self._raise()

    def close(self) -> None:
        """Integrate what is queued, then stop the thread."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        self._thread.join()
        self._raise()

    def _raise(self) -> None:
        if self._error is not None:
            raise RuntimeError('local mapping stopped') from self._error

    def _run(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._queue or self._closed)
                if not self._queue:
                    return
                kf, new_ids = self._queue.popleft()
                self._busy = True
            try:
                drive(self.local_mapping.steps(kf, new_ids), self._lock)
            except Exception as exc:        # kept for the tracking thread; the map is left as the step left it
                LOG.error('local mapping failed on keyframe %d: %s', kf.id, exc)
                self._error = exc
            finally:
                with self._changed:
                    self._busy = False
                    self._changed.notify_all()
            if self._error is not None:
                return
