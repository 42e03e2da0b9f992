"""A per-target cost model of latency, fitted on the kernel suite and applied to any model's counting pass.

For an op of kind *k* (the counting engine's kinds: dense, 1×1, depthwise and group conv, linear, norm, ...)::

    time = overhead_k + max(arithmetic / compute_k, mac_bytes / memory_k)

where ``arithmetic`` is the op's multiply-adds plus its element-wise operations (a conv's are almost all
multiply-adds, an activation's all element-wise) and ``mac_bytes`` its memory access cost in bytes (ShuffleNetV2's
MAC, weights included). The three numbers of each kind are fitted on that kind's kernels by least squares on the
logarithm of time (relative error, so a 10 µs kernel counts as much as a 10 ms one), with a robust loss that a
noisy machine's outliers do not drag. Kernels and models are counted alike, with fp32 bytes; under an fp16 or
bf16 target the fitted memory rates absorb the factor. A network adds one more term: ``module_call_ms`` for each
``nn.Module`` call that runs no counted op of its own (containers, blocks, identities), timed on nested containers.

The per-op attribution follows the formula: the overhead is overhead, the larger of the two rate terms is compute
(the op is compute-bound) or memory (memory-bound). Two baselines fitted on the same kernels say what the formula
adds: latency proportional to multiply-adds (FLOPs-only) and proportional to MAC bytes (MAC-only), each the median
ratio of time to count over the kernels that have one.

Fitted for the eager backend. ONNX Runtime and OpenVINO fuse Conv+BatchNorm(+activation) into one kernel and choose
their own kernels per shape; those fusion rules are not modelled, so those backends are refused
(:func:`check_modelled`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import least_squares
from torch import nn

from cnnbench.costmodel import suite
from cnnbench.errors import CnnbenchError
from cnnbench.measure import counting, profiling
from cnnbench.measure.profiling import profile
from cnnbench.models import build_model
from cnnbench.provenance import environment, machine_identity, now
from cnnbench.store import atomic_write_text, cache_root, code_fingerprint
from cnnbench.target import Target, describe, resolve_target

__all__ = ["KindCost", "CostModel", "Prediction", "FORMAT", "check_modelled", "fit_kind", "fit", "calibrate",
           "predict", "default_path", "load", "save", "accuracy_summary", "CODE_MODULES"]  # fmt: skip

FORMAT = 1  # the JSON layout's version
PER_MS = 1e6  # a rate in G/s (or GB/s) is this many units per millisecond
FALLBACK_KIND = "elementwise"  # what an op of a kind with no fitted cost ("other": unknown ops) is costed as
CODE_MODULES = (suite, counting, profiling)  # a stored cost model stands only while these are unchanged


@dataclass(frozen=True)
class KindCost:
    """The fitted cost of one op kind: ``overhead_ms + max(arithmetic / compute, mac_bytes / memory)``."""

    overhead_ms: float  # per op: dispatch, Python, thread wake-up
    compute_gops: float  # arithmetic (multiply-adds + element-wise operations) per second, in G
    memory_gbs: float  # MAC bytes per second, in GB
    kernels: int  # kernels it was fitted on
    kernel_error: float  # median |predicted / measured - 1| over those kernels

    def terms(self, arithmetic: np.ndarray, mac_bytes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(overhead, compute, memory) in ms per op; only the larger of compute and memory is kept (the other 0)."""
        compute = arithmetic / (self.compute_gops * PER_MS)
        memory = mac_bytes / (self.memory_gbs * PER_MS)
        bound = compute >= memory
        overhead = np.full(len(compute), self.overhead_ms)
        return overhead, np.where(bound, compute, 0.0), np.where(bound, 0.0, memory)

    def time_ms(self, arithmetic: np.ndarray, mac_bytes: np.ndarray) -> np.ndarray:
        return sum(self.terms(arithmetic, mac_bytes))  # type: ignore[return-value]


