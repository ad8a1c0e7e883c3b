"""The main of every pytest_test target: runs pytest on the test files given as arguments.

    pytest_runner.py tests/test_masks.py [more files or pytest options]

Bazel starts it with the workspace's runfiles directory as the working directory, so the
paths are relative to the repository root, as with `pytest tests/test_masks.py`. It exits
with pytest's code (5, no test ran, fails the target too). Under Bazel it also
  - writes the JUnit XML Bazel asks for ($XML_OUTPUT_FILE), one entry per test case;
  - keeps pytest's temporary directories in the test's own $TEST_TMPDIR;
  - passes `bazel test --test_filter=EXPR` on as `pytest -k EXPR`;
  - checks that the project's own modules were imported from the runfiles tree, not from
    the source checkout the virtualenv's editable install points at: a module missing from
    a target's deps would otherwise go unnoticed.
"""

import os
import sys

OWN_PACKAGES = ("lth_keras", "experiments", "tests")


def pytest_args(argv, environ):
    args = list(argv) + ["-q", "-p", "no:cacheprovider"]
    if environ.get("XML_OUTPUT_FILE"):
        args.append("--junitxml=" + environ["XML_OUTPUT_FILE"])
    if environ.get("TEST_TMPDIR"):
        args.append("--basetemp=" + os.path.join(environ["TEST_TMPDIR"], "pytest"))
    if environ.get("TESTBRIDGE_TEST_ONLY"):
        args += ["-k", environ["TESTBRIDGE_TEST_ONLY"]]
    return args


def modules_from_outside(root):
    """The project's modules loaded so far whose file is not under `root`."""
    root = os.path.join(os.path.abspath(root), "")
    outside = []
    for name, module in sorted(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if name.split(".")[0] in OWN_PACKAGES and path and not os.path.abspath(path).startswith(root):
            outside.append(f"{name} ({path})")
    return outside


def main(argv):
    if not argv:
        print("usage: pytest_runner.py TEST_FILE... [PYTEST_OPTION...]", file=sys.stderr)
        return 2
    # Python puts the real directory of this script first on sys.path; nothing is imported
    # from there, and it is outside the runfiles.
    here = os.path.dirname(os.path.realpath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]

    import pytest

    code = pytest.main(pytest_args(argv, os.environ))
    if os.environ.get("TEST_SRCDIR"):
        outside = modules_from_outside(os.getcwd())
        if outside:
            print(
                "pytest_runner: these modules were not in the test's runfiles (add the "
                "py_library that has them to the target's deps):\n  " + "\n  ".join(outside),
                file=sys.stderr,
            )
            return code or 1
    return int(code)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
