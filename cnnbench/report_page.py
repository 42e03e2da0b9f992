"""The report's charts and its results/README.md, made from the tables :mod:`cnnbench.report` wrote."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from . import charts
from .roofline import Roofline
from .target import Target, describe

if TYPE_CHECKING:
    from .report import ReportConfig

__all__ = ["write_charts", "write_readme", "accuracy_points"]


def accuracy_points(zoo_frame: pd.DataFrame, accuracy: pd.DataFrame) -> pd.DataFrame:
    """One point per model: the paper's top-1 where it has one, else the reference implementation's (marked so).

    ShuffleNetV1 keeps its g=3 members only (the paper's main line), so the chart stays readable.
    """
    chosen = (
        accuracy.assign(rank=accuracy["origin"].map({"paper": 0, "reference": 1}))
        .sort_values("rank")
        .drop_duplicates("model")
    )
    # Parameters the inference network uses: GoogLeNet's auxiliary heads exist only for training.
    points = chosen.merge(zoo_frame[["model", "params_used", "flops"]], on="model").rename(
        columns={"params_used": "params"}
    )
    keep = ~points["model"].str.startswith("shufflenet_v1_") | points["model"].str.startswith("shufflenet_v1_g3")
    return points[keep]


def write_charts(
    out: Path,
    zoo_frame: pd.DataFrame,
    accuracy: pd.DataFrame,
    everything: pd.DataFrame,
    breakdown: pd.DataFrame,
    latency_frame: pd.DataFrame,
    roof: Roofline,
    target: Target,
) -> dict[str, Path]:
    """Every chart as PNG and SVG; returns the PNG paths by name."""
    written: dict[str, Path] = {}
    points = accuracy_points(zoo_frame, accuracy)
    if not points.empty:
        for x, label in (("params", "parameters"), ("flops", "FLOPs (multiply-adds)")):
            stem = out / f"accuracy_vs_{x}"
            charts.accuracy_chart(points, x, stem, f"ImageNet top-1 vs {label} (published figures)")
            written[stem.name] = stem.with_suffix(".png")
    if not everything.empty and (everything["status"] == "ok").any():
        for x, label in (("flops", "FLOPs"), ("mac_bytes", "memory access cost")):
            stem = out / f"latency_vs_{'flops' if x == 'flops' else 'mac'}"
            charts.latency_chart(everything, x, stem, f"Latency vs {label}, batch {int(everything['batch'].iloc[0])}")
            written[stem.name] = stem.with_suffix(".png")
    if not breakdown.empty:
        stem = out / f"breakdown-{target.key}"
        charts.breakdown_chart(breakdown, stem, f"Where FLOPs, memory traffic and time go ({target.key})")
        written[stem.name] = stem.with_suffix(".png")
    if not latency_frame.empty and (latency_frame["status"] == "ok").any():
        stem = out / f"roofline-{target.key}"
        data = latency_frame.merge(zoo_frame[["model", "family"]], on="model", how="left", suffixes=("_x", ""))
        title = (
            f"Roofline of {target.key}: {roof.peak_flops_per_s / 1e9:.0f} GFLOP/s peak, "
            f"{roof.bandwidth_bytes_per_s / 1e9:.1f} GB/s copy"
        )
        charts.roofline_chart(data, roof.peak_flops_per_s, roof.bandwidth_bytes_per_s, stem, title)
        written[stem.name] = stem.with_suffix(".png")
    return written


def _md(frame: pd.DataFrame) -> str:
    return frame.astype(object).where(frame.notna(), "–").to_markdown(index=False)


def write_readme(
    out: Path,
    config: ReportConfig,
    zoo_frame: pd.DataFrame,
    accuracy: pd.DataFrame,
    latency_frame: pd.DataFrame,
    everything: pd.DataFrame,
    breakdown: pd.DataFrame,
    roof: Roofline,
    chart_paths: dict[str, Path],
    elapsed_s: float,
) -> Path:
    from .store import atomic_write_text

    target = config.target
    desc = describe(target)
    zoo_md = zoo_frame.assign(
        params_m=(zoo_frame["params"] / 1e6).round(2),
        flops_m=(zoo_frame["flops"] / 1e6).round(1),
        mac_mb=(zoo_frame["mac_bytes"] / 1e6).round(1),
        act_mb=(zoo_frame["activation_peak_bytes"] / 1e6).round(1),
        train_mb=(zoo_frame["training_saved_bytes"] / 1e6).round(1),
    )[["model", "family", "resolution", "params_m", "flops_m", "mac_mb", "act_mb", "train_mb", "published_top1"]]
    zoo_md.columns = [
        "model", "family", "res", "params (M)", "FLOPs (M mult-adds)", "MAC (MB)", "act peak (MB)",
        "train saved (MB)", "paper top-1 (%)",
    ]
    lat = latency_frame.copy()
    lat_md = pd.DataFrame(
        {
            "model": lat["model"],
            "median (ms)": pd.to_numeric(lat["latency_ms_median"]).round(2),
            "p95 (ms)": pd.to_numeric(lat["latency_ms_p95"]).round(2),
            "CV": pd.to_numeric(lat["cv"]).round(3),
            "img/s": pd.to_numeric(lat["throughput_img_s"]).round(1),
            "roofline bound (ms)": pd.to_numeric(lat["roofline_bound_ms"]).round(2),
            "of roofline": pd.to_numeric(lat["roofline_fraction"]).round(3),
            "status": lat["status"],
        }
    )
    sections = [
        "# Results",
        "",
        f"Generated by `cnnbench report{' --quick' if config.quick else ''}` on {dt.date.today().isoformat()} "
        f"in {elapsed_s / 60:.1f} min. Target **{target.key}**: {desc['device_name']}, {desc['threads']} threads, "
        f"torch {desc['torch']}, commit {desc['commit']}. Every table has a `.env.json` beside it with the full "
        "environment. FLOPs are multiply-adds (one fused multiply-add = 1); MAC is memory access cost (bytes read + "
        "written, weights included).",
        "",
    ]
    for name, caption in (
        ("accuracy_vs_params", "ImageNet top-1 vs parameters. Filled: the paper's figure; hollow: torchvision's "
         "weights, only where the paper's figure is not transcribed. ShuffleNetV1: g=3 only."),
        ("accuracy_vs_flops", "ImageNet top-1 vs FLOPs (multiply-adds), same points."),
        ("latency_vs_flops", "Median latency vs FLOPs on every target measured, with Spearman's rank correlation."),
        ("latency_vs_mac", "Median latency vs memory access cost (MB): ShuffleNetV2's point that MAC, not FLOPs, "
         "tracks speed."),
        (f"breakdown-{target.key}", "Share of FLOPs, MAC and time by op kind, one model per family."),
        (f"roofline-{target.key}", "Attained throughput vs arithmetic intensity under the target's roofline."),
    ):
        if name in chart_paths:
            sections += [f"![{name}]({name}.png)", "", f"*{caption}* ([svg]({name}.svg))", ""]
    sections += [
        f"## Latency on {target.key} (batch {config.batch})",
        "",
        f"Roofline: peak {roof.peak_flops_per_s / 1e9:.1f} GFLOP/s (the faster of a {roof.matmul_size}² matmul "
        "and a 256-channel 3×3 conv), "
        f"bandwidth {roof.bandwidth_bytes_per_s / 1e9:.1f} GB/s (copy). `of roofline` = bound / median: 1.0 is at "
        "the roof; above 1 means a kernel beat the matmul peak or reused caches that the MAC count charges to memory.",
        "",
        _md(lat_md),
        "",
    ]
    others = sorted(set(everything["target"]) - {target.key}) if "target" in everything else []
    for other in others:
        part = everything[everything["target"] == other]
        sections += [
            f"## Latency on {other} (from pytest-benchmark JSON)",
            "",
            _md(part[["model", "batch", "latency_ms_median", "cv", "throughput_img_s"]].round(3)),
            "",
        ]
    digits = out / "accuracy-digits.csv"
    if digits.exists():
        sections += ["## Accuracy measured here: scikit-learn's digits", "", _md(pd.read_csv(digits)), ""]
    guidelines = sorted(out.glob("guidelines-*.md"))
    for path in guidelines:
        sections += [path.read_text().strip(), ""]
    sections += ["## The zoo: counts and published accuracy", "", _md(zoo_md), ""]
    sections += [
        "## Files",
        "",
        "| file | what |",
        "|---|---|",
        "| `zoo.csv` | every total of `cnnbench profile` per model, the paper's figures and the reference's |",
        "| `accuracy-imagenet.csv` | published top-1/top-5: origin `paper` or `reference` (never mixed) |",
        f"| `latency-{target.key}.csv` | every statistic of `cnnbench bench`, roofline bound, target description |",
        f"| `breakdown-{target.key}.csv` | FLOPs, MAC and time per op kind for one model per family |",
        f"| `roofline-{target.key}.json` | the target's measured peak matmul FLOP/s and copy bandwidth |",
        "| `*.env.json` | where each table was measured: torch, device, threads, dtype, commit |",
        "",
    ]
    path = out / "README.md"
    atomic_write_text(path, "\n".join(sections))
    return path
