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
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from cnnbench import compare
from cnnbench.costmodel.networks import Network
from cnnbench.errors import CnnbenchError
from cnnbench.measure.roofline import Roofline, cached_roofline
from cnnbench.report.config import ReportConfig, check_config, deployment_targets
from cnnbench.report.guideline_tables import guidelines_tables
from cnnbench.report.latency_tables import (
    deployed_models,
    heavy_models,
    latency_table,
    prepare_deployments,
    recheck_latency,
)
from cnnbench.report.page import write_readme
from cnnbench.report.page_charts import write_charts, write_front_charts, write_prediction_chart
from cnnbench.report.page_sections import Page
from cnnbench.report.prediction import prediction_table, start_calibration
from cnnbench.report.readers import all_latency, digits_here, families, here, measured_elsewhere, merge_benchmarks
from cnnbench.report.sweep_tables import SWEEP_STOP_MS, SWEEP_TIMING, sweep_tables
from cnnbench.report.tables import (
    Guard,
    Progress,
    accuracy_table,
    breakdown_table,
    no_progress,
    pareto_tables,
    this_machine,
    zoo_table,
)
from cnnbench.store import atomic_write_text, provenance_summary
from cnnbench.target import Target

__all__ = ["run_report"]


def run_report(
    config: ReportConfig,
    progress: Progress[str] = no_progress,  # type: ignore[assignment]
    say: Callable[[str], None] | None = None,
) -> dict[str, Path]:
    """Check every input, measure what is missing, then write every table, chart and results/README.md.

    ``say`` gets a line for each disturbed row measured again (:class:`Quieting`) and one for the models the
    deployment tables leave out. Returns the files written.
    """
    started = time.perf_counter()
    config, names, benchmarks = check_config(config)
    target, files = config.target, config.results
    machine = this_machine(config)
    written: dict[str, Path] = {}
    guard = Guard.of(config, say)

    zoo_frame = zoo_table(config, names, progress)
    written["zoo"] = files.zoo
    accuracy = accuracy_table(config)
    written["accuracy-imagenet"] = files.imagenet_accuracy
    roof = cached_roofline(target)
    atomic_write_text(files.roofline(target.key), json.dumps(asdict(roof), indent=2) + "\n")
    written["roofline"] = files.roofline(target.key)
    latency_frame, prediction, prediction_note, drawn = _eager_latency(config, names, roof, progress, guard)
    written["latency"] = files.latency(target.key)
    if not prediction.empty:
        written["prediction"] = files.prediction(target.key)
    deployed_names = deployed_models(config, names, zoo_frame)
    left_out = len(names) - len(deployed_names)
    if say and left_out and deployment_targets(config) and config.deploy_max_flops is not None:
        say(
            f"deployment tables: {left_out} models above {config.deploy_max_flops / 1e9:g} G multiply-adds left out "
            "(--deploy-max-gflops all deploys them)"
        )
    prepare_deployments(config, deployed_names, progress, guard, heavy_models(zoo_frame))
    runtime_predictions: dict[str, tuple[pd.DataFrame, str]] = {}
    for deployed in deployment_targets(config):
        runtime_predictions[deployed.key] = _deployed_latency(config, deployed_names, deployed, progress, guard, drawn)
        written[f"latency-{deployed.key}"] = files.latency(deployed.key)
        if not runtime_predictions[deployed.key][0].empty:
            written[f"prediction-{deployed.key}"] = files.prediction(deployed.key)
    runtime_predictions = {
        key: (frame, why) for key, (frame, why) in runtime_predictions.items() if why or not frame.empty
    }
    breakdown = breakdown_table(config, names, progress, guard) if not target.runtime else pd.DataFrame()
    written["breakdown"] = files.breakdown(target.key)
    guidelines = guidelines_tables(config, names, progress, guard)
    written["guidelines"] = files.guidelines(target.key)
    sweep_batch, sweep_threads = (
        sweep_tables(config, names, progress, guard) if config.sweeps else (pd.DataFrame(),) * 2
    )
    written.update(
        {f"sweep-{k}": files.sweep(k, target.key) for k in ("batch", "threads") if files.sweep(k, target.key).exists()}
    )
    for path in merge_benchmarks(config, benchmarks) if benchmarks else []:
        written[path.stem] = path
    everything, left_out = all_latency(config.out, machine)
    if not everything.empty and ("family" not in everything or everything["family"].isna().any()):
        everything["family"] = everything["model"].map(families()).fillna("other")
    digits, others = digits_here(config.out, machine)
    fronts = pareto_tables(config, everything, accuracy, digits) if not everything.empty else {}
    written.update({f"pareto-{k}": files.pareto(k) for k in fronts})

    # --- the charts and the page -----------------------------------------------------------------------------
    deployed = tuple(t.key for t in deployment_targets(config))
    chart_paths = write_charts(
        config.out,
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
    chart_paths.update(write_front_charts(config.out, fronts))
    chart_paths.update(write_prediction_chart(config.out, prediction, target.key))
    for key, (frame, _) in runtime_predictions.items():
        chart_paths.update(write_prediction_chart(config.out, frame, key))
    written.update(chart_paths)
    shown = [
        f
        for f in (
            zoo_frame,
            latency_frame,
            breakdown,
            guidelines,
            digits,
            sweep_batch,
            sweep_threads,
            prediction,
            *(frame for frame, _ in runtime_predictions.values()),
        )
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
        deployed_digits=here(files.deployed_digits, ["model", "epochs", "seed", "recipe"], machine)[0],
        sweep_batch=sweep_batch,
        sweep_threads=sweep_threads,
        sweep_timing=SWEEP_TIMING,
        sweep_stop_ms=SWEEP_STOP_MS,
        prediction=prediction,
        prediction_note=prediction_note,
        runtime_predictions=runtime_predictions,
    )
    written["readme"] = write_readme(
        config.out, config, zoo_frame, accuracy, latency_frame, everything, breakdown, roof, chart_paths, page
    )
    return written


def _eager_latency(
    config: ReportConfig, names: list[str], roof: Roofline, progress: Progress[str], guard: Guard
) -> tuple[pd.DataFrame, pd.DataFrame, str, Sequence[Network]]:
    """The report's own latency table, with the cost model's predictions beside it (``config.predict``): the rows
    (this machine's), the prediction table (empty without one), why there is none (``""`` when there is) and the
    networks its calibration drew (none when it was cached), which a runtime's calibration reuses.

    The cost model's networks are timed between the rows it is checked against (a drift slows both alike); a row
    far slower than expected is measured again (:func:`recheck_latency`), and the predictions follow it."""
    target = config.target
    eager_roof = roof if target.has_roofline else None
    calibration = (
        start_calibration(config, len(names), progress, guard.quieting, guard.probe.ms()) if config.predict else None
    )
    latency_frame = latency_table(
        config,
        names,
        eager_roof,
        progress,
        between=calibration.between if calibration else None,
        guard=guard,
    )
    prediction, prediction_note = (
        prediction_table(config, names, latency_frame, progress, calibration)
        if config.predict
        else (pd.DataFrame(), "")
    )
    predicted = prediction.set_index("model")["latency_ms"] if not prediction.empty else None
    if recheck_latency(config, latency_frame, eager_roof, target, guard, predicted):
        latency_frame = latency_table(config, names, eager_roof, no_progress, guard=guard)
        if config.predict:
            prediction, prediction_note = prediction_table(config, names, latency_frame, no_progress, calibration)
    return latency_frame, prediction, prediction_note, (calibration.drawn if calibration else ())


def _deployed_latency(
    config: ReportConfig,
    names: list[str],
    deployed: Target,
    progress: Progress[str],
    guard: Guard,
    drawn: Sequence[Network] = (),
) -> tuple[pd.DataFrame, str]:
    """A deployment target's latency table (results/latency-<deployed>.csv), measured with the runtime's cost model
    calibrated between its rows where one covers it (``config.predict``; ONNX Runtime at fp32). Returns the
    prediction table (empty where none) and why there is none ("" where there is, or where no model covers the
    target: the page says nothing of those). ``drawn``: the eager calibration's networks, reused."""
    roof = cached_roofline(deployed) if deployed.has_roofline else None
    calibration = (
        start_calibration(config, len(names), progress, guard.quieting, guard.probe.ms(), deployed, drawn)
        if config.predict
        else None
    )
    frame = latency_table(
        config, names, roof, progress, deployed, between=calibration.between if calibration else None, guard=guard
    )
    if recheck_latency(config, frame, roof, deployed, guard):
        frame = latency_table(config, names, roof, no_progress, deployed, guard=guard)
    if calibration is None:
        return pd.DataFrame(), ""
    return prediction_table(config, names, frame, progress, calibration)


def _against_baseline(config: ReportConfig) -> tuple[str, pd.DataFrame, str]:
    """(the baseline folder, :func:`~cnnbench.compare.compare`'s frame against it, or the one line that says
    why there is none); empty without ``--baseline``. A comparison that cannot be made does not fail the report."""
    if config.baseline is None:
        return "", pd.DataFrame(), ""
    try:
        return str(config.baseline), compare.compare(Path(config.baseline), config.out), ""
    except CnnbenchError as err:
        return str(config.baseline), pd.DataFrame(), str(err)
