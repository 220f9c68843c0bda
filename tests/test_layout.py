"""The layout of the package, checked from the source: layers, import directions, sizes, one home per vocabulary.

Every module's imports are read with :mod:`ast` (module level, inside functions and under ``TYPE_CHECKING``
alike) and held against the layer order of ``graphxform/``:

    cli -> jobs -> (model | engine | tf | inspect) -> savedmodel -> core

Within the middle row ``tf`` and ``inspect`` build on ``model`` (they run or describe a ``Model``); ``engine``
stands on ``core`` alone. ``graphxform/__init__.py`` and the deprecated re-export shims beside it
(``graphxform/rule.py``, ``graphxform/pattern.py``) are the package's face: nothing inside imports them. The
built-in rules (``transforms/``, installed as ``graphxform.transforms``) are plugins: nothing imports them by name.
"""
from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "graphxform"
PLUGINS = ROOT / "transforms"

#: What each layer may import (besides itself).
ALLOWED = {
    "core": set(),
    "savedmodel": {"core"},
    "engine": {"core"},
    "model": {"core", "savedmodel"},
    "tf": {"core", "savedmodel", "model"},
    "inspect": {"core", "savedmodel", "model"},
    "jobs": {"core", "savedmodel", "engine", "model", "tf", "inspect"},
    "cli": {"core", "savedmodel", "engine", "model", "tf", "inspect", "jobs"},
    "transforms": {"face", "core", "engine", "tf"},
    "examples": {"face"},
}
FACE_MODULES = {"graphxform", "graphxform.rule", "graphxform.pattern"}
MAX_LINES = 450
#: The only modules that reach into the dicts networkx keeps (``_succ``, ``_pred``, ``_adj``, ``_node``).
NETWORKX_OWNERS = {"graphxform.core.graph", "graphxform.core.view"}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    for path in sorted(PLUGINS.rglob("*.py")):
        parts = ["graphxform", *path.relative_to(ROOT).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _layer(module: str) -> str:
    if module in FACE_MODULES:
        return "face"
    parts = module.split(".")
    if parts[1] == "transforms":
        return "examples" if len(parts) > 2 and parts[2] == "examples" else "transforms"
    return parts[1]


def _imports(module: str, path: Path) -> Iterator[tuple[str, int]]:
    """``(imported graphxform module, line)`` for every import statement in the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                base = ".".join(anchor[: len(anchor) - node.level + 1] + ([base] if base else []))
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            if name == "transforms" or name.startswith("transforms."):
                yield name, node.lineno
            elif name in MODULES:
                yield name, node.lineno


def _graph() -> dict[str, dict[str, int]]:
    """{module: {imported module: line}}; ``from pkg import mod`` counts as importing ``pkg.mod`` (and not ``pkg``)."""
    graph: dict[str, dict[str, int]] = {}
    for module, path in MODULES.items():
        edges: dict[str, int] = {}
        found = list(_imports(module, path))
        targets = {name for name, _ in found}
        for name, line in found:
            # `from graphxform.core import graph` names the module graphxform.core.graph, not the package.
            if any(t.startswith(name + ".") for t in targets) and name in MODULES \
                    and MODULES[name].name == "__init__.py" and name not in FACE_MODULES:
                continue
            if name != module:
                edges.setdefault(name, line)
        graph[module] = edges
    return graph


GRAPH = _graph()


def test_every_module_is_in_a_known_layer():
    unknown = sorted(m for m in MODULES if _layer(m) not in ALLOWED and _layer(m) != "face")
    assert not unknown, f"modules outside the layer packages: {unknown}"


def test_imports_only_go_down_the_layers():
    wrong = []
    for module, edges in GRAPH.items():
        layer = _layer(module)
        if layer == "face":
            continue
        for target, line in edges.items():
            if target == "transforms" or target.startswith("transforms."):
                continue  # test_nothing_imports_the_plugins says it
            other = _layer(target)
            if other != layer and other not in ALLOWED[layer]:
                wrong.append(f"{MODULES[module].relative_to(ROOT)}:{line} ({layer}) imports {target} ({other})")
    assert not wrong, "imports against the layer order:\n" + "\n".join(wrong)


def test_nothing_imports_the_plugins():
    wrong = [f"{MODULES[m].relative_to(ROOT)}:{line} imports {t}" for m, edges in GRAPH.items()
             if _layer(m) not in ("transforms", "examples") for t, line in edges.items()
             if t == "transforms" or t.startswith(("transforms.", "graphxform.transforms"))]
    assert not wrong, "\n".join(wrong)


def test_no_import_circles():
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH.get(v, {}):
            if w not in GRAPH:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                circles.append(sorted(comp))

    for v in GRAPH:
        if v not in index:
            visit(v)
    assert not circles, f"import circles: {circles}"


def test_no_module_is_too_long():
    long = {str(p.relative_to(ROOT)): n for p in MODULES.values()
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def _source(module: str) -> str:
    return MODULES[module].read_text()


#: Sentinels of the op-class vocabularies; a set literal naming one of them is a vocabulary.
VOCABULARY_SENTINELS = ("VarHandleOp", "HashTableV2", "InitializeTableV2", "PlaceholderWithDefault", "SaveV2",
                        "NextIteration", "StatefulPartitionedCall", "MutableHashTableV2", "ReadFile",
                        "StopGradient", "FusedBatchNormV3")


def _set_literals(tree: ast.AST) -> Iterator[tuple[int, set[str]]]:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Set, ast.Tuple, ast.List)):
            strings = {e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
            if len(strings) >= 2:
                yield node.lineno, strings


def test_op_vocabularies_have_one_home():
    """Op classes (variables, tables, feeds, control flow, pass-through, checkpoint ops …) are declared in
    ``graphxform/core/opdefs.py`` only; rules and layers name them from there."""
    wrong = []
    for module, path in MODULES.items():
        if module == "graphxform.core.opdefs":
            continue
        for line, strings in _set_literals(ast.parse(path.read_text())):
            hit = sorted(strings.intersection(VOCABULARY_SENTINELS))
            if hit:
                wrong.append(f"{path.relative_to(ROOT)}:{line} declares ops {hit[:3]}")
    assert not wrong, "op vocabularies outside core/opdefs.py:\n" + "\n".join(wrong)


@pytest.mark.parametrize("pattern, home", [
    (r'^\s*(?:def|class)\s+(?:_?canon|parse_input|tensor_name|input_string)\b', "graphxform.core.names"),
    (r'"__saved_model_init_op"', "graphxform.savedmodel.read"),
    (r'"saved_model_main_op"', "graphxform.savedmodel.read"),
    (r'^\s*(?:MAX_PROTO_BYTES)\s*=', "graphxform.savedmodel.read"),
    (r'^\s*def tensor_proto_to_array\b', "graphxform.core.nodes"),
])
def test_name_helpers_and_saved_model_constants_have_one_home(pattern, home):
    found = [m for m in MODULES if re.search(pattern, _source(m), re.M)]
    assert found == [home], f"{pattern!r} is found in {found}, expected only in {home}"


def test_rules_use_the_public_builder_not_protos_or_networkx():
    """No rule builds ``NodeDef`` s by hand or reads networkx's edge dicts: the node builder
    (``graphxform.core.nodes``) and the graph's read-only queries are there for that."""
    wrong = []
    for module, path in MODULES.items():
        if _layer(module) not in ("transforms", "examples"):
            continue
        text = path.read_text()
        for needle in ("node_def_pb2", "import networkx", ".nx.", ".nx)", "graph.nx"):
            if needle in text:
                wrong.append(f"{path.relative_to(ROOT)} uses {needle!r}")
    assert not wrong, "\n".join(wrong)


def test_only_the_graph_touches_networkx_internals():
    pattern = re.compile(r"\._(succ|pred|adj|node)\b|nx\._clear_cache")
    wrong = [str(p.relative_to(ROOT)) for m, p in MODULES.items()
             if m not in NETWORKX_OWNERS and pattern.search(p.read_text())]
    assert not wrong, f"networkx internals used outside {sorted(NETWORKX_OWNERS)}: {wrong}"


def test_examples_use_only_public_names_and_are_short():
    examples = [m for m in MODULES if _layer(m) == "examples" and not MODULES[m].name.startswith("__")]
    assert len(examples) >= 2
    for module in examples:
        path = MODULES[module]
        assert len(path.read_text().splitlines()) < 60, path
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("graphxform"):
                assert node.module == "graphxform", f"{path}: imports {node.module} (use `from graphxform import …`)"
                import graphxform

                for alias in node.names:
                    assert alias.name in graphxform.__all__, f"{path}: {alias.name} is not a public name"
            elif isinstance(node, ast.Import):
                assert not any(a.name.startswith("graphxform.") for a in node.names), path


def test_shims_are_pure_re_exports():
    for module in FACE_MODULES - {"graphxform"}:
        tree = ast.parse(_source(module))
        body = [n for n in tree.body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
        kinds = {type(n).__name__ for n in body}
        assert kinds <= {"ImportFrom", "Import", "Assign", "Expr"}, (module, kinds)
        assert len(_source(module).splitlines()) < 40, module


def test_every_package_is_installed():
    """pyproject.toml lists the packages by name (transforms/ installs as graphxform.transforms): none forgotten."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {m for m, p in MODULES.items() if p.name == "__init__.py"}
    assert found == listed, f"not listed: {sorted(found - listed)}; listed but absent: {sorted(listed - found)}"
