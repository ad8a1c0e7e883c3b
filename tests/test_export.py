"""Exporting a ticket: lth_keras.export, reading the files back, and python -m experiments.export."""

import dataclasses
import os
import shutil
import sys

import numpy as np
import pytest
import tensorflow as tf

import lth_keras
from lth_keras import exported as exported_lib
from lth_keras import exporting
from tests.conftest import dense_model
from tests.helpers.cli import ROOT

keras = lth_keras.keras
NAMES = {"tflite": "m.tflite", "saved_model": "m_saved", "keras": "m.keras"}


def sparse_model(density: float = 0.1, seed: int = 0, inputs: int = 20, hidden: int = 16):
    """A lottery model with random masks keeping `density` of each kernel, and non-zero biases."""
    if (inputs, hidden) == (20, 16):
        model = dense_model(seed, batch_norm=False)
    else:
        model = keras.Sequential(
            [keras.Input((inputs,)), keras.layers.Dense(hidden, name="fc"), keras.layers.Dense(4, name="out")]
        )
    model = lth_keras.prune_for_lottery(model, pruning_rate=0.2)
    rng = np.random.default_rng(seed)
    masks = lth_keras.get_masks(model)
    lth_keras.set_masks(
        model, {k: (rng.random(v.shape) < density).astype(np.float32) for k, v in masks.items()}
    )
    for layer in model.layers:
        for weight in layer.weights:
            if "bias" in weight.name:
                weight.assign(rng.normal(size=weight.shape).astype(np.float32))
    return model


def kernels(model):
    plain = lth_keras.strip(model)
    return plain, [w.numpy() for w in plain.weights if "kernel" in w.name]


def stored_like(parameters, kernel):
    """The parameter read back from the file that holds `kernel` (TFLite stores it transposed)."""
    for value in parameters.values():
        for candidate in (value, value.T):
            if candidate.shape == kernel.shape:  # the test models' kernels have distinct shapes
                return candidate
    raise AssertionError(f"no parameter of shape {kernel.shape}: {list(parameters)}")


