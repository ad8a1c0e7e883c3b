"""Makes Bazel-built Python programs import the project only from their runfiles.

The virtualenv holds an editable install of the project (`pip install -e .`), whose import
hook finds lth_keras and experiments modules in the source checkout. Under Bazel that hides
a missing dep: a module left out of a target's runfiles would still import, from the
checkout. Python imports this module at start-up (after the virtualenv's .pth files) when
it is on sys.path, which a Bazel launcher arranges for targets that depend on
//tools/bazel:hermetic_imports, and PYTHONPATH passes on to subprocesses (`python -m
experiments.lenet` in a test). It removes that hook, then runs any other sitecustomize
module further down sys.path, as Python would have.
"""

import importlib.util
import os
import sys


def _from_editable_install(hook):
    return (getattr(hook, "__module__", None) or "").startswith("__editable__")


def _drop_editable_finders():
    sys.meta_path[:] = [finder for finder in sys.meta_path if not _from_editable_install(finder)]
    sys.path_hooks[:] = [hook for hook in sys.path_hooks if not _from_editable_install(hook)]
    sys.path_importer_cache.clear()


def _run_next_sitecustomize():
    here = os.path.dirname(os.path.abspath(__file__))
    for entry in sys.path:
        directory = os.path.abspath(entry or ".")
        candidate = os.path.join(directory, "sitecustomize.py")
        if directory != here and os.path.isfile(candidate):
            spec = importlib.util.spec_from_file_location("_next_sitecustomize", candidate)
            spec.loader.exec_module(importlib.util.module_from_spec(spec))
            return


_drop_editable_finders()
_run_next_sitecustomize()
