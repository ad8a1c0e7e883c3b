"""The paper's two controls for a ticket (random reinitialisation and random pruning), the
signs control (`reinit_keep_signs`: fresh magnitudes, θ₀'s signs; Zhou et al. 2019), and
ticket removal (`remove_ticket`: redraw a ticket's weights in the dense network).

Written once for both Kerases: what they read and write on the model goes through the
adapter of its framework (lth_keras.adapters), so a Keras 3 model on JAX or torch imports
no TensorFlow here.
"""

from typing import Callable, Mapping, Optional

import numpy as np

from lth_keras import adapters
from lth_keras.masks import Masks, random_masks_like
from lth_keras.validation import check_non_negative_int

# A pruned weight's redraw seed is seed * SEED_STRIDE + its position among the model's pruned
# weights: distinct per weight and per seed for any model with fewer weights than this.
SEED_STRIDE = 100003


def seeded_initializer(layer, name: str, seed: int):
    """A new instance of the initializer `layer` made its weight `name` with, seeded with `seed`.

    Through the initializer's own get_config/from_config, which both Kerases' initializers have.
    Raises ValueError naming the layer when it has no such initializer or the initializer
    takes no seed (a redraw would then not be reproducible).
    """
    attribute = f"{name}_initializer"
    initializer = getattr(layer, attribute, None)
    if initializer is None:
        raise ValueError(f"layer {layer.name!r} has no `{attribute}`: cannot redraw its {name!r} weights")
    config = initializer.get_config()
    if "seed" not in config:
        raise ValueError(
            f"layer {layer.name!r}: initializer {type(initializer).__name__} takes no seed, "
            "so a redraw would not be reproducible"
        )
    return type(initializer).from_config({**config, "seed": seed})


def seeded_initializers(weights, seed: int) -> list:
    """The seeded initializer of each of `weights` (an adapter's `pruned_weights`): weight i of
    the model draws with seed `seed * SEED_STRIDE + i`.

    All are made before anything is assigned, so that one without a seed is refused with the
    model untouched.
    """
    return [
        seeded_initializer(layer, name, seed * SEED_STRIDE + index)
        for index, (layer, name, _) in enumerate(weights)
    ]


def _assign_fresh_draws(
    model, seed: int, value_of: Callable[[str, np.ndarray], np.ndarray], masks=None
) -> None:
    """Draws each pruned weight afresh from its seeded initializer (`seeded_initializers`),
    assigns it `value_of(key, draw)`, then applies the masks. `masks`, when given, are set
    first, once every initializer is made (one without a seed leaves the model untouched)."""
    adapter = adapters.for_model(model)
    weights = adapter.pruned_weights(model)
    initializers = seeded_initializers(weights, seed)
    if masks is not None:
        adapter.set_masks(model, masks)
    for (layer, name, weight), initializer in zip(weights, initializers):
        draw = np.asarray(initializer(weight.shape, dtype=weight.dtype))
        weight.assign(np.asarray(value_of(f"{layer.name}/{name}", draw)).astype(draw.dtype))
    adapter.apply_masks_to_weights(model)


def reinit(model, seed: int, masks: Optional[Mapping[str, np.ndarray]] = None) -> None:
    """Random-reinit control: keep the mask, redraw the surviving weights.

    Each pruned weight is drawn afresh from its own layer's initializer with a seed
    derived from `seed` and the weight's position; then the mask is applied. Other
    weights (biases, batch-norm) are left as they are. Same seed, same weights.

    Args:
      model: a tf_keras or Keras 3 model prepared with `prune_for_lottery`.
      seed: integer >= 0.
      masks: masks to set first; default the model's current masks.
    """
    seed = check_non_negative_int(seed, "seed")
    _assign_fresh_draws(model, seed, lambda key, draw: draw, masks)


