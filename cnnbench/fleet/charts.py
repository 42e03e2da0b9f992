"""The fleet page's charts: the rank-change (bump) chart and the Pareto fronts of every device overlaid. Each
function takes frames and a path stem and writes ``stem.png`` and ``stem.svg`` (:func:`cnnbench.report.charts.save`);
devices are told apart by colour and marker, so that eight stay legible, and every line and point is labelled."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import FuncFormatter

from cnnbench.report.charts import save, short_label

__all__ = ["bump_chart", "fronts_chart", "device_colours"]

_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "<", ">"]


def device_colours(devices: list[str]) -> dict[str, tuple[float, float, float]]:
    """One colour per device, in order (tab10, then Dark2)."""
    colours = sns.color_palette("tab10", 10) + sns.color_palette("Dark2", 8)
    return {d: colours[i % len(colours)] for i, d in enumerate(devices)}


def _wrapped(label: str, width: int = 22) -> str:
    return "\n".join(textwrap.wrap(label, width)) or label


def bump_chart(ranks: pd.DataFrame, stem: Path, title: str) -> list[Path]:
    """Each model's rank (1: fastest, at the top) on each device, one line per model from the first device (the
    reference) to the last, labelled at both ends. ``ranks``: :func:`cnnbench.fleet.ranks.ranks`."""
    devices = list(ranks.columns)
    n = len(ranks)
    fig, ax = plt.subplots(figsize=(3.0 + 1.7 * len(devices), max(4.0, 0.24 * n + 1.5)))
    colours = plt.get_cmap("viridis")(np.linspace(0, 0.9, max(n, 1)))
    order = ranks.sort_values(devices[0]).index
    xs = np.arange(len(devices))
    threshold = max(2, math.ceil(n / 10))  # a tenth of the field
    for colour, model in zip(colours, order, strict=False):
        ys = ranks.loc[model].to_numpy(dtype=float)
        moved = abs(ys[-1] - ys[0]) >= threshold
        ax.plot(xs, ys, "-o", color=colour, lw=2.0 if moved else 1.0, ms=4, alpha=0.95 if moved else 0.55)
        ax.text(xs[0] - 0.08, ys[0], f"{short_label(str(model))} {ys[0]:g}", ha="right", va="center", fontsize=7)
        ax.text(xs[-1] + 0.08, ys[-1], f"{ys[-1]:g} {short_label(str(model))}", ha="left", va="center", fontsize=7)
    ax.set_xticks(xs, [_wrapped(d) for d in devices], fontsize=8)
    ax.set_xlim(-0.9, len(devices) - 0.1)
    ax.set_ylim(n + 0.5, 0.5)
    ax.set_yticks([])
    ax.set_ylabel("rank by median latency (1 = fastest)")
    for spine in ("left", "right", "top"):
        ax.spines[spine].set_visible(False)
    ax.set_title(f"{title}\nthick lines: models that move {threshold} places or more", fontsize=10)
    return save(fig, stem)


def fronts_chart(points: pd.DataFrame, stem: Path, title: str) -> list[Path]:
    """Published top-1 against median latency (log x) on every device, each device's Pareto front drawn as a step
    line in its colour, front models named. ``points``: :func:`cnnbench.fleet.ranks.fronts`."""
    devices = list(dict.fromkeys(points["device"]))
    colours = device_colours(devices)
    fig, ax = plt.subplots(figsize=(11, 7))
    for i, device in enumerate(devices):
        group = points[points["device"] == device]
        colour, marker = colours[device], _MARKERS[i % len(_MARKERS)]
        ax.scatter(group["latency_ms"], group["top1"], color=colour, marker=marker, s=14, alpha=0.35)
        front = group[group["pareto"]].sort_values("latency_ms")
        ax.step(front["latency_ms"], front["top1"], where="post", color=colour, lw=1.6, label=device)
        ax.scatter(front["latency_ms"], front["top1"], color=colour, marker=marker, s=36, edgecolor="black", lw=0.4)
        for _, row in front.iterrows():
            ax.annotate(
                short_label(str(row["model"])),
                (row["latency_ms"], row["top1"]),
                fontsize=6,
                color=colour,
                xytext=(3, 3 + 3 * (i % 3)),  # devices' labels apart
                textcoords="offset points",
            )
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))  # 10, 100, not 10^1, 10^2
    ax.set_xlabel("median latency (ms, log scale)")
    ax.set_ylabel("published ImageNet top-1 (%)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(title="device (its front)", fontsize=8, loc="lower right")
    ax.set_title(title, fontsize=10)
    return save(fig, stem)
