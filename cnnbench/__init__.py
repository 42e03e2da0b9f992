"""cnnbench: the harness that measures the models of :mod:`zoo`.

Every measurement is a pure function that returns a pandas object or a dataclass; ``cnnbench.cli`` only parses and
prints. Each concern has one home:

- :mod:`cnnbench.measure`: counting and profiling (meta device), the forward on a target, latency, the per-op
  breakdown, the roofline, the bench sweep;
- :mod:`cnnbench.guidelines`: ShuffleNetV2's G1–G4 microbenchmarks and the audit;
- :mod:`cnnbench.accuracy`: published figures, training on the digits, evaluating a checkpoint;
- :mod:`cnnbench.report`: the tables, charts and page of ``cnnbench report``;
- :mod:`cnnbench.fronts`: the Pareto front of accuracy against measured latency;
- :mod:`cnnbench.choose`: ``pick``, the ranking under budgets on one target's results;
- :mod:`cnnbench.compare`: ``compare``, the regression gate between two runs;
- :mod:`cnnbench.target`, :mod:`cnnbench.store`, :mod:`cnnbench.provenance`: where, how it is kept, by whom.

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
