"""The paper's datasets, offline: `load_dataset` gives numpy splits (`lth_keras.pipelines` feeds them to fit).

Readers for IDX files (MNIST, Fashion-MNIST) in any directory, datasets TFDS has
prepared, MNIST-1D generated locally, and MaxGroup, ours, generated (`make_maxgroup`).
Nothing is downloaded: a dataset no source holds raises DatasetUnavailableError saying how
to provide it.
"""

import dataclasses
import gzip
import importlib.util
import os
import random
from typing import Callable, List, Optional, Tuple

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


# ---------------------------------------------------------------------------
# One entry point for experiment scripts: load_dataset.
# ---------------------------------------------------------------------------

# Every known dataset has ten classes.
_NUM_CLASSES = {"fashion_mnist": 10, "mnist": 10, "cifar10": 10, "mnist1d": 10, "maxgroup": 10}
DATASETS = tuple(_NUM_CLASSES)  # the names load_dataset knows
# Each dataset's Splits.input_shape, known without loading it (a ticket transfer checks it first).
INPUT_SHAPES = {
    "fashion_mnist": (28, 28, 1),
    "mnist": (28, 28, 1),
    "cifar10": (32, 32, 3),
    "mnist1d": (40,),
    "maxgroup": (28, 28, 1),
}

Pair = Tuple[np.ndarray, np.ndarray]


class DatasetUnavailableError(RuntimeError):
    """No source could provide a dataset; the message says what was tried and how to provide it."""


class _SourceMissing(Exception):
    """One source does not hold the dataset (internal: the next source is tried)."""


@dataclasses.dataclass(frozen=True, eq=False)  # arrays do not compare as one bool
class Splits:
    """Numpy splits of one dataset, each an (x, y) pair; `validation` is None when none is held out.

    x is float32 and y int64. Image datasets always have a trailing channel axis:
    (28, 28, 1) for MNIST and Fashion-MNIST whatever the source, (32, 32, 3) for
    CIFAR-10, with pixels scaled to [0, 1]. MNIST-1D examples are vectors of shape
    (40,), standardised as the mnist1d package makes them (add a Reshape((40, 1))
    for Conv1D models).
    """

    train: Pair
    validation: Optional[Pair]
    test: Pair
    num_classes: int
    input_shape: Tuple[int, ...]


def _from_idx(directory: str) -> Tuple[Pair, Pair]:
    if not os.path.isdir(directory):
        raise _SourceMissing(f"IDX files in {directory}: no such directory")
    try:
        return load_idx_dataset(directory)
    except FileNotFoundError as e:
        raise _SourceMissing(f"IDX files in {directory}: {e}") from None


def _tfds_builder(name: str, data_dir: Optional[str]):
    """TFDS's builder of `name` in `data_dir` (None: TFDS_DATA_DIR or its default), if prepared there.

    Never downloads: without a prepared copy this fails at once. TFDS_DATA_DIR is read
    here, not when tensorflow_datasets was imported.
    """
    data_dir = data_dir or os.environ.get("TFDS_DATA_DIR") or None
    where = data_dir or "TFDS's default data dir"
    try:
        import tensorflow_datasets as tfds

        builder = tfds.builder(name, data_dir=data_dir)
        prepared = builder.is_prepared()
    except Exception as e:  # noqa: BLE001 - any failure here only means "not from TFDS"
        raise _SourceMissing(f"TFDS in {where}: {type(e).__name__}: {e}") from None
    if not prepared:
        raise _SourceMissing(f"TFDS: no prepared {name} in {builder.data_dir} (downloading is not attempted)")
    return builder


def _from_tfds(name: str, data_dir: Optional[str]) -> Tuple[Pair, Pair]:
    """The train and test splits of a dataset TFDS has prepared (see `_tfds_builder`)."""
    builder = _tfds_builder(name, data_dir)
    import tensorflow_datasets as tfds  # imported by _tfds_builder already

    splits = builder.as_dataset(split=["train", "test"], batch_size=-1, as_supervised=True)
    return tuple((np.asarray(x), np.asarray(y)) for x, y in tfds.as_numpy(splits))


