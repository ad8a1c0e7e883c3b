"""Keras 3's TensorFlow, JAX and PyTorch backends side by side with lth_keras's tf_keras path.

    .venv/bin/python -m benchmarks.backends [--steps=200] [--conv_steps=2] [--repeats=5]

Three tables, every figure measured in the same run, interleaved:

1. LeNet-300-100 (784-300-100-10, batch 60, Adam 1.2e-3) ms per training step of the lottery
   model (`lth_keras.prune_for_lottery`) with its `LotteryTicketCallback`: on tf_keras by
   lth_keras's fastest path (XLA, steps_per_execution, `lth_keras.fuse_steps`, as the LeNet
   suite trains) and on each Keras 3 backend under each of its compile settings (XLA or
   jit where the backend has it, steps_per_execution where it allows more than 1), over
   the tf_keras row.
2. On each backend, the lottery model (alone, and with its callback) over the same model
   unwrapped under the same compile settings, for LeNet-300-100 and Conv-6 (CIFAR-shaped
   32x32x3 input, batch 60); the target is 1.05 or less.
3. Where a LeNet-300-100 step of JAX's `fit` goes: the same train step (Keras 3's stateless
   API) called from a Python loop, then a whole execution of steps in one jitted lax.scan,
   unwrapped, with a plain SGD update, with only the gradients masked; the split printed
   below it (callback, Keras's loop, one call per step, masking, Adam) is the median of
   the differences of neighbouring measurements (--noprofile leaves it out).

Each backend trains in a worker process of its own, in its venv: tf_keras and Keras 3 on
TensorFlow in .venv (KERAS_BACKEND=tensorflow for the latter), JAX in .venv-jax, PyTorch in
.venv-torch. Workers build, compile and warm up every model first (all at once), then time
one measurement at a time when this process asks, so the repeats of all backends
alternate and a shared machine's slow spells hit them alike. A measurement runs from the
start of a one-epoch `fit` to its end, as benchmarks/timing.py's timed_fit does, over ten
synthetic batches cached in memory (a cached tf.data pipeline on TensorFlow, the backend's
own tensors on JAX and PyTorch). A missing venv, or a worker that fails, is reported in
its rows and the rest goes on.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import List, Optional

from absl import app, flags

from benchmarks import timing
from lth_keras.callback_base import CallbackBase

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BACKENDS = ("tf_keras", "tensorflow", "jax", "torch")
KERAS_BACKENDS = {"tf_keras": "tensorflow", "tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}
NAMES = {
    "tf_keras": "tf_keras",
    "tensorflow": "Keras 3 TensorFlow",
    "jax": "Keras 3 JAX",
    "torch": "Keras 3 PyTorch",
}
# Each backend's compile settings by model. The first of a model's settings is the one its
# lottery/unwrapped rows use (on LeNet the fastest here; Conv-6 gets what the conv suites use:
# no XLA on TensorFlow, where XLA's convolutions are slower on a CPU); the others are timed for
# the LeNet table only. PyTorch allows steps_per_execution=1 only; jit_compile there is
# torch.compile. tf_keras runs LeNet only (benchmarks/step_time.py times its conv nets).
SETTINGS = {
    "tf_keras": {"lenet": ["xla+spe+fused"]},
    "tensorflow": {"lenet": ["xla+spe", "spe"], "conv6": ["spe"]},
    "jax": {"lenet": ["jit+spe"], "conv6": ["jit+spe"]},
    "torch": {"lenet": ["compile", "eager"], "conv6": ["eager"]},
}
# Settings whose lottery/unwrapped ratios are timed besides each model's first: the one the
# scripts train torch with (--backend=torch trains eagerly).
ALSO_RATIOS = {"torch": {"lenet": ["eager"]}}
COMPILE = {  # setting -> (jit_compile, uses --steps_per_execution, fuse_steps)
    "xla+spe+fused": (True, True, True),
    "xla+spe": (True, True, False),
    "jit+spe": (True, True, False),
    "spe": (False, True, False),
    "compile": (True, False, False),
    "eager": (False, False, False),
}
LABELS = {
    "xla+spe+fused": "XLA, steps_per_execution={spe}, fuse_steps",
    "xla+spe": "XLA, steps_per_execution={spe}",
    "jit+spe": "jit, steps_per_execution={spe}",
    "spe": "no XLA, steps_per_execution={spe}",
    "compile": "torch.compile (jit_compile=True)",
    "eager": "eager",
}
VARIANTS = ("unwrapped", "lottery", "lottery+callback")
MODEL_NAMES = {"lenet": "LeNet-300-100", "conv6": "Conv-6"}
INPUT_SHAPES = {"lenet": (784,), "conv6": (32, 32, 3)}
CACHED_BATCHES = 10
TARGET = 1.05
PROTOCOL = "@@"  # a worker's stdout lines for this process start with it; others are ignored

flags.DEFINE_integer("steps", 200, "LeNet-300-100 training steps per measurement.")
flags.DEFINE_integer("conv_steps", 2, "Conv-6 training steps per measurement.")
flags.DEFINE_integer("repeats", 5, "Measurements of each row, interleaved across backends.")
flags.DEFINE_integer("batch_size", 60, "Batch size (the paper's for LeNet and the conv nets).")
flags.DEFINE_integer(
    "steps_per_execution",
    50,
    "Keras's steps_per_execution where a setting uses it (capped at a measurement's steps).",
)
flags.DEFINE_list("models", ["lenet", "conv6"], "Models of the lottery/unwrapped table: lenet, conv6.")
flags.DEFINE_list("backends", list(BACKENDS), "Backends to run: tf_keras, tensorflow, jax, torch.")
flags.DEFINE_integer(
    "torch_threads",
    1,
    "torch.set_num_threads in the PyTorch worker; 0 leaves torch's default (one per core, whose "
    "OpenMP threads wait for each other and slowed a LeNet step about ten times here when the "
    "machine's other work took a core).",
)
flags.DEFINE_bool(
    "torch_compile",
    True,
    "Time LeNet-300-100 under torch.compile too (about 20 s to compile each of its three models here).",
)
flags.DEFINE_bool(
    "profile", True, "Also time LeNet-300-100's JAX train step outside Keras's loop: where a step goes."
)
flags.DEFINE_string(
    "tf_python", sys.executable, "Python of the tf_keras and Keras 3 TensorFlow workers (default: this one)."
)
flags.DEFINE_string("jax_python", ".venv-jax/bin/python", "Python of the JAX worker (relative: to the repo).")
flags.DEFINE_string(
    "torch_python", ".venv-torch/bin/python", "Python of the PyTorch worker (relative: to the repo)."
)
flags.DEFINE_enum("worker", None, list(BACKENDS), "Internal: run as the worker of this backend.")
FLAGS = flags.FLAGS


# ----------------------------------------------------------------------------- the worker


class _StartClock(CallbackBase):
    async_safe = True  # Keras 3: keeps fit's asynchronous dispatch as it would be without it

    def on_epoch_begin(self, epoch, logs=None):
        self.time = time.perf_counter()


class _StopClock(CallbackBase):
    async_safe = True

    def on_epoch_end(self, epoch, logs=None):  # Keras has the epoch's logs as numbers by now
        self.time = time.perf_counter()


def _timed_epoch(model, data, callbacks, **fit_kwargs) -> float:
    """Seconds from the start of a one-epoch fit's epoch to its end, callbacks included.

    timing.timed_fit's measurement, with clocks that either Keras's fit can call.
    """
    start, stop = _StartClock(), _StopClock()
    model.fit(data, epochs=1, verbose=0, callbacks=[start, *callbacks, stop], **fit_kwargs)
    return stop.time - start.time


def settings_of(backend: str) -> dict:
    """The backend's compile settings by model, without torch.compile under --notorch_compile."""
    if backend == "torch" and not FLAGS.torch_compile:
        return {
            model: [s for s in settings if s != "compile"] for model, settings in SETTINGS[backend].items()
        }
    return SETTINGS[backend]


