"""Resumable training runs: the training state file every trainer writes (``train-rapnet``, ``train-netvlad``,
``train-vsnet``) and the check that a run may continue from it.

A state is a dict of tensors and plain values (model, optimiser, step, losses, random generators' states) plus the
run's configuration (a dataclass). It is written atomically with a CSV of the loss of every step beside it, and
loaded with ``weights_only=True`` (no code is unpickled).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from rapnet_loc.errors import ConfigError
from rapnet_loc.io.atomic import atomic_write


def save_state(path: Path, state: dict[str, Any], cfg: Any, losses_csv: Path) -> None:
    """Write ``state`` with ``cfg`` (a dataclass) as its ``config`` to ``path`` and ``state['losses']`` (one float
    per step) to ``losses_csv``, each atomically."""
    with atomic_write(path, 'wb') as fh:
        torch.save({**state, 'config': dataclasses.asdict(cfg)}, fh)
    with atomic_write(losses_csv) as fh:
        fh.write('step,loss\n' + ''.join(f'{k + 1},{v:.6f}\n' for k, v in enumerate(state['losses'])))


def load_state(path: Path, cfg: Any, resumable: tuple[str, ...]) -> dict[str, Any]:
    """The training state at ``path`` if a run with options ``cfg`` may continue from it.

    Args:
        resumable: fields of ``cfg`` that may differ from the saved run's (when it stops, what happens after).
    Raises:
        ConfigError: it was trained with other options (the message names them), or is past ``cfg.steps``.
    """
    state = torch.load(path, map_location='cpu', weights_only=True)
    saved = state['config']
    fixed = [f.name for f in dataclasses.fields(cfg) if f.name not in resumable]
    # an option added after the run was saved counts as its default there
    defaults = {f.name: f.default for f in dataclasses.fields(cfg) if f.default is not dataclasses.MISSING}
    if changed := [name for name in fixed if saved.get(name, defaults.get(name)) != getattr(cfg, name)]:
        raise ConfigError(f'cannot resume from {path}: it was trained with other ' + ', '.join(
            f'{name} ({saved.get(name)!r}, now {getattr(cfg, name)!r})' for name in changed))
    if state['step'] > cfg.steps:
        raise ConfigError(f'cannot resume {path} at step {state["step"]} with --steps {cfg.steps}: give '
                          f'{state["step"]} to stop there, or more')
    return state