def _make_mnist1d() -> Tuple[Pair, Pair]:
    """MNIST-1D generated locally with the package's default arguments (nothing downloaded)."""
    import mnist1d.data

    # make_dataset reseeds the global numpy and python generators: restore them afterwards.
    numpy_state, python_state = np.random.get_state(), random.getstate()
    try:
        data = mnist1d.data.make_dataset()
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)
    return (data["x"], data["y"]), (data["x_test"], data["y_test"])


# MaxGroup (seed 004 names a "MaxGroup" set without defining it; this is ours).
MAXGROUP_GRID = (2, 5)  # groups: 2 rows x 5 columns of blocks
MAXGROUP_BLOCK = (14, 5)  # each block 14 rows x 5 columns of pixels
MAXGROUP_COLUMNS = slice(1, 26)  # the blocks fill columns 1..25; columns 0, 26 and 27 stay 0
MAXGROUP_SIZES = (60000, 10000)  # train, test: as MNIST's
MAXGROUP_SEED = 0  # the one MaxGroup load_dataset gives


def make_maxgroup(train_size: int = MAXGROUP_SIZES[0], test_size: int = MAXGROUP_SIZES[1], seed: int = 0):
    """MaxGroup: 28x28 images whose label is the index of the pixel group with the largest sum.

    The 10 groups are blocks of 14 rows x 5 columns, in a 2 x 5 grid over rows 0..27 and
    columns 1..25, numbered row by row (group g: rows 14*(g // 5) ..., columns 1 + 5*(g % 5) ...);
    columns 0, 26 and 27 are 0. Each image draws a level u_g ~ U[0, 1) per group and each pixel
    p of group g is u_g * v_p, v_p ~ U[0, 1) independently; the label is argmax_g of the sum of
    group g's pixels (so it is exactly that, whatever the draw). A linear function of the
    pixels separates the classes, but neighbouring sums are close: LeNet-300-100 reaches ~84%
    test accuracy after 500 steps of Adam, not 100%.

    Deterministic by `seed` (NumPy's PCG64): the same seed gives the same arrays.
    Returns ((x_train, y_train), (x_test, y_test)), x float32 in [0, 1) of shape (n, 28, 28),
    y int64.
    """
    rng = np.random.default_rng(seed)

    def split(n):
        rows, columns = MAXGROUP_GRID
        height, width = MAXGROUP_BLOCK
        levels = rng.random((n, rows, 1, columns, 1), dtype=np.float32)
        blocks = rng.random((n, rows, height, columns, width), dtype=np.float32) * levels
        x = np.zeros((n, rows * height, 28), np.float32)
        x[:, :, MAXGROUP_COLUMNS] = blocks.reshape(n, rows * height, columns * width)
        labels = blocks.sum(axis=(2, 4)).reshape(n, rows * columns).argmax(axis=1)
        return x, labels.astype(np.int64)

    return split(train_size), split(test_size)


@dataclasses.dataclass(frozen=True)
class _Source:
    """One place a dataset may be: `load` reads it (raising _SourceMissing when it is not
    there), `found` only says whether it is there, without reading it."""

    load: Callable[[], Tuple[Pair, Pair]]
    found: Callable[[], bool]


def _found_by(probe: Callable[[], object]) -> Callable[[], bool]:
    """A source's `found`: whether `probe` (which raises as the source's `load` would) succeeds."""

    def found() -> bool:
        try:
            probe()
        except (_SourceMissing, FileNotFoundError):
            return False
        return True

    return found


def _idx_source(directory: Callable[[], str]) -> _Source:
    """The four IDX files in a directory (a callable: FASHION_MNIST_DIR is read when used)."""
    files = lambda: [_find(directory(), stem) for stem in IDX_FILES.values()]  # noqa: E731
    return _Source(lambda: _from_idx(directory()), _found_by(files))


