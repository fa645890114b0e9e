"""Atomic file output: write to a temporary file beside the target, fsync, then rename over it.

A crash or Ctrl-C while writing leaves the previous file intact, never a truncated one.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator

from rapnet_loc.errors import OutputError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = 'w', encoding: str | None = 'utf-8') -> Iterator[IO]:
    """Open a temporary file for writing that replaces ``path`` only when the block exits cleanly.

    Args:
        path: destination; its parent directory is created when missing.
        mode: ``'w'`` (text) or ``'wb'`` (binary).
        encoding: text encoding (ignored for binary mode).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent)
    os.fchmod(fd, 0o666 & ~_umask())     # mkstemp creates 0600; give the file the permissions open() would
    try:
        with os.fdopen(fd, mode, encoding=None if 'b' in mode else encoding) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def check_writable(path: str | os.PathLike, what: str, folder: bool = False) -> None:
    """Make sure ``path`` (a file, or a folder when ``folder``) can be written before any work starts: a temporary
    file is written in its folder and removed, and so are the folders made for it.

    Raises:
        OutputError: it cannot (read-only, no permission, a file where a folder should be, full disk); the message
            names ``what`` (e.g. ``'--out folder'``) and the path.
    """
    path = Path(path)
    parent = path if folder else path.parent
    made = [p for p in (parent, *parent.parents) if not p.exists()]
    try:
        if path.is_dir() and not folder:
            raise IsADirectoryError(f'{path} is a folder')
        parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=parent) as fh:
            fh.write(b'\0' * 4096)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        raise OutputError(f'cannot write the {what} {path}: {exc.strerror or exc}') from None
    finally:
        for folder_made in made:
            with contextlib.suppress(OSError):
                folder_made.rmdir()
