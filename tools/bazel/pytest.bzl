"""pytest_test: a py_test that runs one pytest file with the shared runner."""

_RUNNER = "//tools/bazel:pytest_runner.py"
_HERMETIC_IMPORTS = "//tools/bazel:hermetic_imports"

def pytest_test(name, srcs, deps = [], data = [], args = [], size = "small", **kwargs):
    """A py_test running `pytest <srcs>` through //tools/bazel:pytest_runner.py.

    Args:
      name: the target's name; by convention the test file's name without `.py`.
      srcs: the test file(s) to run; each is passed to pytest.
      deps: py_library targets the test imports (e.g. //tests, which has conftest.py).
      data: files the test reads or runs at run time.
      args: extra pytest arguments, after the test files.
      size: Bazel's test size; sets the default timeout (small 60 s, medium 300 s,
        large 900 s) and how much of the machine Bazel reserves for the test.
      **kwargs: anything else py_test takes (timeout, tags, env, shard_count, ...).
    """
    native.py_test(
        name = name,
        srcs = [_RUNNER] + srcs,
        main = _RUNNER,
        args = ["$(rootpath {})".format(src) for src in srcs] + args,
        # pytest.ini: the same markers, warning filters and options as `make test`.
        data = ["//:pytest.ini"] + data,
        deps = [_HERMETIC_IMPORTS] + deps,
        size = size,
        python_version = "PY3",
        srcs_version = "PY3",
        **kwargs
    )
