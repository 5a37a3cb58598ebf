"""Imports point down the layers and never go round in a circle.

Every module of ``hybridver/`` is parsed with ``ast``; ALL its ``import`` and ``from ...
import`` statements count, also those inside functions and under ``TYPE_CHECKING``.  An
import of ``pkg.name`` goes to the module ``pkg.name`` where that is a module, else to
``pkg`` (its ``__init__``); the implicit import of a parent package's ``__init__`` is not
an edge.  Imports with computed names (``importlib.import_module(f"...")``, used by the
back-end and relaxation registries to load their own package's modules) are not seen.

Two rules:

* no import cycles between modules (a cycle is reported as the modules it goes through);
* a unit is a package directly under ``hybridver/`` or a root module (``hybridver/x.py``;
  ``hybridver/__init__.py`` is the unit ``hybridver``).  Each unit has a rank in ``RANKS``
  and may import only units of a strictly lower rank, or modules of its own unit.

``KNOWN_VIOLATIONS`` lists the violations of the tree this test was written on, with who
fixes them; the test fails on any violation not listed there, and warns about listed ones
that are gone (remove them).  A folder without ``.py`` files (``hybridver/tables/``, data)
is not a unit.
"""

from __future__ import annotations

import ast
import warnings
from pathlib import Path

import networkx as nx

# rank of each unit: a unit may import only units of a strictly lower rank
RANKS: dict[str, int] = {
    "hybridver": 100,  # __init__.py: re-exports the public API (lazily)
    "__main__": 96,  # python -m hybridver: runs the cli
    "cli": 95,
    "commands": 90,
    "api": 85,
    "soundness": 83,  # planted benchmarks, cross-checking: reads frontends, specs, result
    "properties": 80,  # robustness with the class count read from the model
    "manipulations": 80,  # manipulation families as specs over parameters: ir, specs, result
    "pipeline": 75,
    "config_file": 74,  # TOML -> the config tree
    "cluster": 73,  # Ray (optional): executor, distributed branch-and-bound, campaigns
    "config": 72,  # the config tree: imports the sub-configs of bab, bounds, schedule, backends
    "bab": 70,
    "schedule": 65,
    "backends": 60,
    "encode": 55,
    "bounds": 50,
    "problem": 45,
    "relaxations": 40,
    "frontends": 35,  # ONNX / torch importers
    "specs": 30,
    "result": 30,
    "progress": 30,
    "ir": 25,
    "numerics": 10,
    "errors": 5,  # a leaf: bab_core and numerics may raise its errors
    "bab_core": 10,
    "version": 10,
    "defaults": 10,  # user-facing defaults: the config tree and the command line read them
}

# violations of the tree this test was written on -> who removes them (issue 10)
KNOWN_VIOLATIONS: dict[str, str] = {}

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "hybridver"


def _modules() -> dict[str, tuple[Path, bool]]:
    """``{dotted module name: (file, is a package __init__)}`` for every ``.py`` file."""
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        modules[".".join(parts)] = (path, is_package)
    return modules


def _resolve(name: str, modules) -> str:
    """The longest prefix of ``name`` that is a module of hybridver."""
    parts = name.split(".")
    while len(parts) > 1 and ".".join(parts) not in modules:
        parts.pop()
    return ".".join(parts)


