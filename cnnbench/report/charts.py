"""The comparison charts, drawn with seaborn/matplotlib from the report's tables. Each function takes DataFrames
and a path stem and writes ``stem.png`` and ``stem.svg``; nothing is measured here.

Accuracy charts use the papers' figures (filled markers) and, only for models whose paper gives none here, the
reference implementation's own (hollow markers, named in the legend): the two are never mixed silently.
"""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from adjustText import adjust_text  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from cnnbench.measure.counting import KINDS  # noqa: E402
from cnnbench.store import atomic_path  # noqa: E402

__all__ = ["main_line", "accuracy_chart", "latency_chart", "speedup_chart", "breakdown_chart", "roofline_chart",
           "short_label", "save"]  # fmt: skip

FAMILY_ORDER = [
    "efficientnet", "mobilenet_v1", "mobilenet_v2", "mobilenet_v3", "shufflenet_v1", "shufflenet_v2",
    "resnet", "googlenet", "squeezenet", "alexnet", "vgg",
]


def _palette(families: list[str]) -> dict[str, tuple[float, float, float]]:
    ordered = [f for f in FAMILY_ORDER if f in families] + sorted(set(families) - set(FAMILY_ORDER))
    colours = sns.color_palette("tab10", 10) + sns.color_palette("Dark2", 8)
    return {f: colours[i % len(colours)] for i, f in enumerate(ordered)}


_LABELS = [  # (pattern, replacement) applied in order, first match wins
    (r"^efficientnet_b(\d+)$", r"B\1"),
    (r"^mobilenet_v3_large$", "MNv3-L"),
    (r"^mobilenet_v3_small$", "MNv3-S"),
    (r"^mobilenet_v(\d)$", r"MNv\1"),
    (r"^mobilenet_v(\d)_x(\d)_(\d+)$", r"MNv\1 \2.\3"),
    (r"^shufflenet_v1_g(\d)_x(\d)_(\d+)$", r"SNv1 g\1 \2.\3"),
    (r"^shufflenet_v2_x(\d)_(\d+)$", r"SNv2 \1.\2"),
    (r"^squeezenet(\d)_(\d)$", r"SqN \1.\2"),
    (r"^resnet(\d+)$", r"R\1"),
    (r"^vgg(\d+)_bn$", r"VGG\1-BN"),
    (r"^vgg(\d+)$", r"VGG\1"),
    (r"^googlenet$", "GoogLeNet"),
    (r"^alexnet$", "AlexNet"),
]


def short_label(name: str) -> str:
    """A chart label: efficientnet_b3 → B3, mobilenet_v1_x0_75 → MNv1 0.75, shufflenet_v1_g3_x1_0 → SNv1 g3 1.0."""
    for pattern, replacement in _LABELS:
        if re.match(pattern, name):
            return re.sub(pattern, replacement, name)
    return name


def save(fig: plt.Figure, stem: Path) -> list[Path]:
    """``stem.png`` and ``stem.svg``, each written atomically: a chart is the old one or the new one, never half."""
    paths = [stem.with_suffix(".png"), stem.with_suffix(".svg")]
    try:
        for path in paths:
            with atomic_path(path) as tmp:
                fig.savefig(tmp, format=path.suffix[1:], bbox_inches="tight", **({"dpi": 130} if path.suffix == ".png"
                                                                                  else {}))  # fmt: skip
    finally:
        plt.close(fig)
    return paths


def _labels(ax: plt.Axes, xs: list[float], ys: list[float], names: list[str]) -> None:
    """Name every point; adjustText moves labels off each other and off the points, with a leader line."""
    texts = [ax.text(x, y, short_label(n), fontsize=7) for x, y, n in zip(xs, ys, names, strict=True)]
    if texts:
        adjust_text(
            texts, x=xs, y=ys, ax=ax, force_explode=(0.05, 0.1), expand=(1.1, 1.3),
            arrowprops={"arrowstyle": "-", "color": "0.5", "lw": 0.5},
        )


