"""The shape of the code: one home per concern, no import cycle, no borrowed private names, each mechanism once,
and measurement functions that leave their input as it was."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from import_graph import PACKAGE, ROOT, imports_in, module_name
from torch import nn

import zoo
from cnnbench.guidelines.audit import audit
from cnnbench.measure.latency import Timing, measure
from cnnbench.measure.profiling import profile
from cnnbench.target import Target

SOURCES = sorted([*PACKAGE.rglob("*.py"), *(ROOT / "zoo").glob("*.py"), *(ROOT / "tests").glob("*.py"),
                  *(ROOT / "benchmarks").glob("*.py")])  # fmt: skip
MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def _targets(module: str, names: list[str]) -> set[str]:
    """The cnnbench modules an import statement loads: the module, or the submodules it names."""
    out = {module} if module in MODULES else set()
    out |= {f"{module}.{n}" for n in names if f"{module}.{n}" in MODULES}
    return out


def test_no_import_cycle_in_cnnbench() -> None:
    graph = {m: set() for m in MODULES}
    for module, path in MODULES.items():
        for imported, names, _ in imports_in(path):
            graph[module] |= _targets(imported, names) - {module}
    # a package's __init__ importing its own submodules is its job, not a cycle
    for module in graph:
        graph[module] = {t for t in graph[module] if not (MODULES[module].name == "__init__.py"
                                                          and t.startswith(module + "."))}  # fmt: skip
    done: set[str] = set()

    def visit(node: str, stack: list[str]) -> None:
        if node in stack:
            raise AssertionError("import cycle: " + " → ".join([*stack[stack.index(node):], node]))
        if node in done:
            return
        for nxt in sorted(graph[node]):
            visit(nxt, [*stack, node])
        done.add(node)

    for module in sorted(graph):
        visit(module, [])


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_private_name_imported_from_another_module(path: Path) -> None:
    borrowed = [
        f"{module}.{name}"
        for module, names, _ in imports_in(path)
        if module.split(".")[0] in ("cnnbench", "zoo")
        for name in names
        if name.startswith("_") and not name.startswith("__")
    ]
    assert not borrowed, f"{path.name} imports private names: {borrowed}"


def test_files_stay_under_600_lines() -> None:
    long = {str(p.relative_to(ROOT)): n for p in SOURCES if (n := len(p.read_text().splitlines())) >= 600}
    assert not long, long


@pytest.mark.parametrize(
    "definition", ["def time_by_kind(", "def environment(", "QUICK_TIMING = ", "IMAGENET_MEAN = ", "class ResultTable",
                   "def prepare(", "def atomic_path("],
)  # fmt: skip
def test_each_mechanism_is_defined_once(definition: str) -> None:
    homes = [str(p.relative_to(ROOT)) for p in SOURCES if any(line.lstrip().startswith(definition)
                                                            for line in p.read_text().splitlines())]  # fmt: skip
    assert len(homes) == 1, f"{definition!r} is defined in {homes}"


def _state(model: nn.Module) -> tuple[object, ...]:
    tensors = [*model.parameters(), *model.buffers()]
    return (
        model.training,
        {t.device.type for t in tensors},
        {t.dtype for t in tensors},
        [(n, type(m).__name__, m.training) for n, m in model.named_modules()],
        [t.data_ptr() for t in tensors] if tensors[0].device.type != "meta" else len(tensors),
    )


@pytest.mark.parametrize("on_meta", [False, True])
def test_measurement_functions_leave_the_model_as_it_was(on_meta: bool) -> None:
    if on_meta:
        with torch.device("meta"):
            model = zoo.create_model("mobilenet_v3_small")
    else:
        model = zoo.create_model("shufflenet_v2_x0_5")  # channel shuffle: BN folding takes the structural fallback
    model.train()  # a training-mode model stays in training mode
    before, weights = _state(model), copy.deepcopy(model.state_dict())
    profile(model, resolution=32, training_memory=False)
    audit(model, resolution=32)
    if not on_meta:
        measure(model, Target(threads=1, fuse_bn=True, channels_last=True), 1, 32, Timing(min_time_s=0.0, min_iters=1))
        audit(model, resolution=32, time_target=Target(threads=1))
    assert _state(model) == before
    if not on_meta:
        assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())
