"""The offline readers on small files the tests write, load_dataset's sources and splits, make_pipeline."""

import time

import numpy as np
import pytest

from lth_keras import pipelines
from lth_keras.paper import datasets
from tests.conftest import write_dataset, write_idx


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


# --- load_dataset ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["fashion_mnist", "mnist"])
def test_load_dataset_reads_an_idx_directory(tmp_path, name):
    write_dataset(tmp_path)
    splits = datasets.load_dataset(name, data_dir=str(tmp_path), validation_size=20, seed=3)
    (x, y), (xv, yv), (xt, _) = splits.train, splits.validation, splits.test
    assert x.shape == (100, 28, 28, 1) and xv.shape == (20, 28, 28, 1) and xt.shape == (40, 28, 28, 1)
    assert splits.input_shape == (28, 28, 1) and splits.num_classes == 10
    assert x.dtype == np.float32 and y.dtype == np.int64 and 0.0 <= x.min() and x.max() == 1.0
    for images, labels in (splits.train, splits.validation, splits.test):
        np.testing.assert_array_equal(images[np.arange(len(labels)), labels, 0, 0], 1.0)
    (x_all, y_all), _ = datasets.load_idx_dataset(str(tmp_path))
    np.testing.assert_array_equal(np.sort(np.concatenate([y, yv])), np.sort(y_all))


def test_fashion_mnist_without_data_dir_reads_the_debian_copy_first(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "FASHION_MNIST_DIR", str(write_dataset(tmp_path)))
    splits = datasets.load_dataset("fashion_mnist", validation_size=0)
    assert splits.train[0].shape == (120, 28, 28, 1) and splits.test[0].shape == (40, 28, 28, 1)


def test_validation_split_sizes(tmp_path):
    write_dataset(tmp_path)
    load = lambda size, seed=0: datasets.load_dataset("mnist", str(tmp_path), validation_size=size, seed=seed)  # noqa: E731
    none = load(0)
    assert none.validation is None and len(none.train[0]) == 120
    one_left = load(119)
    assert len(one_left.train[0]) == 1 and len(one_left.validation[0]) == 119
    np.testing.assert_array_equal(load(30, seed=5).validation[1], load(30, seed=5).validation[1])
    assert not np.array_equal(load(30, seed=5).validation[0], load(30, seed=6).validation[0])
    for size in (120, 5000):
        with pytest.raises(ValueError, match=f"validation_size={size}.*120 training examples"):
            load(size)
    with pytest.raises(ValueError, match="validation_size"):
        load(-1)


def test_mnist1d_is_generated_locally_and_deterministically():
    numpy_state = np.random.get_state()[1].copy()
    first = datasets.load_dataset("mnist1d", validation_size=500, seed=1)
    (x, y), (xv, _), (xt, yt) = first.train, first.validation, first.test
    assert x.shape == (3500, 40) and xv.shape == (500, 40) and xt.shape == (1000, 40)
    assert first.input_shape == (40,) and first.num_classes == 10
    assert x.dtype == np.float32 and y.dtype == np.int64
    assert set(np.unique(y)) == set(range(10)) and set(np.unique(yt)) == set(range(10))
    np.testing.assert_array_equal(np.random.get_state()[1], numpy_state)  # global generator untouched
    again = datasets.load_dataset("mnist1d", validation_size=500, seed=1)
    for a, b in zip((first.train, first.validation, first.test), (again.train, again.validation, again.test)):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])


def test_unavailable_dataset_fails_fast_and_says_what_was_tried(tmp_path):
    start = time.monotonic()
    with pytest.raises(datasets.DatasetUnavailableError) as raised:
        datasets.load_dataset("cifar10", data_dir=str(tmp_path))
    elapsed = time.monotonic() - start
    assert elapsed < 30, f"the offline failure took {elapsed:.1f} s"
    message = str(raised.value)
    assert "cifar10" in message and "TFDS" in message and str(tmp_path) in message
    assert "--data_dir" in message and "TFDS_DATA_DIR" in message
    assert list(tmp_path.iterdir()) == []  # nothing downloaded, nothing created


def test_unavailable_fashion_mnist_lists_every_source(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "FASHION_MNIST_DIR", str(tmp_path / "no-debian-copy"))
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    with pytest.raises(datasets.DatasetUnavailableError) as raised:
        datasets.load_dataset("fashion_mnist")
    message = str(raised.value)
    assert "no-debian-copy" in message and str(tmp_path / "tfds") in message
    assert "apt-get install dataset-fashion-mnist" in message and "IDX" in message
    (tmp_path / "partial").mkdir()
    with pytest.raises(datasets.DatasetUnavailableError, match="partial has neither train-labels-idx1-ubyte"):
        write_idx(tmp_path / "partial" / "train-images-idx3-ubyte", np.zeros((1, 28, 28), np.uint8))
        datasets.load_dataset("mnist", data_dir=str(tmp_path / "partial"))