@dataclass(frozen=True)
class CostModel:
    """A target's fitted cost model, with where and when it was measured (JSON: :func:`save`, :func:`load`)."""

    target: dict[str, object]  # cnnbench.target.describe(): device, threads, dtype, layout, backend, key
    kinds: dict[str, KindCost]
    module_call_ms: float
    flops_ms_per_g: float  # FLOPs-only baseline: ms per 1e9 multiply-adds
    mac_ms_per_gb: float  # MAC-only baseline: ms per 1e9 MAC bytes
    kernels: int
    environment: dict[str, str] = field(default_factory=dict)  # machine, torch, commit, cpu, measured_at, code

    @property
    def key(self) -> str:
        return str(self.target.get("key", ""))

    def cost_of(self, kind: str) -> KindCost:
        return self.kinds.get(kind) or self.kinds[FALLBACK_KIND]

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, **asdict(self)}, indent=2) + "\n"


@dataclass(frozen=True)
class Prediction:
    """A model's predicted latency: the total, its attribution, the baselines, and the per-op and per-kind tables."""

    model: str
    resolution: int
    batch: int
    latency_ms: float
    overhead_ms: float  # per-op overhead plus container calls
    compute_ms: float  # ops that are compute-bound
    memory_ms: float  # ops that are memory-bound
    flops_only_ms: float
    mac_only_ms: float
    flops: int  # multiply-adds
    mac_bytes: int
    params: int
    ops: int
    module_calls: int  # container calls that run no op of their own
    layers: pd.DataFrame  # one row per op: module, kind, counts, overhead/compute/memory/time ms
    by_kind: pd.DataFrame

    def row(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in ("model", "resolution", "batch", "latency_ms", "overhead_ms",
                                                "compute_ms", "memory_ms", "flops_only_ms", "mac_only_ms", "flops",
                                                "mac_bytes", "params", "ops", "module_calls")}  # fmt: skip


def check_modelled(target: Target) -> Target:
    """The target resolved, if the cost model covers it; else one line that says which do."""
    target, _ = resolve_target(target)
    if target.backend != "eager":
        raise CnnbenchError(
            f"the cost model covers the eager backend only: {target.backend} fuses Conv+BatchNorm(+activation) and "
            "picks its own kernels, rules not modelled yet; use --backend eager"
        )
    if target.fuse_bn:
        raise CnnbenchError("the cost model times BatchNorm as its own op; drop --fuse-bn")
    return target


# --- fitting ---------------------------------------------------------------------------------------------------


def _arithmetic(frame: pd.DataFrame) -> np.ndarray:
    return (frame["flops"] + frame["flops_elementwise"]).to_numpy(dtype=float)


def fit_kind(arithmetic: np.ndarray, mac_bytes: np.ndarray, time_ms: np.ndarray) -> KindCost:
    """Fit ``overhead + max(arithmetic / compute, mac_bytes / memory)`` to measured times by least squares on log
    time (soft-L1 loss, so a noisy machine's outliers weigh less). Parameters are fitted as logarithms, so all
    three stay positive."""
    arithmetic, mac_bytes, time_ms = (np.asarray(a, dtype=float) for a in (arithmetic, mac_bytes, time_ms))

    def model(p: np.ndarray) -> np.ndarray:
        overhead, compute, memory = np.exp(p)
        return overhead + np.maximum(arithmetic / compute, mac_bytes / memory)

    # half the fastest kernel, 100 G/s, 10 GB/s; bounds far outside any real device
    start = np.log([max(float(time_ms.min()) / 2, 1e-4), 100 * PER_MS, 10 * PER_MS])
    low, high = np.log([1e-7, 1e-3 * PER_MS, 1e-3 * PER_MS]), np.log([1e3, 1e7 * PER_MS, 1e7 * PER_MS])
    result = least_squares(lambda p: np.log(model(p)) - np.log(time_ms), np.clip(start, low, high),
                           bounds=(low, high), loss="soft_l1", f_scale=0.1)  # fmt: skip
    overhead, compute, memory = np.exp(result.x)
    error = float(np.median(np.abs(model(result.x) / time_ms - 1)))
    return KindCost(float(overhead), float(compute / PER_MS), float(memory / PER_MS), len(time_ms), error)


def _ratio(time_ms: np.ndarray, count: np.ndarray) -> float:
    """The median of time per unit over the kernels with a count (a proportional model fitted on log time)."""
    keep = count > 0
    return float(np.exp(np.median(np.log(time_ms[keep]) - np.log(count[keep]))))


