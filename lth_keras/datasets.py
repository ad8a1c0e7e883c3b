"""Datasets for the experiments, offline: `load_dataset` for numpy splits, `make_pipeline` for tf.data.

Readers for IDX files (MNIST, Fashion-MNIST) in any directory, datasets TFDS has
prepared, and MNIST-1D generated locally. Nothing is downloaded: a dataset no
source holds raises DatasetUnavailableError saying how to provide it.
"""

import dataclasses
import gzip
import os
import random
from typing import Callable, List, Optional, Tuple

import numpy as np
import tensorflow as tf

from lth_keras.validation import check_bool, check_non_negative_int, check_positive_int, check_seed

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
# One entry point for experiment scripts: load_dataset and make_pipeline.
# ---------------------------------------------------------------------------

# Every known dataset has ten classes.
_NUM_CLASSES = {"fashion_mnist": 10, "mnist": 10, "cifar10": 10, "mnist1d": 10}
DATASETS = tuple(_NUM_CLASSES)  # the names load_dataset knows
CIFAR_PADDING = 4  # pixels of zero padding before the random crop

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


def _from_tfds(name: str, data_dir: Optional[str]) -> Tuple[Pair, Pair]:
    """A dataset TFDS has already prepared in `data_dir` (None: TFDS_DATA_DIR or its default).

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


def _sources(name: str, data_dir: Optional[str]) -> List[Callable[[], Tuple[Pair, Pair]]]:
    """The places to look for `name`, in order."""
    tfds_source = lambda: _from_tfds(name, data_dir)  # noqa: E731
    if name == "mnist1d":
        return [_make_mnist1d]
    if name == "cifar10":
        return [tfds_source]
    if data_dir is not None:
        return [lambda: _from_idx(data_dir), tfds_source]
    if name == "fashion_mnist":
        return [lambda: _from_idx(FASHION_MNIST_DIR), tfds_source]
    return [tfds_source]


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
            train, test = source()
            break
        except _SourceMissing as e:
            tried.append(str(e))
    else:
        raise DatasetUnavailableError(
            f"dataset {name!r} is not available. Tried:\n  - "
            + "\n  - ".join(tried)
            + f"\nTo provide it: {_how_to_provide(name)}."
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


def _augment_batch(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """CIFAR augmentation per image: random crop after zero padding, random horizontal flip."""
    batch, height, width = tf.shape(images)[0], images.shape[1], images.shape[2]
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    pad = CIFAR_PADDING
    padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    offsets = tf.random.stateless_uniform(
        [2, batch, 1], crop_seed, minval=0, maxval=2 * pad + 1, dtype=tf.int32
    )
    rows = offsets[0] + tf.range(height)  # (batch, height)
    cols = offsets[1] + tf.range(width)  # (batch, width)
    cropped = tf.gather(tf.gather(padded, rows, axis=1, batch_dims=1), cols, axis=2, batch_dims=1)
    flip = tf.random.stateless_uniform([batch, 1, 1, 1], flip_seed) < 0.5
    return tf.where(flip, tf.reverse(cropped, axis=[2]), cropped)


def _checked_arrays(x, y, batch_size, training: bool, augment: bool):
    """The arrays as numpy, after checking they can make the pipeline asked for."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    check_bool(training, "training")
    check_bool(augment, "augment")
    x, y = np.asarray(x), np.asarray(y)
    for array, name in ((x, "x"), (y, "y")):
        if array.ndim == 0:
            raise ValueError(f"`{name}` must be an array of examples, got a scalar {array!r}")
    if len(x) != len(y):
        raise ValueError(f"x and y differ in length: {len(x)} inputs, {len(y)} labels")
    if len(x) == 0:
        raise ValueError(f"cannot make a pipeline from an empty dataset: x has shape {x.shape}")
    if training and len(x) < batch_size:
        raise ValueError(f"batch_size={batch_size} exceeds the {len(x)} examples: no full batch to train on")
    if augment and not training:
        raise ValueError("augment=True only applies to training pipelines")
    if augment and x.ndim != 4:
        raise ValueError(f"augment=True needs images (n, height, width, channels), got shape {x.shape}")
    return x, y


