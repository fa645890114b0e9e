"""``.npz`` archives with memory-mapped uncompressed members (rapnet_loc.io.npz)."""
import zipfile

import numpy as np
import pytest

from rapnet_loc.io.npz import read_npz, write_npz


@pytest.fixture
def arrays():
    rng = np.random.default_rng(0)
    return {'big': rng.standard_normal((300, 49, 128)).astype(np.float16), 'ids': np.arange(300, dtype=np.int64),
            'fortran': np.asfortranarray(rng.standard_normal((20, 7))), 'empty': np.zeros((0, 5), np.float32),
            'name': np.array('rapnet-loc-map'), 'names': np.array(['a', 'bb'])}


def write(path, arrays, stored):
    with open(path, 'wb') as fh:
        write_npz(fh, arrays, stored)


def test_stored_members_are_memory_mapped_and_equal(tmp_path, arrays):
    path = tmp_path / 'a.npz'
    write(path, arrays, {'big', 'fortran', 'empty'})
    read = read_npz(path)
    assert set(read) == set(arrays)
    for name, value in arrays.items():
        np.testing.assert_array_equal(read[name], value)
        assert read[name].dtype == value.dtype and read[name].shape == value.shape
    assert isinstance(read['big'], np.memmap) and isinstance(read['fortran'], np.memmap)
    assert read['fortran'].flags.f_contiguous
    assert not read['big'].flags.writeable
    assert not isinstance(read['ids'], np.memmap)
    with zipfile.ZipFile(path) as archive:
        kinds = {info.filename: info.compress_type for info in archive.infolist()}
    assert kinds['big.npy'] == zipfile.ZIP_STORED and kinds['ids.npy'] == zipfile.ZIP_DEFLATED


def test_numpy_reads_the_archive(tmp_path, arrays):
    path = tmp_path / 'a.npz'
    write(path, arrays, {'big'})
    with np.load(path, allow_pickle=False) as npz:
        for name, value in arrays.items():
            np.testing.assert_array_equal(npz[name], value)


def test_same_arrays_same_bytes(tmp_path, arrays):
    write(tmp_path / 'a.npz', arrays, {'big'})
    write(tmp_path / 'b.npz', arrays, {'big'})
    assert (tmp_path / 'a.npz').read_bytes() == (tmp_path / 'b.npz').read_bytes()


def test_numpy_savez_archives_are_read(tmp_path, arrays):
    np.savez(tmp_path / 'plain.npz', **arrays)
    read = read_npz(tmp_path / 'plain.npz')
    assert isinstance(read['big'], np.memmap)
    np.testing.assert_array_equal(read['big'], arrays['big'])


def test_truncated_stored_member_is_an_error(tmp_path, arrays):
    path = tmp_path / 'a.npz'
    write(path, {'big': arrays['big']}, {'big'})
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises((zipfile.BadZipFile, EOFError, ValueError)):
        read_npz(path)


def test_object_arrays_are_refused(tmp_path):
    with pytest.raises(ValueError):
        write(tmp_path / 'a.npz', {'objects': np.array([{'a': 1}], dtype=object)}, set())
