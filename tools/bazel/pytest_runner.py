"""The main of every pytest_test target: runs pytest on the test files given as arguments.

    pytest_runner.py tests/test_masks.py [more files or pytest options]

Bazel starts it with the workspace's runfiles directory as the working directory, so the
paths are relative to the repository root, as with `pytest tests/test_masks.py`. It exits
with pytest's code (5, no test ran, fails the target too). Under Bazel it also
  - writes the JUnit XML Bazel asks for ($XML_OUTPUT_FILE), one entry per test case;
  - keeps pytest's temporary directories in the test's own $TEST_TMPDIR;
  - passes `bazel test --test_filter=EXPR` on as `pytest -k EXPR`;
  - checks that no module was imported from the source checkout (which the virtualenv's
    editable install points at) rather than from the runfiles: a module missing from a
    target's deps would otherwise go unnoticed. //tools/bazel:hermetic_imports, which
    every pytest_test depends on, already prevents that; this is its backstop.
"""

import os
import sys

# The checkout this file is in (tools/bazel/pytest_runner.py), through the runfiles symlink.
CHECKOUT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))


def pytest_args(argv, environ):
    args = list(argv) + ["-q", "-p", "no:cacheprovider"]
    if environ.get("XML_OUTPUT_FILE"):
        args.append("--junitxml=" + environ["XML_OUTPUT_FILE"])
    if environ.get("TEST_TMPDIR"):
        args.append("--basetemp=" + os.path.join(environ["TEST_TMPDIR"], "pytest"))
    if environ.get("TESTBRIDGE_TEST_ONLY"):
        args += ["-k", environ["TESTBRIDGE_TEST_ONLY"]]
    return args


def modules_from_checkout(runfiles):
    """Modules loaded so far from the source checkout instead of the runfiles tree."""
    checkout = os.path.join(CHECKOUT, "")
    # The runfiles, and the virtualenv's packages (.venv may sit in the checkout).
    elsewhere = tuple(os.path.join(os.path.abspath(p), "") for p in (runfiles, sys.prefix, sys.base_prefix))
    found = []
    for name, module in sorted(sys.modules.items()):
        path = os.path.abspath(getattr(module, "__file__", None) or os.sep)
        if path.startswith(checkout) and not path.startswith(elsewhere) and name != "__main__":
            found.append(f"{name} ({path})")
    return found


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
        outside = modules_from_checkout(os.getcwd())
        if outside:
            print(
                "pytest_runner: these modules came from the checkout, not the test's runfiles "
                "(add the py_library that has them to the target's deps):\n  " + "\n  ".join(outside),
                file=sys.stderr,
            )
            return code or 1
    return int(code)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
