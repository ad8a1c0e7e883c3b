"""Round-boundary invariants: each is detected when broken, and a normal run passes them."""

import numpy as np
import pytest

import lth_keras
from lth_keras import callback as callback_module
from lth_keras.adapters import tf_keras as tf_keras_adapter
from lth_keras import invariants
from lth_keras.invariants import InvariantError
from lth_keras.masks import magnitude_prune
from lth_keras.model_state import masked_variables
from tests.conftest import compile_model, dense_data, dense_model

# --- the checks on plain arrays ------------------------------------------------------


def _pruned_once(rate=0.5):
    """(masks before, masks after, weights zeroed under the new masks, rates, groups)."""
    rng = np.random.default_rng(0)
    weights = {"a/kernel": rng.normal(size=(4, 5)), "b/kernel": rng.normal(size=(6,))}
    before = {key: np.ones_like(w, dtype=np.float32) for key, w in weights.items()}
    rates = {key: rate for key in weights}
    groups = [["a/kernel"], ["b/kernel"]]
    after = dict(magnitude_prune(weights, before, rates, groups))
    rewound = {key: weights[key] * after[key] for key in weights}
    return before, after, rewound, rates, groups


def test_a_genuine_pruning_passes():
    invariants.check_round_boundary(*_pruned_once())


def test_a_mask_value_other_than_zero_and_one_is_named():
    before, after, weights, rates, groups = _pruned_once()
    after["b/kernel"] = after["b/kernel"].copy()
    after["b/kernel"][0] = 0.5
    with pytest.raises(InvariantError, match="'b/kernel'.*other than 0 and 1"):
        invariants.check_round_boundary(before, after, weights, rates, groups)


def test_a_resurrected_weight_is_named():
    before, after, weights, rates, groups = _pruned_once()
    later = {key: m.copy() for key, m in after.items()}
    pruned = np.flatnonzero(after["a/kernel"] == 0)[0]
    later["a/kernel"].flat[pruned] = 1.0
    with pytest.raises(InvariantError, match="1 pruned weight.*'a/kernel' came back"):
        invariants.check_only_shrink(after, later)


def test_a_nonzero_weight_under_a_zero_mask_is_named():
    before, after, weights, rates, groups = _pruned_once()
    weights["a/kernel"].flat[np.flatnonzero(after["a/kernel"] == 0)[0]] = 1e-30
    with pytest.raises(InvariantError, match="pruned weight.*'a/kernel' are not exactly 0"):
        invariants.check_round_boundary(before, after, weights, rates, groups)


@pytest.mark.parametrize("change", [+1, -1], ids=["one kept too many", "one pruned too many"])
def test_a_count_off_the_schedule_is_named(change):
    before, after, weights, rates, groups = _pruned_once()
    mask = after["b/kernel"].copy()
    if change > 0:  # keep one more: fill a pruned slot, keeping `before` so it is no resurrection
        mask.flat[np.flatnonzero(mask == 0)[0]] = 1.0
    else:
        mask.flat[np.flatnonzero(mask == 1)[0]] = 0.0
    after["b/kernel"] = mask
    with pytest.raises(InvariantError, match=r"\['b/kernel'\].*must remove 3"):
        invariants.check_counts(before, after, rates, groups)


def test_global_groups_are_counted_together():
    before, _, _, rates, _ = _pruned_once(rate=0.2)
    weights = {key: np.arange(m.size, dtype=np.float32).reshape(m.shape) for key, m in before.items()}
    group = [["a/kernel", "b/kernel"]]
    after = magnitude_prune(weights, before, rates, group)
    invariants.check_counts(before, after, rates, group)  # 5 of the 26 in all
    with pytest.raises(InvariantError, match=r"\['a/kernel'\].*must remove 4"):  # not 4 of a's 20
        invariants.check_counts(before, after, rates, [["a/kernel"], ["b/kernel"]])


