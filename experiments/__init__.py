"""Experiment scripts: the papers' suites built on the lth_keras library."""
