"""What a :class:`~cnnbench.fleet.merge.Fleet` shows per target, pure, frames in and frames out: the device × model
latency matrix, each model's rank per device (1: fastest) with Spearman ρ and Kendall τ against the reference
device, each device's Pareto front of published top-1 against its latency, and INT8 against fp32 per device.

Only rows that take part in the rankings count (:meth:`~cnnbench.fleet.merge.Fleet.ranked`): disturbed rows, failed
runs and rows of other code are listed apart by the page, never ranked.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import kendalltau, spearmanr

from cnnbench.fleet.merge import Fleet
from cnnbench.fronts import pareto

__all__ = ["agreement", "fronts", "front_counts", "int8_vs_fp32", "matrix", "ranks", "INT8_COLUMNS", "MIN_MODELS"]

MIN_MODELS = 3  # fewer models in common than this give no ρ or τ: two points always agree


def matrix(fleet: Fleet, target: str) -> pd.DataFrame:
    """Median latency (ms), one row per model, one column per device in the fleet's order; models sorted by their
    latency on the reference device (then by name), NaN where a device has no ranked row."""
    rows = fleet.ranked(target)
    wide = rows.pivot(index="model", columns="device", values="latency_ms_median")
    wide = wide[fleet.device_order(target)]
    reference = fleet.reference_for(target)
    wide = wide.assign(_by=wide[reference]).reset_index().sort_values(["_by", "model"]).set_index("model")
    wide = wide.drop(columns="_by")
    wide.columns.name = None
    return wide


def ranks(fleet: Fleet, target: str, devices: Sequence[str] | None = None) -> pd.DataFrame:
    """Each model's rank on each device (1: fastest; ties share their mean rank), among the models every device of
    ``target`` (or every one of ``devices``) ranked, so that the ranks of two devices compare the same models."""
    wide = matrix(fleet, target)
    common = (wide if devices is None else wide[list(devices)]).dropna()
    return common.rank(method="average")


def agreement(fleet: Fleet, target: str) -> pd.DataFrame:
    """Per device: ``models`` ranked on both it and the reference device, and over those, Spearman's ρ and Kendall's
    τ (scipy's, τ-b) of its latencies against the reference's; NaN below :data:`MIN_MODELS` models."""
    wide = matrix(fleet, target)
    reference = fleet.reference_for(target)
    out = []
    for device in wide.columns:
        both = wide[reference].notna() & wide[device].notna()
        a, b = wide.loc[both, reference].to_numpy(), wide.loc[both, device].to_numpy()
        enough = len(a) >= MIN_MODELS
        out.append(
            {
                "device": device,
                "reference": reference,
                "models": len(a),
                "spearman_rho": float(spearmanr(a, b).statistic) if enough else np.nan,
                "kendall_tau": float(kendalltau(a, b).statistic) if enough else np.nan,
            }
        )
    return pd.DataFrame(out)


def fronts(fleet: Fleet, target: str, accuracy: pd.DataFrame) -> pd.DataFrame:
    """Each device's models with a top-1 (``accuracy``: ``model, top1``, one per model) and whether they lie on
    that device's Pareto front (:func:`cnnbench.fronts.pareto`): ``device, model, latency_ms, top1, pareto``."""
    top1 = accuracy[["model", "top1"]].dropna()
    frames = []
    for device in fleet.device_order(target):
        rows = fleet.ranked(target)
        rows = rows[rows["device"] == device][["model", "latency_ms_median"]]
        joined = rows.rename(columns={"latency_ms_median": "latency_ms"}).merge(top1, on="model")
        if joined.empty:
            continue
        front = pareto(joined.reset_index(drop=True))
        frames.append(front[["model", "latency_ms", "top1", "pareto"]].assign(device=device))
    if not frames:
        return pd.DataFrame(columns=["device", "model", "latency_ms", "top1", "pareto"])
    return pd.concat(frames, ignore_index=True)[["device", "model", "latency_ms", "top1", "pareto"]]


def front_counts(points: pd.DataFrame) -> pd.DataFrame:
    """From :func:`fronts`: every model on at least one device's front, with ``on_front`` (k), ``devices`` (n, the
    devices that ranked it) and ``front_on`` (the k devices, in order), most often on the front first."""
    if points.empty:
        return pd.DataFrame(columns=["model", "top1", "on_front", "devices", "front_on"])
    grouped = points.groupby("model", sort=False)
    on = points[points["pareto"]].groupby("model", sort=False)["device"].agg("; ".join)
    counts = pd.DataFrame(
        {
            "top1": grouped["top1"].first(),
            "on_front": grouped["pareto"].sum().astype(int),
            "devices": grouped["device"].nunique(),
        }
    )
    counts = counts[counts["on_front"] > 0].assign(front_on=on).reset_index()
    return counts.sort_values(["on_front", "top1"], ascending=[False, False]).reset_index(drop=True)


INT8_COLUMNS = [
    "device",
    "int8_target",
    "fp32_target",
    "models",
    "median_speedup",
    "int8_slower",
    "slower_models",
    "isa",
    "flagged",
]


def _fp32_of(target: str) -> str | None:
    """``cpu-t2-int8-nchw-onnxruntime`` → ``cpu-t2-fp32-nchw-onnxruntime``; ``None`` for a target not in INT8."""
    parts = target.split("-")
    return "-".join("fp32" if p == "int8" else p for p in parts) if "int8" in parts else None


def int8_vs_fp32(fleet: Fleet) -> pd.DataFrame:
    """Per device and INT8 target whose fp32 twin (the same key, ``fp32`` for ``int8``) the device also ranked: the
    ``models`` on both, the median of ``speedup`` = fp32 / INT8 latency over them, how many ran slower in INT8
    (``int8_slower``, named in ``slower_models``), and the device's ISA flags. ``flagged``: INT8 is slower on the
    median model."""
    isa = dict(zip(fleet.devices["device"], fleet.devices["isa"], strict=True))
    ranked = fleet.ranked()
    out = []
    for target in sorted(set(ranked["target"])):
        fp32 = _fp32_of(target)
        if fp32 is None:
            continue
        for device in fleet.device_order(target):
            int8 = ranked[(ranked["target"] == target) & (ranked["device"] == device)]
            base = ranked[(ranked["target"] == fp32) & (ranked["device"] == device)]
            both = int8.merge(base, on="model", suffixes=("_int8", "_fp32"))
            if both.empty:
                continue
            speedup = both["latency_ms_median_fp32"] / both["latency_ms_median_int8"]
            slower = both.loc[speedup < 1, "model"]
            out.append(
                {
                    "device": device,
                    "int8_target": target,
                    "fp32_target": fp32,
                    "models": len(both),
                    "median_speedup": float(speedup.median()),
                    "int8_slower": len(slower),
                    "slower_models": " ".join(sorted(slower)),
                    "isa": isa.get(device, ""),
                    "flagged": bool(speedup.median() < 1),
                }
            )
    return pd.DataFrame(out, columns=INT8_COLUMNS)