def _log_axis(axis: matplotlib.axis.Axis, scale: float) -> None:
    """Log axis in plain numbers divided by ``scale``: majors and the 2 and 5 minors labelled (0.5, 1, 2, 5, 10)."""

    def fmt(value: float, _: object) -> str:
        mantissa = value / 10 ** np.floor(np.log10(value)) if value > 0 else 0
        return f"{value / scale:g}" if round(mantissa, 6) in (1.0, 2.0, 5.0) else ""

    axis.set_major_formatter(matplotlib.ticker.FuncFormatter(fmt))
    axis.set_minor_formatter(matplotlib.ticker.FuncFormatter(fmt))


def accuracy_chart(frame: pd.DataFrame, x: str, stem: Path, title: str) -> list[Path]:
    """Top-1 vs ``x`` (params or flops), log x, one line per family in order of x, every point labelled.

    ``frame``: model, family, params, flops, top1, origin ("paper" | "reference").
    """
    data = frame.dropna(subset=["top1"]).sort_values(x)
    palette = _palette(sorted(data["family"].unique()))
    fig, ax = plt.subplots(figsize=(11, 7))
    for family in palette:
        group = data[data["family"] == family]
        colour = palette[family]
        ax.plot(group[x], group["top1"], "-", color=colour, lw=1.2, alpha=0.7)
        for origin, marker_fill in (("paper", colour), ("reference", "none")):
            part = group[group["origin"] == origin]
            ax.scatter(part[x], part["top1"], s=36, facecolors=marker_fill, edgecolors=colour, linewidths=1.2)
        ax.plot([], [], "-o", color=colour, label=family)
    ax.scatter([], [], s=36, facecolors="0.3", edgecolors="0.3", label="● paper's top-1")
    hollow = "○ torchvision weights' top-1 (no paper figure)"
    ax.scatter([], [], s=36, facecolors="none", edgecolors="0.3", label=hollow)
    ax.set_xscale("log")
    _log_axis(ax.xaxis, 1e6 if x == "params" else 1e9)
    flops_label = "FLOPs (billions of multiply-adds, log scale)"
    ax.set_xlabel("parameters (millions, log scale)" if x == "params" else flops_label)
    ax.set_ylabel("ImageNet top-1 accuracy (%)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    _labels(ax, list(data[x]), list(data["top1"]), list(data["model"]))
    return save(fig, stem)


def main_line(models: pd.Series) -> pd.Series:
    """Which models a crowded chart shows or labels: all but ShuffleNetV1's g ≠ 3 members (its 25 members crowd the
    low end; g=3 is the paper's main line)."""
    return ~models.str.startswith("shufflenet_v1_") | models.str.startswith("shufflenet_v1_g3")


def latency_chart(frame: pd.DataFrame, x: str, stem: Path, title: str) -> list[Path]:
    """Median latency vs ``x`` (flops or mac_bytes), log-log, one panel per target, Spearman's ρ on each panel."""
    data = frame[frame["status"] == "ok"].copy()
    targets = list(dict.fromkeys(data["target"]))
    palette = _palette(sorted(data["family"].unique()))
    columns = min(2, len(targets))
    rows = -(-len(targets) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(13 * columns, 9 * rows), squeeze=False)
    for ax in axes.flat[len(targets):]:
        ax.set_visible(False)
    for ax, target in zip(axes.flat, targets, strict=False):
        part = data[data["target"] == target]
        for family, colour in palette.items():
            group = part[part["family"] == family]
            ax.scatter(group[x], group["latency_ms_median"], s=30, color=colour, label=family)
        rho, _ = spearmanr(part[x], part["latency_ms_median"])
        ax.text(
            0.02, 0.97, f"Spearman ρ = {rho:.2f} (n = {len(part)})", transform=ax.transAxes, va="top", fontsize=11,
            bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.8},
        )
        ax.set_xscale("log")
        ax.set_yscale("log")
        scale, unit = (1e9, "FLOPs (billions of multiply-adds)") if x == "flops" else (1e6, "MAC (MB moved)")
        _log_axis(ax.xaxis, scale)
        _log_axis(ax.yaxis, 1.0)
        ax.set_xlabel(f"{unit}, log scale")
        ax.set_ylabel("median latency (ms), log scale")
        ax.set_title(f"{title}\n{target}", fontsize=11)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
        named = part[main_line(part["model"])]
        _labels(ax, list(named[x]), list(named["latency_ms_median"]), list(named["model"]))
    return save(fig, stem)


