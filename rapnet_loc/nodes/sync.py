"""Approximate-time pairing of two live streams (colour or features with depth), ROS-free.

message_filters is not a dependency: the pairing is this small class, which the front end feeds from two
subscriptions.
"""
from __future__ import annotations

from collections import deque
from typing import Any


class ApproxSync:
    """Pairs items of streams A and B whose stamps differ by at most ``max_dt_ns``.

    Each new item looks for the nearest-stamped waiting item of the other stream within ``max_dt_ns``; a match
    returns the pair and discards both and everything older on either stream. Unmatched items wait in queues of at
    most ``queue_size`` (the oldest fall out first).

    Args:
        max_dt_ns: largest stamp difference of a pair.
        queue_size: items kept waiting per stream.

    Attributes:
        unmatched: items discarded so far without a partner (a stream that stopped, stamps skewed beyond
            ``max_dt_ns``), per stream.
    """

    def __init__(self, max_dt_ns: int, queue_size: int):
        self.max_dt_ns = int(max_dt_ns)
        self._queues: tuple[deque, deque] = (deque(maxlen=queue_size), deque(maxlen=queue_size))
        self.unmatched = [0, 0]

    def add(self, stream: int, stamp_ns: int, item: Any) -> tuple[int, Any, Any] | None:
        """Offer ``item`` of stream 0 (A) or 1 (B); ``(stamp of the A item, A item, B item)`` when it completes a
        pair, else None."""
        other = self._queues[1 - stream]
        best = min(range(len(other)), key=lambda i: abs(other[i][0] - stamp_ns), default=None)
        if best is None or abs(other[best][0] - stamp_ns) > self.max_dt_ns:
            own = self._queues[stream]
            self.unmatched[stream] += len(own) == own.maxlen       # the oldest falls out
            own.append((stamp_ns, item))
            return None
        other_stamp, other_item = other[best]
        for _ in range(best + 1):
            other.popleft()
        self.unmatched[1 - stream] += best
        own = self._queues[stream]
        while own and own[0][0] <= stamp_ns:
            own.popleft()
            self.unmatched[stream] += 1
        if stream == 0:
            return stamp_ns, item, other_item
        return other_stamp, other_item, item
