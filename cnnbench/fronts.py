"""The Pareto front of accuracy against measured latency: which models are worth their latency.

A model *dominates* another when it is at least as fast and at least as accurate, and strictly better in one of
the two; the front is the set no model dominates. Everything here is pure, frames in and frames out;
the report draws the fronts, and ``pick`` (:mod:`cnnbench.choose`) ranks within budgets.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

import zoo
from cnnbench.accuracy.published import published_accuracy
from cnnbench.errors import CnnbenchError
from cnnbench.provenance import is_disturbed

__all__ = [
    "ACCURACY_SOURCES",
    "MODEL_FIGURES",
    "accuracy_for",
    "candidates",
    "digits_top1",
    "front_table",
    "memory_bytes",
    "pareto",
]

ACCURACY_SOURCES = ("paper", "reference", "digits")

# What a front and a ranking show of each model (the first columns of :func:`candidates`).
MODEL_FIGURES = ["model", "family", "latency_ms", "top1", "top1_std", "top1_from", "params_m", "memory_mb"]


def pareto(frame: pd.DataFrame, cost: str = "latency_ms", gain: str = "top1") -> pd.DataFrame:
    """``frame`` with two more columns: ``pareto`` (no other row is at least as cheap and as good, and strictly
    better in one) and ``dominated_by`` (for a dominated row, the cheapest front model that dominates it; empty on
    the front). Rows lacking ``cost`` or ``gain``, and rows whose latency was ``disturbed`` (another process held
    the CPUs while they were timed), are neither (``pareto`` False, ``dominated_by`` empty).
    Ties (the same cost and gain) dominate neither way, so both stay on the front."""
    out = frame.copy()
    costs = pd.to_numeric(out[cost], errors="coerce").to_numpy(dtype=float)
    gains = pd.to_numeric(out[gain], errors="coerce").to_numpy(dtype=float)
    known = ~(np.isnan(costs) | np.isnan(gains)) & ~disturbed(out).to_numpy()
    no_worse = (costs[:, None] <= costs[None, :]) & (gains[:, None] >= gains[None, :])  # [j, i]: j no worse than i
    better = (costs[:, None] < costs[None, :]) | (gains[:, None] > gains[None, :])
    dominates = no_worse & better & known[:, None] & known[None, :]
    front = known & ~dominates.any(axis=0)
    names = out["model"].astype(str).to_numpy()
    dominated_by = []
    for i in range(len(out)):
        rivals = [j for j in np.flatnonzero(dominates[:, i] & front)]
        dominated_by.append(names[min(rivals, key=lambda j: (costs[j], -gains[j]))] if rivals else "")
    out["pareto"] = front
    out["dominated_by"] = dominated_by
    return out


def accuracy_for(
    source: str, digits: pd.DataFrame | None = None, published: pd.DataFrame | None = None
) -> pd.DataFrame:
    """One top-1 per model: ``model, top1, top1_std, top1_from``.

    - ``"paper"``: the paper's ImageNet top-1, or, for a model whose paper prints none here, its reference
      implementation's (``top1_from`` says which; the charts draw the two with different markers);
    - ``"reference"``: the reference implementation's weights only (torchvision, timm);
    - ``"digits"``: scikit-learn's digits, from ``digits`` (rows of accuracy-digits.csv that ``cnnbench train``
      measured on this machine; :func:`digits_top1`).

    ``published``: :func:`~cnnbench.accuracy.published.published_accuracy`'s table when the caller has it.
    """
    if source not in ACCURACY_SOURCES:
        raise CnnbenchError(f"accuracy comes from one of {', '.join(ACCURACY_SOURCES)}; got {source!r}")
    if source == "digits":
        if digits is None or digits.empty:
            raise CnnbenchError(
                "accuracy-digits.csv has no rows measured on this machine; run `cnnbench train "
                "MODEL...` first, or pick with --accuracy paper"
            )
        return digits_top1(digits)
    published = published_accuracy() if published is None else published
    order = ["paper", "reference"] if source == "paper" else ["reference"]
    chosen = published[published["origin"].isin(order) & published["top1"].notna()]
    chosen = chosen.assign(rank=chosen["origin"].map(order.index)).sort_values("rank").drop_duplicates("model")
    return pd.DataFrame(
        {"model": chosen["model"], "top1": chosen["top1"], "top1_std": np.nan, "top1_from": chosen["origin"]}
    ).reset_index(drop=True)


def digits_top1(digits: pd.DataFrame) -> pd.DataFrame:
    """One digits top-1 per model from rows of accuracy-digits.csv: the row with the most epochs (then the latest),
    its mean over seeds in ``top1`` and their spread in ``top1_std`` (empty for one seed)."""
    digits = digits[pd.to_numeric(digits["top1_mean"], errors="coerce").notna()]
    digits = digits.sort_values(["epochs", "measured_at"]).drop_duplicates("model", keep="last")
    std = pd.to_numeric(digits["top1_std"], errors="coerce") if "top1_std" in digits else np.nan
    return pd.DataFrame(
        {"model": digits["model"], "top1": pd.to_numeric(digits["top1_mean"]), "top1_std": std, "top1_from": "digits"}
    ).reset_index(drop=True)


def front_table(latency: pd.DataFrame, accuracy: pd.DataFrame) -> pd.DataFrame:
    """Every model of one target's latency rows with its top-1 and its place on the front (:func:`pareto`), the
    front first, fastest first: what results/pareto-<target>.csv holds."""
    frame = pareto(candidates(latency, accuracy))
    return frame.sort_values(["pareto", "latency_ms"], ascending=[False, True]).reset_index(drop=True)


def disturbed(frame: pd.DataFrame) -> pd.Series:
    """Which rows were flagged ``disturbed`` (:func:`cnnbench.provenance.is_disturbed`); none without the column."""
    if "disturbed" not in frame:
        return pd.Series(False, index=frame.index, dtype=bool)
    return frame.apply(is_disturbed, axis=1).astype(bool) if len(frame) else pd.Series(dtype=bool)


def memory_bytes(latency: pd.DataFrame) -> pd.Series:
    """The measured peak memory of inference per latency row: the device's allocator high-water mark where the
    target has one (CUDA), else the resident-memory peak above what the loaded model held (CPU)."""
    device, resident = _numbers(latency, "peak_mem_bytes"), _numbers(latency, "peak_rss_bytes")
    return device.fillna(resident)


def _numbers(frame: pd.DataFrame, column: str) -> pd.Series:
    """``frame[column]`` as numbers; NaN throughout when the table has no such column."""
    if column not in frame:
        return pd.Series(np.nan, index=frame.index, dtype=float)
    return pd.to_numeric(frame[column], errors="coerce").astype(float)


def candidates(latency: pd.DataFrame, accuracy: pd.DataFrame) -> pd.DataFrame:
    """Join a latency table (rows of one target and batch) with one top-1 per model: ``model, family,
    latency_ms, top1, top1_std, top1_from, params_m, memory_mb, status, error, disturbed, cpu_share``. Failed rows
    keep their error; disturbed rows keep their latency, flagged."""
    ok = latency["status"].astype(str) == "ok" if "status" in latency else pd.Series(True, latency.index)
    frame = pd.DataFrame(
        {
            "model": latency["model"].astype(str),
            "latency_ms": _numbers(latency, "latency_ms_median").where(ok),
            "params_m": _numbers(latency, "params") / 1e6,
            "memory_mb": (memory_bytes(latency) / 1e6).where(ok),
            "status": latency.get("status", "ok"),
            "error": latency.get("error", "").fillna("") if "error" in latency else "",
            "disturbed": disturbed(latency),
            "cpu_share": _numbers(latency, "cpu_share"),
        }
    )
    frame.insert(
        1, "family", frame["model"].map(lambda n: zoo.model_info(n).family if n in zoo.list_models() else "other")
    )
    merged = frame.merge(accuracy, on="model", how="left")
    return merged[[*MODEL_FIGURES, "status", "error", "disturbed", "cpu_share"]]
