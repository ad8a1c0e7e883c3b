"""The offline IDX reader on small files the tests write, and the validation split."""

import gzip
import struct

import numpy as np
import pytest

from lth_keras import datasets


def write_idx(path, array):
    codes = {np.dtype(np.uint8): 0x08}
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    data = header + array.tobytes()
    if str(path).endswith(".gz"):
        data = gzip.compress(data)
    path.write_bytes(data)


def write_dataset(directory, n_train=120, n_test=40, gz=True, seed=0):
    """Four IDX files shaped like (Fashion-)MNIST, with learnable labels."""
    rng = np.random.default_rng(seed)
    suffix = ".gz" if gz else ""
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        images = rng.integers(0, 60, size=(n, 28, 28)).astype(np.uint8)
        images[np.arange(n), labels, :] = 255  # the label's row lights up
        write_idx(directory / f"{split}-images-idx3-ubyte{suffix}", images)
        write_idx(directory / f"{split}-labels-idx1-ubyte{suffix}", labels)
    return directory


@pytest.mark.parametrize("gz", [True, False])
def test_reads_four_idx_files(tmp_path, gz):
    write_dataset(tmp_path, gz=gz)
    (x, y), (xt, yt) = datasets.load_idx_dataset(str(tmp_path))
    assert x.shape == (120, 28, 28) and xt.shape == (40, 28, 28)
    assert x.dtype == np.float32 and 0.0 <= x.min() and x.max() == 1.0
    assert y.dtype == np.int64 and set(np.unique(y)) <= set(range(10))
    np.testing.assert_array_equal(x[np.arange(120), y, 0], 1.0)


def test_bad_files_are_named(tmp_path):
    write_dataset(tmp_path, gz=False)
    path = tmp_path / "train-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(ValueError, match="train-labels"):
        datasets.load_idx_dataset(str(tmp_path))
    path.write_bytes(b"\x01\x02\x03\x04rubbish")
    with pytest.raises(ValueError, match="magic"):
        datasets.load_idx_dataset(str(tmp_path))


def test_missing_directory_says_how_to_get_the_data(tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist"):
        datasets.load_idx_dataset(str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="train-images"):
        datasets.load_idx_dataset(str(tmp_path / "empty"))


def test_hold_out_is_a_seeded_partition():
    x = np.arange(100)[:, None].astype(np.float32)
    y = np.arange(100)
    (xt, yt), (xv, yv) = datasets.hold_out(x, y, 20, seed=1)
    assert len(xv) == 20 and len(xt) == 80
    assert sorted(np.concatenate([yt, yv])) == list(range(100))
    again = datasets.hold_out(x, y, 20, seed=1)[1][1]
    np.testing.assert_array_equal(yv, again)
    with pytest.raises(ValueError, match="100"):
        datasets.hold_out(x, y, 100)
