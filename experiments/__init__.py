"""Experiment scripts: the papers' suites built on the lth_keras library."""

import os

# TensorFlow's C++ info and warning lines (oneDNN, CUDA probing, graph optimizer notes)
# bury the round lines; errors still show. Set TF_CPP_MIN_LOG_LEVEL=0 to see them all.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