def test_a_changed_array_is_named_by_its_digest():
    theta = {"a/kernel": np.ones((3, 3), np.float32), "a/bias": np.zeros(3, np.float32)}
    digests = invariants.digests(theta)
    invariants.check_unchanged(theta, digests, "theta_0")
    theta["a/kernel"][1, 1] = np.nextafter(np.float32(1), np.float32(2))  # one ulp
    with pytest.raises(InvariantError, match=r"theta_0 changed.*\['a/kernel'\]"):
        invariants.check_unchanged(theta, digests, "theta_0")


def test_digests_see_dtype_and_shape():
    base = invariants.digests({"w": np.zeros(4, np.float32)})["w"]
    assert base != invariants.digests({"w": np.zeros(4, np.int32)})["w"]  # same bytes, other dtype
    assert base != invariants.digests({"w": np.zeros((2, 2), np.float32)})["w"]
    assert base == invariants.digests({"w": np.zeros(8, np.float32)[::2]})["w"]  # a strided view


# --- the checks inside the callback --------------------------------------------------


def _after_one_round(**callback_kwargs):
    """A model trained for round 0, its callback about to prune (at the next epoch's begin)."""
    model = compile_model(lth_keras.prune_for_lottery(dense_model(), pruning_rate=0.5))
    ticket = lth_keras.LotteryTicketCallback(epochs_per_round=1, verbose=0, **callback_kwargs)
    x, y = dense_data(64)
    model.fit(x, y, batch_size=32, epochs=1, callbacks=[ticket], verbose=0)
    assert ticket.state.pending_prune
    return model, ticket


def test_a_normal_run_passes_and_resumes_with_the_same_digests():
    model, ticket = _after_one_round()
    x, y = dense_data(64)
    model.fit(x, y, batch_size=32, epochs=3, initial_epoch=1, callbacks=[ticket], verbose=0)
    assert len(ticket.rounds) == 3
    state = ticket.state_dict()
    assert set(state["theta_digests"]) == {"theta_0"}
    resumed = lth_keras.LotteryTicketCallback(epochs_per_round=1, verbose=0)
    resumed.load_state(state, ticket.theta_0)
    assert resumed.state_dict()["theta_digests"] == state["theta_digests"]


def test_theta_0_corrupted_in_memory_is_detected_at_the_boundary():
    model, ticket = _after_one_round()
    ticket.theta_0["fc2/kernel"][0, 0] += 1.0
    with pytest.raises(InvariantError, match=r"theta_0 changed.*\['fc2/kernel'\]"):
        ticket.on_epoch_begin(1)


def test_a_theta_file_changed_between_save_and_resume_is_refused(tmp_path):
    _, ticket = _after_one_round()
    ticket.theta_0.save(str(tmp_path / "theta_0.npz"))
    state = ticket.state_dict()
    arrays = dict(lth_keras.WeightSnapshot.load(str(tmp_path / "theta_0.npz")))
    arrays["bn/gamma"] = arrays["bn/gamma"] * 2  # someone rewrote the file
    lth_keras.WeightSnapshot(arrays).save(str(tmp_path / "theta_0.npz"))
    resumed = lth_keras.LotteryTicketCallback(epochs_per_round=1, verbose=0)
    with pytest.raises(InvariantError, match=r"theta_0 given to load_state.*\['bn/gamma'\]"):
        resumed.load_state(state, lth_keras.WeightSnapshot.load(str(tmp_path / "theta_0.npz")))


def _tamper_with_pruning(monkeypatch, change):
    """Makes the callback's pruning step return masks altered by `change(masks_before, masks)`."""

    prune = callback_module.criteria.prune

    def tampered(criterion, weights, masks, rates, groups, **kwargs):
        result = {
            key: np.array(m) for key, m in prune(criterion, weights, masks, rates, groups, **kwargs).items()
        }
        change(masks, result)
        return lth_keras.Masks(result)

    monkeypatch.setattr(callback_module.criteria, "prune", tampered)


