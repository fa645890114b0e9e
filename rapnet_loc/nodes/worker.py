"""A processing thread fed by a bounded queue that drops the oldest item when a burst comes faster than it can
process (as ``rapnet-loc replay --realtime`` models a live robot), ROS-free."""
from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any


class DropOldestWorker:
    """Runs ``handle(item)`` on a thread for items ``put`` from callbacks.

    Args:
        handle: called with each item, one at a time, in arrival order.
        queue_size: items waiting at most; ``put`` on a full queue drops the oldest and calls ``on_drop(item)``.
        on_drop: told of each dropped item (the node logs it).
        on_error: told of an exception raised by ``handle`` (the worker keeps running).
    """

    def __init__(self, handle: Callable[[Any], None], queue_size: int, on_drop: Callable[[Any], None],
                 on_error: Callable[[Any, BaseException], None], name: str = 'worker'):
        self._handle, self._on_drop, self._on_error = handle, on_drop, on_error
        self._queue: deque = deque()
        self._size = int(queue_size)
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, item: Any) -> None:
        with self._cond:
            if len(self._queue) >= self._size:
                self._on_drop(self._queue.popleft())
            self._queue.append(item)
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                item = self._queue.popleft()
            try:
                self._handle(item)
            except Exception as exc:  # a bad item must not end the thread
                self._on_error(item, exc)

    def stop(self) -> None:
        """Finish the item in progress, discard the rest and end the thread."""
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join()