def _steps(model_name: str) -> int:
    return FLAGS.steps if model_name == "lenet" else FLAGS.conv_steps


def _steps_per_execution(model_name: str, setting: str) -> int:
    return min(FLAGS.steps_per_execution, _steps(model_name)) if COMPILE[setting][1] else 1


def _cached_arrays(model_name: str):
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.random((CACHED_BATCHES * FLAGS.batch_size, *INPUT_SHAPES[model_name]), dtype=np.float32)
    return x, rng.integers(0, 10, size=len(x)).astype(np.int32)


def _tf_batches(model_name: str, block: int = 1):
    """The cached batches as a repeated tf.data pipeline; block > 1: `block` batches stacked."""
    from lth_keras import pipelines

    batches = pipelines.make_pipeline(*_cached_arrays(model_name), FLAGS.batch_size, training=True)
    batches = batches.cache().repeat()
    if block > 1:  # what a fused model trains on, each element the batches of one call
        batches = batches.batch(block, drop_remainder=True).take(CACHED_BATCHES).cache().repeat()
    return batches


def _tensor_batch_list(keras, model_name: str) -> list:
    """The cached batches as (x, y) backend tensors."""
    x, y = _cached_arrays(model_name)
    size = FLAGS.batch_size
    return [
        (keras.ops.convert_to_tensor(x[i : i + size]), keras.ops.convert_to_tensor(y[i : i + size]))
        for i in range(0, len(x), size)
    ]


