"""Every input of the library and of the experiment flags: bad values are refused naming them, good ones run.

Property-based (hypothesis) over the arguments, plus the edge cases: rates of 0 and near 1,
zero rounds, no prunable layer, layers named alike, masks that do not fit, dtypes other
than float32 and empty data.
"""

import dataclasses
import functools
import math
import re

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lth_keras
from experiments import branches
from experiments import config as config_lib
from experiments import lenet, runner
from lth_keras import pipelines
from lth_keras.masks import count_to_prune, magnitude_prune
from lth_keras.model_state import loss_scale_variables, masked_variables
from lth_keras.wrapping import lottery_rates
from tests.conftest import StateProbe, compile_model, dense_data, dense_model, expected_remaining
from tests.helpers.cli import run_experiment

keras = lth_keras.keras
FEW = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
DENSE_RATES = {"fc1/kernel": 0.2, "fc2/kernel": 0.2, "out/kernel": 0.1}

valid_rates = st.one_of(st.just(0.0), st.just(0.999999), st.floats(0.0, 1.0, exclude_max=True))
bad_rates = st.one_of(
    st.floats(allow_nan=True).filter(lambda r: not 0.0 <= r < 1.0),
    st.just(1.0),
    st.just(float("nan")),
)
not_numbers = st.one_of(st.text(max_size=3), st.booleans(), st.lists(st.floats(), max_size=2))


@functools.lru_cache(maxsize=None)
def _plain_model():
    """One unwrapped dense model for the checks that do not train (they never change it)."""
    return dense_model()


def _names_value(error, value, name):
    """The error message names the argument and shows the value."""
    message = str(error.value)
    assert name in message, message
    assert repr(value) in message or str(value) in message, message


# --- prune_for_lottery ---------------------------------------------------------------

RATE_ARGUMENTS = ["pruning_rate", "output_pruning_rate", "conv_pruning_rate"]


@FEW
@given(argument=st.sampled_from(RATE_ARGUMENTS), rate=bad_rates)
def test_a_rate_outside_zero_to_one_is_refused_naming_it(argument, rate):
    with pytest.raises(ValueError) as error:
        lth_keras.prune_for_lottery(_plain_model(), **{argument: rate})
    _names_value(error, rate, argument)


@FEW
@given(argument=st.sampled_from(RATE_ARGUMENTS), rate=not_numbers)
def test_a_rate_that_is_no_number_is_refused_naming_it(argument, rate):
    with pytest.raises(TypeError) as error:
        lth_keras.prune_for_lottery(_plain_model(), **{argument: rate})
    _names_value(error, rate, argument)


@FEW
@given(fc=valid_rates, out=valid_rates, layer=valid_rates)
def test_valid_rates_go_to_the_layers_they_name(fc, out, layer):
    rates = lottery_rates(_plain_model(), fc, out, layer_pruning_rates={"fc2": layer})
    assert rates == {"fc1": fc, "fc2": layer, "out": out}


@FEW
@given(rate=st.one_of(bad_rates, not_numbers))
def test_a_bad_layer_rate_is_refused_naming_the_layer(rate):
    with pytest.raises((ValueError, TypeError)) as error:
        lth_keras.prune_for_lottery(_plain_model(), layer_pruning_rates={"fc2": rate})
    _names_value(error, rate, "layer_pruning_rates['fc2']")


@FEW
@given(scope=st.text(max_size=8).filter(lambda s: s not in ("layerwise", "global")))
def test_an_unknown_scope_is_refused_naming_it(scope):
    with pytest.raises(ValueError) as error:
        lth_keras.prune_for_lottery(_plain_model(), scope=scope)
    _names_value(error, scope, "scope")


