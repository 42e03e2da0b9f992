"""``cnnbench report``: regenerate results/ — the tables and charts of the zoo (or of some models) on one target.

Every table is a :class:`~cnnbench.store.ResultTable`, written atomically after each row (or group of rows), and
every row carries its provenance: the machine, torch, target, settings and code that measured it, its commit and
its time. A stored row is reused only when all of these match what this run would measure (its
:class:`~cnnbench.provenance.Stamp`); anything else is measured again, so a fresh clone on another machine measures
everything, a rerun on the same machine reuses everything, and a run killed half-way resumes where it stopped.
The page and the charts show only rows this machine measured (and, labelled as such, rows imported from
pytest-benchmark JSON); every sidecar says which commits and machines its rows came from.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TypeVar

import pandas as pd

import zoo
from cnnbench import allocator, compare, fronts, models
from cnnbench.accuracy.published import published_accuracy
from cnnbench.errors import CnnbenchError
from cnnbench.guidelines import audit as guidelines_audit
from cnnbench.guidelines import microbench as g
from cnnbench.guidelines.audit import audit
from cnnbench.guidelines.verdicts import TIE, verdict
from cnnbench.measure import bench as bench_module
from cnnbench.measure import breakdown, counting, disturbance, forward, isolated, latency, profiling, sweep
from cnnbench.measure.bench import BENCH_TEXT_COLUMNS, as_frame, iter_bench
from cnnbench.measure.breakdown import time_by_kind
from cnnbench.measure.disturbance import Disturbance, Quieting
from cnnbench.measure.probe import Probe
from cnnbench.measure.profiling import profile
from cnnbench.measure.roofline import Roofline, cached_roofline, roofline_bound_ms
from cnnbench.provenance import PROVENANCE_COLUMNS, Stamp, machine_identity
from cnnbench.report import recheck
from cnnbench.report.config import BREAKDOWN_MODELS, QUICK_MODELS, ReportConfig, check_config, deployment_targets
from cnnbench.report.page import Page, write_charts, write_front_charts, write_prediction_chart, write_readme
from cnnbench.report.prediction import prediction_table, start_calibration
from cnnbench.report.readers import all_latency, digits_here, families, here, measured_elsewhere, merge_benchmarks
from cnnbench.runtimes import SUGGESTED_DEPLOY_MAX_FLOPS, export, int8, session
from cnnbench.store import (
    ResultTable,
    atomic_write_text,
    code_fingerprint,
    provenance_summary,
    refresh_sidecar,
    write_sidecar,
)
from cnnbench.target import INT8, Target, runtime_version

__all__ = [
    "run_report",
    "zoo_table",
    "accuracy_table",
    "latency_table",
    "breakdown_table",
    "guidelines_tables",
    "sweep_tables",
    "all_latency",
    "digits_here",
    "pareto_tables",
]

T = TypeVar("T")
Progress = Callable[[Sequence[T], str], Iterable[T]]


def _identity(items: Sequence[T], desc: str) -> Iterable[T]:
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


def _stamp(
    config: ReportConfig, target: str, settings: dict[str, object], code: str, probe_ms: float | None = None
) -> Stamp:
    """The stamp of a row measured now; ``probe_ms`` for timed rows (None: counts, which no speed changes)."""
    return Stamp.here(target, settings, code, device=config.target.torch_device, quick=config.quick, probe_ms=probe_ms)


def _here(config: ReportConfig) -> str:
    return machine_identity(config.target.torch_device)


def _mine(machine: str) -> Callable[[dict[str, object]], bool]:
    return lambda row: str(row.get("machine")) == machine


# --- tables ----------------------------------------------------------------------------------------------------


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
    table = ResultTable(config.out / "zoo.csv", key=["model"])
    for name in progress(names, "profile"):
        stamp = _stamp(
            config, "meta", {"batch": 1, "dtype": "fp32"}, code_fingerprint(name, [counting, profiling, models])
        )
        if config.force or table.reusable(stamp, model=name) is None:
            table.put({**_zoo_row(name), **stamp.columns()})
    if config.whole_zoo and not config.quick:
        table.keep_only([{"model": n} for n in names])
    frame = table.frame(_mine(_here(config)))
    write_sidecar(table.path, table.frame(), {"dtype": "float32", "batch": 1, "counted_on": "meta device"})
    return frame


def accuracy_table(config: ReportConfig) -> pd.DataFrame:
    """results/accuracy-imagenet.csv: the papers' top-1 and, apart, the reference implementations' own, for every
    zoo model (published figures: nothing is measured)."""
    frame = published_accuracy()
    frame.insert(1, "family", frame["model"].map(families()))
    frame = frame[frame["top1"].notna()].reset_index(drop=True)
    path = config.out / "accuracy-imagenet.csv"
    atomic_write_text(path, frame.to_csv(index=False))
    write_sidecar(path, None, {"note": "published figures (papers, reference implementations), not measured"})
    return frame


def _latency_settings(config: ReportConfig) -> dict[str, object]:
    return {"timing": asdict(config.timing), "batch": config.batch, "resolution": config.resolution}


def _latency_rows(
    config: ReportConfig, names: list[str], target: Target, probe_ms: float | None
) -> tuple[ResultTable, dict[str, Stamp]]:
    """``target``'s latency table and the stamp each model's row must carry to be reused (at today's speed
    ``probe_ms``)."""
    path = config.out / f"latency-{target.key}.csv"
    table = ResultTable(path, key=["model", "batch"], text_columns=BENCH_TEXT_COLUMNS)
    int8_settings = {"calibration": str(config.calibration), "calibration_images": int8.LATENCY_CALIBRATION_IMAGES}
    settings = {**_latency_settings(config), **(int8_settings if target.dtype == INT8 else {})}
    modules = [counting, profiling, forward, allocator, latency, bench_module, isolated, disturbance, models]
    modules += [export, int8, session] if target.runtime else []
    return table, {
        name: _stamp(config, target.key, settings, code_fingerprint(name, modules), probe_ms) for name in names
    }


def deployed_models(config: ReportConfig, names: list[str], zoo_frame: pd.DataFrame) -> list[str]:
    """The models of the deployment tables: every one of ``names`` within ``config.deploy_max_flops``
    (multiply-adds at the model's own resolution, from the zoo table), or all of them without a limit."""
    if config.deploy_max_flops is None or zoo_frame.empty:
        return list(names)
    flops = zoo_frame.set_index("model")["flops"]
    return [n for n in names if n not in flops or float(flops[n]) <= config.deploy_max_flops]


# Above this many parameters a model's export holds over 1.5 GB (torch's exporter keeps its weights four times):
# AlexNet (61 M) is light in multiply-adds but not here.
HEAVY_PARAMS = 40_000_000


def prepare_deployments(
    config: ReportConfig,
    names: list[str],
    progress: Progress[str],
    guard: Guard | None = None,
    heavy: frozenset[str] = frozenset(),
) -> int:
    """Export (and quantize, for int8) every model whose deployment rows will be measured, several children at
    once (:func:`~cnnbench.measure.isolated.preparation_workers`), before any of them is timed: the files land in the
    cache, and each row then loads its file instead of making it on one core. The ``heavy`` models (above
    :data:`~cnnbench.runtimes.SUGGESTED_DEPLOY_MAX_FLOPS` or :data:`HEAVY_PARAMS`: exports of up to 3 GB) are
    prepared as many at once as fit in the memory budget, the others as many as their smaller size allows. A file
    that fails here is left to its row, which records the reason. Returns the number of files made or found."""
    jobs: dict[tuple[str, str], tuple[object, ...]] = {}
    probe_ms = (guard or Guard.of(config)).probe.ms()
    for target in deployment_targets(config):
        table, stamps = _latency_rows(config, names, target, probe_ms)
        for name in names:
            row = table.reusable(stamps[name], model=name, batch=config.batch)
            if config.force or row is None or row.get("status") != "ok":
                side = config.resolution or zoo.model_info(name).resolution
                jobs.setdefault((name, target.dtype), (name, target, config.batch, side, config.calibration))
    done = 0
    for int8_phase, what in ((False, "export"), (True, "export + int8")):  # exports first: int8 starts from them
        for big in (False, True):
            argsets = [
                args for (name, dtype), args in jobs.items() if (dtype == INT8) == int8_phase and (name in heavy) == big
            ]
            if not argsets:
                continue
            largest = isolated.LARGEST_PREPARATION_BYTES if big else isolated.LIGHT_PREPARATION_BYTES
            workers = isolated.preparation_workers(largest)
            label = f"prepare {what}{' (largest models)' if big else ''}"
            results = isolated.map_isolated(session.deployable, argsets, workers, progress, label)
            done += sum(not isinstance(r, CnnbenchError) for r in results)
    return done


def latency_table(
    config: ReportConfig,
    names: list[str],
    roof: Roofline | None,
    progress: Progress[str],
    target: Target | None = None,
    between: Callable[[], None] | None = None,
    guard: Guard | None = None,
) -> pd.DataFrame:
    """results/latency-<target>.csv: one row per model at ``config.batch``; failed models keep their reason.

    ``target`` defaults to the report's own; a deployment target (``config.deployments``) gets a table of its own.
    ``between`` runs after each row measured (the cost model's calibration interleaves its networks there).
    ``guard`` probes the machine's speed and measures a disturbed row again (default: a new one). A stored row is
    reused when its stamp matches, its probe agrees with today's and it is not disturbed.
    Returns this machine's rows, each bounded with this machine's roofline (the bound is derived, not measured; no
    bound without a roofline, as for int8).
    """
    target = target or config.target
    guard = guard or Guard.of(config)
    table, stamps = _latency_rows(config, names, target, None)
    rows_before, measured = len(table.find()), 0
    for name in progress(names, f"latency {target.backend} {target.dtype}"):
        stamp = replace(stamps[name], probe_ms=guard.probe.ms())
        row = table.reusable(stamp, model=name, batch=config.batch)
        if not config.force and row is not None and row.get("status") == "ok":
            continue
        (result,) = iter_bench(
            [name],
            target,
            [config.batch],
            config.resolution,
            config.timing,
            roof,
            calibration=config.calibration,
            quieting=guard.quieting,
            probe=guard.probe,
        )
        table.put({**result, "family": zoo.model_info(name).family, **stamp.columns(target.torch_device)})
        measured += 1
        if between is not None:
            between()
    if config.whole_zoo and not config.quick:  # a model no longer in the zoo, or beyond the deployment limit
        batches = {str(row["batch"]) for row in table.find()}  # every batch measured stays
        table.keep_only([{"model": n, "batch": b} for n in names for b in batches])
    sidecar = table.path.with_suffix(".env.json")
    if measured or len(table.find()) != rows_before or not sidecar.exists():  # `pick` reads without a roofline
        write_sidecar(
            table.path,
            table.frame(),
            {
                "target": target.key,
                "target_settings": asdict(target),
                "runtime_version": runtime_version(target.backend),
                "timing": asdict(config.timing),
                "roofline": asdict(roof) if roof else None,
            },
        )
    frame = as_frame(table.frame(_mine(_here(config))).to_dict("records"))
    ok = frame["status"] == "ok"
    if ok.any() and roof is not None:
        pairs = zip(frame.loc[ok, "flops"], frame.loc[ok, "mac_bytes"], strict=True)
        frame.loc[ok, "roofline_bound_ms"] = [roofline_bound_ms(int(f), int(b), roof) for f, b in pairs]
        frame.loc[ok, "roofline_fraction"] = frame.loc[ok, "roofline_bound_ms"] / pd.to_numeric(
            frame.loc[ok, "latency_ms_median"]
        )
    return frame


def recheck_latency(
    config: ReportConfig,
    frame: pd.DataFrame,
    roof: Roofline | None,
    target: Target,
    guard: Guard,
    predicted: pd.Series | None = None,
) -> int:
    """Measure once more every row of ``frame`` (this machine's rows of ``target``'s latency table) that is far
    slower than expected (:func:`cnnbench.report.recheck.implausible`), and record it in ``rechecked``. Returns the
    number of rows measured again."""
    found = (
        recheck.implausible(frame[pd.to_numeric(frame["batch"]) == config.batch], predicted) if not frame.empty else []
    )
    if not found:
        return 0
    table, stamps = _latency_rows(config, [f.model for f in found], target, None)
    for first in found:
        guard.quieting.say(
            f"{first.model} on {target.key}: {first.measured_ms:.4g} ms is {first.factor:.1f}× "
            f"{first.source}'s {first.expected_ms:.4g} ms; measuring it again"
        )
        stamp = replace(stamps[first.model], probe_ms=guard.probe.ms())
        (result,) = iter_bench(
            [first.model],
            target,
            [config.batch],
            config.resolution,
            config.timing,
            roof,
            calibration=config.calibration,
            quieting=guard.quieting,
            probe=guard.probe,
        )
        again = float(result["latency_ms_median"]) if result.get("status") == "ok" else float("nan")
        table.put(
            {
                **result,
                "family": zoo.model_info(first.model).family,
                **stamp.columns(target.torch_device),
                "rechecked": recheck.recheck_note(first, again),
            }
        )
    refresh_sidecar(table.path, table.frame())
    return len(found)


def breakdown_table(
    config: ReportConfig, names: list[str], progress: Progress[str], guard: Guard | None = None
) -> pd.DataFrame:
    """results/breakdown-<target>.csv: share of FLOPs, MAC and time per op kind for one model of each family."""
    target = config.target
    guard = guard or Guard.of(config)
    path = config.out / f"breakdown-{target.key}.csv"
    table = ResultTable(path, key=["model", "kind"])
    chosen = [n for n in BREAKDOWN_MODELS if n in names] or names[:4]
    settings = {"batch": config.batch, "resolution": config.resolution, "repeats": config.breakdown_repeats}
    for name in progress(chosen, "breakdown"):
        code = code_fingerprint(name, [counting, profiling, forward, allocator, breakdown, models])
        stamp = _stamp(config, target.key, settings, code, guard.probe.ms())
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
    return table.frame(_mine(_here(config)))


def guidelines_tables(
    config: ReportConfig, names: list[str], progress: Progress[str], guard: Guard | None = None
) -> pd.DataFrame:
    """results/guidelines-<target>.csv (SN2 Tables 1–4 re-run here, one interleaved table per guideline and scale),
    guidelines-audit.csv (models audited) and guidelines-<target>.md (tables with verdicts, for the README)."""
    target = config.target
    path = config.out / f"guidelines-{target.key}.csv"
    table = ResultTable(path, key=["guideline", "config", "scale"])
    scales = (1,) if config.quick else g.SCALES
    rounds = config.guideline_rounds or (g.QUICK_ROUNDS if config.quick else g.ROUNDS)
    batch = g.default_batch(target)
    settings = {"timing": asdict(config.timing), "batch": batch, "rounds": rounds}
    # no zoo model: the benchmark's own code
    code = code_fingerprint(None, [g, forward, allocator, latency, counting, profiling])
    guard = guard or Guard.of(config)
    stamp = _stamp(config, target.key, settings, code)
    for guideline, scale in progress([(k, s) for k in g.GUIDELINES for s in scales], "guidelines"):
        size = len(g.GUIDELINES[guideline].rows)
        stamp = replace(stamp, probe_ms=guard.probe.ms())
        if not config.force and table.reusable_group(stamp, size, guideline=guideline, scale=scale):
            continue
        rows, attempts = guard.quieting.measure(
            f"{guideline} at scale {scale}",
            lambda: g.run_table(guideline, scale, target, batch, config.timing, rounds),  # noqa: B023
            _table_disturbance,
        )
        rows = [{**row, "attempts": attempts} for row in rows]
        columns = stamp.columns(target.torch_device)
        table.replace([{**row, **columns} for row in rows], guideline=guideline, scale=scale)
    write_sidecar(
        table.path,
        table.frame(),
        {"target": target.key, "target_settings": asdict(target), "timing": asdict(config.timing), "rounds": rounds},
    )
    mine = table.frame(_mine(stamp.machine))
    frame = g.results_frame(mine.to_dict("records")) if not mine.empty else mine

    audits = ResultTable(config.out / "guidelines-audit.csv", key=["model"], text_columns=["g2_groups", "flags"])
    for name in progress(names, "audit"):
        a_stamp = _stamp(
            config, "meta", {"batch": 1}, code_fingerprint(name, [guidelines_audit, counting, profiling, models])
        )
        if config.force or audits.reusable(a_stamp, model=name) is None:
            audits.put({**audit(name).summary, **a_stamp.columns()})
    if config.whole_zoo and not config.quick:
        audits.keep_only([{"model": n} for n in names])
    write_sidecar(audits.path, audits.frame(), {"counted_on": "meta device", "batch": 1})
    _guidelines_page(config, frame, rounds)
    return frame


def _table_disturbance(rows: list[dict[str, object]]) -> Disturbance | None:
    """A guideline table's rows share one timed window: the first row's reading stands for all."""
    if not rows or rows[0].get("cpu_share") is None:
        return None
    first = rows[0]
    return Disturbance(
        cpu_share=float(first["cpu_share"]),  # type: ignore[arg-type]
        cpu_steal=None if first.get("cpu_steal") is None else float(first["cpu_steal"]),
    )  # type: ignore[arg-type]


def _guidelines_page(config: ReportConfig, frame: pd.DataFrame, rounds: int) -> Path:
    key = config.target.key
    md = config.out / f"guidelines-{key}.md"
    lines = [f"## ShuffleNetV2's guidelines on {key}", ""]
    if frame.empty:
        atomic_write_text(md, "\n".join([*lines, "Not measured on this machine.", ""]))
        return md
    lines += [
        f"Each table (a guideline at one scale) was timed in {rounds} interleaved rounds; `speed vs base` is the "
        "median of the per-round speed ratios with its 95% bootstrap interval. The verdicts judge each ordering the "
        'paper claims by that interval per multiply-add (the rows\' FLOPs differ by up to 5.5%): "no faster than" '
        f"holds when the interval lies at or below {1 + TIE:.2f} and fails when it lies above; a claimed speed-up "
        "holds when it lies below 1; anything else is undecided.",
        "",
    ]
    lines += [
        f"- {verdict(frame, guideline).summary}" for guideline in g.GUIDELINES if guideline in set(frame["guideline"])
    ]
    shown = frame[["guideline", "config", "scale", "flops", "mac", "latency_ms_median", "images_s", "paper_vs_base"]]
    shown = shown.copy()
    shown.insert(7, "speed_vs_base", g.speed_texts(frame))
    shown["flops"] = (pd.to_numeric(shown["flops"]) / 1e6).round(1)
    shown["mac"] = (pd.to_numeric(shown["mac"]) / 1e6).round(2)
    shown = shown.round(3).rename(
        columns={"flops": "MFLOPs (mult-adds)", "mac": "MAC (M elem)", "speed_vs_base": "speed vs base [95% CI]"}
    )
    lines += [
        "",
        shown.to_markdown(index=False),
        "",
        "Audit of every model: `guidelines-audit.csv` (`cnnbench guidelines --audit --all` explains the columns).",
        "",
    ]
    atomic_write_text(md, "\n".join(lines))
    return md


# The report's sweeps: quick timing, in this process (no child per row), a model's batches stopped once one batch's
# median passes SWEEP_STOP_MS (larger ones would only take longer). The row that passes it costs the most (a 0.6 s
# median is timed ~6 times): stopping at 0.4 s took 125 s from scratch on a 2-core CPU, at 0.2 s about 85 s.
SWEEP_TIMING = latency.QUICK_TIMING
SWEEP_BATCHES = (1, 2, 4, 8, 16, 32)
QUICK_SWEEP_BATCHES = (1, 2, 4)  # --quick: the first quick model only
SWEEP_STOP_MS = 200.0


def sweep_tables(
    config: ReportConfig, names: list[str], progress: Progress[str], guard: Guard | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """results/sweep-batch-<target>.csv (latency and throughput per batch, :data:`SWEEP_BATCHES`, each model's stopped
    after the first batch whose median passes :data:`SWEEP_STOP_MS`) and sweep-threads-<target>.csv (speed-up per
    thread count, :func:`~cnnbench.measure.sweep.default_threads`, at ``config.batch``; CPU targets only), for one
    model per family on the report's target, timed with :data:`SWEEP_TIMING`. Returns this machine's rows of each."""
    target = config.target
    if config.quick:
        chosen, batches = ([n for n in QUICK_MODELS if n in names] or names)[:1], QUICK_SWEEP_BATCHES
    else:
        chosen, batches = [n for n in BREAKDOWN_MODELS if n in names] or names[:4], SWEEP_BATCHES
    threads = sweep.default_threads() if target.device == "cpu" else []
    timing = SWEEP_TIMING
    common = {
        "timing": asdict(timing),
        "resolution": config.resolution,
        **({"calibration": str(config.calibration)} if target.dtype == INT8 else {}),
    }

    guard = guard or Guard.of(config)

    def by_batch(name: str) -> pd.DataFrame:
        return sweep.batch_sweep(
            name,
            target,
            batches,
            config.resolution,
            timing,
            stop_after_ms=SWEEP_STOP_MS,
            isolate=False,
            calibration=config.calibration,
            quieting=guard.quieting,
        )

    def by_threads(name: str) -> pd.DataFrame:
        return sweep.thread_sweep(
            name,
            target,
            threads,
            config.batch,
            config.resolution,
            timing,
            isolate=False,
            calibration=config.calibration,
            quieting=guard.quieting,
        )

    batch_settings = {**common, "batches": list(batches), "stop_after_ms": SWEEP_STOP_MS}
    thread_settings = {**common, "batch": config.batch, "threads": threads}
    return (
        _sweep_table(config, "batch", chosen, batch_settings, by_batch, progress, guard),
        _sweep_table(config, "threads", chosen if threads else [], thread_settings, by_threads, progress, guard),
    )


def _sweep_table(
    config: ReportConfig,
    kind: str,
    chosen: list[str],
    settings: dict[str, object],
    run: Callable[[str], pd.DataFrame],
    progress: Progress[str],
    guard: Guard,
) -> pd.DataFrame:
    """results/sweep-<kind>-<target>.csv: each model's rows measured together by ``run``, or reused together."""
    target = config.target
    table = ResultTable(
        config.out / f"sweep-{kind}-{target.key}.csv", key=["model", kind], text_columns=BENCH_TEXT_COLUMNS
    )
    for name in progress(chosen, f"sweep {kind}"):
        code = code_fingerprint(name, [counting, profiling, forward, allocator, latency, bench_module, sweep, models])
        stamp = _stamp(config, target.key, settings, code, guard.probe.ms())
        if not config.force and table.reusable_group(stamp, model=name):
            continue
        columns = {"family": zoo.model_info(name).family, **stamp.columns(target.torch_device)}
        table.replace([{**row, **columns} for row in run(name).to_dict("records")], model=name)
    write_sidecar(table.path, table.frame(), {"target": target.key, "target_settings": asdict(target), **settings})
    return table.frame(_mine(_here(config))).dropna(axis=1, how="all")  # no roofline, export, … columns


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
        path = config.out / f"pareto-{str(key).replace(' @ ', '@')}.csv"
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


def _against_baseline(config: ReportConfig) -> tuple[str, pd.DataFrame, str]:
    """(the baseline folder, :func:`~cnnbench.compare.compare`'s frame against it, or the one line that says
    why there is none); empty without ``--baseline``. A comparison that cannot be made does not fail the report."""
    if config.baseline is None:
        return "", pd.DataFrame(), ""
    try:
        return str(config.baseline), compare.compare(Path(config.baseline), config.out), ""
    except CnnbenchError as err:
        return str(config.baseline), pd.DataFrame(), str(err)


# --- the whole report ----------------------------------------------------------------------------------------


def run_report(
    config: ReportConfig,
    progress: Progress[str] = _identity,  # type: ignore[assignment]
    say: Callable[[str], None] | None = None,
) -> dict[str, Path]:
    """Check every input, measure what is missing, then write every table, chart and results/README.md.

    ``say`` gets a line for each disturbed row measured again (:class:`Quieting`). Returns the files written.
    """
    started = time.perf_counter()
    config, names, benchmarks = check_config(config)
    target, out = config.target, config.out
    machine = _here(config)
    written: dict[str, Path] = {}
    guard = Guard.of(config, say)

    zoo_frame = zoo_table(config, names, progress)
    written["zoo"] = out / "zoo.csv"
    accuracy = accuracy_table(config)
    written["accuracy-imagenet"] = out / "accuracy-imagenet.csv"
    roof = cached_roofline(target)
    atomic_write_text(out / f"roofline-{target.key}.json", json.dumps(asdict(roof), indent=2) + "\n")
    written["roofline"] = out / f"roofline-{target.key}.json"
    # the cost model's networks are timed between the eager rows it is checked against: a drift slows both alike
    calibration = (
        start_calibration(config, len(names), progress, guard.quieting, guard.probe.ms()) if config.predict else None
    )
    latency_frame = latency_table(
        config,
        names,
        None if target.dtype == INT8 else roof,
        progress,
        between=calibration.between if calibration else None,
        guard=guard,
    )
    written["latency"] = out / f"latency-{target.key}.csv"
    prediction, prediction_note = (
        prediction_table(config, names, latency_frame, progress, calibration)
        if config.predict
        else (pd.DataFrame(), "")
    )
    predicted = prediction.set_index("model")["latency_ms"] if not prediction.empty else None
    eager_roof = None if target.dtype == INT8 else roof
    if recheck_latency(config, latency_frame, eager_roof, target, guard, predicted):
        latency_frame = latency_table(config, names, eager_roof, _identity, guard=guard)
        if config.predict:
            prediction, prediction_note = prediction_table(config, names, latency_frame, _identity, calibration)
    if not prediction.empty:
        written["prediction"] = out / f"prediction-{target.key}.csv"
    deployed_names = deployed_models(config, names, zoo_frame)
    heavy = (
        frozenset()
        if zoo_frame.empty
        else frozenset(
            zoo_frame.loc[
                (pd.to_numeric(zoo_frame["flops"]) > SUGGESTED_DEPLOY_MAX_FLOPS)
                | (pd.to_numeric(zoo_frame["params"]) > HEAVY_PARAMS),
                "model",
            ]
        )
    )
    prepare_deployments(config, deployed_names, progress, guard, heavy)
    for deployed in deployment_targets(config):
        deployed_roof = None if deployed.dtype == INT8 else cached_roofline(deployed)
        deployed_frame = latency_table(config, deployed_names, deployed_roof, progress, deployed, guard=guard)
        recheck_latency(config, deployed_frame, deployed_roof, deployed, guard)
        written[f"latency-{deployed.key}"] = out / f"latency-{deployed.key}.csv"
    breakdown = breakdown_table(config, names, progress, guard) if not target.runtime else pd.DataFrame()
    written["breakdown"] = out / f"breakdown-{target.key}.csv"
    guidelines = guidelines_tables(config, names, progress, guard)
    written["guidelines"] = out / f"guidelines-{target.key}.csv"
    sweep_batch, sweep_threads = (
        sweep_tables(config, names, progress, guard) if config.sweeps else (pd.DataFrame(),) * 2
    )
    written.update(
        {
            f"sweep-{k}": out / f"sweep-{k}-{target.key}.csv"
            for k in ("batch", "threads")
            if (out / f"sweep-{k}-{target.key}.csv").exists()
        }
    )
    for path in merge_benchmarks(config, benchmarks) if benchmarks else []:
        written[path.stem] = path
    everything, left_out = all_latency(out, machine)
    if not everything.empty and ("family" not in everything or everything["family"].isna().any()):
        everything["family"] = everything["model"].map(families()).fillna("other")
    digits, others = digits_here(out, machine)
    fronts = pareto_tables(config, everything, accuracy, digits) if not everything.empty else {}
    written.update({f"pareto-{k}": out / f"pareto-{k.replace(' @ ', '@')}.csv" for k in fronts})

    deployed = tuple(t.key for t in deployment_targets(config))
    chart_paths = write_charts(
        out,
        zoo_frame,
        accuracy,
        everything,
        breakdown,
        latency_frame,
        roof,
        target,
        deployed,
        sweep_batch,
        sweep_threads,
    )
    chart_paths.update(write_front_charts(out, fronts))
    chart_paths.update(write_prediction_chart(out, prediction, target.key))
    written.update(chart_paths)
    shown = [
        f
        for f in (zoo_frame, latency_frame, breakdown, guidelines, digits, sweep_batch, sweep_threads, prediction)
        if not f.empty
    ]
    page = Page(
        provenance=provenance_summary(pd.concat([f.dropna(axis=1, how="all") for f in shown], ignore_index=True))
        if shown
        else {},
        left_out=left_out,
        digits=digits,
        digits_elsewhere=measured_elsewhere(others),
        elapsed_s=time.perf_counter() - started,
        fronts=fronts,
        not_deployed=tuple(n for n in names if n not in deployed_names) if deployed else (),
        deploy_max_flops=config.deploy_max_flops,
        baseline=_against_baseline(config),
        deployments=deployed,
        deployed_digits=here(out / "accuracy-digits-deployed.csv", ["model", "epochs", "seed", "recipe"], machine)[0],
        sweep_batch=sweep_batch,
        sweep_threads=sweep_threads,
        sweep_timing=SWEEP_TIMING,
        sweep_stop_ms=SWEEP_STOP_MS,
        prediction=prediction,
        prediction_note=prediction_note,
    )
    written["readme"] = write_readme(
        out, config, zoo_frame, accuracy, latency_frame, everything, breakdown, roof, chart_paths, page
    )
    return written