def _tensor_batches(keras, model_name: str):
    """A function giving a new endless generator of the cached batches as backend tensors."""
    batches = _tensor_batch_list(keras, model_name)

    def generator():
        while True:
            yield from batches

    return generator


def _lottery_callback():
    import lth_keras

    return lth_keras.LotteryTicketCallback(epochs_per_round=10**6, verbose=0)  # a round longer than any run


def _keras(backend: str):
    """The Keras module of a worker: tf_keras, or Keras 3 (on the backend KERAS_BACKEND names)."""
    if backend == "tf_keras":
        import lth_keras

        return lth_keras.keras
    import keras

    return keras


def _model(backend: str, keras, model_name: str, variant: str):
    """The paper's model built with `keras`, prepared for the lottery unless `variant` is unwrapped."""
    import lth_keras
    from lth_keras.paper import models

    builder = {"lenet": models.lenet_300_100, "conv6": models.conv6}[model_name]
    keras_argument = {} if backend == "tf_keras" else {"keras": keras}
    model = builder(input_shape=INPUT_SHAPES[model_name], seed=0, **keras_argument)
    return model if variant == "unwrapped" else lth_keras.prune_for_lottery(model)


def _compiled(keras, model, model_name: str, setting: str):
    jit_compile, _, fused = COMPILE[setting]
    model.compile(
        optimizer=keras.optimizers.Adam(1.2e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        jit_compile=jit_compile,
        steps_per_execution=_steps_per_execution(model_name, setting),
    )
    if fused:
        import lth_keras

        lth_keras.fuse_steps(model)
    return model


def _data(backend: str, keras, model_name: str, setting: str):
    """A function giving the training data of one measurement, as each backend is fed best."""
    if backend not in ("tf_keras", "tensorflow"):
        return _tensor_batches(keras, model_name)
    block = _steps_per_execution(model_name, setting) if COMPILE[setting][2] else 1
    return lambda: _tf_batches(model_name, block)


def _timer(backend: str, keras, model_name: str, setting: str, variant: str):
    """Builds, compiles and warms up (traces, compiles) one case; returns a function timing it."""
    model = _compiled(keras, _model(backend, keras, model_name, variant), model_name, setting)
    data = _data(backend, keras, model_name, setting)
    callbacks = [_lottery_callback()] if variant == "lottery+callback" else []
    steps = _steps(model_name)
    _timed_epoch(model, data(), callbacks, steps_per_epoch=steps)
    return lambda: _timed_epoch(model, data(), callbacks, steps_per_epoch=steps)


# ----------------------------------------------------------------------------- JAX, outside fit

# LeNet-300-100's train step on JAX outside Keras's loop (Keras 3's public stateless API), to see
# where a step of `fit` goes: each `fit` step is one call of a jitted step from Python.
PROFILE = {
    "loop": "the lottery model's jitted train step called from a Python loop (no Keras loop)",
    "scan": "the lottery model's steps, an execution's worth in one jitted lax.scan (no per-step call)",
    "scan-unwrapped": "the same, unwrapped model (no masking)",
    "scan-sgd": "the same, lottery model, a plain SGD update instead of Adam",
    "scan-gradient-mask": "the same, unwrapped model, each kernel's gradient times a 0/1 mask before Adam",
}


def _jax_train_step(model, sgd: bool = False, mask_gradients: bool = False):
    """(state, (x, y)) -> (state, loss): the model's loss, gradients and optimizer update.

    mask_gradients: each kernel's gradient is multiplied by a random 0/1 mask before the update,
    the only multiply a mask needs while pruned weights are stored as 0 and their slots are 0.
    """
    import jax
    import numpy as np

    loss_function = model.loss
    rng = np.random.default_rng(0)
    masks = [
        jax.numpy.asarray(rng.random(weight.shape) < 0.5, weight.dtype)  # all ones would fold away
        if mask_gradients and weight.path.endswith("kernel")
        else None
        for weight in model.trainable_variables
    ]

    def loss_and_state(trainable, non_trainable, x, y):
        logits, non_trainable = model.stateless_call(trainable, non_trainable, x, training=True)
        return loss_function(y, logits), non_trainable

    gradients_of = jax.value_and_grad(loss_and_state, has_aux=True)

    def step(state, batch):
        trainable, non_trainable, optimizer_variables = state
        (loss, non_trainable), gradients = gradients_of(trainable, non_trainable, *batch)
        gradients = [g if mask is None else g * mask for g, mask in zip(gradients, masks)]
        if sgd:
            trainable = [weight - 1.2e-3 * gradient for weight, gradient in zip(trainable, gradients)]
        else:
            trainable, optimizer_variables = model.optimizer.stateless_apply(
                optimizer_variables, gradients, trainable
            )
        return (list(trainable), list(non_trainable), list(optimizer_variables)), loss

    return step


def _jax_state(model):
    """Copies of the model's and its optimizer's variables: a train step's state."""
    import jax

    model.optimizer.build(model.trainable_variables)
    variables = (model.trainable_variables, model.non_trainable_variables, model.optimizer.variables)
    return tuple([jax.numpy.copy(variable.value) for variable in group] for group in variables)  # donated


def _jax_profile_timer(keras, what: str):
    """Builds and warms up one of PROFILE's measurements of LeNet-300-100 on JAX."""
    import jax

    variant = "unwrapped" if what in ("scan-unwrapped", "scan-gradient-mask") else "lottery"
    model = _compiled(keras, _model("jax", keras, "lenet", variant), "lenet", "jit+spe")
    step = _jax_train_step(model, sgd=what == "scan-sgd", mask_gradients=what == "scan-gradient-mask")
    batches = _tensor_batch_list(keras, "lenet")
    steps, block = _steps("lenet"), _steps_per_execution("lenet", "jit+spe")
    state = [_jax_state(model)]
    if what == "loop":
        jitted = jax.jit(step, donate_argnums=0)

        def run():
            for index in range(steps):
                state[0], loss = jitted(state[0], batches[index % len(batches)])
            loss.block_until_ready()

    else:
        block_batches = [batches[index % len(batches)] for index in range(block)]
        stacked = [jax.numpy.stack(parts) for parts in zip(*block_batches)]  # xs, ys
        jitted = jax.jit(lambda state, xs, ys: jax.lax.scan(step, state, (xs, ys)), donate_argnums=0)

        def run():
            for _ in range(steps // block):
                state[0], losses = jitted(state[0], *stacked)
            losses.block_until_ready()

    run()  # trace, compile
    return lambda: timing.timed(run)


def ratio_settings_of(backend: str, model_name: str) -> List[str]:
    """The settings of a backend's model whose lottery/unwrapped ratios are timed (table 2)."""
    settings = settings_of(backend)[model_name]
    return [settings[0]] + [s for s in ALSO_RATIOS.get(backend, {}).get(model_name, []) if s in settings[1:]]


def case_keys(backend: str) -> List[str]:
    """The cases a backend times, as 'model/setting/variant': every variant under a model's first
    setting, the lottery model with its callback under its other (LeNet) settings."""
    keys = []
    for model_name, settings in settings_of(backend).items():
        if model_name in FLAGS.models:
            ratios = ratio_settings_of(backend, model_name)
            keys += [f"{model_name}/{setting}/{variant}" for setting in ratios for variant in VARIANTS]
            others = [setting for setting in settings if setting not in ratios]
            keys += [f"{model_name}/{setting}/lottery+callback" for setting in others]
    if backend == "jax" and "lenet" in FLAGS.models and FLAGS.profile:
        keys += [f"profile/{what}" for what in PROFILE]
    return keys


def _case_timer(backend: str, keras, key: str):
    if key.startswith("profile/"):
        return _jax_profile_timer(keras, key.split("/")[1])
    return _timer(backend, keras, *key.split("/"))


def _say(message: dict) -> None:
    print(PROTOCOL + json.dumps(message), flush=True)


def run_worker(backend: str) -> None:
    """Builds and warms up this backend's cases, then times the case named on each stdin line."""
    start = time.perf_counter()
    try:
        keras = _keras(backend)
        if backend == "torch" and FLAGS.torch_threads:
            import torch

            torch.set_num_threads(FLAGS.torch_threads)
        timers = {key: _case_timer(backend, keras, key) for key in case_keys(backend)}
    except Exception as e:  # reported in this backend's rows; the other backends go on
        _say({"error": f"{type(e).__name__}: {str(e).strip().splitlines()[0]}"})
        return
    _say({"ready_after": time.perf_counter() - start})
    for line in sys.stdin:
        _say({"seconds": timers[line.strip()]()})


# ----------------------------------------------------------------------------- this process


class Worker:
    """One backend's worker process: started at once, then asked for one measurement at a time."""

    def __init__(self, backend: str):
        self.backend = backend
        self.error: Optional[str] = None
        self.process = None
        python = _python(backend)
        if not os.path.exists(python):
            self.error = f"not measured: no {python} (`make keras3-envs` makes the Keras 3 venvs)"
            return
        self.stderr = tempfile.TemporaryFile(mode="w+")
        self.process = subprocess.Popen(
            [python, "-m", "benchmarks.backends", f"--worker={backend}", *_worker_flags()],
            cwd=ROOT,
            env=dict(os.environ, KERAS_BACKEND=KERAS_BACKENDS[backend], TF_CPP_MIN_LOG_LEVEL="3"),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
        )

    def wait_until_ready(self) -> Optional[float]:
        """Seconds the worker took to build, compile and warm up its cases; None if it failed."""
        reply = self._reply()
        if reply is not None and "error" in reply:
            self._fail(f"failed: {reply['error']}")
        return None if self.error else reply["ready_after"]

    def measure(self, key: str) -> Optional[float]:
        """Seconds of one measurement of case `key`; None once the worker has failed."""
        if self.error:
            return None
        self.process.stdin.write(key + "\n")
        self.process.stdin.flush()
        reply = self._reply()
        return None if reply is None else reply["seconds"]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.stdin.close()  # the worker's loop over its stdin ends
            self.process.wait(timeout=120)

    def _reply(self) -> Optional[dict]:
        if self.error:
            return None
        for line in self.process.stdout:
            if line.startswith(PROTOCOL):
                return json.loads(line[len(PROTOCOL) :])
        self._fail(f"failed: the worker exited ({self._last_error_line()})")
        return None

    def _fail(self, message: str) -> None:
        self.error = message
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def _last_error_line(self) -> str:
        self.stderr.seek(0)
        lines = [line.strip() for line in self.stderr.read().splitlines() if line.strip()]
        return lines[-1] if lines else "no message"


def _python(backend: str) -> str:
    python = {"jax": FLAGS.jax_python, "torch": FLAGS.torch_python}.get(backend, FLAGS.tf_python)
    return os.path.join(ROOT, python)  # an absolute path stays as it is


def _worker_flags() -> List[str]:
    """This run's flags that shape a worker's cases, for its command line."""
    names = (
        "steps",
        "conv_steps",
        "batch_size",
        "steps_per_execution",
        "models",
        "torch_threads",
        "torch_compile",
        "profile",
    )
    values = {name: FLAGS[name].value for name in names}
    return [f"--{name}={','.join(v) if isinstance(v, list) else v}" for name, v in values.items()]


def measure_all(backends) -> tuple:
    """Starts every backend's worker, then times every case of all of them, interleaved.

    Returns (workers by backend, seconds by (backend, case key), failed samples left out).
    """
    workers = {backend: Worker(backend) for backend in backends}  # their warm-ups overlap
    ready = {backend: worker.wait_until_ready() for backend, worker in workers.items()}
    took = ", ".join(
        f"{backend} {seconds:.0f} s" for backend, seconds in ready.items() if seconds is not None
    )
    print(f"workers built, compiled and warmed up their models (at once): {took}", flush=True)
    runs = {
        (backend, key): (lambda worker=worker, key=key: worker.measure(key))
        for backend, worker in workers.items()
        if not worker.error
        for key in case_keys(backend)
    }
    try:
        seconds = timing.interleaved(runs, FLAGS.repeats)
    finally:
        for worker in workers.values():
            worker.stop()
    return workers, {case: [s for s in samples if s is not None] for case, samples in seconds.items()}


def _setting_label(model_name: str, setting: str) -> str:
    return LABELS[setting].format(spe=_steps_per_execution(model_name, setting))


def _row(cells) -> str:
    return "| " + " | ".join(cells) + " |"


def _samples(seconds, workers, backend: str, key: str) -> Optional[List[float]]:
    """The case's samples, or None if its worker failed (its error then stands in the row)."""
    samples = seconds.get((backend, key))
    return samples if samples and not workers[backend].error else None


def backend_table(workers, seconds) -> List[str]:
    """Table 1: LeNet-300-100 ms per step of the lottery model with its callback, per backend."""
    per_step = 1000.0 / FLAGS.steps
    reference = _samples(seconds, workers, "tf_keras", "lenet/xla+spe+fused/lottery+callback")
    lines = [
        _row(["Keras, backend", "compile settings", "ms/step median (min–max)", "/ tf_keras fused"]),
        "|---|---|---:|---|",
    ]
    fastest_keras3 = None
    for backend, worker in workers.items():
        for setting in settings_of(backend)["lenet"]:
            samples = _samples(seconds, workers, backend, f"lenet/{setting}/lottery+callback")
            if samples is None:
                lines.append(_row([NAMES[backend], _setting_label("lenet", setting), worker.error, "–"]))
                continue
            versus = timing.ratio(samples, reference) if reference else "–"
            lines.append(
                _row(
                    [
                        NAMES[backend],
                        _setting_label("lenet", setting),
                        timing.summary(samples, per_step),
                        versus,
                    ]
                )
            )
            median = statistics.median(samples)
            if backend != "tf_keras" and (fastest_keras3 is None or median < fastest_keras3[0]):
                fastest_keras3 = (median, backend, setting, samples)
    lines.append("")
    lines.append(_fastest_verdict(fastest_keras3, reference))
    return lines


def _fastest_verdict(fastest, reference) -> str:
    if fastest is None or reference is None:
        return "Fastest Keras 3 backend against tf_keras fused: not measured."
    _, backend, setting, samples = fastest
    ratio = timing.paired_median_ratio(samples, reference)
    met = "met" if ratio <= 1.0 else "NOT met"
    return (
        f"Fastest Keras 3 backend: {NAMES[backend]} ({_setting_label('lenet', setting)}), "
        f"{ratio:.3f}× tf_keras fused (median of pairs): goal ≤ 1.00 {met}."
    )


def _lottery_row(workers, seconds, backend: str, model_name: str, setting: str) -> str:
    prefix = [NAMES[backend], MODEL_NAMES[model_name], _setting_label(model_name, setting)]
    keys = [f"{model_name}/{setting}/{variant}" for variant in VARIANTS]
    unwrapped, lottery, with_callback = (_samples(seconds, workers, backend, key) for key in keys)
    if None in (unwrapped, lottery, with_callback):
        return _row(prefix + [workers[backend].error or "failed", "–", "–", "–"])
    ratio = timing.paired_median_ratio(with_callback, unwrapped)
    cells = [
        timing.summary(unwrapped, 1000.0 / _steps(model_name)),
        timing.ratio(lottery, unwrapped),
        timing.ratio(with_callback, unwrapped),
        "yes" if ratio <= TARGET else "NO",
    ]
    return _row(prefix + cells)


def lottery_table(workers, seconds) -> List[str]:
    """Table 2: the lottery model, alone and with its callback, over the unwrapped model."""
    lines = [
        _row(
            [
                "Keras, backend",
                "model",
                "compile settings",
                "unwrapped ms/step median (min–max)",
                "lottery / unwrapped",
                "lottery + callback / unwrapped",
                f"≤ {TARGET}",
            ]
        ),
        "|---|---|---|---:|---|---|---|",
    ]
    for backend in workers:
        for model_name in settings_of(backend):
            if model_name not in FLAGS.models:
                continue
            for setting in ratio_settings_of(backend, model_name):
                lines.append(_lottery_row(workers, seconds, backend, model_name, setting))
    return lines


def _paired_difference_ms(a: List[float], b: List[float]) -> float:
    """Median of a - b over the repeats (each pair measured close in time), ms per LeNet step."""
    return 1000.0 * statistics.median(x - y for x, y in zip(a, b)) / FLAGS.steps


def jax_profile_table(workers, seconds) -> List[str]:
    """Table 3: where a LeNet-300-100 step of `fit` on JAX goes, against steps outside fit."""
    fit = {variant: f"lenet/jit+spe/{variant}" for variant in VARIANTS}
    rows = [("jax", fit["lottery+callback"], "fit: the lottery model with its callback (table 1)")]
    rows += [("jax", fit["lottery"], "fit: the lottery model"), ("jax", fit["unwrapped"], "fit: unwrapped")]
    rows += [("jax", f"profile/{what}", text) for what, text in PROFILE.items()]
    rows += [
        ("tf_keras", "lenet/xla+spe+fused/lottery+callback", "tf_keras fused, lottery model and callback")
    ]
    lines = [_row(["LeNet-300-100 on JAX", "ms/step median (min–max)"]), "|---|---:|"]
    measured = {}
    for backend, key, text in rows:
        samples = _samples(seconds, workers, backend, key) if backend in workers else None
        if samples is None:
            lines.append(_row([text, "not measured"]))
            continue
        lines.append(_row([text, timing.summary(samples, 1000.0 / FLAGS.steps)]))
        measured[key] = samples
    parts = {
        "the callback": (fit["lottery+callback"], fit["lottery"]),
        "Keras's loop around a step (data iterator, state, logs)": (fit["lottery"], "profile/loop"),
        "calling a jitted step once per step": ("profile/loop", "profile/scan"),
        "masking (LotteryMask)": ("profile/scan", "profile/scan-unwrapped"),
        "masking the gradients only": ("profile/scan-gradient-mask", "profile/scan-unwrapped"),
        "Adam over a plain SGD update": ("profile/scan", "profile/scan-sgd"),
    }
    split = [
        f"{name} {_paired_difference_ms(measured[a], measured[b]):+.3f}"
        for name, (a, b) in parts.items()
        if a in measured and b in measured
    ]
    if split:
        lines += [
            "",
            "ms per step (medians of the differences of repeats measured one after the other): "
            + "; ".join(split)
            + ".",
        ]
    return lines


def _load() -> str:
    return "load average " + ", ".join(f"{value:.2f}" for value in os.getloadavg())


def _check_flags() -> None:
    for name, known in (("models", MODEL_NAMES), ("backends", BACKENDS)):
        unknown = sorted(set(FLAGS[name].value) - set(known))
        if unknown:
            raise app.UsageError(f"--{name}: unknown {', '.join(unknown)} (known: {', '.join(known)})")
    block = _steps_per_execution("lenet", "jit+spe")
    if FLAGS.steps % block:
        raise app.UsageError(
            f"--steps={FLAGS.steps} must be a multiple of --steps_per_execution={block}: fused steps "
            "train whole executions"
        )


def main(argv):
    del argv
    if FLAGS.worker:
        run_worker(FLAGS.worker)
        return
    _check_flags()
    steps = [f"{_steps(name)} {MODEL_NAMES[name]}" for name in MODEL_NAMES if name in FLAGS.models]
    print(
        f"{' and '.join(steps)} steps a measurement (batch {FLAGS.batch_size}, Adam 1.2e-3), "
        f"{FLAGS.repeats} repeats interleaved across backends; {_load()} at the start",
        flush=True,
    )
    workers, seconds = measure_all(FLAGS.backends)
    if "lenet" in FLAGS.models:
        print("\nLeNet-300-100, the lottery model with its callback:\n")
        print("\n".join(backend_table(workers, seconds)))
    print("\nThe lottery model, alone and with its callback, over the same model unwrapped:\n")
    print("\n".join(lottery_table(workers, seconds)))
    if "jax" in workers and "lenet" in FLAGS.models and FLAGS.profile:
        print("\nWhere a LeNet-300-100 step goes on JAX (fit, and the same train step outside it):\n")
        print("\n".join(jax_profile_table(workers, seconds)))
    print(f"\n{_load()} at the end")


if __name__ == "__main__":
    app.run(main)
