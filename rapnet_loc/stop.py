"""Clean shutdown of long runs on SIGINT (Ctrl-C) or SIGTERM: finish the frame at hand, then write what was
computed.

``StopRequest`` is a context manager: while it is active (in the main thread), the first SIGINT or SIGTERM only
sets it (``bool(stop)`` turns true, ``stop.signal`` names the signal) and logs what will happen; the loops that
take one (``rapnet_loc.slam.run.replay``...) stop after the current frame and write their outputs as usual, with
the signal in ``report.json``. A second signal stops at once (KeyboardInterrupt). Outside the main thread, where
Python cannot install signal handlers, it is inert.
"""
from __future__ import annotations

import logging
import signal
import threading

LOG = logging.getLogger(__name__)
SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """Set by the first SIGINT or SIGTERM while active; see the module doc.

    Attributes:
        signal: ``'SIGINT'`` or ``'SIGTERM'`` once one arrived, else None.
    """

    def __init__(self) -> None:
        self.signal: str | None = None
        self._previous: dict[int, object] = {}

    def __bool__(self) -> bool:
        return self.signal is not None

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        self._restore()

    def _restore(self) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}

    def _handle(self, signum: int, frame) -> None:
        if self.signal is not None:
            self._restore()
            raise KeyboardInterrupt
        self.signal = signal.Signals(signum).name
        LOG.warning('%s: finishing the current frame, then writing the outputs (send it again to stop at once)',
                    self.signal)
