"""The Bazel BUILD files keep up with the code (issue 7).

Every module of the repository's packages (lth_keras/, experiments/, tests/, ...) has a
py_library or py_binary, every script (each suite) a py_binary, every tests/test_*.py a
py_test, and each target depends on what its sources import. The BUILD files are read as
Python syntax (Starlark, as used there, is a subset of it), so this needs no Bazel. Under
Bazel it reads the source checkout, found through the real path of this file, not the
runfiles tree (which only holds what BUILD already lists).
"""

import ast
import fnmatch
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
LIBRARY_RULES = {"py_library", "py_binary"}
TEST_RULES = {"py_test", "pytest_test"}
BUILD_FILES = ("BUILD", "BUILD.bazel")
SKIPPED_DIRS = {"__pycache__", "runs", "build", "dist"}


def _walk(top):
    """Paths, relative to ROOT, of the files under ROOT/top (no hidden, cache or output dirs)."""
    for directory, subdirs, files in os.walk(os.path.join(ROOT, top)):
        subdirs[:] = sorted(
            d
            for d in subdirs
            if not d.startswith((".", "bazel-")) and d not in SKIPPED_DIRS and not d.endswith(".egg-info")
        )
        for name in sorted(files):
            yield os.path.relpath(os.path.join(directory, name), ROOT).replace(os.sep, "/")


def _label(value, package):
    """A label as (package, name): '//a/b:c', '//a/b' (= //a/b:b), ':c' or 'c'; None for @repo."""
    if value.startswith("@"):
        return None
    if value.startswith("//"):
        target_package, _, name = value[2:].partition(":")
        return target_package, name or os.path.basename(target_package)
    return package, value.lstrip(":")


def _file(label):
    package, name = label
    return f"{package}/{name}" if package else name


class _BuildFile:
    """Evaluates the expressions BUILD files use in attributes: strings, lists, +, names, glob()."""

    def __init__(self, path):
        self.path = path
        self.package = os.path.dirname(path)
        self.tree = ast.parse(open(os.path.join(ROOT, path)).read(), filename=path)
        self.names = {}
        for node in self.tree.body:
            if (
                isinstance(node, ast.Assign)
                and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
            ):
                self.names[node.targets[0].id] = node.value

    def strings(self, node, what):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return [node.value]
        if isinstance(node, (ast.List, ast.Tuple)):
            return [s for element in node.elts for s in self.strings(element, what)]
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            return self.strings(node.left, what) + self.strings(node.right, what)
        if isinstance(node, ast.Name) and node.id in self.names:
            return self.strings(self.names[node.id], what)
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "glob" and node.args:
            patterns = [_file((self.package, p)) for p in self.strings(node.args[0], what)]
            prefix = f"{self.package}/" if self.package else ""
            return [
                path[len(prefix) :]
                for path in _walk(self.package)
                if any(fnmatch.fnmatch(path, pattern) for pattern in patterns)
            ]
        raise AssertionError(f"{self.path}: cannot read {what} = {ast.unparse(node)}")

    def targets(self):
        for node in ast.walk(self.tree):
            rule = getattr(node.func, "id", None) if isinstance(node, ast.Call) else None
            if rule not in LIBRARY_RULES | TEST_RULES:
                continue
            attrs = {k.arg: k.value for k in node.keywords if k.arg}
            name = self.strings(attrs["name"], "name")[0]

            def labels(attr):
                values = self.strings(attrs[attr], attr) if attr in attrs else []
                return [label for label in (_label(v, self.package) for v in values) if label]

            yield _Target(
                rule, (self.package, name), labels("srcs"), labels("main"), labels("deps"), self.path
            )


class _Target:
    def __init__(self, rule, label, srcs, main, deps, build):
        self.rule, self.label, self.deps, self.build = rule, label, deps, build
        self.srcs = [_file(src) for src in srcs]
        self.main = _file(main[0]) if main else None

    def __str__(self):
        return "//{}:{}".format(*self.label)


def _load_targets():
    targets = {}
    for path in _walk(""):
        if os.path.basename(path) in BUILD_FILES:
            for target in _BuildFile(path).targets():
                targets[target.label] = target
    return targets


TARGETS = _load_targets()


def _listed_by(rules):
    return {src for target in TARGETS.values() if target.rule in rules for src in target.srcs}


def _build_file_for(path):
    """The BUILD file of the Bazel package holding `path` (its nearest directory with one)."""
    directory = os.path.dirname(path)
    while directory and not any(os.path.exists(os.path.join(ROOT, directory, b)) for b in BUILD_FILES):
        directory = os.path.dirname(directory)
    return f"{directory}/BUILD" if directory else "BUILD"


def _modules(top):
    return [path for path in _walk(top) if path.endswith(".py")]


def _stem(path):
    return os.path.splitext(os.path.basename(path))[0]


def test_the_build_files_define_targets():
    assert TARGETS, f"no py_library/py_binary/py_test targets found in BUILD files under {ROOT}"


def _own_packages():
    """The repository's top-level Python packages (lth_keras, experiments, tests, ...)."""
    return sorted(p for p in os.listdir(ROOT) if os.path.exists(os.path.join(ROOT, p, "__init__.py")))


def _is_test_file(path):
    return path.startswith("tests/") and fnmatch.fnmatch(os.path.basename(path), "test_*.py")


