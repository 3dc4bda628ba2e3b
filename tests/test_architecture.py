"""The shape of the package: imports run one way, privates stay private, rooms stay small.

The layers are written down in ``docs/architecture.md``; :data:`LAYERS` is the same table. A
module may import from its own layer or lower ones, never from a higher one, and the imports
between modules form no cycle. Each module is placed in the table, so a new module has to be
placed (and thought about) before this test passes.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "biounet"

#: layer of each module (or of every module under a package, written ``name.*``); the most
#: specific entry wins. 0 is the bottom.
LAYERS: dict[str, int] = {
    # 0: what everything uses and that depends on nothing in biounet
    "biounet._version": 0,
    "biounet.core.*": 0,
    # 1: kernels on arrays and tensors: the network, metrics, formats, weight maps, tiling
    "biounet.model.*": 1,
    "biounet.metrics.*": 1,
    "biounet.data.io": 1,
    "biounet.data.normalize": 1,
    "biounet.data.annotations": 1,
    "biounet.data.synthetic.*": 1,
    "biounet.data.augment": 1,
    "biounet.data.weightmap.*": 1,
    "biounet.inference.tiling.*": 1,
    "biounet.inference.postprocess.*": 1,
    "biounet.train.losses": 1,
    # 2: data sets and views, whole-image prediction, what a run writes for people
    "biounet.data": 2,
    "biounet.data.views": 2,
    "biounet.data.layouts.*": 2,
    "biounet.data.tiles": 2,
    "biounet.inference": 2,
    "biounet.inference.trained": 2,
    "biounet.inference.predictor": 2,
    "biounet.reporting": 2,
    "biounet.reporting.runlog": 2,
    "biounet.reporting.plots": 2,
    "biounet.reporting.tables": 2,
    # 3: the configuration of a run and its checkpoints
    "biounet.config.*": 3,
    "biounet.checkpoint": 3,
    # 4: the pipeline stages: training, segmenting files, evaluation, export
    "biounet.train": 4,
    "biounet.train.*": 4,
    "biounet.segment.*": 4,
    "biounet.evaluation.*": 4,
    "biounet.export.*": 4,
    "biounet.describe": 4,
    # 5: what puts the stages together
    "biounet.reporting.page.*": 5,
    "biounet.demo": 5,
    # 6: the command line and the package's front door
    "biounet.cli.*": 6,
    "biounet": 6,
}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> int:
    """The layer of ``module``: its own entry, else that of the nearest ``package.*`` above it."""
    if module in LAYERS:
        return LAYERS[module]
    name = module
    while True:
        if f"{name}.*" in LAYERS:
            return LAYERS[f"{name}.*"]
        if "." not in name:
            raise KeyError(module)
        name = name.rsplit(".", 1)[0]


def imports(path: Path, known: set[str]) -> set[str]:
    """The biounet modules ``path`` imports (anywhere in the file, lazily or not)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            base = node.module
            if not base.startswith("biounet"):
                continue
            for alias in node.names:  # `from biounet.x import y` may import module x.y
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in known else base)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("biounet"))
    return found


def test_every_module_has_a_layer() -> None:
    unplaced = []
    for name in modules():
        try:
            layer(name)
        except KeyError:
            unplaced.append(name)
    assert not unplaced, f"place these modules in LAYERS and docs/architecture.md: {unplaced}"


def test_no_relative_imports() -> None:
    relative = [
        f"{module_name(p)}:{n.lineno}"
        for p in PACKAGE.rglob("*.py")
        for n in ast.walk(ast.parse(p.read_text()))
        if isinstance(n, ast.ImportFrom) and n.level
    ]
    assert not relative, relative


def test_imports_run_one_way() -> None:
    mods = modules()
    known = set(mods)
    upward = []
    for name, path in mods.items():
        for dep in imports(path, known):
            if dep in known and name != "biounet" and layer(dep) > layer(name):
                upward.append(f"{name} (layer {layer(name)}) imports {dep} (layer {layer(dep)})")
    assert not upward, "\n".join(upward)


