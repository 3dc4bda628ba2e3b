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
    "biounet.data.maps": 1,
    "biounet.data.ngff": 1,
    "biounet.data.spacing": 1,
    "biounet.data.normalize": 1,
    "biounet.data.annotations": 1,
    "biounet.data.objects": 1,
    "biounet.data.resample": 1,
    "biounet.data.synthetic.*": 1,
    "biounet.data.augment": 1,
    "biounet.data.weightmap.*": 1,
    "biounet.inference.tiling.*": 1,
    "biounet.inference.tiling.shards": 1,
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
    "biounet.inference.tile_choice": 2,
    "biounet.inference.backend": 2,
    "biounet.reporting": 2,
    "biounet.reporting.runlog": 2,
    "biounet.reporting.tensorboard": 2,
    "biounet.reporting.plots": 2,
    "biounet.reporting.pictures": 2,
    "biounet.reporting.advice": 2,
    "biounet.reporting.tables": 2,
    # 3: the configuration of a run and its checkpoints
    "biounet.config.*": 3,
    "biounet.checkpoint": 3,
    "biounet.zoo": 3,
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
    "biounet.napari": 6,
    "biounet.napari.*": 6,
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
    """The biounet modules ``path`` imports (anywhere in the file, lazily or not).

    A package's table of names imported on first use (``_LAZY = {"name": "biounet.x"}``,
    handed to :func:`biounet.core.lazy.lazy_exports`) counts as importing those modules.
    """
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "_LAZY" for target in node.targets
        ):
            found.update(
                value.value
                for value in getattr(node.value, "values", [])
                if isinstance(value, ast.Constant) and str(value.value).startswith("biounet")
            )
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


def upward_imports(mods: dict[str, Path]) -> list[str]:
    """Every import of a module from a higher layer, as ``"a (layer i) imports b (layer j)"``."""
    known = set(mods)
    upward = []
    for name, path in mods.items():
        for dep in imports(path, known):
            if dep in known and name != "biounet" and layer(dep) > layer(name):
                upward.append(f"{name} (layer {layer(name)}) imports {dep} (layer {layer(dep)})")
    return upward


def test_imports_run_one_way() -> None:
    upward = upward_imports(modules())
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


def test_the_layer_test_catches_upward_imports(tmp_path: Path) -> None:
    direct, lazy, lateral = (tmp_path / f"{n}.py" for n in ("direct", "lazy", "lateral"))
    direct.write_text("def f():\n    from biounet.train.loop import fit\n")
    lazy.write_text('_LAZY = {"fit": "biounet.train"}\n')
    lateral.write_text("import biounet.model.unet\nfrom biounet.core import checks\n")
    fakes = {"biounet.core.direct": direct, "biounet.core.lazy": lazy, "biounet.model.x": lateral}
    found = upward_imports({**modules(), **fakes})
    assert "biounet.core.direct (layer 0) imports biounet.train.loop (layer 4)" in found
    assert "biounet.core.lazy (layer 0) imports biounet.train (layer 4)" in found
    assert not [line for line in found if line.startswith("biounet.model.x")]


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


def module_aliases(tree: ast.AST, known: set[str]) -> dict[str, str]:
    """Local names bound to biounet modules: ``import biounet.x as y``, ``from biounet import x``."""
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("biounet"):
                    aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else "biounet"
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                if f"{node.module}.{a.name}" in known:
                    aliases[a.asname or a.name] = f"{node.module}.{a.name}"
    return aliases


def private_reaches(tree: ast.AST, known: set[str]) -> list[str]:
    """``module._name`` where ``module`` is a biounet module bound by an import (any depth)."""
    aliases = module_aliases(tree, known)

    def module_of(node: ast.expr) -> str | None:
        if isinstance(node, ast.Name):
            return aliases.get(node.id)
        if isinstance(node, ast.Attribute):
            base = module_of(node.value)
            return f"{base}.{node.attr}" if base and f"{base}.{node.attr}" in known else None
        return None

    return [
        f"{node.lineno}: {module_of(node.value)}.{node.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and PRIVATE.match(node.attr)
        and module_of(node.value) is not None
    ]


def test_no_module_reaches_into_a_module_it_imports() -> None:
    known = set(modules())
    offenders = [
        f"{name}:{reach}"
        for name, path in modules().items()
        for reach in private_reaches(ast.parse(path.read_text()), known)
    ]
    assert not offenders, "\n".join(offenders)


