"""Declarative node parameters: each node lists its ``Param``s once; they are declared with descriptors (and
ranges) from that list, read back into a dict, and checked against the YAML presets by the tests."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import ParameterUninitializedException
from rclpy.node import Node

from rapnet_loc.errors import ConfigError


@dataclass(frozen=True)
class Param:
    """One parameter.

    Attributes:
        name, description: as declared.
        default: the default value (its type is the parameter's type), or a ``Parameter.Type`` for a parameter
            with no default (read back as None when not set).
        range: inclusive ``(low, high)`` for numbers.
        read_only: cannot change after start-up.
        required: every YAML preset of the node must set it.
    """

    name: str
    default: Any
    description: str
    range: tuple[float, float] | None = None
    read_only: bool = True
    required: bool = False

    def descriptor(self) -> ParameterDescriptor:
        desc = ParameterDescriptor(name=self.name, description=self.description, read_only=self.read_only)
        if self.range is not None:
            lo, hi = self.range
            if isinstance(self.default, int) and not isinstance(self.default, bool):
                desc.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=0)]
            else:
                desc.floating_point_range = [FloatingPointRange(from_value=float(lo), to_value=float(hi), step=0.0)]
        return desc


def declare(node: Node, params: tuple[Param, ...]) -> dict[str, Any]:
    """Declare ``params`` on ``node`` and return ``{name: value}`` (None for unset parameters without default).

    Raises:
        ConfigError: a value out of its range or of the wrong type (from the launch file or YAML).
    """
    for p in params:
        try:
            node.declare_parameter(p.name, p.default, p.descriptor())
        except Exception as exc:  # rclpy raises several unrelated types for bad overrides
            raise ConfigError(f'parameter {node.get_name()}.{p.name}: {exc}') from None
    return {p.name: value(node, p.name) for p in params}


def value(node: Node, name: str) -> Any:
    """Current value of a declared parameter, None when it has no value."""
    try:
        return node.get_parameter(name).value
    except ParameterUninitializedException:
        return None

