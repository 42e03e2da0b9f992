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
from cnnbench.measure.sweep import with_speedup  # noqa: E402
from cnnbench.store import atomic_path  # noqa: E402

__all__ = [
    "main_line",
    "accuracy_chart",
    "latency_chart",
    "accuracy_latency_chart",
    "speedup_chart",
    "breakdown_chart",
    "roofline_chart",
    "batch_chart",
    "threads_chart",
    "prediction_chart",
    "short_label",
    "save",
]

FAMILY_ORDER = [
    "efficientnet",
    "mobilenet_v1",
    "mobilenet_v2",
    "mobilenet_v3",
    "shufflenet_v1",
    "shufflenet_v2",
    "resnet",
    "googlenet",
    "squeezenet",
    "alexnet",
    "vgg",
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
                fig.savefig(
                    tmp, format=path.suffix[1:], bbox_inches="tight", **({"dpi": 130} if path.suffix == ".png" else {})
                )
    finally:
        plt.close(fig)
    return paths


def _labels(ax: plt.Axes, xs: list[float], ys: list[float], names: list[str]) -> None:
    """Name every point; adjustText moves labels off each other and off the points, with a leader line."""
    texts = [ax.text(x, y, short_label(n), fontsize=7) for x, y, n in zip(xs, ys, names, strict=True)]
    if texts:
        adjust_text(
            texts,
            x=xs,
            y=ys,
            ax=ax,
            force_explode=(0.05, 0.1),
            expand=(1.1, 1.3),
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
    for ax in axes.flat[len(targets) :]:
        ax.set_visible(False)
    for ax, target in zip(axes.flat, targets, strict=False):
        part = data[data["target"] == target]
        for family, colour in palette.items():
            group = part[part["family"] == family]
            ax.scatter(group[x], group["latency_ms_median"], s=30, color=colour, label=family)
        rho, _ = spearmanr(part[x], part["latency_ms_median"])
        ax.text(
            0.02,
            0.97,
            f"Spearman ρ = {rho:.2f} (n = {len(part)})",
            transform=ax.transAxes,
            va="top",
            fontsize=11,
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


def _front_panel(ax: plt.Axes, data: pd.DataFrame, ylabel: str, title: str) -> None:
    """Top-1 against latency (log x) on ``ax``: the front as a step line, its models labelled, the rest lighter."""
    palette = _palette(sorted(data["family"].unique()))
    for family, colour in palette.items():
        group = data[data["family"] == family]
        for on_front, alpha in ((True, 1.0), (False, 0.3)):
            part = group[group["pareto"] == on_front]
            if "top1_std" in part and part["top1_std"].notna().any():
                ax.errorbar(
                    part["latency_ms"],
                    part["top1"],
                    yerr=part["top1_std"],
                    fmt="none",
                    ecolor=colour,
                    alpha=alpha,
                    lw=1,
                )
            for origin, fill in (("reference", "none"), ("paper", colour), ("digits", colour)):
                dots = part[part["top1_from"] == origin]
                ax.scatter(
                    dots["latency_ms"],
                    dots["top1"],
                    s=40 if on_front else 26,
                    facecolors=fill,
                    edgecolors=colour,
                    linewidths=1.2,
                    alpha=alpha,
                )
        ax.scatter([], [], s=36, color=colour, label=family)
    front = data[data["pareto"]].sort_values("latency_ms")
    # Best top-1 reachable within a latency: flat until the next front model, then up to it.
    xs = [*front["latency_ms"], data["latency_ms"].max() * 1.15]
    ys = [*front["top1"], front["top1"].iloc[-1]] if not front.empty else []
    if ys:
        ax.step(xs, ys, where="post", color="black", lw=1.3, label="Pareto front (best top-1 within a latency)")
    ax.set_xscale("log")
    _log_axis(ax.xaxis, 1.0)
    ax.set_xlabel("median latency (ms), log scale")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=11)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    _labels(ax, list(front["latency_ms"]), list(front["top1"]), list(front["model"]))


def accuracy_latency_chart(
    frame: pd.DataFrame, stem: Path, title: str, digits: pd.DataFrame | None = None
) -> list[Path]:
    """Top-1 against measured latency on one target, with its Pareto front: models on the front are labelled,
    dominated ones drawn lighter; filled markers are the paper's top-1, hollow the reference weights'. With
    ``digits`` a second panel does the same with the digits top-1 measured here, error bars one standard deviation
    over seeds.

    ``frame`` and ``digits``: model, family, latency_ms, top1, top1_from, pareto (and top1_std for the digits), as
    :func:`cnnbench.fronts.front_table` gives them.
    """
    panels = [(frame, "ImageNet top-1 (%): filled the paper's, hollow the reference weights'", "published top-1")]
    if digits is not None and not digits.empty:
        panels.append((digits, "top-1 on scikit-learn's digits (%), ± one std over seeds", "digits, measured here"))
    fig, axes = plt.subplots(1, len(panels), figsize=(12 * len(panels), 8), squeeze=False)
    for ax, (data, ylabel, what) in zip(axes.flat, panels, strict=True):
        shown = data.dropna(subset=["latency_ms", "top1"])
        _front_panel(ax, shown[main_line(shown["model"]) | shown["pareto"]], ylabel, f"{title}\n{what}")
    return save(fig, stem)


def speedup_chart(frame: pd.DataFrame, baseline: str, stem: Path, title: str) -> list[Path]:
    """Speed-up against ``baseline`` (baseline latency / target latency, log scale) per model, one bar per target;
    models in order of FLOPs within the main line, a line at 1 (no change)."""
    data = frame[main_line(frame["model"])].copy()
    order = data.groupby("model")["baseline_ms"].first().sort_values().index.tolist()
    targets = list(dict.fromkeys(data["target"]))
    fig, ax = plt.subplots(figsize=(12, max(6, 0.32 * len(order) * max(1, len(targets)) / 2)))
    sns.barplot(
        data=data,
        y="model",
        x="speedup",
        hue="target",
        order=order,
        hue_order=targets,
        orient="h",
        ax=ax,
        palette="deep",
    )
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
        axes,
        [("flops_share", "FLOPs (multiply-adds)"), ("mac_share", "MAC (memory traffic)"), ("time_share", "time")],
        strict=True,
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


def _sweep_lines(data: pd.DataFrame, other: str) -> list[tuple[str, pd.DataFrame]]:
    """One line per model, and per value of ``other`` (threads, batch) when the sweep holds several: (label, rows)."""
    several = data[other].nunique() > 1
    lines = []
    for keys, group in data.groupby(["model", other] if several else ["model"], sort=False):
        model, value = (keys[0], keys[1]) if several else (keys[0], None)
        label = short_label(str(model)) + (f", {other} {int(value)}" if several else "")
        lines.append((label, group))
    return lines


def _sweep_colours(lines: list[tuple[str, pd.DataFrame]]) -> dict[str, tuple[float, float, float]]:
    """A colour per line: its family's, as on the report's other charts, when each line is a family of its own."""
    families = [str(group["family"].iloc[0]) if "family" in group else "" for _, group in lines]
    if all(families) and len(set(families)) == len(lines):
        palette = _palette(families)
        return {label: palette[family] for (label, _), family in zip(lines, families, strict=True)}
    return _palette([label for label, _ in lines])


def _sweep_axis(ax: plt.Axes, which: str, values: pd.Series, label: str) -> None:
    """A log axis in plain numbers when ``values`` span a decade or more, else a linear one from 0 (a log axis over a
    sweep's narrow range shows one label or none). ``label`` has ``{}`` where ", log scale" goes."""
    positive = values[values > 0]
    log = not positive.empty and positive.max() / positive.min() >= 10
    getattr(ax, f"set_{which}scale")("log" if log else "linear")
    if log:
        _log_axis(getattr(ax, f"{which}axis"), 1.0)
    else:
        getattr(ax, f"set_{which}lim")(0, positive.max() * 1.08 if not positive.empty else 1)
    getattr(ax, f"set_{which}label")(label.format(", log scale" if log else ""))


def batch_chart(frame: pd.DataFrame, stem: Path, title: str) -> list[Path]:
    """A batch sweep in two panels: throughput (images/s) against batch (log2 x), and median latency against
    throughput, each point a batch and labelled with it (what a server trades: images/s for waiting), one line per
    model. ``frame``: bench rows (model, batch, threads, status, latency_ms_median, throughput_img_s)."""
    data = frame[frame["status"] == "ok"].copy()
    for column in ("batch", "threads", "latency_ms_median", "throughput_img_s"):
        data[column] = pd.to_numeric(data[column])
    lines = _sweep_lines(data.sort_values("batch", kind="stable"), "threads")
    palette = _sweep_colours(lines)
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 6))
    for label, group in lines:
        colour = palette[label]
        left.plot(group["batch"], group["throughput_img_s"], "-o", color=colour, label=label)
        right.plot(group["throughput_img_s"], group["latency_ms_median"], "-o", color=colour, label=label)
        for batch, x, y in zip(group["batch"], group["throughput_img_s"], group["latency_ms_median"], strict=True):
            right.annotate(f"{int(batch)}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7, color=colour)
    batches = sorted(data["batch"].unique())
    left.set_xscale("log", base=2)
    left.set_xticks(batches, [str(int(b)) for b in batches])
    left.minorticks_off()
    left.set_xlabel("batch (images per forward, log₂ scale)")
    _sweep_axis(left, "y", data["throughput_img_s"], "throughput (images/s{})")
    _sweep_axis(right, "x", data["throughput_img_s"], "throughput (images/s{})")
    _sweep_axis(right, "y", data["latency_ms_median"], "median latency of one batch (ms{})")
    for ax in (left, right):
        ax.grid(True, which="both", alpha=0.3)
    left.set_title("Throughput against batch", fontsize=11)
    right.set_title("Latency against throughput (each point a batch, labelled)", fontsize=11)
    right.legend(loc="best", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return save(fig, stem)


def threads_chart(frame: pd.DataFrame, stem: Path, title: str) -> list[Path]:
    """Speed-up against threads, one line per model, beside the ideal linear speed-up. ``frame``: thread-sweep rows
    (model, batch, threads, status, latency_ms_median; ``speedup`` from :func:`cnnbench.measure.sweep.with_speedup`,
    computed here when absent)."""
    data = frame if "speedup" in frame else with_speedup(frame)
    data = data[data["status"] == "ok"].copy()
    for column in ("batch", "threads", "speedup"):
        data[column] = pd.to_numeric(data[column])
    lines = _sweep_lines(data.sort_values("threads", kind="stable"), "batch")
    palette = _sweep_colours(lines)
    counts = sorted(data["threads"].unique())
    fewest = counts[0] if counts else 1
    fig, ax = plt.subplots(figsize=(9, 6))
    ax.plot(counts, [c / fewest for c in counts], "k--", lw=1.2, label="ideal: linear in threads")
    for label, group in lines:
        ax.plot(group["threads"], group["speedup"], "-o", color=palette[label], label=label)
    ax.set_xticks(counts, [str(int(c)) for c in counts])
    ax.set_xlabel("CPU threads (intra-op)")
    ax.set_ylabel(f"speed-up over {int(fewest)} thread{'s' if fewest > 1 else ''} (latency ratio, ×)")
    ax.set_ylim(bottom=0)
    ax.set_title(title, fontsize=11)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    return save(fig, stem)


def prediction_chart(frame: pd.DataFrame, stem: Path, title: str) -> list[Path]:
    """Predicted against measured latency, log-log: one panel per predictor (the cost model, FLOPs-only, MAC-only),
    the line of perfect prediction and its ±20% band. ``frame``: prediction rows (model, measured_ms, latency_ms,
    flops_only_ms, mac_only_ms)."""
    predictors = {
        "latency_ms": "cost model",
        "flops_only_ms": "FLOPs-only (∝ multiply-adds)",
        "mac_only_ms": "MAC-only (∝ memory traffic)",
    }
    values = pd.concat([frame["measured_ms"], *(frame[c] for c in predictors)])
    low, high = float(values.min()) / 1.5, float(values.max()) * 1.5
    fig, axes = plt.subplots(1, len(predictors), figsize=(5.2 * len(predictors), 5.2), sharex=True, sharey=True)
    line = np.geomspace(low, high, 50)
    for ax, (column, label) in zip(axes, predictors.items(), strict=True):
        error = (frame[column] / frame["measured_ms"] - 1).abs()
        ax.fill_between(line, line / 1.2, line * 1.2, color="0.85", label="±20%")
        ax.plot(line, line, "k-", lw=0.8, label="predicted = measured")
        inside = error <= 0.2
        ax.scatter(
            frame.loc[inside, "measured_ms"], frame.loc[inside, column], s=18, color="tab:blue", label="within ±20%"
        )
        ax.scatter(
            frame.loc[~inside, "measured_ms"], frame.loc[~inside, column], s=18, color="tab:red", label="outside"
        )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(low, high)
        ax.set_ylim(low, high)
        ax.set_title(f"{label}: median |error| {error.median() * 100:.0f}%", fontsize=10)
        ax.set_xlabel("measured median latency (ms)")
        ax.grid(True, which="both", alpha=0.2)
    axes[0].set_ylabel("predicted latency (ms)")
    axes[0].legend(loc="upper left", fontsize=8)
    fig.suptitle(title, fontsize=11)
    return save(fig, stem)
