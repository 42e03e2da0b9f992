"""cnnbench: the harness that measures the models of :mod:`zoo`.

Every measurement is a pure function that returns a pandas object or a dataclass; ``cnnbench.cli`` only parses and
prints. Each concern has one home, and the homes stand in layers, lowest first. A module imports from the layers
below its own, never from a layer above nor from another module of its own layer, so that each layer can be read
with only the ones below it in mind; ``tests/test_layers.py`` checks every import, those inside functions too. This
file (the public API) and ``__main__`` may import anything.

1. ``errors``: :class:`CnnbenchError`, the one exception base;
2. ``provenance``, ``allocator``, ``stats``, ``output``: who measured where, when and with which code; what the
   host's malloc does while timing; bootstrap intervals and the verdict of an interval against 1; how a table and
   progress are shown (the report's page and the CLI use it; nothing below the report prints);
3. ``store``, ``target``: results tables, their sidecars and the cache folder; where latency is measured;
4. ``models``, ``images``: a model object or a name resolved to a network; the digits and image folders fed to
   models;
5. ``runtimes``: the deployment runtimes behind ``--backend`` (ONNX Runtime and OpenVINO on the ONNX export and its
   INT8, ExecuTorch, ncnn; the sessions; the files for a device), which
   :func:`cnnbench.measure.forward.forward_on` hands a deployed target to;
6. ``measure``: counting and profiling (meta device), the forward on a target, latency, the per-op breakdown, the
   roofline, the bench sweep;
7. ``catalog``: the zoo as a table; zoo names and wildcards resolved;
8. ``accuracy``: published figures, training on the digits, evaluating a checkpoint;
9. ``costmodel``, ``guidelines``: latency predicted from the counts; ShuffleNetV2's G1–G4 microbenchmarks and the
   audit;
10. ``benchmark_json``, ``fronts``, ``results``: pytest-benchmark's JSON read back; the Pareto front of accuracy
    against latency; the results folder, its file names and when a stored row is reused;
11. ``compare``: the regression gate between two runs;
12. ``report``: the tables, charts and page of ``cnnbench report``;
13. ``fleet``: several machines' results folders (and published tables) merged, side by side, on one page;
14. ``choose``: ``pick``, the ranking under budgets on one target's results, or on every device of a fleet;
15. ``cli``: the commands, which parse, call and print.

The names below import from ``cnnbench`` directly; the heavier ones load on first use.
"""

from importlib import import_module
from typing import Any

from cnnbench.catalog import catalog, count_params
from cnnbench.errors import CnnbenchError
from cnnbench.measure.profiling import Profile, ProfileTotals, profile
from cnnbench.target import Target

__version__ = "0.1.0"

_LAZY = {
    "Timing": "cnnbench.measure.latency",
    "measure": "cnnbench.measure.latency",
    "bench": "cnnbench.measure.bench",
    "time_by_kind": "cnnbench.measure.breakdown",
    "run_guidelines": "cnnbench.guidelines.run",
    "audit": "cnnbench.guidelines.audit",
    "published_accuracy": "cnnbench.accuracy.published",
    "train": "cnnbench.accuracy.train",
    "evaluate": "cnnbench.accuracy.evaluate",
    "ReportConfig": "cnnbench.report.config",
    "run_report": "cnnbench.report.run",
    "pick": "cnnbench.choose",
    "pick_fleet": "cnnbench.choose",
    "merge_folders": "cnnbench.fleet.merge",
    "write_page": "cnnbench.fleet.page",
    "pareto": "cnnbench.fronts",
}

__all__ = [
    "CnnbenchError",
    "Profile",
    "ProfileTotals",
    "Target",
    "catalog",
    "count_params",
    "profile",
    *_LAZY,
    "__version__",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cnnbench' has no attribute {name!r}")
