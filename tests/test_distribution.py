"""Masks, θ_k and weights stay identical across replicas (Mirrored) and workers (MultiWorker)."""

import json
import os
import socket
import subprocess
import sys

import numpy as np

from tests.helpers.cli import ROOT

HELPER = "tests.helpers.distributed_lottery"


def _run(kind, out, env=None):
    return subprocess.Popen(
        [sys.executable, "-m", HELPER, kind, str(out)],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _finish(process):
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output[-3000:]


def _check_pruned(dump):
    masks = [k for k in dump.files if k.startswith("mask/")]
    assert masks and all(dump[k].sum() < dump[k].size for k in masks)


def test_mirrored_replicas_hold_identical_state(tmp_path):
    out = tmp_path / "mirrored.npz"
    _finish(_run("mirrored", out))
    dump = np.load(out)
    assert int(dump["replicas"]) == 2
    assert "fuse_steps needs a single replica; the model's MirroredStrategy has 2" in str(
        dump["fuse_refusal"]
    )
    _check_pruned(dump)
    components = [k for k in dump.files if k.startswith("var/") and k.endswith("/1")]
    assert components, "variables are not mirrored"
    for key in components:
        np.testing.assert_array_equal(dump[key], dump[key[:-1] + "0"], err_msg=key)


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _tf_configs(count):
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(count)]}
    return [json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}) for i in range(count)]


def test_multi_worker_workers_hold_identical_state(tmp_path):
    processes = [
        _run("multi_worker", tmp_path / f"worker{index}.npz", {"TF_CONFIG": tf_config})
        for index, tf_config in enumerate(_tf_configs(2))
    ]
    for process in processes:
        _finish(process)
    first, second = np.load(tmp_path / "worker0.npz"), np.load(tmp_path / "worker1.npz")
    assert int(first["replicas"]) == 2
    _check_pruned(first)
    assert first.files == second.files
    for key in first.files:
        np.testing.assert_array_equal(first[key], second[key], err_msg=key)


def test_suite_runs_multi_worker_and_only_the_chief_writes(tmp_path):
    command = [
        sys.executable,
        "-m",
        "experiments.lenet",
        "--dataset=synthetic",
        "--smoke",
        "--prune_iters=1",
        "--strategy=multi_worker",
        f"--output_dir={tmp_path}",
    ]
    processes = [
        subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, "TF_CONFIG": tf_config},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tf_config in _tf_configs(2)
    ]
    outputs = []
    for process in processes:
        out, err = process.communicate(timeout=600)
        assert process.returncode == 0, err[-3000:]
        outputs.append([l for l in out.splitlines() if l.startswith("|")])
    assert outputs[0] and outputs[0] == outputs[1]  # same weights remaining and accuracies
    (experiment,) = os.listdir(tmp_path)  # one experiment directory: the chief's
    assert experiment.startswith("lenet_synthetic-")
    run = tmp_path / experiment / "ticket" / "replicate_0"
    # The chief's two event files (HParams, rounds); the other worker's went to a temporary directory.
    assert len(os.listdir(run / "tensorboard")) == 2
    assert (run / "round_1" / "masks.npz").exists()
