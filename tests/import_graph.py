"""Every import of a source file, read from its syntax tree: the one reader behind tests/test_layout.py's cycle and
private-name checks and tests/test_layers.py's layer order."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "cnnbench"


class Import(NamedTuple):
    module: str  # absolute, relative imports resolved: "cnnbench.measure.latency"
    names: list[str]  # what ``from module import ...`` takes; [] for ``import module``
    line: int


def module_name(path: Path) -> str:
    """``cnnbench/measure/latency.py`` → ``cnnbench.measure.latency``; a package's ``__init__.py`` → the package."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_in(path: Path, source: str | None = None) -> list[Import]:
    """Every import in the file (or in ``source``, read as if it were that file), at any depth: those inside
    functions too."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text() if source is None else source, str(path))):
        if isinstance(node, ast.Import):
            found += [Import(alias.name, [], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            found.append(Import(base, [alias.name for alias in node.names], node.lineno))
    return found
