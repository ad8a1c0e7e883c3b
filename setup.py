"""Installs lth_keras: lottery-ticket pruning for tf_keras on tfmot's wrappers."""

import setuptools

setuptools.setup(
    name="lth_keras",
    version="0.1.0",
    description=(
        "The Lottery Ticket Hypothesis as a Keras callback: iterative magnitude "
        "pruning with rewinding, built on tensorflow-model-optimization."
    ),
    packages=setuptools.find_packages(include=["lth_keras", "lth_keras.*", "experiments"]),
    python_requires=">=3.10",
    install_requires=[
        "tensorflow>=2.16",
        "tf-keras>=2.16",
        "tensorflow-model-optimization>=0.8",
        "tensorflow-datasets",
        "mnist1d",
        "absl-py",
        "tensorboard",
        "numpy",
    ],
    extras_require={
        "test": ["pytest>=7", "pytest-xdist>=3", "hypothesis", "ruff"],
        # lth_keras.keras3 on Keras 3's other backends (what `make keras3-envs` tests).
        "jax": ["keras>=3.15.1", "jax[cpu]>=0.10"],
        "torch": ["keras>=3.15.1", "torch>=2.13"],
    },
)