def _first_zero(mask):
    return np.flatnonzero(np.asarray(mask) == 0)[0]


def test_a_resurrected_mask_entry_is_detected(monkeypatch):
    model, ticket = _after_one_round()
    x, y = dense_data(64)
    model.fit(x, y, batch_size=32, epochs=2, initial_epoch=1, callbacks=[ticket], verbose=0)  # round 1
    pruned = _first_zero(masked_variables(model)["fc1/kernel"][1].numpy())  # a weight pruned before...

    def revive(before, after):
        after["fc1/kernel"].flat[pruned] = 1.0  # ...that pruning brings back

    _tamper_with_pruning(monkeypatch, revive)
    with pytest.raises(InvariantError, match="1 pruned weight.* of 'fc1/kernel' came back"):
        ticket.on_epoch_begin(2)


def test_a_mask_assigned_between_prunings_is_detected():
    model, ticket = _after_one_round()
    _, mask = masked_variables(model)["fc1/kernel"]
    killed = mask.numpy().copy()
    killed.flat[0] = 0.0  # not the callback's doing
    mask.assign(killed)
    with pytest.raises(InvariantError, match=r"mask of 'fc1/kernel' changed at 1 position\(s\)"):
        ticket.on_epoch_begin(1)


def test_a_count_off_the_schedule_is_detected(monkeypatch):
    model, ticket = _after_one_round()

    def prune_one_more(before, after):
        after["out/kernel"].flat[np.flatnonzero(after["out/kernel"])[0]] = 0.0

    _tamper_with_pruning(monkeypatch, prune_one_more)
    with pytest.raises(InvariantError, match=r"\['out/kernel'\].*must remove"):
        ticket.on_epoch_begin(1)


def test_a_nonzero_weight_under_a_zero_mask_is_detected(monkeypatch):
    model, ticket = _after_one_round()
    original = tf_keras_adapter.restore_snapshot

    def restore_then_leak(model, snapshot):
        original(model, snapshot)
        weight, mask = masked_variables(model)["fc2/kernel"]
        leaked = weight.numpy()
        leaked.flat[_first_zero(mask.numpy())] = 0.25
        weight.assign(leaked)

    monkeypatch.setattr(tf_keras_adapter, "restore_snapshot", restore_then_leak)
    with pytest.raises(InvariantError, match="'fc2/kernel' are not exactly 0"):
        ticket.on_epoch_begin(1)


def test_checks_can_be_switched_off(monkeypatch):
    model, ticket = _after_one_round(check_invariants=False)
    ticket.theta_0["fc2/kernel"][0, 0] += 1.0
    ticket.on_epoch_begin(1)  # no check, no error
    assert ticket.state_dict()["theta_digests"] == {}


class _SetsAPrunedWeight(lth_keras.keras.callbacks.Callback):
    """After round 1's last step, sets one pruned weight of fc1 to 0.5, as an optimizer that
    ignores variable constraints (or a hand-made change) would."""

    def on_train_batch_end(self, batch, logs=None):
        weight, mask = masked_variables(self.model)["fc1/kernel"]
        if batch == 1 and np.any(mask.numpy() == 0):
            leaked = weight.numpy()
            leaked.flat[_first_zero(mask.numpy())] = 0.5
            weight.assign(leaked)


def test_a_pruned_weight_changed_mid_round_is_detected_at_the_round_end():
    model = compile_model(lth_keras.prune_for_lottery(dense_model(), pruning_rate=0.5))
    ticket = lth_keras.LotteryTicketCallback(epochs_per_round=1, verbose=0)
    x, y = dense_data(64)
    with pytest.raises(InvariantError, match="'fc1/kernel' are not exactly 0 at the end of round 1"):
        model.fit(x, y, batch_size=32, epochs=2, callbacks=[ticket, _SetsAPrunedWeight()], verbose=0)
    assert [r["round"] for r in ticket.rounds] == [0]
