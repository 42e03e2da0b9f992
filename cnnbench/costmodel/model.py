"""A per-target cost model of latency, fitted on the kernel suite and applied to any model's counting pass.

For an op of kind *k* (the counting engine's kinds: dense, 1×1, depthwise and group conv, linear, norm, ...)::

    time = overhead_k + max(arithmetic / compute_k, mac_bytes / memory_k) × (misaligned_k if off the lanes)

where ``arithmetic`` is the op's multiply-adds plus its element-wise operations (a conv's are almost all
multiply-adds, an activation's all element-wise) and ``mac_bytes`` its memory access cost in bytes (ShuffleNetV2's
MAC, weights included). An op whose channels (of its input or output) are not all multiples of the target's vector
lanes runs a slower code path: its rate terms take the factor ``misaligned_k``. The lane count (4, 8, 16 or 32
fp32 values) is the one that fits the suite best, one per target. The four numbers of each kind are fitted on that
kind's kernels by least squares on the logarithm of time (relative error, so a 10 µs kernel counts as much as a
10 ms one), with a robust loss that a noisy machine's outliers do not drag. Kernels and models are counted alike,
with fp32 bytes; under an fp16 or bf16 target the fitted memory rates absorb the factor. A network adds one more
term: ``module_call_ms`` for each ``nn.Module`` call that runs no counted op of its own (containers, blocks,
identities), timed on nested containers.

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

from cnnbench.costmodel import networks, suite
from cnnbench.errors import CnnbenchError
from cnnbench.measure import counting, profiling
from cnnbench.measure.profiling import profile
from cnnbench.models import build_model
from cnnbench.provenance import environment, machine_identity, now
from cnnbench.store import atomic_write_text, cache_root, code_fingerprint
from cnnbench.target import Target, describe, resolve_target

__all__ = ["KindCost", "CostModel", "Prediction", "FORMAT", "check_modelled", "fit_kind", "fit", "calibrate",
           "predict", "default_path", "load", "save", "accuracy_summary", "CODE_MODULES", "misaligned",
           "LANE_CHOICES", "TERMS", "fit_network_factors", "fit_networks", "cost_kind"]  # fmt: skip

FORMAT = 2  # the JSON layout's version (2: the misaligned factor and the lanes)
LANE_CHOICES = (4, 8, 16, 32)  # fp32 values per vector register: SSE/NEON, AVX2, AVX-512, ...
PER_MS = 1e6  # a rate in G/s (or GB/s) is this many units per millisecond
FALLBACK_KIND = "elementwise"  # what an op of a kind with no fitted cost ("other": unknown ops) is costed as
GLOBAL_POOL = "pool_global"  # the cost kind of a pool that leaves no spatial extent (:func:`cost_kind`)
CODE_MODULES = (suite, networks, counting, profiling)  # a stored cost model stands only while these are unchanged
TERMS = ("overhead", "compute", "memory")  # the attribution's terms, each with an in-network factor


@dataclass(frozen=True)
class KindCost:
    """The fitted cost of one op kind: ``overhead_ms + max(arithmetic / compute, mac_bytes / memory)``."""

    overhead_ms: float  # per op: dispatch, Python, thread wake-up
    compute_gops: float  # arithmetic (multiply-adds + element-wise operations) per second, in G
    memory_gbs: float  # MAC bytes per second, in GB
    kernels: int  # kernels it was fitted on
    kernel_error: float  # median |predicted / measured - 1| over those kernels
    misaligned_factor: float = 1.0  # the rate terms' factor for an op whose channels are off the lanes

    def terms(
        self, arithmetic: np.ndarray, mac_bytes: np.ndarray, misaligned: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(overhead, compute, memory) in ms per op; only the larger of compute and memory is kept (the other 0)."""
        scale = 1.0 if misaligned is None else np.where(misaligned, self.misaligned_factor, 1.0)
        compute = arithmetic / (self.compute_gops * PER_MS) * scale
        memory = mac_bytes / (self.memory_gbs * PER_MS) * scale
        bound = compute >= memory
        overhead = np.full(len(compute), self.overhead_ms)
        return overhead, np.where(bound, compute, 0.0), np.where(bound, 0.0, memory)

    def time_ms(self, arithmetic: np.ndarray, mac_bytes: np.ndarray, off: np.ndarray | None = None) -> np.ndarray:
        return sum(self.terms(arithmetic, mac_bytes, off))  # type: ignore[return-value]


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
    lanes: int = 1  # channels are aligned when a multiple of this (1: every op is)
    network_factors: dict[str, float] = field(default_factory=dict)  # TERMS' in-network factors (absent: 1)
    networks: int = 0  # synthetic networks the factors and the baselines were fitted on
    network_error: float = 0.0  # median |predicted / measured - 1| over those networks (0 with none)

    def factor(self, term: str) -> float:
        """The in-network factor of ``term`` (overhead, compute or memory)."""
        return float(self.network_factors.get(term, 1.0))

    @property
    def key(self) -> str:
        return str(self.target.get("key", ""))

    def cost_of(self, kind: str) -> KindCost:
        """The cost of a :func:`cost_kind`: its own, else its counting kind's (``pool`` for ``pool_global``), else
        an element-wise op's."""
        counted = "pool" if kind == GLOBAL_POOL else kind
        return self.kinds.get(kind) or self.kinds.get(counted) or self.kinds[FALLBACK_KIND]

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


