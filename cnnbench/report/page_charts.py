"""The report's charts: which are drawn from which of its tables, into which files (:mod:`.charts` draws each)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cnnbench.measure.roofline import Roofline
from cnnbench.report import charts, deployment
from cnnbench.results import ResultsFolder
from cnnbench.target import Target

__all__ = ["accuracy_points", "write_charts", "write_front_charts", "write_prediction_chart"]


def accuracy_points(zoo_frame: pd.DataFrame, accuracy: pd.DataFrame) -> pd.DataFrame:
    """One point per model: the paper's top-1 where it has one, else the reference implementation's (marked so).
    fp32 figures only: torchvision's INT8 rows (``reference-int8``) are never plotted as the model's accuracy.

    ShuffleNetV1 keeps its g=3 members only (the paper's main line), so the chart stays readable.
    """
    accuracy = accuracy[accuracy["origin"].isin(["paper", "reference"])]
    chosen = (
        accuracy.assign(rank=accuracy["origin"].map({"paper": 0, "reference": 1}))
        .sort_values("rank")
        .drop_duplicates("model")
    )
    # Parameters the inference network uses: GoogLeNet's auxiliary heads exist only for training.
    points = chosen.merge(zoo_frame[["model", "params_used", "flops"]], on="model").rename(
        columns={"params_used": "params"}
    )
    return points[charts.main_line(points["model"])]


def write_charts(
    out: Path,
    zoo_frame: pd.DataFrame,
    accuracy: pd.DataFrame,
    everything: pd.DataFrame,
    breakdown: pd.DataFrame,
    latency_frame: pd.DataFrame,
    roof: Roofline,
    target: Target,
    deployments: tuple[str, ...] = (),
    sweep_batch: pd.DataFrame | None = None,
    sweep_threads: pd.DataFrame | None = None,
) -> dict[str, Path]:
    """Every chart as PNG and SVG; returns the PNG paths by name. ``deployments`` are the target keys of the
    deployment runtimes' tables (the speed-up chart compares them with ``target``); ``sweep_batch`` and
    ``sweep_threads`` the rows of :func:`cnnbench.report.sweep_tables.sweep_tables`."""
    files = ResultsFolder(out)
    written: dict[str, Path] = {}
    points = accuracy_points(zoo_frame, accuracy)
    if not points.empty:
        for x, label in (("params", "parameters"), ("flops", "FLOPs (multiply-adds)")):
            stem = files.accuracy_chart(x)
            charts.accuracy_chart(points, x, stem, f"ImageNet top-1 vs {label} (published figures)")
            written[stem.name] = stem.with_suffix(".png")
    if not everything.empty and (everything["status"] == "ok").any():
        for x, label in (("flops", "FLOPs"), ("mac_bytes", "memory access cost")):
            stem = files.latency_chart(x)
            charts.latency_chart(everything, x, stem, f"Latency vs {label}, batch {int(everything['batch'].iloc[0])}")
            written[stem.name] = stem.with_suffix(".png")
    deployed = [t for t in dict.fromkeys(everything.get("target", pd.Series(dtype=str))) if t in deployments]
    ups = deployment.speedups(everything, target.key, deployed) if deployed else pd.DataFrame()
    if not ups.empty:
        stem = files.speedup_chart
        charts.speedup_chart(
            ups, target.key, stem, f"Deployment runtimes against {target.key}, batch {int(everything['batch'].iloc[0])}"
        )
        written[stem.name] = stem.with_suffix(".png")
    if not breakdown.empty:
        stem = files.breakdown_chart(target.key)
        charts.breakdown_chart(breakdown, stem, f"Where FLOPs, memory traffic and time go ({target.key})")
        written[stem.name] = stem.with_suffix(".png")
    if not latency_frame.empty and (latency_frame["status"] == "ok").any():
        stem = files.roofline_chart(target.key)
        data = latency_frame.merge(zoo_frame[["model", "family"]], on="model", how="left", suffixes=("_x", ""))
        title = (
            f"Roofline of {target.key}: {roof.peak_flops_per_s / 1e9:.0f} GFLOP/s peak, "
            f"{roof.bandwidth_bytes_per_s / 1e9:.1f} GB/s copy"
        )
        charts.roofline_chart(data, roof.peak_flops_per_s, roof.bandwidth_bytes_per_s, stem, title)
        written[stem.name] = stem.with_suffix(".png")
    for kind, frame, draw in (
        ("batch", sweep_batch, charts.batch_chart),
        ("threads", sweep_threads, charts.threads_chart),
    ):
        if frame is not None and not frame.empty and (frame["status"] == "ok").any():
            stem = files.sweep_chart(kind, target.key)
            draw(frame, stem, f"{kind.capitalize()} sweep on {target.key}, one model per family")
            written[stem.name] = stem.with_suffix(".png")
    return written


def write_front_charts(out: Path, fronts: dict[str, tuple[pd.DataFrame, pd.DataFrame]]) -> dict[str, Path]:
    """Top-1 against measured latency with its Pareto front, one chart per target
    (:func:`~cnnbench.report.charts.accuracy_latency_chart`); returns the PNG paths by stem."""
    written: dict[str, Path] = {}
    for target, (published, digits) in fronts.items():
        stem = ResultsFolder(out).front_chart(target)
        charts.accuracy_latency_chart(published, stem, f"Top-1 against median latency on {target}", digits)
        written[stem.name] = stem.with_suffix(".png")
    return written


def write_prediction_chart(out: Path, prediction: pd.DataFrame, key: str) -> dict[str, Path]:
    """prediction-<target>.png/.svg: predicted against measured latency, per predictor (none without rows)."""
    if prediction.empty:
        return {}
    stem = ResultsFolder(out).prediction_chart(key)
    charts.prediction_chart(
        prediction, stem, f"Predicted against measured latency, {key}: no zoo model was used in fitting"
    )
    return {stem.name: stem.with_suffix(".png")}