def remove_ticket(model, ticket_masks: Mapping[str, np.ndarray], seed: int) -> None:
    """Ticket removal: redraws the weights a ticket kept, leaving every other weight as it is.

    Each weight that `ticket_masks` keeps (1) is drawn afresh from its own layer's initializer,
    seeded as `reinit` seeds it; every other weight (the ticket's pruned positions, biases,
    batch-norm) keeps its value, e.g. θ₀ of a freshly built model. The model's own masks are
    not changed: on a dense model the next lottery run starts from the new weights.

    Args:
      model: a tf_keras or Keras 3 model prepared with `prune_for_lottery`.
      ticket_masks: the ticket's masks (e.g. a finished round's `Masks.load(round_dir)`).
      seed: integer >= 0; same seed, same weights.
    """
    seed = check_non_negative_int(seed, "seed")
    adapter = adapters.for_model(model)
    masks = Masks(ticket_masks)
    shapes = {key: tuple(weight.shape) for key, (weight, _) in adapter.masked_variables(model).items()}
    masks.check_matches(shapes, "ticket_masks")
    stored = adapter.get_stored_weights(model)
    _assign_fresh_draws(model, seed, lambda key, draw: np.where(masks[key] > 0, draw, stored[key]))


def reinit_keep_signs(
    model,
    theta_0: Mapping[str, np.ndarray],
    seed: int,
    masks: Optional[Mapping[str, np.ndarray]] = None,
) -> None:
    """Signs control ("reinit, keep sign", Zhou et al. 2019): the mask kept, each pruned weight
    a fresh magnitude with θ₀'s sign.

    The magnitudes are |draws| of each pruned weight's own layer initializer, seeded as
    `reinit` seeds them (so they are the magnitudes of `reinit`'s draws for the same seed);
    the signs are those of `theta_0` (a weight 0 in θ₀ gets 0). Then the mask is applied;
    other weights (biases, batch-norm) are left as they are.

    Args:
      model: a tf_keras or Keras 3 model prepared with `prune_for_lottery`.
      theta_0: the weights whose signs are kept (e.g. `callback.theta_0` or a loaded snapshot).
      seed: integer >= 0; same seed, same weights.
      masks: masks to set first; default the model's current masks.
    """
    seed = check_non_negative_int(seed, "seed")
    adapter = adapters.for_model(model)
    weights = adapter.pruned_weights(model)
    for layer, name, weight in weights:  # every check before anything changes
        key = f"{layer.name}/{name}"
        if key not in theta_0 or tuple(np.shape(theta_0[key])) != tuple(weight.shape):
            found = tuple(np.shape(theta_0[key])) if key in theta_0 else "no entry"
            raise ValueError(
                f"`theta_0` does not fit the model: {key!r} is {tuple(weight.shape)}, `theta_0` has {found}"
            )
    _assign_fresh_draws(model, seed, lambda key, draw: np.abs(draw) * np.sign(theta_0[key]), masks)


def random_prune(
    model,
    theta_0: Mapping[str, np.ndarray],
    seed: int,
    masks: Optional[Mapping[str, np.ndarray]] = None,
) -> Masks:
    """Random-pruning control: a random mask with the ticket's per-layer counts, weights θ₀.

    Args:
      model: a tf_keras or Keras 3 model prepared with `prune_for_lottery`.
      theta_0: the initial weights (e.g. `callback.theta_0` or a loaded snapshot).
      seed: integer >= 0; same seed, same mask.
      masks: the ticket's masks whose counts to copy; default the model's current masks.

    Returns:
      The random masks now set on the model.
    """
    seed = check_non_negative_int(seed, "seed")
    adapter = adapters.for_model(model)
    masks = adapter.get_masks(model) if masks is None else Masks(masks)
    masks.check_matches({k: tuple(w.shape) for k, (w, _) in adapter.masked_variables(model).items()})
    random = random_masks_like(masks, seed)
    adapter.set_masks(model, random)
    adapter.restore_snapshot(model, theta_0)
    return random
