"""A copy of a model's weights as plain arrays, by weight key: what θ₀ and θ_k are.

Plain NumPy, for every framework's adapter (lth_keras.adapters) to take and restore.
"""

from lth_keras import storage


class WeightSnapshot(storage.NamedArrays):
    """A copy of all of a model's weights (not its pruning bookkeeping), by weight key.

    Used for θ₀ and θ_k: restoring it is bit-exact. `save(path)` / `load(path)` use
    one .npz file.
    """

    def save(self, path: str) -> str:
        return self.save_file(path)

    @classmethod
    def load(cls, path: str) -> "WeightSnapshot":
        return cls.load_file(path)