def _imports(module: str, path: Path, is_package: bool, modules) -> dict[str, int]:
    """``{imported hybridver module: first line}`` of one module, every import statement."""
    package = module if is_package else module.rpartition(".")[0]
    found: dict[str, int] = {}

    def add(target: str, line: int) -> None:
        target = _resolve(target, modules)
        if target != module:
            found.setdefault(target, line)

    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "hybridver":
                    add(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "hybridver":
                continue
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                add(submodule if submodule in modules else target, node.lineno)
    return found


def _graph() -> nx.DiGraph:
    """Modules as nodes, imports as edges (``line``: where the import is)."""
    modules = _modules()
    graph = nx.DiGraph()
    for module, (path, is_package) in modules.items():
        graph.add_node(module, path=path)
        for target, line in _imports(module, path, is_package, modules).items():
            graph.add_edge(module, target, line=line)
    return graph


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _short(module: str) -> str:
    return module.partition(".")[2] or module


def _where(graph: nx.DiGraph, a: str, b: str) -> str:
    path = graph.nodes[a]["path"].relative_to(REPO)
    return f"{path}:{graph.edges[a, b]['line']}"


def _cycle_violations(graph: nx.DiGraph) -> dict[str, str]:
    """Every import between two modules of one strongly connected component, with a cycle
    through it."""
    found = {}
    for component in nx.strongly_connected_components(graph):
        if len(component) < 2:
            continue
        inner = graph.subgraph(component)
        for a, b in inner.edges:
            back = nx.shortest_path(inner, b, a)
            cycle = " -> ".join(_short(m) for m in [a, *back])
            found[f"cycle: {_short(a)} -> {_short(b)}"] = f"{_where(graph, a, b)}: {cycle}"
    return found


def _layer_violations(graph: nx.DiGraph) -> dict[str, str]:
    """Every import of a unit that is not strictly lower than the importing one."""
    found = {}
    for a, b in graph.edges:
        unit_a, unit_b = _unit(a), _unit(b)
        if unit_a == unit_b or unit_a not in RANKS or unit_b not in RANKS:
            continue
        if RANKS[unit_b] >= RANKS[unit_a]:
            found[f"layer: {_short(a)} -> {unit_b}"] = (
                f"{_where(graph, a, b)}: {unit_a} (rank {RANKS[unit_a]}) imports "
                f"{_short(b)} (unit {unit_b}, rank {RANKS[unit_b]})")
    return found


def _report(found: dict[str, str], kind: str) -> None:
    new = {key: why for key, why in found.items() if key not in KNOWN_VIOLATIONS}
    lines = [f"  {key}    [{why}]" for key, why in sorted(new.items())]
    assert not new, f"new {kind} (fix them; see tests/test_layering.py):\n" + "\n".join(lines)


def test_every_unit_has_a_rank():
    units = {_unit(module): path for module, (path, _) in _modules().items()}
    unknown = {unit: path.relative_to(REPO) for unit, path in units.items()
               if unit not in RANKS}
    assert not unknown, (
        "units without a rank (add each to RANKS at the top of tests/test_layering.py, "
        "between the units it imports and the units that import it): "
        + ", ".join(f"{unit} ({path})" for unit, path in sorted(unknown.items())))


def test_no_new_import_cycles():
    _report(_cycle_violations(_graph()), "import cycles")


def test_no_new_imports_up_the_layers():
    _report(_layer_violations(_graph()), "imports up (or across) the layers")


def test_known_violations_still_exist():
    graph = _graph()
    current = _cycle_violations(graph) | _layer_violations(graph)
    gone = sorted(set(KNOWN_VIOLATIONS) - set(current))
    if gone:
        warnings.warn("fixed, remove from KNOWN_VIOLATIONS in tests/test_layering.py: "
                      + ", ".join(gone), stacklevel=1)


def test_the_checker_sees_function_level_imports_and_cycles(tmp_path, monkeypatch):
    """The parser counts imports inside functions and relative imports, and reports a
    two-module cycle both ways and an import up the layers."""
    package = tmp_path / "hybridver"
    (package / "ir").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "ir" / "__init__.py").write_text("")
    (package / "ir" / "graph.py").write_text("def f():\n    from . import evaluate\n")
    (package / "ir" / "evaluate.py").write_text("from hybridver.ir.graph import f\n")
    (package / "errors.py").write_text("def g():\n    import hybridver.ir.graph\n")
    monkeypatch.setitem(globals(), "REPO", tmp_path)
    monkeypatch.setitem(globals(), "PACKAGE", package)
    graph = _graph()
    assert set(_cycle_violations(graph)) == {"cycle: ir.graph -> ir.evaluate",
                                             "cycle: ir.evaluate -> ir.graph"}
    assert set(_layer_violations(graph)) == {"layer: errors -> ir"}