def cost_kind(kind: str, output: str) -> str:
    """The kind an op is costed as: its counting kind, except that a pool whose output has no spatial extent left
    (``1×C×1×1`` or ``1×C``: squeeze-excitation's and the classifier's global average) is ``pool_global``, a
    reduction that reads each element once, unlike a windowed pool that reads it up to k² times."""
    dims = _first_shape(output)
    return GLOBAL_POOL if kind == "pool" and (len(dims) == 2 or (len(dims) == 4 and dims[2] * dims[3] == 1)) else kind


def _cost_kinds(kinds: Iterable[str], outputs: Iterable[str]) -> np.ndarray:
    """:func:`cost_kind` of each op of a table (its ``kind`` and output shape columns)."""
    return np.array([cost_kind(k, o) for k, o in zip(kinds, outputs, strict=True)], dtype=object)


def misaligned(channels: Iterable[str], lanes: int) -> np.ndarray:
    """Which ops have a channel count (space-separated, :func:`cnnbench.costmodel.suite.vector_channels`) that is
    not a multiple of ``lanes``; an op with none (a blank, or a CSV's NaN) is aligned."""
    return np.array([isinstance(text, str) and any(int(c) % lanes for c in text.split()) for text in channels],
                    dtype=bool)  # fmt: skip


def fit_kind(
    arithmetic: np.ndarray, mac_bytes: np.ndarray, time_ms: np.ndarray, misaligned: np.ndarray | None = None
) -> KindCost:
    """Fit ``overhead + max(arithmetic / compute, mac_bytes / memory) × factor^misaligned`` to measured times by
    least squares on log time (soft-L1 loss, so a noisy machine's outliers weigh less). Parameters are fitted as
    logarithms, so all stay positive; with no misaligned op the factor stays 1."""
    arithmetic, mac_bytes, time_ms = (np.asarray(a, dtype=float) for a in (arithmetic, mac_bytes, time_ms))
    off = np.zeros(len(time_ms), dtype=bool) if misaligned is None else np.asarray(misaligned, dtype=bool)

    def model(p: np.ndarray) -> np.ndarray:
        overhead, compute, memory, factor = np.exp(p)
        return overhead + np.maximum(arithmetic / compute, mac_bytes / memory) * np.where(off, factor, 1.0)

    # half the fastest kernel, 100 G/s, 10 GB/s, no factor; bounds far outside any real device
    start = np.log([max(float(time_ms.min()) / 2, 1e-4), 100 * PER_MS, 10 * PER_MS, 1.0])
    low, high = np.log([1e-7, 1e-3 * PER_MS, 1e-3 * PER_MS, 0.25]), np.log([1e3, 1e7 * PER_MS, 1e7 * PER_MS, 8.0])
    result = least_squares(lambda p: np.log(model(p)) - np.log(time_ms), np.clip(start, low, high),
                           bounds=(low, high), loss="soft_l1", f_scale=0.1)  # fmt: skip
    overhead, compute, memory, factor = np.exp(result.x)
    error = float(np.median(np.abs(model(result.x) / time_ms - 1)))
    factor = float(factor) if off.any() else 1.0
    return KindCost(float(overhead), float(compute / PER_MS), float(memory / PER_MS), len(time_ms), error, factor)


def _ratio(time_ms: np.ndarray, count: np.ndarray) -> float:
    """The median of time per unit over the kernels with a count (a proportional model fitted on log time)."""
    keep = count > 0
    return float(np.exp(np.median(np.log(time_ms[keep]) - np.log(count[keep]))))