@FEW
@given(names=st.lists(st.text(min_size=1, max_size=5), min_size=1, max_size=3))
def test_exclude_and_layer_rates_must_name_layers_of_the_model(names):
    unknown = sorted(set(names) - {"x", "fc1", "bn", "fc2", "out"})
    if not unknown:
        return
    for kwargs in ({"exclude": names}, {"layer_pruning_rates": {n: 0.1 for n in names}}):
        with pytest.raises(ValueError, match=re.escape(repr(unknown))):
            lth_keras.prune_for_lottery(_plain_model(), **kwargs)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"exclude": 3}, "`exclude` must be layer names, got 3"),
        ({"exclude": ["fc1", 2]}, "`exclude` must hold layer names.*got 2"),
        ({"layer_pruning_rates": [("fc1", 0.1)]}, "`layer_pruning_rates` must be a mapping"),
    ],
)
def test_badly_typed_exclude_and_layer_rates_are_refused(kwargs, match):
    with pytest.raises(TypeError, match=match):
        lth_keras.prune_for_lottery(_plain_model(), **kwargs)


def test_a_model_with_nothing_to_prune_is_refused_clearly():
    weightless = keras.Sequential(
        [keras.Input((4,)), keras.layers.Activation("relu", name="act")], name="flat"
    )
    with pytest.raises(ValueError, match=r"'flat' has no layer to prune among \['act \(Activation\)'\]"):
        lth_keras.prune_for_lottery(weightless)
    with pytest.raises(ValueError, match="no layer to prune"):
        lth_keras.prune_for_lottery(_plain_model(), exclude=["fc1", "fc2", "out"])


def _two_blocks(same_object: bool):
    """x -> block -> block -> out; the blocks are one nested model or two with a layer named alike."""
    first = keras.Sequential([keras.Input((20,)), keras.layers.Dense(20, name="d")], name="block_a")
    second = (
        first
        if same_object
        else keras.Sequential([keras.Input((20,)), keras.layers.Dense(20, name="d")], name="block_b")
    )
    inputs = keras.Input((20,))
    return keras.Model(inputs, keras.layers.Dense(4, name="out")(second(first(inputs))))


def test_two_layers_named_alike_in_nested_models_are_refused():
    with pytest.raises(ValueError, match="two different layers named 'd'"):
        lth_keras.prune_for_lottery(_two_blocks(same_object=False))


def test_a_nested_model_used_twice_is_one_layer_and_trains():
    model = compile_model(lth_keras.prune_for_lottery(_two_blocks(same_object=True)))
    ticket = lth_keras.LotteryTicketCallback(epochs_per_round=1, verbose=0)
    x, y = dense_data(64)
    model.fit(x, y, batch_size=32, epochs=2, callbacks=[ticket], verbose=0)
    assert {k: int(m.sum()) for k, m in ticket.masks.items()} == {
        "d/kernel": expected_remaining(400, 0.2, 1),
        "out/kernel": expected_remaining(80, 0.1, 1),
    }


# --- rates at the edges, through training ----------------------------------------------


def _train_rounds(model, rounds, extra_callbacks=(), **callback_kwargs):
    compile_model(model)
    ticket = lth_keras.LotteryTicketCallback(epochs_per_round=1, verbose=0, **callback_kwargs)
    probe = StateProbe()
    x, y = dense_data(64)
    model.fit(x, y, batch_size=32, epochs=rounds, callbacks=[ticket, probe, *extra_callbacks], verbose=0)
    return ticket, probe


def _assert_exact_rounds(ticket, probe, rates, rounds):
    """Exact counts at each round's start, pruned weights exactly 0, bit-exact rewinds to θ₀."""
    for round_index, (masks, snapshot, _, _) in enumerate(probe.epoch_begin[:rounds]):
        for key, mask in masks.items():
            assert int(mask.sum()) == expected_remaining(mask.size, rates[key], round_index), key
            assert not np.any(snapshot[key][mask == 0]), key
        for key, value in snapshot.items():
            expected = ticket.theta_0[key] * masks[key] if key in masks else ticket.theta_0[key]
            np.testing.assert_array_equal(value, expected.astype(value.dtype), err_msg=key)