def test_the_private_check_sees_through_aliases() -> None:
    code = (
        "import biounet.model.geometry as g\nimport biounet.data.io\n"
        "from biounet.model import unet\n"
        "g._size(3)\nbiounet.data.io._suffix(p)\nunet._checked_options({})\nself._own = 1\n"
    )
    reaches = private_reaches(ast.parse(code), set(modules()))
    assert [r.split(": ")[1] for r in reaches] == [
        "biounet.model.geometry._size",
        "biounet.data.io._suffix",
        "biounet.model.unet._checked_options",
    ]


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


# --- docs/architecture.md stays true -------------------------------------------------------
DOC = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"


def doc_layer_rows() -> list[tuple[int, str]]:
    """``(layer, module)`` for every module named in the page's layers table."""
    rows = []
    for line in DOC.read_text().splitlines():
        m = re.match(r"\|\s*(\d)\s[^|]*\|([^|]*)\|", line)
        if not m:
            continue
        for entry in re.findall(r"`([^`]+)`", m.group(2)):
            base, _, rest = entry.partition("{")
            names = [base + n.strip() for n in rest.rstrip("}").split(",")] if rest else [base]
            for n in names:
                rows.append((int(m.group(1)), "biounet" if n == "biounet" else f"biounet.{n}"))
    return rows


def test_the_architecture_page_states_the_layers_of_this_test() -> None:
    rows = doc_layer_rows()
    assert len(rows) > 30, "the layers table was not found"
    wrong = [
        f"{module}: page {n}, test {layer(module.removesuffix('.*'))}"
        for n, module in rows
        if layer(module.removesuffix(".*")) != n
    ]
    assert not wrong, "\n".join(wrong)
    # `pkg.*`, or a package whose modules the table does not name one by one, covers them all
    named = {module.removesuffix(".*") for _, module in rows}
    packages = {
        n
        for n in named
        if any(m == n + ".*" for _, m in rows)
        or (
            (SRC / n.replace(".", "/")).is_dir()
            and not any(other.startswith(n + ".") for other in named)
        )
    }
    exact = named - packages
    unplaced = sorted(
        name
        for name in modules()
        if name not in exact and not any(name == n or name.startswith(n + ".") for n in packages)
    )
    assert not unplaced, f"not in the page's layers table: {unplaced}"


def test_the_architecture_page_shows_the_tree() -> None:
    text = DOC.read_text()
    tree = text.split("## The tree", 1)[1].split("```", 2)[1]
    files = {p.name for p in PACKAGE.rglob("*.py")}
    for listed in re.findall(r"([\w]+\.py)\b", tree):
        assert listed in files, f"the page lists {listed}, which does not exist"
    missing = []
    for path in sorted(PACKAGE.rglob("*")):
        rel = path.relative_to(PACKAGE)
        if "__pycache__" in rel.parts or path.name in ("__init__.py", "__main__.py", "py.typed"):
            continue
        if path.is_dir() and f"{path.name}/" not in tree:
            missing.append(f"{rel}/")
        elif path.suffix == ".py" and len(rel.parts) <= 2 and rel.parent.name not in _SUMMED:
            if path.name not in tree and path.stem not in tree:
                missing.append(str(rel))
    assert not missing, f"not described on the page: {missing}"


#: folders whose modules the page describes in one line together
_SUMMED = ("cli", "export")


@pytest.mark.parametrize("module", ["biounet.core.checks", "biounet.core.files"])
def test_the_bottom_layer_imports_nothing_of_biounet(module: str) -> None:
    path = modules()[module]
    assert not imports(path, set(modules()))


def test_scoring_does_not_load_torch() -> None:
    """Evaluation and post-processing are numpy and scipy: scoring must not wait for torch."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "import numpy as np\n"
        "from biounet.evaluation import EvalOptions, evaluate\n"
        "t = np.zeros((20, 20), int); t[2:8, 2:8] = 1; t[10:15, 10:15] = 2\n"
        "p = np.stack([1.0 - (t > 0), (t > 0) * 1.0])\n"
        "for task, pred in (('cells', t), ('cells', p), ('semantic', t > 0)):\n"
        "    evaluate([('a', pred, t)], EvalOptions(task))\n"
        "print('torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
