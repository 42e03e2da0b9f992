"""The report's batch and threads sweeps: latency and throughput per batch (``results/sweep-batch-<target>.csv``)
and speed-up per thread count (``sweep-threads-<target>.csv``), for one model per family on the report's target."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict

import pandas as pd

import zoo
from cnnbench.measure import latency, sweep
from cnnbench.measure.bench import BENCH_TEXT_COLUMNS
from cnnbench.report.config import BREAKDOWN_MODELS, QUICK_MODELS, ReportConfig
from cnnbench.report.tables import Guard, Progress, measured_by, stamp_now, this_machine
from cnnbench.results import table_code
from cnnbench.store import ResultTable, write_sidecar
from cnnbench.target import INT8

__all__ = ["SWEEP_TIMING", "SWEEP_BATCHES", "QUICK_SWEEP_BATCHES", "SWEEP_STOP_MS", "sweep_tables"]

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
    table = ResultTable(config.results.sweep(kind, target.key), key=["model", kind], text_columns=BENCH_TEXT_COLUMNS)
    for name in progress(chosen, f"sweep {kind}"):
        stamp = stamp_now(config, target.key, settings, table_code("sweep", name), guard.probe.ms())
        if not config.force and table.reusable_group(stamp, model=name):
            continue
        columns = {"family": zoo.model_info(name).family, **stamp.columns(target.torch_device)}
        table.replace([{**row, **columns} for row in run(name).to_dict("records")], model=name)
    write_sidecar(table.path, table.frame(), {"target": target.key, "target_settings": asdict(target), **settings})
    return table.frame(measured_by(this_machine(config))).dropna(axis=1, how="all")  # no roofline, export, … columns
