"""Implementations of one interface chosen by name (hloc-style registries), and their options.

Each stage of the suite (feature extractor, place recognizer, pose estimator) has one ``Registry``. An
implementation is a class with a ``default_conf`` (``Configurable``) decorated with ``@registry.register('name')``,
in a module of the registry's package (found by its file name, or by scanning the package) or in a module that the
registry lists in ``modules``. ``registry.create('name', conf, ...)`` imports it on first use.
"""
from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Any, ClassVar, Generic, TypeVar

from rapnet_loc.errors import ConfigError


class Configurable:
    """Options of a registered implementation: ``self.conf`` is ``default_conf`` updated with the ``conf`` given to
    the constructor; an option ``default_conf`` does not name is a ``ConfigError``.

    Attributes:
        name: the registry name (set by ``Registry.register``).
        kind: what the implementations are, for messages (set by the registry's base class).
    """

    name: ClassVar[str] = ''
    kind: ClassVar[str] = 'component'
    default_conf: ClassVar[dict] = {}

    def __init__(self, conf: dict | None = None):
        conf = dict(conf or {})
        if unknown := sorted(set(conf) - set(self.default_conf)):
            raise ConfigError(f"unknown option(s) {', '.join(map(str, unknown))} for {self.kind} {self.name!r}; "
                              f"valid options: {', '.join(sorted(self.default_conf)) or 'none'}")
        self.conf = {**self.default_conf, **conf}


def require_number(who: str, key: str, value: Any, low: float, integer: bool = False) -> None:
    """ConfigError naming ``who`` and ``key`` unless option ``value`` is a number (a whole one, of type int, when
    ``integer``; never a bool) of at least ``low``."""
    kind = 'an integer' if integer else 'a number'
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)) or not value >= low:
        raise ConfigError(f'{who} {key} must be {kind} >= {low}, got {value!r}')


T = TypeVar('T', bound=Configurable)


class Registry(Generic[T]):
    """Classes registered by name.

    Args:
        kind: what they are, for messages (``'feature extractor'``).
        package: package whose modules hold implementations (``'rapnet_loc.features'``).
        helpers: modules of ``package`` that hold none (never imported by name).
        modules: implementations outside ``package``: name -> module that registers it.
    """

    def __init__(self, kind: str, package: str, helpers: frozenset[str] = frozenset({'base'}),
                 modules: dict[str, str] | None = None):
        self.kind, self.package, self.helpers = kind, package, helpers
        self.modules = dict(modules or {})
        self._classes: dict[str, type[T]] = {}

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        """Class decorator registering an implementation as ``name``."""
        def decorate(cls: type[T]) -> type[T]:
            if name in self._classes and self._classes[name] is not cls:
                raise ValueError(f'{self.kind} {name!r} is already registered by {self._classes[name].__name__}')
            cls.name = name
            self._classes[name] = cls
            return cls
        return decorate

    def _import_all(self) -> None:
        """Import every implementation module so that all of them are registered."""
        package = importlib.import_module(self.package)
        for info in pkgutil.iter_modules(package.__path__):
            if info.name not in self.helpers:
                importlib.import_module(f'{self.package}.{info.name}')
        for module in self.modules.values():
            importlib.import_module(module)

    def available(self) -> list[str]:
        """Sorted names of all registered implementations."""
        self._import_all()
        return sorted(self._classes)

    def get(self, name: str) -> type[T]:
        """The class registered as ``name`` (importing its module; nothing is loaded or built).

        Raises:
            ConfigError: unknown name (the message lists the registered ones).
        """
        if name not in self._classes:
            if name in self.modules:
                importlib.import_module(self.modules[name])
            elif name.isidentifier() and name not in self.helpers:
                try:
                    importlib.import_module(f'{self.package}.{name}')
                except ModuleNotFoundError as exc:
                    if exc.name != f'{self.package}.{name}':
                        raise
        if name not in self._classes:
            self._import_all()      # a module may register names other than its own (rapnet -> rapnet_p)
        if name not in self._classes:
            raise ConfigError(f"unknown {self.kind} {name!r}; available: {', '.join(self.available())}")
        return self._classes[name]

    def create(self, name: str, conf: dict | None = None, *args: Any, **kwargs: Any) -> T:
        """The implementation ``name`` configured with ``conf`` (merged over its ``default_conf``); ``args`` and
        ``kwargs`` go to its constructor after ``conf``.

        Raises:
            ConfigError: unknown name or option.
        """
        return self.get(name)(conf, *args, **kwargs)