def test_no_import_cycles_between_modules() -> None:
    mods = modules()
    known = set(mods)
    graph = {
        name: {d for d in imports(path, known) if d in known and d != name}
        for name, path in mods.items()
        if name != "biounet"
    }
    # a package's __init__ re-exports its modules: an edge from a module to its own package
    # (e.g. biounet.data.tiles -> biounet.data) is not a cycle of concerns
    for name, deps in graph.items():
        graph[name] = {d for d in deps if not name.startswith(d + ".")}
    state: dict[str, int] = {}
    cycles: list[str] = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                cycles.append(" -> ".join([*trail[trail.index(dep) :], dep]))
            elif dep not in state:
                visit(dep, [*trail, dep])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "\n".join(cycles)


def test_the_layer_test_catches_an_upward_import(tmp_path: Path) -> None:
    fake = tmp_path / "biounet" / "core" / "fake.py"
    fake.parent.mkdir(parents=True)
    fake.write_text("from biounet.train.loop import fit\n")
    deps = imports(fake, set(modules()))
    assert "biounet.train.loop" in deps and layer("biounet.train.loop") > layer("biounet.core.x")


PRIVATE = re.compile(r"^_[a-z]\w*$")


def test_no_module_uses_another_modules_private_names() -> None:
    mods = modules()
    offenders = []
    for name, path in mods.items():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.startswith("biounet")
            ):
                offenders += [
                    f"{name} imports {node.module}.{a.name}"
                    for a in node.names
                    if PRIVATE.match(a.name)
                ]
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                parts = node.module.split(".")
                if node.module.startswith("biounet") and any(PRIVATE.match(p) for p in parts):
                    if node.module != "biounet._version":
                        offenders.append(f"{name} imports the private module {node.module}")
    assert not offenders, "\n".join(offenders)


def private_names(tree: ast.AST) -> set[str]:
    """Names with one leading underscore that a module defines: functions, classes, methods,
    module constants and attributes set on ``self``."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
    return {n for n in names if PRIVATE.match(n)}


def test_no_module_reaches_into_another_modules_private_attributes() -> None:
    trees = {name: ast.parse(path.read_text()) for name, path in modules().items()}
    defined = {name: private_names(tree) for name, tree in trees.items()}
    offenders = []
    for name, tree in trees.items():
        others = set().union(*(d for m, d in defined.items() if m != name)) - defined[name]
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in others:
                offenders.append(f"{name}:{node.lineno} uses .{node.attr}")
    assert not offenders, "\n".join(offenders)


def code_lines(fn: ast.FunctionDef | ast.AsyncFunctionDef, source: list[str]) -> int:
    body = fn.body
    first = body[0]
    if isinstance(first, ast.Expr) and isinstance(getattr(first, "value", None), ast.Constant):
        body = body[1:]
    if not body:
        return 0
    lines = source[body[0].lineno - 1 : fn.end_lineno]
    return sum(1 for line in lines if line.strip() and not line.strip().startswith("#"))


MAX_FUNCTION = 80
MAX_MODULE = 400


def test_functions_are_short_or_say_why() -> None:
    long = []
    for name, path in modules().items():
        source = path.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(source))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = code_lines(node, source)
                doc = ast.get_docstring(node) or ""
                if n > MAX_FUNCTION and "Long because" not in doc:
                    long.append(f"{name}.{node.name}: {n} lines of code")
    assert not long, "\n".join(long)


def test_modules_are_small() -> None:
    big = [
        f"{name}: {n} lines"
        for name, path in modules().items()
        if (n := len(path.read_text().splitlines())) > MAX_MODULE
    ]
    assert not big, "\n".join(big)


def test_every_module_says_what_it_owns() -> None:
    missing = [
        name
        for name, path in modules().items()
        if path.name != "_version.py" and not ast.get_docstring(ast.parse(path.read_text()))
    ]
    assert not missing, missing


@pytest.mark.parametrize("module", ["biounet.core.checks", "biounet.core.files"])
def test_the_bottom_layer_imports_nothing_of_biounet(module: str) -> None:
    path = modules()[module]
    assert not imports(path, set(modules()))
