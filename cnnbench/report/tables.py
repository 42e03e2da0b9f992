"""The report's tables of counts and derived figures (the zoo, published accuracy, the per-kind breakdown, the Pareto
fronts), and what every table of the report shares: the stamp a stored row must match to be reused, and the
:class:`Guard` of the timed ones.

The latency tables are in :mod:`.latency_tables`, the guidelines' in :mod:`.guideline_tables`, the sweeps' in
:mod:`.sweep_tables`; :func:`cnnbench.report.run.run_report` writes them all. Each file's name comes from
:class:`~cnnbench.results.ResultsFolder`, each row's ``code`` from :func:`~cnnbench.results.table_code`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TypeVar

import pandas as pd

import zoo
from cnnbench import fronts
from cnnbench.accuracy.published import published_accuracy
from cnnbench.measure.breakdown import time_by_kind
from cnnbench.measure.disturbance import Quieting
from cnnbench.measure.probe import Probe
from cnnbench.measure.profiling import profile
from cnnbench.provenance import PROVENANCE_COLUMNS, Stamp, machine_identity
from cnnbench.report.config import BREAKDOWN_MODELS, ReportConfig
from cnnbench.report.readers import families
from cnnbench.results import table_code
from cnnbench.store import ResultTable, atomic_write_text, write_sidecar

__all__ = [
    "Progress",
    "no_progress",
    "Guard",
    "stamp_now",
    "this_machine",
    "measured_by",
    "zoo_table",
    "accuracy_table",
    "breakdown_table",
    "pareto_tables",
]

T = TypeVar("T")
Progress = Callable[[Sequence[T], str], Iterable[T]]


def no_progress(items: Sequence[T], desc: str) -> Iterable[T]:
    """A :data:`Progress` that shows nothing."""
    return items


@dataclass
class Guard:
    """What every timed table of one report shares: the speed probe whose ``probe_ms`` each timed row records (and
    a stored row must agree with to be reused), and how a disturbed row is measured again (:class:`Quieting`)."""

    probe: Probe
    quieting: Quieting = field(default_factory=Quieting)

    @classmethod
    def of(cls, config: ReportConfig, say: Callable[[str], None] | None = None) -> Guard:
        quieting = Quieting(retries=config.retries, say=say or (lambda line: None))
        return cls(Probe(config.target), quieting)


# --- stamps: what a stored row must match to be reused -----------------------------------------------------------


def stamp_now(
    config: ReportConfig, target: str, settings: dict[str, object], code: str, probe_ms: float | None = None
) -> Stamp:
    """The stamp of a row measured now; ``probe_ms`` for timed rows (None: counts, which no speed changes)."""
    return Stamp.here(target, settings, code, device=config.target.torch_device, quick=config.quick, probe_ms=probe_ms)


def this_machine(config: ReportConfig) -> str:
    """The identity of the machine the report runs on (:func:`~cnnbench.provenance.machine_identity`)."""
    return machine_identity(config.target.torch_device)


def measured_by(machine: str) -> Callable[[dict[str, object]], bool]:
    """Whether a stored row was measured on ``machine``: the report shows only this machine's rows."""
    return lambda row: str(row.get("machine")) == machine


# --- counts and published figures ----------------------------------------------------------------------------


def _zoo_row(name: str) -> dict[str, object]:
    info = zoo.model_info(name)
    totals = profile(name).totals
    ref = info.reference_figures
    return {
        "model": name,
        "family": info.family,
        **{k: v for k, v in totals.as_dict().items() if k not in ("model", "dtype", "batch", "unknown_ops")},
        "published_top1": info.published.top1,
        "published_top5": info.published.top5,
        "published_params": info.published.params,
        "published_flops": info.published.flops,
        "published_source": info.published.source,
        "reference": info.reference,
        "reference_top1": ref.top1 if ref else None,
        "reference_source": ref.source if ref else None,
    }


def zoo_table(config: ReportConfig, names: list[str], progress: Progress[str]) -> pd.DataFrame:
    """results/zoo.csv: params, FLOPs (multiply-adds), MAC, memory and published figures of every model."""
    table = ResultTable(config.results.zoo, key=["model"])
    for name in progress(names, "profile"):
        stamp = stamp_now(config, "meta", {"batch": 1, "dtype": "fp32"}, table_code("zoo", name))
        if config.force or table.reusable(stamp, model=name) is None:
            table.put({**_zoo_row(name), **stamp.columns()})
    if config.whole_zoo and not config.quick:
        table.keep_only([{"model": n} for n in names])
    frame = table.frame(measured_by(this_machine(config)))
    write_sidecar(table.path, table.frame(), {"dtype": "float32", "batch": 1, "counted_on": "meta device"})
    return frame


