"""Making a Keras 3 model's variables hold its current state before they are read or written.

While `fit` runs under JAX, the state lives in the train step's arrays, and Keras empties
the variables; it writes the arrays back at the end of each epoch, or when asked with
`model.jax_state_sync()`, and a train step reads the variables again after such a sync.
Every function of lth_keras.keras3 that reads or assigns a model's variables calls
`sync_state` first, so it is right in a callback between two batches too. On the other
backends the variables are the state, and this does nothing.
"""


def sync_state(model) -> None:
    """Writes a JAX model's in-flight training state back into its variables; else nothing.

    Example:
      >>> sync_state(model)  # in on_train_batch_end, before reading model.weights
    """
    sync = getattr(model, "jax_state_sync", None)
    if sync is not None:
        sync()