def fit(kernels: pd.DataFrame, target: Target) -> CostModel:
    """The cost model of ``target`` from :func:`cnnbench.costmodel.suite.time_kernels`' table."""
    kinds = {}
    for kind, group in kernels[kernels["kind"] != suite.MODULE_KIND].groupby("kind", sort=False):
        kinds[str(kind)] = fit_kind(_arithmetic(group), group["mac_bytes"].to_numpy(float), group["time_ms"].to_numpy())
    if FALLBACK_KIND not in kinds:
        raise CnnbenchError(f"the kernel suite needs {FALLBACK_KIND} kernels: unknown ops are costed as those")
    calls = kernels.loc[kernels["kind"] == suite.MODULE_KIND, "time_ms"]
    ops = kernels[kernels["kind"] != suite.MODULE_KIND]
    time_ms = ops["time_ms"].to_numpy()
    env = environment(target.torch_device)
    return CostModel(
        target={**describe(target), "key": target.key},
        kinds=kinds,
        module_call_ms=float(calls.median()) if len(calls) else 0.0,
        flops_ms_per_g=_ratio(time_ms, ops["flops"].to_numpy(float)) * 1e9,
        mac_ms_per_gb=_ratio(time_ms, ops["mac_bytes"].to_numpy(float)) * 1e9,
        kernels=len(kernels),
        environment={**env, "measured_at": now(), "code": code_fingerprint(None, CODE_MODULES)},
    )


def calibrate(
    target: Target | None = None,
    per_kind: int = suite.KERNELS_PER_KIND,
    seed: int = 0,
    timing: suite.Timing = suite.CALIBRATION_TIMING,
    progress: Callable[[Sequence[suite.Kernel], str], Iterable[suite.Kernel]] = lambda items, desc: items,
) -> tuple[CostModel, pd.DataFrame]:
    """Time the kernel suite on ``target`` (never a zoo model) and fit its cost model; returns it and the kernels'
    table (their counts, measured and fitted times)."""
    target = check_modelled(target or Target())
    kernels = suite.time_kernels(suite.kernel_suite(per_kind, seed), target, timing=timing, progress=progress)
    model = fit(kernels, target)
    rows = zip(kernels["kind"], _arithmetic(kernels), kernels["mac_bytes"], strict=True)
    fitted = [model.module_call_ms if kind == suite.MODULE_KIND else
              float(model.cost_of(kind).time_ms(np.array([a]), np.array([b]))[0]) for kind, a, b in rows]  # fmt: skip
    return model, kernels.assign(fitted_ms=fitted)


# --- predicting ------------------------------------------------------------------------------------------------


def _module_calls(net: nn.Module, layers: pd.DataFrame) -> int:
    """Module calls that run no counted op of their own: every module whose forward runs (one meta forward has
    already told which, through the layers' paths) minus the leaves that run ops, whose call the kernels timed."""
    names = {name for name, _ in net.named_modules()}
    paths = set(layers["module"])
    ancestors = {".".join(p.split(".")[:i]) for p in paths for i in range(len(p.split(".")) if p else 0)}
    leaves_with_ops = {p for p in paths if p not in ancestors}
    ran = {n for n in names if n in paths or n in ancestors}
    return max(0, len(ran) - len(leaves_with_ops))