def accuracy_table(config: ReportConfig) -> pd.DataFrame:
    """results/accuracy-imagenet.csv: the papers' top-1 and, apart, the reference implementations' own, for every
    zoo model (published figures: nothing is measured)."""
    frame = published_accuracy()
    frame.insert(1, "family", frame["model"].map(families()))
    frame = frame[frame["top1"].notna()].reset_index(drop=True)
    path = config.results.imagenet_accuracy
    atomic_write_text(path, frame.to_csv(index=False))
    write_sidecar(path, None, {"note": "published figures (papers, reference implementations), not measured"})
    return frame


# --- where the time goes ---------------------------------------------------------------------------------------


def breakdown_table(
    config: ReportConfig, names: list[str], progress: Progress[str], guard: Guard | None = None
) -> pd.DataFrame:
    """results/breakdown-<target>.csv: share of FLOPs, MAC and time per op kind for one model of each family."""
    target = config.target
    guard = guard or Guard.of(config)
    table = ResultTable(config.results.breakdown(target.key), key=["model", "kind"])
    chosen = [n for n in BREAKDOWN_MODELS if n in names] or names[:4]
    settings = {"batch": config.batch, "resolution": config.resolution, "repeats": config.breakdown_repeats}
    for name in progress(chosen, "breakdown"):
        stamp = stamp_now(config, target.key, settings, table_code("breakdown", name), guard.probe.ms())
        if not config.force and table.reusable_group(stamp, model=name):
            continue
        counts = profile(name, resolution=config.resolution, batch=config.batch, training_memory=False).by_kind()
        times = time_by_kind(name, target, config.batch, config.resolution, repeats=config.breakdown_repeats)
        merged = counts.merge(times, on="kind", how="outer").fillna(0)
        columns = stamp.columns(target.torch_device)
        table.replace([{"model": name, **record, **columns} for record in merged.to_dict("records")], model=name)
    write_sidecar(
        table.path,
        table.frame(),
        {"target": target.key, "target_settings": asdict(target), "repeats": config.breakdown_repeats},
    )
    return table.frame(measured_by(this_machine(config)))


# --- derived from the latency tables -------------------------------------------------------------------------


def pareto_tables(
    config: ReportConfig, everything: pd.DataFrame, accuracy: pd.DataFrame, digits: pd.DataFrame
) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    """results/pareto-<target>.csv for every target shown (this machine's, and imported ones): each model's median
    latency at the report's batch, its published top-1 (the paper's, else the reference weights'), params, measured
    peak memory, whether it is on the front and what dominates it (:func:`cnnbench.fronts.front_table`), with the
    provenance of its latency row (machine, torch, commit, time...). Derived, not measured. Returns per target the
    published front and, when ``digits`` (accuracy-digits rows measured here) has rows, the same with the digits
    top-1. ``accuracy``: the report's accuracy-imagenet table."""
    published = fronts.accuracy_for("paper", published=accuracy)
    measured = fronts.digits_top1(digits) if not digits.empty else pd.DataFrame()
    provenance = [c for c in PROVENANCE_COLUMNS if c not in ("settings", "code")]  # the latency row's
    tables: dict[str, tuple[pd.DataFrame, pd.DataFrame]] = {}
    for key, rows in everything.groupby("target", sort=False) if "target" in everything else []:
        rows = rows[pd.to_numeric(rows["batch"]) == config.batch]
        if rows.empty or not (rows["status"] == "ok").any():
            continue
        front = fronts.front_table(rows, published)
        kept = rows.set_index("model")[[c for c in provenance if c in rows]]
        table = front.drop(columns=["status"]).join(kept, on="model")
        path = config.results.pareto(str(key))
        atomic_write_text(path, table.to_csv(index=False))
        write_sidecar(
            path,
            table,
            {
                "target": key,
                "batch": config.batch,
                "accuracy": "published (paper, else the reference weights')",
                "note": "derived from the latency table",
            },
        )
        tables[str(key)] = (front, fronts.front_table(rows, measured) if not measured.empty else pd.DataFrame())
    return tables