@pytest.mark.parametrize("rate", [0.0, 0.999999])
def test_rates_of_zero_and_near_one_prune_exactly(rate):
    model = lth_keras.prune_for_lottery(dense_model(), pruning_rate=rate, output_pruning_rate=rate)
    ticket, probe = _train_rounds(model, rounds=3)
    _assert_exact_rounds(ticket, probe, dict.fromkeys(DENSE_RATES, rate), rounds=3)
    assert ticket.rounds[-1]["weights_remaining"] == (1.0 if rate == 0 else 0.0)


# --- dtypes other than float32 -----------------------------------------------------------


@pytest.fixture
def mixed_float16():
    keras.mixed_precision.set_global_policy("mixed_float16")
    yield
    keras.mixed_precision.set_global_policy("float32")


class LossScaleProbe(keras.callbacks.Callback):
    """Records the dynamic loss scale and its counter of good steps at each epoch's begin and end."""

    def __init__(self):
        super().__init__()
        self.at_epoch_begin, self.at_epoch_end = [], []

    def _values(self):
        return [v.numpy() for v in loss_scale_variables(self.model.optimizer)]

    def on_epoch_begin(self, epoch, logs=None):
        self.at_epoch_begin.append(self._values())

    def on_epoch_end(self, epoch, logs=None):
        self.at_epoch_end.append(self._values())


def test_mixed_float16_prunes_and_rewinds_exactly(mixed_float16):
    model = lth_keras.prune_for_lottery(dense_model())
    assert all(w.dtype == "float32" for w, _ in masked_variables(model).values())  # float32 variables
    loss_scale = LossScaleProbe()
    ticket, probe = _train_rounds(model, rounds=3, extra_callbacks=[loss_scale])
    _assert_exact_rounds(ticket, probe, DENSE_RATES, rounds=3)
    # Each round starts from the initial loss scale and counter, though each round moved them.
    initial = loss_scale.at_epoch_begin[0]
    assert len(initial) == 2
    assert all(any(v != i for v, i in zip(end, initial)) for end in loss_scale.at_epoch_end)
    for values in loss_scale.at_epoch_begin[1:]:
        for value, initial in zip(values, loss_scale.at_epoch_begin[0]):
            assert value == initial


def test_float64_layers_prune_and_rewind_exactly():
    inputs = keras.Input((20,))
    hidden = keras.layers.Dense(16, dtype="float64", name="fc1")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(4, name="out")(hidden))
    wrapped = lth_keras.prune_for_lottery(model)
    ticket, probe = _train_rounds(wrapped, rounds=3)
    assert ticket.theta_0["fc1/kernel"].dtype == np.float64
    _assert_exact_rounds(ticket, probe, {"fc1/kernel": 0.2, "out/kernel": 0.1}, rounds=3)


# --- LotteryTicketCallback ------------------------------------------------------------------

INT_ARGUMENTS = {"epochs_per_round": 1, "eval_batch_size": 1, "first_round": 0, "rewind_step": 0}


@FEW
@given(argument=st.sampled_from(sorted(INT_ARGUMENTS)), value=st.integers(-5, 5))
def test_callback_integers_below_their_minimum_are_refused_naming_them(argument, value):
    kwargs = {"epochs_per_round": 1, argument: value}
    if value < INT_ARGUMENTS[argument]:
        with pytest.raises(ValueError) as error:
            lth_keras.LotteryTicketCallback(**kwargs)
        _names_value(error, value, argument)
    else:
        assert getattr(lth_keras.LotteryTicketCallback(**kwargs), argument) == value


@FEW
@given(
    argument=st.sampled_from(sorted(INT_ARGUMENTS) + ["one_shot", "check_invariants", "verbose"]),
    value=st.one_of(st.floats(), st.text(max_size=3), st.lists(st.integers(), max_size=1)),
)
def test_callback_arguments_of_the_wrong_type_are_refused_naming_them(argument, value):
    with pytest.raises((TypeError, ValueError)) as error:
        lth_keras.LotteryTicketCallback(**{"epochs_per_round": 1, argument: value})
    assert argument in str(error.value)