def _fit_kinds(ops: pd.DataFrame, kinds_of: np.ndarray, lanes: int) -> tuple[dict[str, KindCost], float]:
    """Every cost kind's fit at ``lanes`` (``kinds_of``: each kernel's), and the fit's total |log error| over the
    kernels (lower fits better)."""
    kinds, total = {}, 0.0
    for kind, index in ops.groupby(kinds_of, sort=False).indices.items():
        group = ops.iloc[index]
        arithmetic, mac_bytes, time_ms = _arithmetic(group), group["mac_bytes"].to_numpy(float), group["time_ms"]
        off = misaligned(group["channels"], lanes) if "channels" in group else None
        cost = kinds[str(kind)] = fit_kind(arithmetic, mac_bytes, time_ms.to_numpy(), off)
        total += float(np.abs(np.log(cost.time_ms(arithmetic, mac_bytes, off)) - np.log(time_ms.to_numpy(float))).sum())
    return kinds, total


def fit(kernels: pd.DataFrame, target: Target) -> CostModel:
    """The cost model of ``target`` from :func:`cnnbench.costmodel.suite.time_kernels`' table: each kind fitted at
    every lane count of :data:`LANE_CHOICES`, the lane count that fits the whole suite best kept."""
    ops = kernels[kernels["kind"] != suite.MODULE_KIND]
    kinds_of = _cost_kinds(ops["kind"], ops["output"] if "output" in ops else [""] * len(ops))
    fits = {lanes: _fit_kinds(ops, kinds_of, lanes) for lanes in (LANE_CHOICES if "channels" in ops else (1,))}
    lanes = min(fits, key=lambda n: fits[n][1])
    kinds = fits[lanes][0]
    if FALLBACK_KIND not in kinds:
        raise CnnbenchError(f"the kernel suite needs {FALLBACK_KIND} kernels: unknown ops are costed as those")
    calls = kernels.loc[kernels["kind"] == suite.MODULE_KIND, "time_ms"]
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
        lanes=lanes,
    )


def fit_network_factors(terms: np.ndarray, measured_ms: np.ndarray) -> tuple[dict[str, float], float]:
    """The in-network factors: ``measured ≈ f_o·overhead + f_c·compute + f_m·memory`` over whole networks, where
    each row of ``terms`` holds a network's three summed terms as the isolated kernels predict them. Least squares on
    log time (soft-L1), the factors fitted as logarithms within 1/4–8; returns them and the median |error|."""
    terms, measured_ms = np.asarray(terms, dtype=float), np.asarray(measured_ms, dtype=float)

    def model(p: np.ndarray) -> np.ndarray:
        return terms @ np.exp(p)

    result = least_squares(lambda p: np.log(model(p)) - np.log(measured_ms), np.zeros(len(TERMS)),
                           bounds=(np.log(0.25), np.log(8.0)), loss="soft_l1", f_scale=0.1)  # fmt: skip
    error = float(np.median(np.abs(model(result.x) / measured_ms - 1)))
    return dict(zip(TERMS, map(float, np.exp(result.x)), strict=True)), error


def calibrate(
    target: Target | None = None,
    per_kind: int = suite.KERNELS_PER_KIND,
    seed: int = 0,
    timing: suite.Timing = suite.CALIBRATION_TIMING,
    progress: Callable[[Sequence[object], str], Iterable[object]] = lambda items, desc: items,
    network_count: int = networks.NETWORKS,
) -> tuple[CostModel, pd.DataFrame, pd.DataFrame]:
    """Time the kernel suite and the synthetic networks on ``target`` (never a zoo model) and fit its cost model.

    The kernels give each kind's overhead, rates and misaligned factor; the networks, predicted from those and timed
    whole, give the in-network factors and the two baselines' constants. Returns the cost model, the kernels' table
    (counts, measured and fitted times) and the networks' (measured, isolated and fitted predictions)."""
    target = check_modelled(target or Target())
    kernels = suite.time_kernels(suite.kernel_suite(per_kind, seed), target, timing=timing, progress=progress)
    isolated = fit(kernels, target)
    off = misaligned(kernels["channels"], isolated.lanes)
    rows = zip(_cost_kinds(kernels["kind"], kernels["output"]), _arithmetic(kernels), kernels["mac_bytes"], off,
               strict=True)  # fmt: skip
    fitted = [isolated.module_call_ms if kind == suite.MODULE_KIND else
              float(isolated.cost_of(kind).time_ms(np.array([a]), np.array([b]), np.array([m]))[0])
              for kind, a, b, m in rows]  # fmt: skip
    drawn = networks.network_suite(network_count, seed)
    model, table = fit_networks(isolated, drawn, networks.time_networks(drawn, target, progress))
    return model, kernels.assign(misaligned=off, fitted_ms=fitted), table


