"""Predicting a model's latency on a target from one meta-device counting pass and the target's fitted cost model
(:mod:`cnnbench.costmodel.model`): nothing is timed.

Each op is costed by its key's fit, or, for a key the calibration saw too few of, by a pooled fit (its kind's
``kind:<kind>``, else ``any``): the prediction lists those fallbacks and their op counts. The sum of the ops times the
network scale is the latency, attributed by the formula's terms: overhead (both overhead terms), compute, and memory
(traffic and fresh pages). Beside it, the two baselines fitted on the same networks: latency proportional to
multiply-adds (FLOPs-only) and to MAC bytes (MAC-only).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import pandas as pd
from torch import nn

from cnnbench.costmodel.model import CostModel, RuntimeCostModel, costed_by
from cnnbench.costmodel.runtime import cost_kinds, runtime_terms
from cnnbench.measure import counting
from cnnbench.measure.profiling import profile
from cnnbench.models import resolve

__all__ = ["ROW_FIELDS", "Prediction", "accuracy_summary", "fallback_text", "predict_latency"]

# A prediction's one-line summary (:meth:`Prediction.row`), in the order tables show it.
ROW_FIELDS = (
    "model",
    "resolution",
    "batch",
    "latency_ms",
    "low_ms",
    "high_ms",
    "overhead_ms",
    "compute_ms",
    "memory_ms",
    "page_fault_ms",
    "flops_only_ms",
    "mac_only_ms",
    "flops",
    "mac_bytes",
    "params",
    "ops",
)


@dataclass(frozen=True)
class Prediction:
    """A model's predicted latency: the total, its attribution, the baselines, the pooled fits it fell back to, and
    the per-op and per-kind tables."""

    model: str
    resolution: int
    batch: int
    latency_ms: float
    low_ms: float  # the interval: the latency times the calibration networks' ratios (CostModel.interval)
    high_ms: float
    overhead_ms: float  # per-op overhead, parallel steps included
    compute_ms: float  # arithmetic at the compute rates
    memory_ms: float  # traffic at the memory rates, and fresh pages
    page_fault_ms: float  # of memory_ms, the fresh pages
    flops_only_ms: float
    mac_only_ms: float
    flops: int  # multiply-adds
    mac_bytes: int
    params: int
    ops: int
    fallbacks: dict[str, int]  # pooled fits ("kind:<kind>", "any") that costed ops of a key not fitted alone: ops
    layers: pd.DataFrame  # one row per op: module, kind, key, costed_by, counts, the terms and time in ms
    by_kind: pd.DataFrame

    def row(self) -> dict[str, object]:
        """The summary: :data:`ROW_FIELDS`, and the fallbacks as text (:func:`fallback_text`)."""
        return {**{name: getattr(self, name) for name in ROW_FIELDS}, "fallbacks": fallback_text(self.fallbacks)}


def fallback_text(fallbacks: dict[str, int]) -> str:
    """``kind:activation×12, any×1``: each pooled fit and the ops it costed (blank: every op had its key's own)."""
    return ", ".join(f"{key}×{ops}" for key, ops in fallbacks.items())


def predict_latency(
    model: nn.Module | str,
    cost_model: CostModel | RuntimeCostModel,
    batch: int = 1,
    resolution: int | None = None,
    name: str | None = None,
) -> Prediction:
    """Predict ``model``'s latency on the cost model's target from one meta-device counting pass. ``model`` is a
    module (any φ, any width) or a name (zoo, ``timm:``, ``torchvision:``)."""
    resolved = resolve(model, resolution, name=name)
    net, label, resolution = resolved.model, resolved.name, resolved.resolution
    counted = profile(net, resolution=resolution, batch=batch, training_memory=False)
    layers = counted.layers[
        ["module", "module_type", "op", "kind", "output_shape", "flops", "flops_elementwise", "mac_bytes"]
    ].copy()
    if isinstance(cost_model, RuntimeCostModel):
        layers, base_ms = _on_the_runtime(cost_model, counted.layers, layers), cost_model.base_ms
    else:
        layers, base_ms = _eager(cost_model, counted.layers, layers), 0.0
    by_kind = layers.groupby("kind", sort=False)[["overhead_ms", "compute_ms", "memory_ms", "time_ms"]].sum()
    by_kind.insert(0, "ops", layers.groupby("kind", sort=False).size())
    by_kind = by_kind.reindex([k for k in counting.KINDS if k in by_kind.index]).reset_index()
    total = float(by_kind["time_ms"].sum()) + base_ms
    by_kind["time_share"] = by_kind["time_ms"] / total if total else 0.0
    fallbacks = Counter(fit for fit, key in zip(layers["costed_by"], layers["key"], strict=True) if fit != key)
    totals = counted.totals
    return Prediction(
        model=label,
        resolution=totals.resolution,
        batch=batch,
        latency_ms=total,
        low_ms=total * cost_model.interval[0],
        high_ms=total * cost_model.interval[1],
        overhead_ms=float(layers["overhead_ms"].sum()) + base_ms,
        compute_ms=float(layers["compute_ms"].sum()),
        memory_ms=float(layers["memory_ms"].sum()),
        page_fault_ms=float(layers["page_fault_ms"].sum()),
        flops_only_ms=totals.flops * cost_model.flops_ms_per_g / 1e9,
        mac_only_ms=totals.mac_bytes * cost_model.mac_ms_per_gb / 1e9,
        flops=totals.flops,
        mac_bytes=totals.mac_bytes,
        params=totals.params,
        ops=len(layers),
        fallbacks=dict(fallbacks.most_common()),
        layers=layers,
        by_kind=by_kind,
    )


def _eager(cost_model: CostModel, counted: pd.DataFrame, layers: pd.DataFrame) -> pd.DataFrame:
    """The per-op table under an eager cost model: each op's key, the fit that costed it, and its terms times the
    network scale."""
    features, terms = cost_model.terms_of(counted)
    scale = cost_model.network_scale
    keys = [str(key) for key in features["key"]]
    layers["key"], layers["misaligned"] = keys, features["misaligned"]
    layers["costed_by"] = [
        costed_by(cost_model.costs, k, str(kind)) for k, kind in zip(keys, features["kind"], strict=True)
    ]
    layers["overhead_ms"] = terms.overhead_ms * scale
    layers["compute_ms"] = terms.compute_ms * scale
    layers["memory_ms"] = (terms.memory_ms + terms.page_fault_ms) * scale
    layers["page_fault_ms"] = terms.page_fault_ms * scale
    layers["time_ms"] = layers["overhead_ms"] + layers["compute_ms"] + layers["memory_ms"]
    return layers


def _on_the_runtime(cost_model: RuntimeCostModel, counted: pd.DataFrame, layers: pd.DataFrame) -> pd.DataFrame:
    """The per-op table under a runtime's cost model: each op costed by its cost kind (:func:`cost_kinds`), with
    the nodes it is expected to keep or bring (the call's own time is not an op's)."""
    terms = runtime_terms(cost_model, counted)
    layers["key"] = layers["costed_by"] = cost_kinds(counted)
    layers["misaligned"] = False
    layers["nodes"] = terms.per_op["nodes"].to_numpy()
    for column in ("overhead_ms", "compute_ms", "memory_ms", "time_ms"):
        layers[column] = terms.per_op[column].to_numpy()
    layers["page_fault_ms"] = 0.0
    return layers


def accuracy_summary(predicted: pd.Series, measured: pd.Series) -> dict[str, float]:
    """Median absolute percentage error and the shares within ±10% and ±20% of predictions against measurements."""
    error = (predicted / measured - 1).abs().dropna()
    if error.empty:
        return {"mape": math.nan, "within_10": math.nan, "within_20": math.nan, "models": 0}
    return {
        "mape": float(error.median() * 100),
        "within_10": float((error <= 0.10).mean() * 100),
        "within_20": float((error <= 0.20).mean() * 100),
        "models": int(len(error)),
    }