def prepare_tiny_tfds(tfds, builder_class, data_dir, n_train=12, n_test=5):
    """Prepares a few random examples in `data_dir` as TFDS's own builder would, offline."""

    class Tiny(builder_class, skip_registration=True):
        name = builder_class.name  # where TFDS puts the files, and which builder reads them
        code_path = None  # no checksums to look up (finding them needs importlib_resources)

        def _split_generators(self, dl_manager):
            return {"train": self._examples(n_train, 0), "test": self._examples(n_test, 1)}

        def _examples(self, n, seed):
            rng, features = np.random.default_rng(seed), self.info.features
            for i in range(n):
                image = rng.integers(0, 256, features["image"].shape, dtype=np.uint8)
                example = {"image": image, "label": i % 10}
                yield i, dict(example, id=str(i)) if "id" in features else example

    Tiny(data_dir=str(data_dir)).download_and_prepare(
        download_config=tfds.download.DownloadConfig(try_download_gcs=False)
    )


@pytest.mark.parametrize("name, shape", [("cifar10", (32, 32, 3)), ("mnist", (28, 28, 1))])
def test_a_prepared_tfds_dataset_is_read_and_scaled(tmp_path, monkeypatch, name, shape):
    tfds = pytest.importorskip("tensorflow_datasets")
    builder_class = {"cifar10": tfds.image_classification.Cifar10, "mnist": tfds.image_classification.MNIST}
    prepare_tiny_tfds(tfds, builder_class[name], tmp_path)
    splits = datasets.load_dataset(name, data_dir=str(tmp_path), validation_size=2)
    assert splits.train[0].shape == (10, *shape) and splits.test[0].shape == (5, *shape)
    assert splits.input_shape == shape and splits.num_classes == 10
    assert (
        splits.train[0].dtype == np.float32 and 0.0 <= splits.train[0].min() <= splits.train[0].max() <= 1.0
    )
    assert splits.train[1].dtype == np.int64
    np.testing.assert_array_equal(np.sort(splits.test[1]), np.sort(np.arange(5) % 10))
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))  # read when loading, not at import
    np.testing.assert_array_equal(datasets.load_dataset(name, validation_size=2).test[1], splits.test[1])


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="'imagenet'.*fashion_mnist.*mnist1d"):
        datasets.load_dataset("imagenet")


# --- make_pipeline -----------------------------------------------------------------------------


def _batches(dataset):
    return [(x.numpy(), y.numpy()) for x, y in dataset]


def _images(n=16, size=8):
    x = np.random.default_rng(0).uniform(0.1, 1.0, size=(n, size, size, 3)).astype(np.float32)
    return x, np.arange(n, dtype=np.int64)


def test_evaluation_pipeline_keeps_order_and_the_short_last_batch():
    x, y = _images(10)
    batches = _batches(pipelines.make_pipeline(x, y, batch_size=4, training=False))
    assert [len(b[1]) for b in batches] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), y)
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), x)


def test_training_pipeline_shuffles_deterministically_and_drops_the_remainder():
    x, y = _images(30)
    pipeline = pipelines.make_pipeline(x, y, batch_size=4, training=True, seed=7)
    epoch_1, epoch_2 = _batches(pipeline), _batches(pipeline)
    assert [len(b[1]) for b in epoch_1] == [4] * 7
    order_1 = np.concatenate([b[1] for b in epoch_1])
    assert len(set(order_1)) == 28 and not np.array_equal(order_1, np.arange(28))
    np.testing.assert_array_equal(np.concatenate([b[0] for b in epoch_1]), x[order_1])  # pairs kept
    assert not np.array_equal(order_1, np.concatenate([b[1] for b in epoch_2]))  # reshuffled
    same = _batches(pipelines.make_pipeline(x, y, batch_size=4, training=True, seed=7))
    np.testing.assert_array_equal(order_1, np.concatenate([b[1] for b in same]))
    other = _batches(pipelines.make_pipeline(x, y, batch_size=4, training=True, seed=8))
    assert not np.array_equal(order_1, np.concatenate([b[1] for b in other]))


def _crops_and_flips(image, pad=4):
    """Every image the CIFAR augmentation can make of `image`."""
    size = image.shape[0]
    padded = np.pad(image, [(pad, pad), (pad, pad), (0, 0)])
    for top in range(2 * pad + 1):
        for left in range(2 * pad + 1):
            crop = padded[top : top + size, left : left + size]
            yield crop
            yield crop[:, ::-1]


def test_augmentation_crops_and_flips_each_image_and_keeps_shapes():
    x, y = _images(16)
    pipeline = pipelines.make_pipeline(x, y, batch_size=4, training=True, seed=3, augment=True)
    epoch_1, epoch_2 = _batches(pipeline), _batches(pipeline)
    changed = 0
    for images, labels in epoch_1:
        assert images.shape == (4, 8, 8, 3) and images.dtype == np.float32
        for image, label in zip(images, labels):
            assert any(np.array_equal(image, c) for c in _crops_and_flips(x[label]))
            changed += not np.array_equal(image, x[label])
    assert changed >= 8  # 1 in 162 images is left as it was
    by_label = lambda epoch: {int(l): i for b in epoch for i, l in zip(*b)}  # noqa: E731
    assert any(not np.array_equal(by_label(epoch_1)[k], by_label(epoch_2)[k]) for k in range(16))
    same = pipelines.make_pipeline(x, y, batch_size=4, training=True, seed=3, augment=True)
    for (a, la), (b, lb) in zip(epoch_1, _batches(same)):
        np.testing.assert_array_equal(la, lb)
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("batch_size", [0, -3, 2.5, True, None])
def test_bad_batch_size_is_named(batch_size):
    x, y = _images(8)
    with pytest.raises(ValueError, match="batch_size"):
        pipelines.make_pipeline(x, y, batch_size=batch_size, training=True)


