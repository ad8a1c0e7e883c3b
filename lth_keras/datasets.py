"""Offline dataset readers: IDX files (MNIST, Fashion-MNIST) from any directory."""

import gzip
import os
from typing import Tuple

import numpy as np

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str) -> np.ndarray:
    """Reads one IDX file (optionally gzipped); raises ValueError naming a bad file."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number)")
    ndim = data[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(data) != expected:
        raise ValueError(f"{path} holds {len(data)} bytes, its header promises {expected}")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)


def _find(directory: str, stem: str) -> str:
    for name in (stem, stem + ".gz"):
        path = os.path.join(directory, name)
        if os.path.exists(path):
            return path
    raise FileNotFoundError(f"{directory} has neither {stem} nor {stem}.gz")


def load_idx_dataset(directory: str = FASHION_MNIST_DIR) -> Tuple[Tuple[np.ndarray, np.ndarray], ...]:
    """((x_train, y_train), (x_test, y_test)) from the four IDX files in `directory`.

    Images are float32 in [0, 1] with their IDX shape (e.g. 28x28); labels int64.
    Works for MNIST and Fashion-MNIST alike (Debian: `apt-get install
    dataset-fashion-mnist` puts them in /usr/share/datasets/fashion-mnist).
    """
    if not os.path.isdir(directory):
        raise FileNotFoundError(
            f"no dataset directory {directory}; for Fashion-MNIST run "
            "`apt-get install dataset-fashion-mnist`, or point to a directory with the four IDX files"
        )
    arrays = {name: read_idx(_find(directory, stem)) for name, stem in IDX_FILES.items()}
    for split in ("train", "test"):
        if len(arrays[f"{split}_images"]) != len(arrays[f"{split}_labels"]):
            raise ValueError(f"{directory}: {split} images and labels differ in count")
    scale = lambda images: images.astype(np.float32) / 255.0  # noqa: E731
    return (
        (scale(arrays["train_images"]), arrays["train_labels"].astype(np.int64)),
        (scale(arrays["test_images"]), arrays["test_labels"].astype(np.int64)),
    )


def hold_out(x: np.ndarray, y: np.ndarray, count: int, seed: int = 0):
    """Splits off `count` random examples as a validation set: (x, y), (x_val, y_val)."""
    if not 0 < count < len(x):
        raise ValueError(f"cannot hold out {count} of {len(x)} examples")
    order = np.random.default_rng(seed).permutation(len(x))
    val, train = order[:count], order[count:]
    return (x[train], y[train]), (x[val], y[val])
