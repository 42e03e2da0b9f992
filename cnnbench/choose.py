"""Choosing a model: which models are worth their latency (the Pareto front of accuracy against measured latency),
and :func:`rank`, the best models within a latency, accuracy, size and memory budget on one target.

A model *dominates* another when it is at least as fast and at least as accurate, and strictly better in one of
the two; the front is the set no model dominates. Everything here is pure, frames in and frames out;
:func:`cnnbench.report.pick.pick` gathers the frames (the results folder, measuring what it lacks).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

import zoo
from cnnbench.accuracy.published import published_accuracy
from cnnbench.errors import CnnbenchError
from cnnbench.provenance import is_disturbed

__all__ = [
    "ACCURACY_SOURCES",
    "Budget",
    "accuracy_for",
    "candidates",
    "digits_top1",
    "front_table",
    "memory_bytes",
    "no_fit_message",
    "pareto",
    "rank",
]

ACCURACY_SOURCES = ("paper", "reference", "digits")


@dataclass(frozen=True)
class Budget:
    """What a model must meet to be picked; ``None`` leaves that budget open."""

    latency_ms: float | None = None  # median latency on the target, at most
    min_top1: float | None = None  # top-1 (%), at least
    max_params_m: float | None = None  # parameters, at most, in millions
    max_memory_mb: float | None = None  # measured peak memory of inference, at most, in MB (10^6 bytes)

    def describe(self) -> str:
        parts = [
            f"latency ≤ {self.latency_ms:g} ms" if self.latency_ms is not None else "",
            f"top-1 ≥ {self.min_top1:g}%" if self.min_top1 is not None else "",
            f"params ≤ {self.max_params_m:g} M" if self.max_params_m is not None else "",
            f"memory ≤ {self.max_memory_mb:g} MB" if self.max_memory_mb is not None else "",
        ]
        return ", ".join(p for p in parts if p) or "no budget"


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
    return merged[
        [
            "model",
            "family",
            "latency_ms",
            "top1",
            "top1_std",
            "top1_from",
            "params_m",
            "memory_mb",
            "status",
            "error",
            "disturbed",
            "cpu_share",
        ]
    ]


def _ms(value: float) -> str:
    """Three significant digits, without an exponent: 0.771, 15.5, 1047."""
    return f"{value:.3g}" if value < 1000 else f"{value:.0f}"


def _reasons(row: pd.Series, budget: Budget, accuracy: str) -> str:
    reasons = []
    if pd.isna(row["latency_ms"]):
        error = str(row.get("error") or "").strip()
        reasons.append(f"no latency ({error})" if error else "no latency measured")
    elif bool(row.get("disturbed", False)):
        share = row.get("cpu_share")
        had = f", cpu_share {share:.2f}" if pd.notna(share) else ""
        reasons.append(
            f"latency disturbed ({_ms(row['latency_ms'])} ms{had}: another process held the CPUs; measure it again)"
        )
    elif budget.latency_ms is not None and row["latency_ms"] > budget.latency_ms:
        reasons.append(f"latency {_ms(row['latency_ms'])} ms > {budget.latency_ms:g} ms")
    if pd.isna(row["top1"]):
        reasons.append(f"no {accuracy} top-1")
    elif budget.min_top1 is not None and row["top1"] < budget.min_top1:
        reasons.append(f"top-1 {row['top1']:.4g}% < {budget.min_top1:g}%")
    if budget.max_params_m is not None and not row["params_m"] <= budget.max_params_m:
        reasons.append(f"params {row['params_m']:.3g} M > {budget.max_params_m:g} M")
    if budget.max_memory_mb is not None and not row["memory_mb"] <= budget.max_memory_mb:
        memory = "no memory measured" if pd.isna(row["memory_mb"]) else f"memory {row['memory_mb']:.3g} MB"
        reasons.append(f"{memory} > {budget.max_memory_mb:g} MB")
    return "; ".join(reasons)


def rank(frame: pd.DataFrame, budget: Budget, accuracy: str = "paper") -> pd.DataFrame:
    """The models of ``frame`` (:func:`candidates`) that meet every budget, most accurate first (then fastest),
    numbered in ``rank``, with the Pareto front among them (``pareto``, ``dominated_by``: a model beaten on both
    latency and top-1 by another that also fits); then every other model, with ``excluded_by`` naming each budget
    (or missing figure) that excluded it."""
    frame = frame.copy()
    frame["excluded_by"] = [_reasons(row, budget, accuracy) for _, row in frame.iterrows()]
    fits = frame[frame["excluded_by"] == ""].sort_values(["top1", "latency_ms"], ascending=[False, True])
    fits = pareto(fits.reset_index(drop=True))
    fits.insert(0, "rank", pd.array(range(1, len(fits) + 1), dtype="Int64"))
    rest = frame[frame["excluded_by"] != ""].sort_values(["latency_ms", "model"])
    rest = rest.assign(rank=pd.array([pd.NA] * len(rest), dtype="Int64"), pareto=False, dominated_by="")
    columns = [
        "rank",
        "model",
        "family",
        "latency_ms",
        "top1",
        "top1_std",
        "top1_from",
        "params_m",
        "memory_mb",
        "pareto",
        "dominated_by",
        "excluded_by",
    ]
    return pd.concat([fits[columns], rest[columns]], ignore_index=True)


def no_fit_message(ranked: pd.DataFrame, budget: Budget) -> str:
    """The one line for a budget no model meets: it names the fastest model measured and its latency."""
    measured = ranked[ranked["latency_ms"].notna()].sort_values("latency_ms")
    if measured.empty:
        return f"no model meets {budget.describe()}, and no latency was measured on this target"
    fastest = measured.iloc[0]
    return (
        f"no model meets {budget.describe()}; the fastest measured is {fastest['model']} at "
        f"{_ms(fastest['latency_ms'])} ms (top-1 {fastest['top1']:.4g}%): loosen a budget"
    )