def make_pipeline(
    x: np.ndarray, y: np.ndarray, batch_size: int, training: bool, seed: int = 0, augment: bool = False
) -> tf.data.Dataset:
    """A tf.data pipeline of (x, y) batches from numpy arrays.

    training=True: shuffled (seeded by `seed`, a new order each epoch), full batches
    only (drop_remainder), optionally augmented (`augment`: the standard CIFAR random
    crop with 4-pixel zero padding and horizontal flip, per image, seeded, different
    each epoch; needs images of shape (height, width, channels)); prefetched.
    training=False: in order, every example (the last batch may be short), prefetched.
    """
    x, y = _checked_arrays(x, y, batch_size, training, augment)
    check_seed(seed)
    x_all, y_all = tf.convert_to_tensor(x), tf.convert_to_tensor(y)
    indices = tf.data.Dataset.range(len(x))
    if training:
        indices = indices.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    indices = indices.batch(batch_size, drop_remainder=training)
    batches = indices.map(
        lambda i: (tf.gather(x_all, i), tf.gather(y_all, i)), num_parallel_calls=tf.data.AUTOTUNE
    )
    if augment:
        # One random seed per batch, drawn anew each epoch, deterministic given `seed`.
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        batches = tf.data.Dataset.zip((batches, seeds)).map(
            lambda xy, s: (_augment_batch(xy[0], s), xy[1]), num_parallel_calls=tf.data.AUTOTUNE
        )
    return _prefetched(batches)


def _prefetched(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """The pipeline, prefetched, without tf.data's autotuner thread (buffers still grow on demand).

    Measured here: with the autotuner, about half of all `evaluate` calls on 5,000 examples
    took 70 ms instead of 31, and about a third of `fit` calls ended 0.5 s late, both
    waiting on that thread when the iterator was deleted. Without it, same speed otherwise.
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(options)


STREAM_CHUNK = 64  # batches gathered at once by training_stream


def training_stream(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    seed: int = 0,
    augment: bool = False,
    start_step: int = 0,
    steps_per_element: int = 1,
) -> tf.data.Dataset:
    """An endless stream of shuffled training batches in which batch s depends only on (seed, s).

    Epoch e of the data is the permutation `stateless_shuffle(range(n), [seed, e])` cut
    into full batches, and augmentation of batch s is seeded by [seed, s]; so a run
    resumed at `start_step` sees exactly the batches an uninterrupted run would.
    `steps_per_element` > 1 stacks that many consecutive batches in each element (for a
    model trained by `lth_keras.fused_steps`); the batches are the same.
    """
    x, y = _checked_arrays(x, y, batch_size, True, augment)
    check_seed(seed)
    start_step = check_non_negative_int(start_step, "start_step")
    steps_per_element = check_positive_int(steps_per_element, "steps_per_element")
    x_all, y_all = tf.convert_to_tensor(x), tf.convert_to_tensor(y)
    count, per_epoch = len(x), len(x) // batch_size
    first_epoch, skip = divmod(start_step, per_epoch)

    def epoch_rows(epoch):
        order = tf.random.experimental.stateless_shuffle(
            tf.range(count, dtype=tf.int64), seed=tf.stack([tf.constant(seed, tf.int64), epoch])
        )
        return tf.data.Dataset.from_tensor_slices(
            tf.reshape(order[: per_epoch * batch_size], [per_epoch, batch_size])
        )

    endless = 2**62
    rows = tf.data.Dataset.range(first_epoch, endless).flat_map(epoch_rows).skip(skip)
    # One gather for many batches: tf.data's per-element work, not the copying, is what a
    # per-batch gather costs (benchmarks/round_speed.py).
    # Stacked elements come straight from one gather unless each batch is augmented first.
    stacked_at_once = steps_per_element > 1 and not augment
    gathered = steps_per_element if stacked_at_once else STREAM_CHUNK
    batches = rows.batch(gathered, drop_remainder=True).map(
        lambda r: (tf.gather(x_all, r), tf.gather(y_all, r))
    )
    if stacked_at_once:
        return _prefetched(batches)
    batches = batches.unbatch()
    if augment:
        steps = tf.data.Dataset.range(start_step, endless)
        batches = tf.data.Dataset.zip((batches, steps)).map(
            lambda xy, step: (_augment_batch(xy[0], tf.stack([tf.constant(seed, tf.int64), step])), xy[1]),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    if steps_per_element > 1:
        batches = batches.batch(steps_per_element, drop_remainder=True)
    return _prefetched(batches)
