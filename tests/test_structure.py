"""The import structure of ``audit/`` against the layering rules of docs/architecture.md.

The imports are read with ``ast`` (nothing is imported), function-level and ``TYPE_CHECKING``
imports included: a cycle hidden inside a function is still a cycle.  The layers and the pure
modules are parsed from docs/architecture.md, so the document and the test cannot drift apart.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Set, Tuple

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARCHITECTURE = ROOT / "docs" / "architecture.md"

Graph = Dict[str, Set[str]]

#: What a pure-core module may not import (I/O, processes, the store, the query engines).
IMPURE_MODULES = ("os", "io", "subprocess", "socket", "shutil", "tempfile", "glob", "pathlib", "urllib",
                  "duckdb", "pyarrow", "pandas", "fsspec", "audit.store", "audit.runner.supervisor")
#: Calls a pure-core module may not make.
IMPURE_CALLS = ("open", "print", "input")


# --------------------------------------------------------------------------- reading the tree


def module_names(package_dir: Path) -> Dict[str, Path]:
    """Dotted module name -> file, for every .py file under ``package_dir`` (its parent is the root)."""
    out = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(package_dir.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _imported(module: str, is_package: bool, node: ast.AST) -> Iterator[str]:
    """The dotted names one import statement refers to (candidates: a name may be an attribute)."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
        if node.level:
            base = module.split(".") if is_package else module.split(".")[:-1]
            base = base[:len(base) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        for alias in node.names:
            yield f"{target}.{alias.name}"


def _owner(name: str, modules: Dict[str, Path]) -> Optional[str]:
    """The module of ``modules`` that ``name`` (a module, or an attribute of one) lives in."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph(package_dir: Path) -> Graph:
    """Module -> the modules of the same package it imports."""
    modules = module_names(package_dir)
    graph: Graph = {m: set() for m in modules}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            for name in _imported(module, path.name == "__init__.py", node):
                owner = _owner(name, modules)
                if owner is not None and owner != module:
                    graph[module].add(owner)
    return graph


def external_imports(path: Path) -> Set[str]:
    """Every dotted name a module imports (absolute imports only)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    names: Set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module)
    return names


def calls(path: Path) -> Set[str]:
    """Names of the plain functions a module calls (``open(...)``, ``print(...)``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    return {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}


# --------------------------------------------------------------------------- the rules


def parse_layers(text: str) -> List[List[str]]:
    """The layer table of docs/architecture.md: top layer first, each a list of packages/modules."""
    after = text.split("<!-- layers:", 1)[1]
    layers: List[List[str]] = []
    for line in after.splitlines()[1:]:
        if not line.startswith("|"):
            if layers:
                break
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 2 or cells[0] in ("layer", "---"):
            continue
        layers.append(re.findall(r"`([\w.]+)`", cells[1]))
    return layers


def parse_pure(text: str) -> List[str]:
    """The pure-core modules listed under the ``pure`` marker of docs/architecture.md."""
    after = text.split("<!-- pure:", 1)[1].split("\n\n", 1)[0]
    return re.findall(r"`([\w.]+)`", after)


def unit_of(module: str, layers: Sequence[Sequence[str]]) -> Optional[Tuple[int, str]]:
    """(layer index, the package or module of the table) that ``module`` belongs to: longest match.

    The top-level package (``audit``) stands for its ``__init__`` only, so a new subpackage is
    in no layer until the table names it.
    """
    best: Optional[Tuple[int, str]] = None
    for index, units in enumerate(layers):
        for unit in units:
            inside = "." in unit and module.startswith(unit + ".")
            if module == unit or inside:
                if best is None or len(unit) > len(best[1]):
                    best = (index, unit)
    return best


def layer_violations(graph: Graph, layers: Sequence[Sequence[str]]) -> List[str]:
    """Each import that climbs a layer or crosses to a sibling of the same layer, or a module in no layer."""
    problems = []
    for module in sorted(graph):
        mine = unit_of(module, layers)
        if mine is None:
            problems.append(f"{module} is in no layer of docs/architecture.md")
            continue
        for target in sorted(graph[module]):
            theirs = unit_of(target, layers)
            if theirs is None or theirs[1] == mine[1]:
                continue
            if theirs[0] < mine[0]:
                problems.append(f"{module} -> {target}: {mine[1]} may not import {theirs[1]} (a higher layer)")
            elif theirs[0] == mine[0]:
                problems.append(f"{module} -> {target}: {mine[1]} may not import {theirs[1]} (a sibling)")
    return problems


def find_cycles(graph: Graph) -> List[List[str]]:
    """One cycle (as a path that returns to its start) per strongly connected component."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    components: List[List[str]] = []

    def visit(v: str) -> None:  # Tarjan; the package is small enough for recursion
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph.get(v, ()):
                components.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_cycle_in(set(c), graph) for c in components]


def _cycle_in(component: Set[str], graph: Graph) -> List[str]:
    """A path through ``component`` from its first module back to it (breadth first, shortest)."""
    start = min(component)
    paths = {start: [start]}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph[v] & component):
            if w == start:
                return paths[v] + [start]
            if w not in paths:
                paths[w] = paths[v] + [w]
                queue.append(w)
    raise AssertionError("a strongly connected component has a cycle")  # pragma: no cover


