"""A results folder (``cnnbench report --out``, ``results/`` by default): the name of every file it holds, and the
code each of its tables depends on.

Every reader and writer of results files asks :class:`ResultsFolder` for a path, so a file name is spelled once:
the report, ``pick``, ``compare`` and the CLI find the same ``latency-<target>.csv``. A table's name carries the
target that measured it (:attr:`cnnbench.target.Target.key`, ``cpu-t2-fp32-nchw-eager``), as timm's
``results/benchmark-infer-amp-nchw-….csv`` do; a chart is a stem, written as ``stem.png`` and ``stem.svg``.

The reuse rule: a stored row is reused only when its ``code`` column equals :func:`table_code` for its table, the
fingerprint (:func:`~cnnbench.store.code_fingerprint`) of the model's family file, the shared zoo code and the
modules :data:`TABLE_CODE` lists for that table. Editing one of them measures that table's rows again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from cnnbench import allocator, models
from cnnbench.guidelines import audit, microbench
from cnnbench.measure import (
    bench,
    breakdown,
    counting,
    disturbance,
    forward,
    isolated,
    latency,
    profiling,
    sweep,
)
from cnnbench.runtimes import export, int8, session
from cnnbench.store import code_fingerprint, sidecar_path

__all__ = ["DEFAULT_FOLDER", "ResultsFolder", "TABLE_CODE", "table_code"]

# Where ``cnnbench report`` writes, and ``pick`` and ``train`` read and write, unless told another folder.
DEFAULT_FOLDER = Path("results")

_COUNTS = (counting, profiling)
_LATENCY = (*_COUNTS, forward, allocator, latency, bench, isolated, disturbance, models)

# The modules each table's rows depend on, besides the model's own code. Their order is part of the fingerprint:
# reordering a tuple would measure every stored row of its table again.
TABLE_CODE: dict[str, tuple[ModuleType, ...]] = {
    "zoo": (*_COUNTS, models),
    "latency": _LATENCY,
    "runtime latency": (*_LATENCY, export, int8, session),  # a target with --backend onnxruntime or openvino
    "breakdown": (*_COUNTS, forward, allocator, breakdown, models),
    "sweep": (*_COUNTS, forward, allocator, latency, bench, sweep, models),
    "guidelines": (microbench, forward, allocator, latency, *_COUNTS),  # no zoo model: the benchmark's own blocks
    "guidelines audit": (audit, *_COUNTS, models),
}


def table_code(table: str, model: str | None = None) -> str:
    """The ``code`` a row of ``table`` (a key of :data:`TABLE_CODE`) measured now carries for ``model`` (``None``
    for a table of no zoo model: the guidelines')."""
    return code_fingerprint(model, TABLE_CODE[table])


def _no_spaces(target: str) -> str:
    """An imported target's ``KEY @ HOST`` as it appears in a file name: ``KEY@HOST``."""
    return target.replace(" @ ", "@")


@dataclass(frozen=True)
class ResultsFolder:
    """The files of one results folder. Tables are CSV files with a JSON sidecar (:meth:`sidecar`); ``target`` is
    a target key (``cpu-t2-fp32-nchw-eager``), or for rows imported from pytest-benchmark JSON ``KEY @ HOST``.

    Without a folder, the paths are the bare file names a page or a message quotes: ``ResultsFolder().digits`` is
    ``accuracy-digits.csv``."""

    path: Path = Path()

    # --- tables ---------------------------------------------------------------------------------------------

    @property
    def zoo(self) -> Path:
        """Counts and published figures of every model (meta device)."""
        return self.path / "zoo.csv"

    @property
    def imagenet_accuracy(self) -> Path:
        """The papers' and reference implementations' published top-1 (nothing measured)."""
        return self.path / "accuracy-imagenet.csv"

    def accuracy(self, dataset: str, deployed: bool = False) -> Path:
        """What ``cnnbench train`` measured on ``dataset`` (``--deployed``: on the deployment runtimes)."""
        return self.path / f"accuracy-{dataset}{'-deployed' if deployed else ''}.csv"

    @property
    def digits(self) -> Path:
        """``cnnbench train`` on scikit-learn's digits."""
        return self.accuracy("digits")

    @property
    def deployed_digits(self) -> Path:
        """``cnnbench train --deployed`` on the digits."""
        return self.accuracy("digits", deployed=True)

    def latency(self, target: str) -> Path:
        return self.path / f"latency-{target}.csv"

    def imported_latency(self, target: str, host: str, machine: str) -> Path:
        """Rows of a pytest-benchmark JSON file, one file per target and machine, apart from what this machine
        measures: ``latency-<target>@<host>-<first 6 digits of the machine>.csv``."""
        return self.latency(f"{target}@{host}-{machine[:6]}")

    def latency_tables(self) -> list[Path]:
        """Every latency table the folder holds (measured here or imported), sorted by name."""
        return sorted(self.path.glob("latency-*.csv"))

    @staticmethod
    def latency_target(table: Path) -> str:
        """The target a latency table's name carries (``KEY`` or, imported, ``KEY@HOST-MACHINE``)."""
        return table.stem.removeprefix("latency-")

    def pareto(self, target: str) -> Path:
        return self.path / f"pareto-{_no_spaces(target)}.csv"

    def breakdown(self, target: str) -> Path:
        return self.path / f"breakdown-{target}.csv"

    def guidelines(self, target: str) -> Path:
        return self.path / f"guidelines-{target}.csv"

    def guidelines_page(self, target: str) -> Path:
        """The guideline tables with their verdicts, in Markdown, for the README."""
        return self.path / f"guidelines-{target}.md"

    @property
    def guidelines_audit(self) -> Path:
        return self.path / "guidelines-audit.csv"

    def sweep(self, kind: str, target: str) -> Path:
        """``kind``: ``batch`` or ``threads``."""
        return self.path / f"sweep-{kind}-{target}.csv"

    def prediction(self, target: str) -> Path:
        return self.path / f"prediction-{target}.csv"

    # --- records and pages ----------------------------------------------------------------------------------

    def roofline(self, target: str) -> Path:
        return self.path / f"roofline-{target}.json"

    def cost_model(self, target: str) -> Path:
        """The fitted cost model the report's predictions came from (``cnnbench predict --cost-model`` reads it)."""
        return self.path / f"costmodel-{target}.json"

    @property
    def readme(self) -> Path:
        return self.path / "README.md"

    @property
    def fleet(self) -> Path:
        """The folder of ``cnnbench fleet``'s page (its ``README.md``), when it writes there."""
        return self.path / "fleet"

    @staticmethod
    def sidecar(table: Path) -> Path:
        """``name.csv`` → ``name.env.json``: where the table's rows were measured, and with which settings."""
        return sidecar_path(table)

    # --- chart stems ----------------------------------------------------------------------------------------

    def accuracy_chart(self, x: str) -> Path:
        """Published top-1 against ``x``: ``params`` or ``flops``."""
        return self.path / f"accuracy_vs_{x}"

    def latency_chart(self, x: str) -> Path:
        """Median latency against ``x``: ``flops`` or ``mac_bytes`` (``latency_vs_mac``)."""
        return self.path / f"latency_vs_{'flops' if x == 'flops' else 'mac'}"

    @property
    def speedup_chart(self) -> Path:
        return self.path / "speedup_vs_eager"

    def front_chart(self, target: str) -> Path:
        """Top-1 against latency with the Pareto front, one per target."""
        return self.path / f"accuracy_vs_latency-{_no_spaces(target)}"

    def breakdown_chart(self, target: str) -> Path:
        return self.path / f"breakdown-{target}"

    def roofline_chart(self, target: str) -> Path:
        return self.path / f"roofline-{target}"

    def sweep_chart(self, kind: str, target: str) -> Path:
        return self.path / f"sweep_{kind}-{target}"

    def prediction_chart(self, target: str) -> Path:
        return self.path / f"prediction-{target}"
