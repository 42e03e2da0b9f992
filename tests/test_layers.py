"""The layers of cnnbench: every import runs downward in the order ``cnnbench/__init__.py``'s docstring writes, and
the top-level modules and packages import one another without a cycle.

A node is a top-level module or subpackage of cnnbench (``cnnbench.measure.latency`` → ``measure``,
``cnnbench/choose.py`` → ``choose``); the package root (``__init__``, the public API) and ``__main__`` stand above
every layer. Imports inside functions count as much as those at the top of a file: a late import still ties the
code together, it only hides the tie from the reader.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import pytest
from import_graph import PACKAGE, ROOT, imports_in, module_name

TOP = ("__init__", "__main__")  # may import anything


def documented_layers(docstring: str) -> list[tuple[str, ...]]:
    """The numbered list of the docstring, lowest layer first: ``3. ``store``, ``target``: ...`` → (store, target)."""
    layers = []
    for number, names in re.findall(r"^(\d+)\. ((?:``\w+``(?:, )?)+):", docstring, flags=re.MULTILINE):
        assert int(number) == len(layers) + 1, f"layer {number} of cnnbench/__init__.py is out of order"
        layers.append(tuple(re.findall(r"``(\w+)``", names)))
    return layers


DOCSTRING = ast.get_docstring(ast.parse((PACKAGE / "__init__.py").read_text())) or ""
LAYERS = documented_layers(DOCSTRING)
LAYER_OF = {name: i for i, names in enumerate(LAYERS, start=1) for name in names}
NODES = sorted(
    p.name.removesuffix(".py") for p in PACKAGE.iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()
)


class Edge(NamedTuple):
    source: str  # the importing node
    target: str  # the imported node
    where: str  # file:line


def node_of(module: str, name: str | None = None) -> str | None:
    """The node that ``from module import name`` (or ``import module``) loads; ``None`` outside cnnbench. A name the
    package root defines (``from cnnbench import profile``) is the root's; a submodule (``from cnnbench import
    fronts``) is its own node."""
    parts = module.split(".")
    if parts[0] != "cnnbench":
        return None
    if len(parts) > 1:
        return parts[1]
    return name if name in NODES else "__init__"


def edges_of(path: Path, source: str | None = None) -> list[Edge]:
    """The imports of one file (or of ``source``, read as if it were that file) that leave its node."""
    own = node_of(module_name(path))
    found = []
    for imported in imports_in(path, source):
        for name in imported.names or [None]:
            target = node_of(imported.module, name)
            if target is not None and target != own:
                found.append(Edge(own, target, f"{path.relative_to(ROOT)}:{imported.line}"))
    return sorted(set(found))


def all_edges() -> list[Edge]:
    return [edge for path in sorted(PACKAGE.rglob("*.py")) for edge in edges_of(path)]


def against_the_order(edges: Iterable[Edge]) -> list[str]:
    """Each import that does not run to a lower layer, in words."""
    wrong = []
    for edge in edges:
        if edge.source in TOP:
            continue
        if edge.target in TOP:
            wrong.append(f"{edge.where}: {edge.source} imports the package root; import from the module defining it")
            continue
        below, above = LAYER_OF.get(edge.source), LAYER_OF.get(edge.target)
        if below is None or above is None:
            continue  # in no layer: test_every_node_has_one_layer says so
        if above == below:
            wrong.append(f"{edge.where}: {edge.source} imports {edge.target}, of its own layer {below}")
        elif above > below:
            wrong.append(f"{edge.where}: {edge.source} (layer {below}) imports {edge.target} (layer {above})")
    return wrong


def a_cycle(edges: Iterable[Edge]) -> list[str]:
    """One cycle of the node graph (``[a, b, a]``), or ``[]``."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        graph.setdefault(edge.source, set()).add(edge.target)
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str]:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return []
        for nxt in sorted(graph.get(node, ())):
            if cycle := visit(nxt, [*path, node]):
                return cycle
        done.add(node)
        return []

    for node in sorted(graph):
        if cycle := visit(node, []):
            return cycle
    return []


def test_every_node_has_one_layer() -> None:
    documented = [name for names in LAYERS for name in names]
    assert len(documented) == len(set(documented)), f"a node in two layers of cnnbench/__init__.py: {documented}"
    missing = [n for n in NODES if n not in LAYER_OF and n not in TOP]
    assert not missing, f"cnnbench/__init__.py's docstring puts {missing} in no layer; add each to the list there"


def test_imports_run_downward() -> None:
    wrong = against_the_order(all_edges())
    assert not wrong, "imports against the layers of cnnbench/__init__.py:\n" + "\n".join(wrong)


def test_no_cycle_between_nodes() -> None:
    cycle = a_cycle(all_edges())
    assert not cycle, "import cycle between cnnbench's modules and packages: " + " → ".join(cycle)


@pytest.mark.parametrize(
    ("source", "said"),
    [
        (
            "x = 1\ndef f():\n    from cnnbench.report.tables import run_report\n",
            "3: measure (layer 6) imports report (layer 12)",
        ),
        ("from ..cli import main\n", "1: measure (layer 6) imports cli (layer 15)"),
        ("import cnnbench.guidelines.audit\n", "1: measure (layer 6) imports guidelines (layer 9)"),
        ("from cnnbench import choose\n", "1: measure (layer 6) imports choose (layer 14)"),
        ("from cnnbench import profile\n", "1: measure imports the package root; import from the module defining it"),
        ("from cnnbench import models, runtimes\nfrom . import forward\n", ""),
    ],
)
def test_the_check_sees_an_upward_import(source: str, said: str) -> None:
    """The checks are not blind: an upward import in a measure module, at any depth and in any spelling, is named
    with its file and line; a downward one, or one inside the node, is not."""
    wrong = against_the_order(edges_of(PACKAGE / "measure" / "latency.py", source))
    assert wrong == ([f"cnnbench/measure/latency.py:{said}"] if said else [])


def test_the_check_sees_a_cycle() -> None:
    edges = [Edge("measure", "report", "a:1"), Edge("report", "choose", "b:1"), Edge("choose", "measure", "c:1")]
    assert a_cycle(edges) == ["choose", "measure", "report", "choose"]
    assert a_cycle(edges[:2]) == []


def test_the_docstring_list_is_read_whole() -> None:
    """Every numbered line of the docstring is a layer: a line the pattern missed would leave its nodes unchecked."""
    numbered = [line for line in DOCSTRING.splitlines() if re.match(r"\d+\. ", line)]
    assert len(numbered) == len(LAYERS) > 10