EMPTY = (np.zeros((0, 20), np.float32), np.zeros((0,), np.int64))


@pytest.mark.parametrize("argument", ["validation_data", "test_data"])
@pytest.mark.parametrize(
    "data,error,match",
    [
        (EMPTY, ValueError, r"is empty \(0 examples\)"),
        (lambda: tf.data.Dataset.from_tensor_slices(EMPTY).batch(4), ValueError, "empty dataset"),
        ((np.zeros((5, 20)), np.zeros(3)), ValueError, "5 inputs but 3 labels"),
        (np.zeros((5, 20)), TypeError, r"one array of shape \(5, 20\)"),
        ((np.zeros((5, 20)), np.zeros(5), np.zeros(5)), TypeError, "got 3 items"),
    ],
    ids=["empty arrays", "empty dataset", "lengths differ", "lone array", "triple"],
)
def test_unusable_evaluation_data_is_refused_before_training(argument, data, error, match):
    if callable(data):
        data = data()
    with pytest.raises(error, match=f"`{argument}` .*{match}"):
        lth_keras.LotteryTicketCallback(epochs_per_round=1, **{argument: data})


# --- Masks, set_masks, magnitude_prune ------------------------------------------------------


@FEW
@given(value=st.floats(allow_nan=True).filter(lambda v: v not in (0.0, 1.0)))
def test_a_mask_value_other_than_zero_and_one_is_refused_naming_the_layer(value):
    with pytest.raises(ValueError, match="'fc1/kernel' holds values other than 0 and 1"):
        lth_keras.Masks({"fc1/kernel": np.array([1.0, value, 0.0])})


@pytest.mark.parametrize(
    "masks,match",
    [({3: np.ones(2)}, "got 3"), ({"a/kernel": np.array(["1", "0"])}, "'a/kernel'.*dtype <U1")],
)
def test_masks_with_bad_keys_or_dtypes_are_refused(masks, match):
    with pytest.raises(TypeError, match=match):
        lth_keras.Masks(masks)


def test_set_masks_refuses_extra_missing_and_misshapen_masks_naming_them():
    model = lth_keras.prune_for_lottery(dense_model())
    good = dict(lth_keras.get_masks(model))
    cases = [
        ({**good, "ghost/kernel": np.ones(3)}, r"entries for \['ghost/kernel'\], which the model lacks"),
        (
            {k: v for k, v in good.items() if k != "fc2/kernel"},
            r"no entry for the model's \['fc2/kernel'\]",
        ),
        ({**good, "out/kernel": np.ones((4, 12))}, r"'out/kernel' has shape \(4, 12\).*\(12, 4\)"),
    ]
    for masks, match in cases:
        with pytest.raises(ValueError, match=match):
            lth_keras.set_masks(model, masks)
    lth_keras.set_masks(model, good)


shapes = st.lists(st.integers(1, 6), min_size=1, max_size=3).map(tuple)


@FEW
@given(shape=shapes, rate=valid_rates, rounds=st.integers(0, 4), seed=st.integers(0, 2**16))
def test_magnitude_prune_removes_exactly_the_scheduled_count(shape, rate, rounds, seed):
    weights = {"w/kernel": np.random.default_rng(seed).normal(size=shape)}
    masks = {"w/kernel": np.ones(shape, np.float32)}
    for _ in range(rounds):
        new = magnitude_prune(weights, masks, {"w/kernel": rate}, [["w/kernel"]])
        surviving = int(masks["w/kernel"].sum())
        assert surviving - int(new["w/kernel"].sum()) == count_to_prune(surviving, rate)
        assert np.all(new["w/kernel"] <= masks["w/kernel"])
        masks = new