def _sources(name: str, data_dir: Optional[str]) -> List[_Source]:
    """The places to look for `name`, in order."""
    tfds_source = _Source(
        lambda: _from_tfds(name, data_dir), _found_by(lambda: _tfds_builder(name, data_dir))
    )
    if name == "mnist1d":
        return [_Source(_make_mnist1d, lambda: importlib.util.find_spec("mnist1d") is not None)]
    if name == "maxgroup":
        return [_Source(lambda: make_maxgroup(seed=MAXGROUP_SEED), lambda: True)]
    if name == "cifar10":
        return [tfds_source]
    if data_dir is not None:
        return [_idx_source(lambda: data_dir), tfds_source]
    if name == "fashion_mnist":
        return [_idx_source(lambda: FASHION_MNIST_DIR), tfds_source]
    return [tfds_source]


def available_offline(data_dir: Optional[str] = None) -> List[str]:
    """The datasets `load_dataset` would find here with this `data_dir`, without reading them."""
    return [name for name in DATASETS if any(source.found() for source in _sources(name, data_dir))]


def _how_to_provide(name: str) -> str:
    ways = []
    if name == "fashion_mnist":
        ways.append(f"`apt-get install dataset-fashion-mnist` (IDX files in {FASHION_MNIST_DIR})")
    if name in ("fashion_mnist", "mnist"):
        ways.append("a directory with the four IDX files (train-images-idx3-ubyte[.gz], ...) via --data_dir")
    ways.append(
        f"a TFDS data dir where {name} was prepared elsewhere (e.g. `tfds build {name}` on a machine "
        "with internet), via --data_dir or the TFDS_DATA_DIR environment variable"
    )
    return "; or ".join(ways)


def _as_float_inputs(x: np.ndarray) -> np.ndarray:
    """float32 inputs; uint8 pixels scaled to [0, 1], single-channel images given a channel axis."""
    x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
    return x[..., None] if x.ndim == 3 else x


def load_dataset(
    name: str, data_dir: Optional[str] = None, validation_size: int = 5000, seed: int = 0
) -> Splits:
    """Train, validation and test splits of `name` as numpy arrays (see `Splits` for shapes).

    Sources, in order (nothing is ever downloaded):
      fashion_mnist, mnist: with `data_dir`, the four IDX files in it, else a TFDS data
        dir there; without it, for fashion_mnist the Debian copy in FASHION_MNIST_DIR,
        then TFDS (TFDS_DATA_DIR or ~/tensorflow_datasets).
      cifar10: TFDS, in `data_dir` or TFDS_DATA_DIR / ~/tensorflow_datasets.
      mnist1d: generated by the mnist1d package (4,000 train, 1,000 test); `data_dir`
        is not used.
      maxgroup: generated by `make_maxgroup` (60,000 train, 10,000 test; seed
        MAXGROUP_SEED); `data_dir` is not used.
    `validation_size` training examples are held out at random (seeded by `seed`);
    0 holds out none and `validation` is None.

    Raises:
      ValueError: an unknown name, or a validation_size the training set cannot give.
      DatasetUnavailableError: no source holds the dataset; says what was tried and how
        to provide it.
    """
    if name not in _NUM_CLASSES:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    if validation_size < 0:
        raise ValueError(f"validation_size must be >= 0, got {validation_size}")
    tried = []
    for source in _sources(name, data_dir):
        try:
            train, test = source.load()
            break
        except _SourceMissing as e:
            tried.append(str(e))
    else:
        raise DatasetUnavailableError(
            f"dataset {name!r} is not available. Tried:\n  - "
            + "\n  - ".join(tried)
            + f"\nTo provide it: {_how_to_provide(name)}."
            + f"\nAvailable offline here: {', '.join(available_offline(data_dir)) or 'none'}."
        )
    (x, y), (x_test, y_test) = [(_as_float_inputs(a), b.astype(np.int64)) for a, b in (train, test)]
    num_classes = _NUM_CLASSES[name]
    for labels in (y, y_test):
        if labels.size and not 0 <= labels.min() <= labels.max() < num_classes:
            raise ValueError(f"{name}: labels outside 0..{num_classes - 1}; is the data really {name}?")
    if validation_size >= len(x):
        raise ValueError(
            f"validation_size={validation_size} leaves no training data: "
            f"{name} has {len(x)} training examples"
        )
    validation = None
    if validation_size:
        (x, y), validation = hold_out(x, y, validation_size, seed=seed)
    return Splits((x, y), validation, (x_test, y_test), num_classes, tuple(int(d) for d in x.shape[1:]))