def test_the_packages_are_found():
    assert {"lth_keras", "experiments", "tests"} <= set(_own_packages())


@pytest.mark.parametrize("package", _own_packages())
def test_every_module_has_a_library_or_binary_target(package):
    listed = _listed_by(LIBRARY_RULES)
    missing = [path for path in _modules(package) if path not in listed and not _is_test_file(path)]
    assert not missing, "\n".join(
        f"{path} has no py_library or py_binary target listing it in srcs "
        f"(add one to {_build_file_for(path)})"
        for path in missing
    )


def test_every_test_file_has_a_py_test_target():
    listed = _listed_by(TEST_RULES)
    test_files = [path for path in _walk("tests") if _is_test_file(path)]
    assert "tests/test_bazel_targets.py" in test_files
    missing = [path for path in test_files if path not in listed]
    assert not missing, "\n".join(
        f"{path} has no py_test (pytest_test) target listing it in srcs (add one to {_build_file_for(path)})"
        for path in missing
    )


def test_every_script_has_a_py_binary_named_after_it():
    """Each suite (experiments/lenet.py, ...) and other command (a module with a __main__
    block, outside tests/, whose helpers the tests start with `python -m`) has a py_binary."""
    scripts = [
        path
        for package in _own_packages()
        if package != "tests"
        for path in _modules(package)
        if 'if __name__ == "__main__":' in open(os.path.join(ROOT, path)).read()
    ]
    suites = ["lenet", "conv2", "conv4", "conv6", "vgg16", "vgg19", "resnet18", "resnet20"]
    assert {f"experiments/{suite}.py" for suite in suites} <= set(scripts)
    binaries = {}
    for target in TARGETS.values():
        if target.rule == "py_binary":
            main = target.main or (target.srcs[0] if len(target.srcs) == 1 else _file(target.label) + ".py")
            binaries[main] = target
    missing = [path for path in scripts if path not in binaries]
    assert not missing, "\n".join(
        f"{path} is a script (it has a __main__ block) but no py_binary runs it "
        f"(add one to {_build_file_for(path)})"
        for path in missing
    )
    misnamed = [f"{path}: {binaries[path]}" for path in scripts if binaries[path].label[1] != _stem(path)]
    assert not misnamed, "name each script's py_binary after it: " + ", ".join(misnamed)


def test_listed_sources_and_deps_exist():
    """A target naming a moved file or an unknown target breaks every `bazel test //...`."""
    problems = [
        f"{target.build}: {target} lists {src}, which does not exist"
        for target in TARGETS.values()
        for src in target.srcs
        if not os.path.exists(os.path.join(ROOT, src))
    ]
    problems += [
        f"{target.build}: {target} depends on //{dep[0]}:{dep[1]}, which no BUILD file defines"
        for target in TARGETS.values()
        for dep in target.deps
        if dep not in TARGETS
    ]
    assert not problems, "\n".join(problems)


# Which files a target's sources need from its deps: for `import a.b.c` (or `from a.b import
# c`), a/b/c.py (or a/b/c/__init__.py) and the __init__.py of each package above it, except
# the packages the importing file is in itself. Imports by name at run time (importlib,
# `python -m` in a subprocess) are not seen here; tests catch those under Bazel.


def _module_file(module):
    base = module.replace(".", "/")
    for candidate in (f"{base}.py", f"{base}/__init__.py"):
        if os.path.exists(os.path.join(ROOT, candidate)):
            return candidate
    return None


def _imported_modules(path):
    package = os.path.dirname(path).replace("/", ".")
    modules = set()
    for node in ast.walk(ast.parse(open(os.path.join(ROOT, path)).read(), filename=path)):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            modules.add(base)
            modules.update(
                f"{base}.{alias.name}" for alias in node.names if _module_file(f"{base}.{alias.name}")
            )
    return modules


def _needed_files(path):
    own_chain, directory = set(), os.path.dirname(path)
    while directory:
        own_chain.add(directory)
        directory = os.path.dirname(directory)
    needed = {}
    for module in sorted(_imported_modules(path)):
        if module.split(".")[0] not in _own_packages():
            continue
        parts = module.split(".")
        for depth in range(1, len(parts) + 1):
            file = _module_file(".".join(parts[:depth]))
            if file and not (file.endswith("/__init__.py") and os.path.dirname(file) in own_chain):
                needed.setdefault(file, module)
    if path.startswith("tests/") and os.path.basename(path).startswith("test_"):
        needed.setdefault("tests/conftest.py", "conftest.py (pytest loads it)")
    return needed


def _closure(target):
    files, seen, todo = set(), set(), [target.label]
    while todo:
        label = todo.pop()
        if label in seen or label not in TARGETS:
            continue
        seen.add(label)
        files.update(TARGETS[label].srcs)
        todo.extend(TARGETS[label].deps)
    return files


def test_every_target_depends_on_what_its_sources_import():
    problems = []
    for target in TARGETS.values():
        available = _closure(target)
        for src in target.srcs:
            if not src.endswith(".py") or not os.path.exists(os.path.join(ROOT, src)):
                continue
            for file, module in _needed_files(src).items():
                if file not in available:
                    problems.append(
                        f"{src} imports {module}, but {file} is in no dep of {target} (in {target.build})"
                    )
    assert not problems, "\n".join(problems)
