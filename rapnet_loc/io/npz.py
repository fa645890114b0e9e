"""``.npz`` archives whose large arrays are memory-mapped on reading.

``write_npz`` writes what ``np.savez_compressed`` writes (one ``.npy`` member per array, zip64), except that the
arrays named in ``stored`` are kept uncompressed. ``read_npz`` reads the deflated members into memory and
memory-maps the uncompressed ones: such a member's bytes lie contiguously in the file, after its zip local header
and its ``.npy`` header, so a map's place-recognition descriptors are paged in from disk as queries touch them
instead of all being read at start-up. The files stay readable by ``np.load``.
"""
from __future__ import annotations

import os
import struct
import zipfile
from typing import IO

import numpy as np
from numpy.lib import format as npy_format

LOCAL_HEADER = struct.Struct('<4s5H3I2H')       # zip local file header: signature .. name length, extra length
LOCAL_MAGIC = b'PK\x03\x04'
FIXED_TIME = (1980, 1, 1, 0, 0, 0)              # the same bytes for the same arrays
HEADER_READERS = {(1, 0): npy_format.read_array_header_1_0, (2, 0): npy_format.read_array_header_2_0}


def write_npz(fh: IO[bytes], arrays: dict[str, np.ndarray], stored: frozenset[str] | set[str] = frozenset()) -> None:
    """Write ``arrays`` to the binary file ``fh``: deflated, except the names in ``stored`` (uncompressed)."""
    with zipfile.ZipFile(fh, 'w', allowZip64=True) as archive:
        for name, value in arrays.items():
            info = zipfile.ZipInfo(f'{name}.npy', date_time=FIXED_TIME)
            info.compress_type = zipfile.ZIP_STORED if name in stored else zipfile.ZIP_DEFLATED
            with archive.open(info, 'w', force_zip64=True) as member:
                npy_format.write_array(member, np.asanyarray(value), allow_pickle=False)


def read_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every array of the archive by name: uncompressed members memory-mapped read-only (``np.memmap``), deflated
    ones read into memory.

    Raises:
        zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError: not a readable archive of ``.npy`` members.
    """
    arrays = {}
    with zipfile.ZipFile(path) as archive, open(path, 'rb') as raw:
        for info in archive.infolist():
            name = info.filename.removesuffix('.npy')
            if info.compress_type == zipfile.ZIP_STORED:
                arrays[name] = _memmap(path, raw, info)
            else:
                with archive.open(info) as member:
                    arrays[name] = npy_format.read_array(member, allow_pickle=False)
    return arrays


def _memmap(path: str | os.PathLike, raw: IO[bytes], info: zipfile.ZipInfo) -> np.ndarray:
    """The uncompressed ``.npy`` member ``info`` of the archive open as ``raw``, memory-mapped."""
    raw.seek(info.header_offset)
    header = raw.read(LOCAL_HEADER.size)
    if len(header) != LOCAL_HEADER.size or header[:4] != LOCAL_MAGIC:
        raise ValueError(f'member {info.filename} has no zip local header at offset {info.header_offset}')
    *_, name_len, extra_len = LOCAL_HEADER.unpack(header)
    raw.seek(name_len + extra_len, os.SEEK_CUR)
    version = npy_format.read_magic(raw)
    if version not in HEADER_READERS:
        raise ValueError(f'member {info.filename} is a .npy file of version {version}, not 1.0 or 2.0')
    shape, fortran, dtype = HEADER_READERS[version](raw)
    if dtype.hasobject:
        raise ValueError(f'member {info.filename} holds Python objects')
    offset = raw.tell()
    if offset + dtype.itemsize * int(np.prod(shape)) > os.fstat(raw.fileno()).st_size:
        raise EOFError(f'member {info.filename} runs past the end of the file')
    if not np.prod(shape):
        return np.zeros(shape, dtype)
    return np.memmap(path, dtype, 'r', offset, shape, 'F' if fortran else 'C')
