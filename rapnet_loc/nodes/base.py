"""What the nodes share: declared parameters, a processing worker that drops the oldest input in a burst, and
callbacks that log bad input and keep the node running."""
from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from rapnet_loc.errors import RapnetLocError
from rapnet_loc.nodes.params import Param, declare
from rapnet_loc.nodes.worker import DropOldestWorker
from rapnet_loc.slam.config import SlamConfig
from rapnet_loc.stop import StopRequest

SPIN_PERIOD_S = 0.1  # longest wait of the spinning loop for a callback: how soon it sees a signal

FEATURE_PARAMS = (
    Param('features', 'orb', 'feature extractor (registry name: orb, rapnet, rapnet_p, ...); one other than the '
                             'config file\'s runs with its default options', required=True),
    Param('config_file', '', 'YAML configuration of rapnet_loc.slam.config (features, tracking, local_mapping); '
                             'empty: defaults'),
    Param('queue_size', 2, 'inputs waiting for processing; in a burst the oldest are dropped (and logged)', (1, 1000)),
)


@dataclass
class Stamped:
    """A queued input: its stamp (ns) and the messages or arrays to process."""

    stamp_ns: int
    data: tuple


def slam_config(params: dict[str, Any]) -> SlamConfig:
    """The configuration ``rapnet-loc replay --config CONFIG_FILE --features FEATURES`` would use, with the
    ``place_recognition`` and ``pose_estimator`` parameters where the node has them (empty: the configuration's)."""
    return SlamConfig.resolve(params['config_file'] or None, params['features'],
                              params.get('place_recognition') or None, params.get('pose_estimator') or None)


class RapnetNode(Node):
    """A node with ``PARAMETERS`` declared into ``self.params`` and a ``DropOldestWorker`` running ``process``.

    Attributes:
        rejected: count of discarded inputs by reason (bad messages, dropped frames), also in the diagnostics.
    """

    PARAMETERS: tuple[Param, ...] = ()

    def __init__(self, name: str, **kwargs):
        super().__init__(name, **kwargs)
        self.params: dict[str, Any] = declare(self, self.PARAMETERS)
        self.rejected: Counter[str] = Counter()
        self.worker = DropOldestWorker(self.process, int(self.params['queue_size']), self._dropped, self._failed,
                                       name=f'{name}-worker')

    def process(self, item: Any) -> None:
        """Handle one queued input on the worker thread."""
        raise NotImplementedError

    def reject(self, reason: str, message: str, count: int = 1, throttle_s: float = 0.0) -> None:
        """Count ``count`` discarded inputs and log it (at most once per ``throttle_s`` seconds when given)."""
        self.rejected[reason] += count
        text = f'{message} [{reason}: {self.rejected[reason]} so far]'
        if throttle_s:
            self.get_logger().warning(text, throttle_duration_sec=throttle_s)
        else:       # rclpy fixes the severity and filters of a logging call site at its first call
            self.get_logger().warning(text)

    def _dropped(self, item: Any) -> None:
        self.reject('dropped', f'processing is slower than the input: dropped the oldest queued input '
                               f'(stamp {item.stamp_ns})')

    def _failed(self, item: Any, exc: BaseException) -> None:
        if isinstance(exc, RapnetLocError):
            self.reject('bad_input', str(exc))
        else:
            self.rejected['error'] += 1
            self.get_logger().error(f'processing failed: {type(exc).__name__}: {exc}')

    def guarded(self, callback: Callable[[Any], None]) -> Callable[[Any], None]:
        """``callback`` that logs a ``RapnetLocError`` (bad message) instead of raising it."""
        @functools.wraps(callback)
        def run(msg: Any) -> None:
            try:
                callback(msg)
            except RapnetLocError as exc:
                self.reject('bad_input', str(exc))
        return run

    def destroy_node(self) -> None:
        self.worker.stop()
        super().destroy_node()


def spin(node_class: type[RapnetNode], args: list[str] | None = None) -> None:
    """Run one node until SIGINT or SIGTERM (the console-script entry points).

    The signals are the node's own (``rapnet_loc.stop.StopRequest``), not rclpy's: rclpy's would shut the ROS
    context down while the worker may be publishing a result. Here the first signal ends the spinning; the worker
    then finishes the input at hand and publishes it, the node is destroyed (the front end integrates its
    keyframes and saves the map when asked) and only then is the context shut down. A second signal stops at once.
    """
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    node = None
    try:
        with StopRequest() as stop:
            try:
                node = node_class()
                executor = SingleThreadedExecutor()
                executor.add_node(node)
                while not stop and rclpy.ok():
                    executor.spin_once(timeout_sec=SPIN_PERIOD_S)
            except ExternalShutdownException:
                pass
            except RapnetLocError as exc:
                print(f'error: {exc}')
                raise SystemExit(2) from None
            finally:
                if node is not None:
                    node.destroy_node()
                rclpy.try_shutdown()
    except KeyboardInterrupt:        # the second signal
        raise SystemExit(130) from None