@pytest.mark.parametrize("format", exporting.FORMATS)
def test_export_predicts_as_the_stripped_model_and_its_file_holds_the_pruned_weights_as_zeros(
    tmp_path, format
):
    model = sparse_model()
    plain, expected = kernels(model)
    path = tmp_path / NAMES[format]
    written = lth_keras.export(model, path, format=format)
    assert written.path == str(path) and written.max_difference < 1e-5
    back = exported_lib.load_exported(str(path), format)
    x = np.random.default_rng(1).normal(size=(50, 20)).astype(np.float32)
    np.testing.assert_allclose(back.predict(x), plain.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
    for kernel in expected:
        np.testing.assert_array_equal(stored_like(back.parameters, kernel), kernel)  # zeros and values exact
    nonzero = sum(int(np.count_nonzero(w)) for w in plain.get_weights())
    assert sum(int(np.count_nonzero(v)) for v in back.parameters.values()) == nonzero
    assert os.listdir(tmp_path) == [path.name]  # nothing staged is left behind


def test_tflite_stores_sparse_weights_compressed_and_int8_smaller_still(tmp_path):
    model = sparse_model(density=0.05, inputs=200, hidden=64)  # 12,800 weights: int8 quantizes them
    _, (kernel, _) = kernels(model)
    dense_file = tmp_path / "dense.tflite"
    lth_keras.export(sparse_model(density=1.0, inputs=200, hidden=64), dense_file)
    lth_keras.export(model, tmp_path / "sparse.tflite")
    lth_keras.export(model, tmp_path / "int8.tflite", int8=True)
    size = {name: os.path.getsize(tmp_path / f"{name}.tflite") for name in ("dense", "sparse", "int8")}
    assert size["int8"] < size["sparse"] < size["dense"] / 3
    back = exported_lib.load_exported(str(tmp_path / "int8.tflite"), "tflite")
    stored = stored_like(back.parameters, kernel)
    assert np.all(stored[kernel == 0] == 0)  # pruned weights stay exactly 0 once quantized
    assert np.count_nonzero(stored) >= 0.99 * np.count_nonzero(kernel)  # (a few tiny ones round to 0)
    np.testing.assert_allclose(stored, kernel, atol=np.abs(kernel).max() / 100)  # int8: about 1/127


def test_a_round_directory_needs_a_round_model_and_uses_it(tmp_path):
    model = sparse_model()
    with pytest.raises(ValueError, match="round_model"):
        lth_keras.export(str(tmp_path), tmp_path / "m.keras", format="keras")
    written = lth_keras.export(
        str(tmp_path), tmp_path / "m.keras", format="keras", round_model=lambda d: model
    )
    assert os.path.exists(written.path)


def test_an_existing_path_is_refused_unless_overwrite(tmp_path):
    path = tmp_path / "m.tflite"
    path.write_bytes(b"mine")
    with pytest.raises(FileExistsError, match=str(path)):
        lth_keras.export(sparse_model(), path)
    assert path.read_bytes() == b"mine"
    lth_keras.export(sparse_model(), path, overwrite=True)
    assert path.read_bytes()[4:8] == b"TFL3"  # a TFLite flatbuffer now
    saved = tmp_path / "saved"
    lth_keras.export(sparse_model(), saved, format="saved_model")
    lth_keras.export(sparse_model(seed=1), saved, format="saved_model", overwrite=True)  # a directory too
    assert sorted(os.listdir(tmp_path)) == ["m.tflite", "saved"]


def test_bad_formats_and_options_are_refused_naming_them(tmp_path):
    with pytest.raises(ValueError, match="onnx"):
        lth_keras.export(sparse_model(), tmp_path / "m.onnx", format="onnx")
    with pytest.raises(ValueError, match="int8.*'keras'"):
        lth_keras.export(sparse_model(), tmp_path / "m.keras", format="keras", int8=True)
    assert os.listdir(tmp_path) == []


def test_a_tflite_interpreter_not_installed_is_refused_naming_the_package(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)  # `import ai_edge_litert` fails
    monkeypatch.delattr(tf.lite, "Interpreter")
    with pytest.raises(exported_lib.FormatNotInstalled, match="pip install ai-edge-litert"):
        lth_keras.export(sparse_model(), tmp_path / "m.tflite")
    assert os.listdir(tmp_path) == []


def test_tflite_for_a_keras_3_model_is_refused_naming_the_formats_it_has(tmp_path):
    import keras as keras3

    model = keras3.Sequential([keras3.Input((4,)), keras3.layers.Dense(2)])
    with pytest.raises(ValueError, match=r"format='tflite' is not offered for a Keras 3 model.*'keras'"):
        lth_keras.export(model, tmp_path / "m.tflite", format="tflite")
    assert os.listdir(tmp_path) == []


def test_an_export_that_disagrees_with_the_model_is_not_kept(tmp_path, monkeypatch):
    other = lth_keras.strip(sparse_model(seed=5))
    writers = dict(exporting._ADAPTERS["tf_keras"].writers)
    writers["keras"] = lambda model, path, int8: other.save(path)  # writes the wrong model
    monkeypatch.setitem(
        exporting._ADAPTERS, "tf_keras", dataclasses.replace(exporting._ADAPTERS["tf_keras"], writers=writers)
    )
    with pytest.raises(exporting.ExportMismatch, match="differs from the Keras model"):
        lth_keras.export(sparse_model(), tmp_path / "m.keras", format="keras")
    assert os.listdir(tmp_path) == []


def test_measure_counts_kept_parameters_and_sizes(tmp_path):
    model = sparse_model()
    lth_keras.export(model, tmp_path / "m.tflite")
    x = np.random.default_rng(2).normal(size=(30, 20)).astype(np.float32)
    y = lth_keras.strip(model).predict(x, verbose=0).argmax(axis=1)
    figures = exported_lib.measure(
        exported_lib.load_exported(str(tmp_path / "m.tflite"), "tflite"), x, y, runs=7
    )
    assert figures.accuracy == 1.0 and figures.runs == 7 and figures.latency > 0
    assert figures.size == os.path.getsize(tmp_path / "m.tflite") and 0 < figures.gzip_size
    plain = lth_keras.strip(model)
    assert figures.kept == sum(int(np.count_nonzero(w)) for w in plain.get_weights())


# --- python -m experiments.export on a real LeNet-300-100 ticket ------------------------


@pytest.fixture(scope="module")
def lenet_ticket(tmp_path_factory):
    """The experiment directory of a 3-round LeNet-300-100 ticket pruned 80% a round (hidden
    layers 100%, 20%, 4%), on generated data; round 2 keeps its checkpoint, round 1 does not."""
    from experiments import layout, runner
    from tests.helpers import lenet_runs

    config = dataclasses.replace(
        lenet_runs.SMALL_LENET, prune_iters=2, prune_rate=0.8, output_dir=str(tmp_path_factory.mktemp("runs"))
    )
    runner.train_and_evaluate(config)
    return layout.experiment_dir(config)


def test_sizes_shrink_with_sparsity_on_a_real_lenet_ticket(lenet_ticket, tmp_path):
    from experiments import export

    last = export.run(
        lenet_ticket, 2, formats=("tflite", "keras"), int8=True, out=str(tmp_path / "r2"), latency_runs=3
    )
    middle = export.run(
        lenet_ticket, 1, formats=("tflite",), out=str(tmp_path / "r1"), dense=False, latency_runs=3
    )
    dense, ticket = (last["figures"][label] for label in last["figures"])
    assert (
        "from its checkpoint" in last["weights"][1] and "retrained" in last["weights"][0]
    )  # round 0's is gone
    assert "retrained" in middle["weights"][0]
    (one,) = middle["figures"].values()
    assert ticket["tflite"]["size"] < one["tflite"]["size"] < dense["tflite"]["size"] / 2
    assert ticket["tflite_int8"]["size"] < ticket["tflite"]["size"]
    assert ticket["keras"]["gzip_size"] < dense["keras"]["gzip_size"] / 2
    assert ticket["keras"]["size"] == pytest.approx(dense["keras"]["size"], rel=0.01)  # zeros take full space
    assert ticket["tflite"]["kept"] < one["tflite"]["kept"] < dense["tflite"]["kept"]
    for name, figures in last["keras_test_accuracy"].items():  # float exports match Keras exactly
        assert (
            last["figures"][name]["tflite"]["accuracy"]
            == figures
            == last["figures"][name]["keras"]["accuracy"]
        )
    assert sorted(os.listdir(tmp_path / "r2")) == [
        "figures.json",
        "model.keras",
        "model.tflite",
        "model_int8.tflite",
    ]


def test_retraining_a_round_reproduces_its_checkpoint(lenet_ticket):
    from experiments import export

    round_2 = export.find_round(lenet_ticket, 0, 2)
    stored, how = export.round_model(round_2)
    retrained, how_retrained = export.round_model(round_2, force_retrain=True)
    assert "checkpoint" in how and "retrained" in how_retrained
    for a, b in zip(lth_keras.strip(stored).get_weights(), lth_keras.strip(retrained).get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_the_command_refuses_existing_outputs_unverified_files_and_unfinished_rounds(lenet_ticket, tmp_path):
    from experiments import export, integrity, layout

    out = tmp_path / "out"
    out.mkdir()
    (out / "model.tflite").write_bytes(b"mine")
    with pytest.raises(FileExistsError, match="model.tflite exists.*--overwrite"):
        export.run(lenet_ticket, 2, out=str(out))
    assert os.listdir(out) == ["model.tflite"]
    with pytest.raises(ValueError, match="--round=5: .* finished rounds 0 to 2"):
        export.run(lenet_ticket, 5, out=str(tmp_path / "none"))
    damaged = tmp_path / "damaged"
    shutil.copytree(lenet_ticket, damaged)
    masks = os.path.join(layout.round_dir(layout.run_dir(str(damaged), "ticket", 0), 2), "masks.npz")
    with open(masks, "r+b") as f:
        f.seek(100)
        f.write(b"\0\0\0\0")
    with pytest.raises(integrity.RunFileError, match=f"cannot use {masks}: damaged"):
        export.run(str(damaged), 2, out=str(tmp_path / "none"))
    assert not os.path.exists(tmp_path / "none")


def test_bad_flags_are_refused_in_one_line_before_tensorflow(tmp_path):
    import subprocess

    for flags, named in (
        (["--format=onnx"], "--format=onnx"),
        (["--format=keras", "--int8"], "--int8"),
        ([], "no "),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "experiments.export", str(tmp_path / "missing"), *flags],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 2, result.stderr
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith("error: ") and named in line