def predict(
    model: nn.Module | str,
    cost_model: CostModel,
    batch: int = 1,
    resolution: int | None = None,
    name: str | None = None,
) -> Prediction:
    """Predict ``model``'s latency on the cost model's target from one meta-device counting pass. ``model`` is a
    module (any φ, any width) or a name (zoo, ``timm:``, ``torchvision:``)."""
    if isinstance(model, str):
        resolved = build_model(model)
        net, label, resolution = resolved.model, name or model, resolution or resolved.resolution
    else:
        net, label = model, name or type(model).__name__
    counted = profile(net, resolution=resolution, batch=batch, training_memory=False)
    layers = counted.layers[["module", "module_type", "op", "kind", "output_shape", "flops", "flops_elementwise",
                             "mac_bytes"]].copy()  # fmt: skip
    terms = np.zeros((len(layers), 3))
    arithmetic = _arithmetic(layers)
    for kind, index in layers.groupby("kind", sort=False).indices.items():
        terms[index] = np.column_stack(
            cost_model.cost_of(str(kind)).terms(arithmetic[index], layers["mac_bytes"].to_numpy(float)[index])
        )
    layers["overhead_ms"], layers["compute_ms"], layers["memory_ms"] = terms.T
    layers["time_ms"] = terms.sum(axis=1)
    calls = _module_calls(net, layers)
    by_kind = layers.groupby("kind", sort=False)[["overhead_ms", "compute_ms", "memory_ms", "time_ms"]].sum()
    by_kind.insert(0, "ops", layers.groupby("kind", sort=False).size())
    by_kind = by_kind.reindex([k for k in counting.KINDS if k in by_kind.index]).reset_index()
    if calls:
        call_ms = calls * cost_model.module_call_ms
        by_kind.loc[len(by_kind)] = {"kind": suite.MODULE_KIND, "ops": calls, "overhead_ms": call_ms,
                                     "compute_ms": 0.0, "memory_ms": 0.0, "time_ms": call_ms}  # fmt: skip
    total = float(by_kind["time_ms"].sum())
    by_kind["time_share"] = by_kind["time_ms"] / total if total else 0.0
    totals = counted.totals
    return Prediction(
        model=label, resolution=totals.resolution, batch=batch, latency_ms=total,
        overhead_ms=float(by_kind["overhead_ms"].sum()), compute_ms=float(by_kind["compute_ms"].sum()),
        memory_ms=float(by_kind["memory_ms"].sum()), flops_only_ms=totals.flops * cost_model.flops_ms_per_g / 1e9,
        mac_only_ms=totals.mac_bytes * cost_model.mac_ms_per_gb / 1e9, flops=totals.flops,
        mac_bytes=totals.mac_bytes, params=totals.params, ops=len(layers), module_calls=calls, layers=layers,
        by_kind=by_kind,
    )  # fmt: skip


def accuracy_summary(predicted: pd.Series, measured: pd.Series) -> dict[str, float]:
    """Median absolute percentage error and the shares within ±10% and ±20% of predictions against measurements."""
    error = (predicted / measured - 1).abs().dropna()
    if error.empty:
        return {"mape": math.nan, "within_10": math.nan, "within_20": math.nan, "models": 0}
    return {"mape": float(error.median() * 100), "within_10": float((error <= 0.10).mean() * 100),
            "within_20": float((error <= 0.20).mean() * 100), "models": int(len(error))}  # fmt: skip


# --- storing ---------------------------------------------------------------------------------------------------


def default_path(target: Target, machine: str | None = None) -> Path:
    """Where ``calibrate`` keeps a target's cost model: the cache, under the machine's identity and the target."""
    return cache_root() / "costmodels" / (machine or machine_identity(target.torch_device)) / f"{target.key}.json"


def save(model: CostModel, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, model.to_json())
    return path


def load(path: Path | str) -> CostModel:
    """A cost model from its JSON (this machine's or another device's); one line for a file that is not one."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CnnbenchError(
            f"no cost model at {path}; run `cnnbench calibrate` on the device, or give its JSON"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CnnbenchError(f"{path} is not a cost model's JSON ({type(err).__name__}); give a file that "
                            "`cnnbench calibrate --out` wrote") from None  # fmt: skip
    try:
        if data.get("format") != FORMAT:
            raise ValueError(f"format {data.get('format')!r}, this cnnbench reads format {FORMAT}")
        kinds = {str(k): KindCost(**{f: v for f, v in cost.items()}) for k, cost in data["kinds"].items()}
        for kind, cost in kinds.items():
            rates = (cost.compute_gops, cost.memory_gbs)
            if not all(math.isfinite(float(v)) and float(v) > 0 for v in rates) or not cost.overhead_ms >= 0:
                raise ValueError(f"kind {kind} has a rate that is not a positive number")
        if FALLBACK_KIND not in kinds:
            raise ValueError(f"it has no {FALLBACK_KIND} kind")
        return CostModel(target=dict(data["target"]), kinds=kinds, module_call_ms=float(data["module_call_ms"]),
                         flops_ms_per_g=float(data["flops_ms_per_g"]), mac_ms_per_gb=float(data["mac_ms_per_gb"]),
                         kernels=int(data["kernels"]), environment=dict(data.get("environment", {})))  # fmt: skip
    except (AttributeError, KeyError, TypeError, ValueError) as err:
        raise CnnbenchError(f"{path} is not a cost model cnnbench can read ({err}); recalibrate with "
                            "`cnnbench calibrate`") from None  # fmt: skip
