"""Reading YAML files with errors that name the file and the problem."""
from __future__ import annotations

import os
from pathlib import Path

import yaml

from rapnet_loc.errors import RapnetLocError


def read_yaml_mapping(path: str | os.PathLike, error: type[RapnetLocError], what: str) -> dict:
    """The mapping stored in the YAML file ``path`` (empty for an empty file).

    Raises:
        error: the file cannot be read, is not valid YAML, or does not hold a mapping; ``what`` names the kind
            of file in the message (e.g. ``'calibration file'``).
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f'cannot read {what} {path}: {exc}') from None
    except yaml.YAMLError as exc:
        raise error(f'{what} {path} is not valid YAML: {exc}') from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise error(f'{what} {path} must hold a mapping, got {type(data).__name__}')
    return data