def test_pipeline_rejects_bad_data():
    x, y = _images(8)
    with pytest.raises(ValueError, match="8 inputs, 7 labels"):
        pipelines.make_pipeline(x, y[:7], batch_size=2, training=False)
    with pytest.raises(ValueError, match="empty"):
        pipelines.make_pipeline(x[:0], y[:0], batch_size=2, training=False)
    with pytest.raises(ValueError, match="batch_size=9"):
        pipelines.make_pipeline(x, y, batch_size=9, training=True)
    assert len(_batches(pipelines.make_pipeline(x, y, batch_size=9, training=False))) == 1
    with pytest.raises(ValueError, match="augment"):
        pipelines.make_pipeline(x.reshape(8, -1), y, batch_size=2, training=True, augment=True)
    with pytest.raises(ValueError, match="augment"):
        pipelines.make_pipeline(x, y, batch_size=2, training=False, augment=True)


def _first_batches(stream, count):
    return [(x.numpy(), y.numpy()) for x, y in stream.take(count)]


@pytest.mark.parametrize("augment", [False, True])
def test_training_stream_resumes_at_any_step_with_the_same_batches(augment):
    rng = np.random.default_rng(0)
    x = rng.random((50, 6, 6, 1)).astype(np.float32)
    y = np.arange(50)
    full = _first_batches(pipelines.training_stream(x, y, 8, seed=3, augment=augment), 20)  # 6 per epoch
    for start in (0, 5, 6, 13):
        resumed = _first_batches(
            pipelines.training_stream(x, y, 8, seed=3, augment=augment, start_step=start), 4
        )
        for (xa, ya), (xb, yb) in zip(full[start : start + 4], resumed):
            np.testing.assert_array_equal(xa, xb)
            np.testing.assert_array_equal(ya, yb)
    epochs = [np.sort(np.concatenate([b[1] for b in full[e * 6 : (e + 1) * 6]])) for e in range(3)]
    assert all(len(np.unique(labels)) == 48 for labels in epochs)  # no repeats within an epoch
    assert not np.array_equal(full[0][1], full[6][1])  # a new order each epoch
    other = _first_batches(pipelines.training_stream(x, y, 8, seed=4), 1)
    assert not np.array_equal(other[0][1], full[0][1])


@pytest.mark.parametrize("augment", [False, True])
@pytest.mark.parametrize("start", [0, 5])
def test_training_stream_stacks_the_same_batches_when_asked_for_several_per_element(augment, start):
    rng = np.random.default_rng(1)
    x = rng.random((50, 6, 6, 1)).astype(np.float32)
    y = np.arange(50)
    single = _first_batches(pipelines.training_stream(x, y, 8, seed=3, augment=augment, start_step=start), 12)
    stacked = _first_batches(
        pipelines.training_stream(x, y, 8, seed=3, augment=augment, start_step=start, steps_per_element=4), 3
    )
    for index, (xs, ys) in enumerate(stacked):  # across epoch ends (6 batches per epoch)
        assert xs.shape == (4, 8, 6, 6, 1) and ys.shape == (4, 8)
        for offset in range(4):
            np.testing.assert_array_equal(xs[offset], single[4 * index + offset][0])
            np.testing.assert_array_equal(ys[offset], single[4 * index + offset][1])


def test_training_stream_refuses_a_bad_start_step():
    with pytest.raises(ValueError, match="start_step"):
        pipelines.training_stream(np.zeros((10, 2)), np.zeros(10), 2, start_step=-1)
    with pytest.raises(ValueError, match="steps_per_element"):
        pipelines.training_stream(np.zeros((10, 2)), np.zeros(10), 2, steps_per_element=0)
    with pytest.raises(TypeError, match="steps_per_element"):
        pipelines.training_stream(np.zeros((10, 2)), np.zeros(10), 2, steps_per_element=2.0)


def test_pipelines_run_without_the_autotuner_thread():
    # Deleting an iterator waited on that thread: about a third of `fit` calls ended 0.5 s late.
    x, y = np.zeros((8, 4, 4, 1), np.float32), np.zeros(8)
    made = [
        pipelines.make_pipeline(x, y, 2, training=True, augment=True),
        pipelines.make_pipeline(x, y, 2, training=False),
        pipelines.training_stream(x, y, 2),
        pipelines.training_stream(x, y, 2, augment=True, steps_per_element=2),
        pipelines.training_stream(x, y, 2, steps_per_element=2),
    ]
    assert [pipeline.options().autotune.enabled for pipeline in made] == [False] * 5
