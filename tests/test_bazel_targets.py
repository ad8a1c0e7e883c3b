"""The Bazel build covers the code (issues 7 and 13).

Every module of every Python package (a directory with an __init__.py: lth_keras/,
lth_keras/paper/, experiments/, tests/helpers/, ...) is in the srcs of a py_library, except
that a tests/test_*.py may be in its test target's instead; and every tests/test_*.py is in
the srcs of a test target. The BUILD files list them by glob, so new files are covered with
no edit; this catches a package left out, or a BUILD file added in a subpackage (which takes
its files out of the parent's glob) without a library.

The BUILD files are run as Python (the Starlark they use is a subset of it), with stand-ins
for Bazel's functions that record each target, so this needs no Bazel. Under Bazel it reads
the source checkout, found through the real path of this file, not the runfiles tree.
"""

import fnmatch
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
BUILD_FILES = ("BUILD", "BUILD.bazel")
LIBRARY_RULES = {"py_library", "py_binary"}
TEST_RULES = {"py_test", "pytest_test"}
# Not the repository's code: hidden directories (.venv, .git), caches and outputs.
SKIPPED_DIRS = {"__pycache__", "runs", "build", "dist"}


def _skipped(name):
    return name.startswith((".", "bazel-")) or name in SKIPPED_DIRS or name.endswith(".egg-info")


def _walk(top):
    """Paths, relative to ROOT, of the files under ROOT/top."""
    for directory, subdirs, files in os.walk(os.path.join(ROOT, top)):
        subdirs[:] = sorted(d for d in subdirs if not _skipped(d))
        for name in sorted(files):
            yield os.path.relpath(os.path.join(directory, name), ROOT).replace(os.sep, "/")


def _has_build_file(directory):
    return any(os.path.isfile(os.path.join(ROOT, directory, name)) for name in BUILD_FILES)


def _glob_regex(pattern):
    """Bazel's glob pattern as a regex: `*` within a path segment, `**` across segments."""
    regex = ""
    for i, segment in enumerate(pattern.split("/")):
        last = i == len(pattern.split("/")) - 1
        if segment == "**":
            regex += ".*" if last else "(?:[^/]+/)*"
        else:
            regex += "[^/]*".join(re.escape(part) for part in segment.split("*")).replace(r"\?", "[^/]")
            regex += "" if last else "/"
    return re.compile(regex)


def _glob(package, include, exclude=(), **_):
    """Bazel's glob(): the package's files matching, not looking into subpackages."""
    includes = [_glob_regex(p) for p in include]
    excludes = [_glob_regex(p) for p in exclude]
    found = []
    for directory, subdirs, files in os.walk(os.path.join(ROOT, package)):
        relative = os.path.relpath(directory, ROOT)
        subdirs[:] = sorted(d for d in subdirs if not _has_build_file(os.path.join(relative, d)))
        for name in files:
            path = os.path.relpath(os.path.join(directory, name), os.path.join(ROOT, package))
            path = path.replace(os.sep, "/")
            if any(r.fullmatch(path) for r in includes) and not any(r.fullmatch(path) for r in excludes):
                found.append(path)
    return sorted(found)


def _file(value, package):
    """The repository path of a source given as 'file', ':file' or '//pkg:file'."""
    if value.startswith("//"):
        package, _, value = value[2:].partition(":")
    return f"{package}/{value.lstrip(':')}" if package else value.lstrip(":")


class _Target:
    def __init__(self, rule, build, name, srcs):
        self.rule, self.build, self.name, self.srcs = rule, build, name, srcs

    def __str__(self):
        return f"//{os.path.dirname(self.build)}:{self.name}"


def _run_build_file(path):
    """The targets a BUILD file defines, from running it with stand-ins for Bazel's functions."""
    package = os.path.dirname(path)
    targets = []

    def rule(kind):
        def define(name, srcs=(), **_):
            srcs = [_file(src, package) for src in srcs if not src.startswith("@")]
            targets.append(_Target(kind, path, name, srcs))

        return define

    namespace = {}

    def load(_label, *symbols, **aliases):
        namespace.update({symbol: rule(symbol) for symbol in symbols})
        namespace.update({alias: rule(symbol) for alias, symbol in aliases.items()})

    def ignore(*_args, **_kwargs):
        return None

    namespace.update(
        {rule_name: rule(rule_name) for rule_name in LIBRARY_RULES | TEST_RULES | {"sh_test", "filegroup"}}
    )
    namespace.update(
        glob=lambda include, **kwargs: _glob(package, include, **kwargs),
        load=load,
        package=ignore,
        exports_files=ignore,
    )
    with open(os.path.join(ROOT, path)) as build_file:
        exec(compile(build_file.read(), path, "exec"), namespace)
    return targets


def _targets():
    return [
        target
        for path in _walk("")
        if os.path.basename(path) in BUILD_FILES
        for target in _run_build_file(path)
    ]


TARGETS = _targets()


def _listed_by(rules):
    return {src for target in TARGETS if target.rule in rules for src in target.srcs}


def _build_file_for(path):
    """The BUILD file of the Bazel package holding `path` (its nearest directory with one)."""
    directory = os.path.dirname(path)
    while directory and not _has_build_file(directory):
        directory = os.path.dirname(directory)
    return f"{directory}/BUILD" if directory else "BUILD"


def _python_packages():
    """Directories with an __init__.py, relative to ROOT (lth_keras, lth_keras/paper, ...)."""
    return sorted(os.path.dirname(path) for path in _walk("") if os.path.basename(path) == "__init__.py")


def test_the_build_files_are_read():
    packages = {"lth_keras", "lth_keras/paper", "experiments", "tests", "tests/helpers"}
    assert packages <= set(_python_packages())
    assert any(target.rule in LIBRARY_RULES for target in TARGETS), f"no py_library under {ROOT}"
    assert "tests/test_bazel_targets.py" in _listed_by(TEST_RULES)


def _is_test_file(path):
    return path.startswith("tests/") and fnmatch.fnmatch(os.path.basename(path), "test_*.py")


def test_every_test_file_has_a_test_target():
    test_files = [path for path in _walk("tests") if _is_test_file(path)]
    missing = [path for path in test_files if path not in _listed_by(TEST_RULES)]
    assert not missing, "\n".join(
        f"{path} is in the srcs of no py_test or pytest_test (see {_build_file_for(path)})"
        for path in missing
    )


def test_every_python_package_is_in_a_library():
    """Every module of a package is in a py_library; a test file may be in its test target instead."""
    listed = _listed_by(LIBRARY_RULES)
    tests = _listed_by(TEST_RULES)
    missing = [
        path
        for package in _python_packages()
        for path in _walk(package)
        if os.path.dirname(path) == package
        and path.endswith(".py")
        and path not in listed
        and not (_is_test_file(path) and path in tests)
    ]
    assert not missing, "\n".join(
        f"{path} is in the srcs of no py_library (see {_build_file_for(path)})" for path in missing
    )