def speedup_chart(frame: pd.DataFrame, baseline: str, stem: Path, title: str) -> list[Path]:
    """Speed-up against ``baseline`` (baseline latency / target latency, log scale) per model, one bar per target;
    models in order of FLOPs within the main line, a line at 1 (no change)."""
    data = frame[main_line(frame["model"])].copy()
    order = data.groupby("model")["baseline_ms"].first().sort_values().index.tolist()
    targets = list(dict.fromkeys(data["target"]))
    fig, ax = plt.subplots(figsize=(12, max(6, 0.32 * len(order) * max(1, len(targets)) / 2)))
    sns.barplot(data=data, y="model", x="speedup", hue="target", order=order, hue_order=targets, orient="h", ax=ax,
                palette="deep")  # fmt: skip
    ax.set_xscale("log")
    ax.axvline(1.0, color="black", lw=1)
    _log_axis(ax.xaxis, 1.0)
    ax.set_xlabel(f"speed-up against {baseline} (its latency / this target's), log scale: right of 1 is faster")
    ax.set_ylabel("model (fastest on the baseline at the top)")
    ax.set_title(title, fontsize=11)
    ax.grid(True, axis="x", which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=9)
    return save(fig, stem)


def breakdown_chart(frame: pd.DataFrame, stem: Path, title: str) -> list[Path]:
    """Share of FLOPs, MAC and time by op kind, one horizontal stacked bar per model and panel.

    ``frame``: model, kind, flops_share, mac_share, time_share.
    """
    kinds = [k for k in KINDS if k in set(frame["kind"])]
    colours = dict(zip(kinds, sns.color_palette("tab20", len(kinds)), strict=True))
    models = list(dict.fromkeys(frame["model"]))
    fig, axes = plt.subplots(1, 3, figsize=(16, 0.45 * len(models) + 2), sharey=True)
    for ax, (column, label) in zip(
        axes, [("flops_share", "FLOPs (multiply-adds)"), ("mac_share", "MAC (memory traffic)"),
               ("time_share", "time")], strict=True,
    ):
        table = frame.pivot_table(index="model", columns="kind", values=column, aggfunc="sum").reindex(models)
        left = np.zeros(len(models))
        for kind in kinds:
            values = table[kind].fillna(0).to_numpy() if kind in table else np.zeros(len(models))
            ax.barh([short_label(m) for m in models], values, left=left, color=colours[kind], label=kind)
            left += values
        ax.set_xlim(0, 1)
        ax.set_xlabel(f"share of {label}")
        ax.invert_yaxis()
    axes[0].set_title(title, loc="left")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=9, title="op kind")
    fig.tight_layout()
    return save(fig, stem)


def roofline_chart(frame: pd.DataFrame, peak_flops: float, bandwidth: float, stem: Path, title: str) -> list[Path]:
    """Attained GFLOP/s (2·multiply-adds / latency) vs arithmetic intensity (FLOP per byte of MAC), log-log, under
    the target's roof min(peak, bandwidth · intensity)."""
    data = frame[frame["status"] == "ok"].copy()
    data["intensity"] = 2 * data["flops"] / data["mac_bytes"]
    data["attained"] = 2 * data["flops"] / (data["latency_ms_median"] / 1e3) / 1e9
    palette = _palette(sorted(data["family"].unique()))
    fig, ax = plt.subplots(figsize=(11, 7))
    xs = np.logspace(np.log10(max(data["intensity"].min() / 2, 1e-2)), np.log10(data["intensity"].max() * 4), 200)
    roof_label = "roof: min(peak compute, copy bandwidth × intensity)"
    ax.plot(xs, np.minimum(peak_flops, bandwidth * xs) / 1e9, "k-", lw=2, label=roof_label)
    for family, colour in palette.items():
        group = data[data["family"] == family]
        ax.scatter(group["intensity"], group["attained"], s=30, color=colour, label=family)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOP per byte of MAC; FLOP = 2 × multiply-adds), log scale")
    ax.set_ylabel("attained GFLOP/s, log scale")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    named = data[main_line(data["model"])]
    _labels(ax, list(named["intensity"]), list(named["attained"]), list(named["model"]))
    return save(fig, stem)