def fit_networks(
    isolated: CostModel, drawn: Sequence[networks.Network], timed: pd.DataFrame
) -> tuple[CostModel, pd.DataFrame]:
    """``isolated`` (fitted on the kernels alone) with its in-network factors and baselines fitted on the ``drawn``
    networks as ``timed`` (:func:`cnnbench.costmodel.networks.time_networks`); the networks' table with every
    prediction."""
    if timed.empty:
        return isolated, timed
    predicted = [predict(n.build(), isolated, resolution=n.resolution, name=n.name) for n in drawn]
    terms = np.array([[p.overhead_ms, p.compute_ms, p.memory_ms] for p in predicted])
    measured = timed["measured_ms"].to_numpy(float)
    factors, error = fit_network_factors(terms, measured)
    flops = np.array([p.flops for p in predicted], dtype=float)
    mac_bytes = np.array([p.mac_bytes for p in predicted], dtype=float)
    model = CostModel(**{**isolated.__dict__, "network_factors": factors, "networks": len(timed),
                         "network_error": error, "flops_ms_per_g": _ratio(measured, flops) * 1e9,
                         "mac_ms_per_gb": _ratio(measured, mac_bytes) * 1e9})  # fmt: skip
    table = timed.assign(
        ops=[p.ops for p in predicted], isolated_ms=[p.latency_ms for p in predicted],
        predicted_ms=terms @ np.array([factors[t] for t in TERMS]), flops=flops, mac_bytes=mac_bytes,
    )  # fmt: skip
    return model, table


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


def _first_shape(shapes: str) -> tuple[int, ...]:
    """The first shape of the profile's ``"1×3×224×224, 16×3×3×3"`` (an empty tuple for none, and for a CSV's
    blank read back as NaN)."""
    first = shapes.split(", ")[0] if isinstance(shapes, str) else ""
    return tuple(int(n) for n in first.split("×") if n)


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
    shapes = zip(counted.layers["input_shapes"], counted.layers["output_shape"], strict=True)
    channels = [" ".join(map(str, suite.vector_channels(_first_shape(i), _first_shape(o)))) for i, o in shapes]
    layers["misaligned"] = off = misaligned(channels, cost_model.lanes)
    terms = np.zeros((len(layers), 3))
    arithmetic, mac_bytes = _arithmetic(layers), layers["mac_bytes"].to_numpy(float)
    for kind, index in layers.groupby(_cost_kinds(layers["kind"], layers["output_shape"]), sort=False).indices.items():
        cost = cost_model.cost_of(str(kind))
        terms[index] = np.column_stack(cost.terms(arithmetic[index], mac_bytes[index], off[index]))
    terms *= np.array([cost_model.factor(t) for t in TERMS])  # as the ops run inside a network
    layers["overhead_ms"], layers["compute_ms"], layers["memory_ms"] = terms.T
    layers["time_ms"] = terms.sum(axis=1)
    calls = _module_calls(net, layers)
    by_kind = layers.groupby("kind", sort=False)[["overhead_ms", "compute_ms", "memory_ms", "time_ms"]].sum()
    by_kind.insert(0, "ops", layers.groupby("kind", sort=False).size())
    by_kind = by_kind.reindex([k for k in counting.KINDS if k in by_kind.index]).reset_index()
    if calls:
        call_ms = calls * cost_model.module_call_ms * cost_model.factor("overhead")
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
            rates = (cost.compute_gops, cost.memory_gbs, cost.misaligned_factor)
            if not all(math.isfinite(float(v)) and float(v) > 0 for v in rates) or not cost.overhead_ms >= 0:
                raise ValueError(f"kind {kind} has a rate that is not a positive number")
        if FALLBACK_KIND not in kinds:
            raise ValueError(f"it has no {FALLBACK_KIND} kind")
        lanes = int(data["lanes"])
        if lanes < 1:
            raise ValueError(f"lanes {lanes} is not a positive count")
        factors = {str(t): float(v) for t, v in dict(data["network_factors"]).items()}
        if set(factors) - set(TERMS) or not all(math.isfinite(v) and v > 0 for v in factors.values()):
            raise ValueError(f"its network factors {factors} are not positive factors of {', '.join(TERMS)}")
        return CostModel(target=dict(data["target"]), kinds=kinds, module_call_ms=float(data["module_call_ms"]),
                         flops_ms_per_g=float(data["flops_ms_per_g"]), mac_ms_per_gb=float(data["mac_ms_per_gb"]),
                         kernels=int(data["kernels"]), environment=dict(data.get("environment", {})),
                         lanes=lanes, network_factors=factors, networks=int(data["networks"]),
                         network_error=float(data["network_error"]))  # fmt: skip
    except (AttributeError, KeyError, TypeError, ValueError) as err:
        raise CnnbenchError(f"{path} is not a cost model cnnbench can read ({err}); recalibrate with "
                            "`cnnbench calibrate`") from None  # fmt: skip