@pytest.mark.parametrize(
    "change,match",
    [
        (lambda w, m, r, g: r.update({"a": 1.5}), r"`rates\['a'\]` must be in \[0, 1\), got 1.5"),
        (lambda w, m, r, g: r.pop("a"), "'a' is in `groups` but has no entry in `rates`"),
        (lambda w, m, r, g: w.pop("a"), "'a' is in `groups` but has no entry in `weights`"),
        (lambda w, m, r, g: m.pop("a"), "'a' is in `groups` but has no entry in `masks`"),
        (lambda w, m, r, g: w.update({"a": np.ones(5)}), r"'a' has shape \(5,\) but its mask has \(4,\)"),
        (lambda w, m, r, g: g.append(["a"]), "'a' is in more than one group"),
        (lambda w, m, r, g: g.append([]), "empty group"),
    ],
    ids=["bad rate", "no rate", "no weight", "no mask", "shapes differ", "twice", "empty group"],
)
def test_magnitude_prune_refuses_inputs_that_do_not_fit_naming_the_weight(change, match):
    weights, masks, rates, groups = {"a": np.arange(4.0)}, {"a": np.ones(4)}, {"a": 0.5}, [["a"]]
    change(weights, masks, rates, groups)
    with pytest.raises((ValueError, TypeError), match=match):
        magnitude_prune(weights, masks, rates, groups)


# --- make_pipeline and training_stream ------------------------------------------------------


@FEW
@given(n=st.integers(1, 40), batch_size=st.integers(1, 50), training=st.booleans())
def test_pipelines_of_any_size_give_every_batch_or_refuse_naming_the_batch_size(n, batch_size, training):
    x, y = np.zeros((n, 3), np.float32), np.arange(n)
    if training and batch_size > n:
        with pytest.raises(ValueError, match=f"batch_size={batch_size}"):
            pipelines.make_pipeline(x, y, batch_size, training=training)
        return
    batches = list(pipelines.make_pipeline(x, y, batch_size, training=training))
    assert len(batches) == (n // batch_size if training else math.ceil(n / batch_size))


@pytest.mark.parametrize(
    "make", [pipelines.make_pipeline, pipelines.training_stream], ids=["pipeline", "stream"]
)
@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"x": EMPTY[0], "y": EMPTY[1]}, ValueError, r"empty dataset: x has shape \(0, 20\)"),
        ({"x": 5.0, "y": 3}, ValueError, "`x` must be an array of examples, got a scalar"),
        ({"seed": -1}, ValueError, "`seed` must be >= 0, got -1"),
        ({"seed": 2**63}, ValueError, "`seed` must be < 2\\*\\*63"),
        ({"seed": 1.5}, TypeError, "`seed` must be an integer >= 0, got 1.5"),
        ({"augment": "no"}, TypeError, "`augment` must be True or False, got 'no'"),
    ],
)
def test_pipeline_arguments_are_checked_naming_them(make, kwargs, error, match):
    arguments = {"x": np.zeros((8, 4, 4, 1), np.float32), "y": np.zeros(8), "batch_size": 2, **kwargs}
    if make is pipelines.make_pipeline:
        arguments["training"] = True
    with pytest.raises(error, match=match):
        make(**arguments)


def test_make_pipeline_refuses_a_training_flag_that_is_not_a_bool():
    with pytest.raises(TypeError, match="`training` must be True or False, got 'yes'"):
        pipelines.make_pipeline(np.zeros((4, 2)), np.zeros(4), 2, training="yes")


# --- experiments/config.py validate -----------------------------------------------------------

BASE = dataclasses.replace(lenet.DEFAULTS, iterations=1000, eval_every=100)