def impurities(path: Path) -> List[str]:
    """What makes a module not pure: I/O imports and calls."""
    found = [f"imports {name}" for name in sorted(external_imports(path))
             if any(name == bad or name.startswith(bad + ".") for bad in IMPURE_MODULES)]
    return found + [f"calls {name}()" for name in sorted(calls(path) & set(IMPURE_CALLS))]


# --------------------------------------------------------------------------- the tree as it is


@pytest.fixture(scope="module")
def architecture() -> str:
    return ARCHITECTURE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def graph() -> Graph:
    return import_graph(ROOT / "audit")


def test_no_import_cycles(graph: Graph) -> None:
    cycles = find_cycles(graph)
    assert not cycles, "import cycles (move the shared part into a module of its own):\n" + "\n".join(
        " -> ".join(c) for c in cycles)


def test_imports_only_go_down_the_layers(graph: Graph, architecture: str) -> None:
    layers = parse_layers(architecture)
    assert len(layers) >= 8 and ["audit.registry"] in layers
    problems = layer_violations(graph, layers)
    assert not problems, "imports against docs/architecture.md:\n" + "\n".join(problems)


def test_every_layer_entry_exists(graph: Graph, architecture: str) -> None:
    """A renamed package must be renamed in the document too (else its rules silently lapse)."""
    named = [unit for layer in parse_layers(architecture) for unit in layer]
    missing = [u for u in named if u not in graph]
    assert not missing, f"docs/architecture.md names modules that do not exist: {missing}"


def test_pure_core_does_no_io(architecture: str) -> None:
    modules = module_names(ROOT / "audit")
    pure = parse_pure(architecture)
    assert len(pure) >= 10
    problems = []
    for name in pure:
        assert name in modules, f"docs/architecture.md lists {name}, which does not exist"
        problems += [f"{name} {what}" for what in impurities(modules[name])]
    assert not problems, "the pure core does I/O:\n" + "\n".join(problems)


# --------------------------------------------------------------------------- the checker itself


def _package(tmp_path: Path, files: Dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return tmp_path / "pkg"


LAYERS = [["pkg.top"], ["pkg.left", "pkg.right"], ["pkg.low", "pkg"]]


def test_checker_finds_a_cycle_hidden_in_a_function(tmp_path: Path) -> None:
    root = _package(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "from pkg.b import thing\n",
        "pkg/b.py": "def f():\n    from . import c\n",
        "pkg/c.py": "import pkg.a\n",
        "pkg/d.py": "from pkg import a\n",  # imports into the cycle, is not part of it
    })
    assert find_cycles(import_graph(root)) == [["pkg.a", "pkg.b", "pkg.c", "pkg.a"]]


def test_checker_passes_an_acyclic_package(tmp_path: Path) -> None:
    root = _package(tmp_path, {"pkg/__init__.py": "", "pkg/a.py": "from pkg import b\n", "pkg/b.py": "import os\n"})
    assert find_cycles(import_graph(root)) == []


def test_checker_finds_upward_and_sibling_imports(tmp_path: Path) -> None:
    root = _package(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/top.py": "from pkg.left import x\nfrom pkg.low import y\n",  # downward: fine
        "pkg/left/__init__.py": "",
        "pkg/left/a.py": "from ..low import y\nfrom . import b\n",  # downward and within: fine
        "pkg/left/b.py": "def f():\n    import pkg.top\n",  # upward
        "pkg/right.py": "from pkg.left.a import z\n",  # sibling
        "pkg/low.py": "",
        "pkg/stray.py": "import pkg.top\n",  # in no layer (the root package is its __init__ only)
    })
    problems = layer_violations(import_graph(root), LAYERS)
    assert problems == [
        "pkg.left.b -> pkg.top: pkg.left may not import pkg.top (a higher layer)",
        "pkg.right -> pkg.left.a: pkg.right may not import pkg.left (a sibling)",
        "pkg.stray is in no layer of docs/architecture.md",
    ]


def test_checker_parses_the_tables_of_a_document() -> None:
    text = ("x\n<!-- layers: ... -->\n| layer | packages |\n| --- | --- |\n| top | `a.b`, `a.c` |\n| low | `a` |\n\n"
            "| other | `z` |\n<!-- pure: ... -->\n- `a.b`, `a.c.d`\n\nnot `a.e`\n")
    assert parse_layers(text) == [["a.b", "a.c"], ["a"]]
    assert parse_pure(text) == ["a.b", "a.c.d"]


def test_checker_finds_io_in_a_module(tmp_path: Path) -> None:
    path = tmp_path / "m.py"
    path.write_text("import os.path\nfrom audit.store import location\n\ndef f():\n    print(open('x'))\n")
    assert impurities(path) == ["imports audit.store", "imports os.path", "calls open()", "calls print()"]
    path.write_text("import json\nfrom audit.compare import model\n\ndef f(x):\n    return sorted(x)\n")
    assert impurities(path) == []

