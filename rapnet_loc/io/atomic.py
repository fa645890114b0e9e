"""Safe file output.

``atomic_write``: write to a temporary file beside the target, fsync, then rename over it; a crash or Ctrl-C while
writing leaves the previous file intact, never a truncated one.

``LineLog``: a text file that grows line by line while a run goes on (per-frame outputs), each batch of lines
handed to the operating system at once and synced to disk at most ``SYNC_S`` apart, so that a process killed
outright (``kill -9``, an out-of-memory kill) leaves every line written before it, and a power cut at most the
last second's.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Iterator

from rapnet_loc.errors import OutputError

SYNC_S = 1.0  # longest time between two fsyncs of a LineLog


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


class LineLog:
    """A text file written line by line (module doc); a context manager that closes it.

    Args:
        path: the file, replaced when it exists (its folder is made when missing).
        header: lines written first.
    Raises:
        OutputError: the file cannot be created.
    """

    def __init__(self, path: str | os.PathLike, header: Iterable[str] = ()):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh: IO[str] = open(self.path, 'w', encoding='utf-8')
        except OSError as exc:
            raise OutputError(f'cannot write {self.path}: {exc.strerror or exc}') from None
        self._synced = time.monotonic()
        self.write(header)

    def write(self, lines: Iterable[str]) -> None:
        """Append ``lines`` (each ending in a newline) and hand them to the operating system."""
        self._fh.writelines(lines)
        self._fh.flush()
        if time.monotonic() - self._synced >= SYNC_S:
            os.fsync(self._fh.fileno())
            self._synced = time.monotonic()

    def close(self) -> None:
        """Sync and close; safe to call twice."""
        if not self._fh.closed:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()

    def __enter__(self) -> LineLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