# flag -> a strategy of values validate must refuse for it
BAD_FLAGS = {
    "prune_rate": bad_rates,
    "conv_prune_rate": bad_rates,
    "output_prune_rate": bad_rates,
    "prune_iters": st.integers(max_value=-1),
    "iterations": st.integers(max_value=0),
    "batch_size": st.integers(max_value=0),
    "eval_every": st.integers(min_value=101, max_value=999).filter(lambda e: 1000 % e),
    "replicates": st.integers(max_value=0),
    "learning_rate": st.one_of(st.floats(max_value=0.0), st.just(math.inf), st.just(math.nan)),
    "weight_decay": st.one_of(st.floats(max_value=-1e-9), st.just(math.inf), st.just(math.nan)),
    "dropout": st.one_of(st.floats(min_value=1.0), st.floats(max_value=-1e-9)),
    "warmup": st.one_of(st.integers(max_value=-1), st.integers(min_value=1001)),
    "rewind_step": st.one_of(st.integers(max_value=-1), st.integers(min_value=1000), st.just(150)),
    "checkpoint_every": st.one_of(st.integers(max_value=0), st.just(150)),
    "validation_size": st.integers(max_value=0),
    "seed": st.one_of(st.integers(max_value=-1), st.integers(min_value=2**32)),
    "lr_drops": st.lists(st.integers(max_value=0), min_size=1, max_size=2).map(tuple),
    "scope": st.text(max_size=5).filter(lambda v: v not in config_lib.SCOPES),
    "optimizer": st.text(max_size=5).filter(lambda v: v not in config_lib.OPTIMIZERS),
    "strategy": st.text(max_size=5).filter(lambda v: v not in config_lib.STRATEGIES),
    "output_dir": st.just(""),
    "smoke": st.one_of(st.integers(), st.text(max_size=2)),
    "one_shot": st.integers(),
}


@settings(max_examples=60, deadline=None)
@given(data=st.data(), flag=st.sampled_from(sorted(BAD_FLAGS)))
def test_every_bad_flag_is_refused_naming_it(data, flag):
    value = data.draw(BAD_FLAGS[flag])
    config = dataclasses.replace(BASE, **{flag: value})
    with pytest.raises(ValueError, match=f"^--{flag}="):
        config_lib.validate(config)


@settings(max_examples=30, deadline=None)
@given(value=st.text(max_size=5).filter(lambda v: v not in branches.BRANCHES))
def test_a_bad_control_is_refused_by_the_branch_registry_naming_it(value):
    with pytest.raises(ValueError, match=f"^--control={re.escape(repr(value))}: must be one of"):
        branches.selected(value)


@FEW
@given(
    prune_iters=st.integers(0, 30),
    rate=valid_rates,
    eval_every=st.sampled_from([1, 10, 100, 500]),
    rewind_steps=st.integers(0, 9),
    seed=st.integers(0, 2**32 - 3),
    replicates=st.integers(1, 2),
)
def test_valid_flags_pass(prune_iters, rate, eval_every, rewind_steps, seed, replicates):
    config = dataclasses.replace(
        BASE,
        prune_iters=prune_iters,
        prune_rate=rate,
        conv_prune_rate=rate,
        output_prune_rate=rate,
        eval_every=eval_every,
        rewind_step=(rewind_steps * eval_every) % 1000,
        seed=seed,
        replicates=replicates,
    )
    config_lib.validate(config)


def test_a_newly_checked_flag_stops_the_script_with_exit_code_2(tmp_path):
    result = run_experiment("lenet", "--learning_rate=inf", f"--output_dir={tmp_path}", timeout=300)
    assert result.returncode == 2
    assert "error: --learning_rate=inf: must be a finite number > 0" in result.stderr
    assert not list(tmp_path.iterdir())


def test_zero_pruning_rounds_train_one_round(tmp_path):
    config = dataclasses.replace(
        lenet.DEFAULTS, dataset="synthetic", smoke=True, prune_iters=0, output_dir=str(tmp_path)
    )
    rounds = runner.train_and_evaluate(config)[0]  # validate lets --prune_iters=0 through
    assert [r["round"] for r in rounds] == [0]
    assert rounds[0]["weights_remaining"] == 1.0
