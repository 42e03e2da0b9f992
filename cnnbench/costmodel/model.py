"""A per-target cost model of latency, fitted on ops timed inside synthetic networks and applied to any model's
counting pass.

Every op has a *cost key*: the counting engine's kind for convolutions (dense, 1×1, depthwise, group) and linear
layers, ``pool_global`` for a pool that leaves no spatial extent (squeeze-excitation's mean, the classifier's global
average), and the aten op otherwise (``native_batch_norm``, ``relu_``, ``silu``, ``add_``, ``mul``, ``cat``,
``max_pool2d_with_indices``...), so that an in-place activation, which allocates nothing, is costed apart from one
that writes a new tensor. For an op of key *k*::

    time = overhead_k + parallel_k · [size > above_k]
           + (arithmetic / compute_k + mac_bytes / memory_k) × (misaligned_k if off the lanes)
           + fresh_bytes / page_faults

- ``arithmetic``: multiply-adds plus element-wise operations; ``mac_bytes``: ShuffleNetV2's memory access cost in
  bytes (weights included), counted with fp32 bytes (under fp16/bf16 the fitted rates absorb the factor);
- ``parallel_k`` above ``above_k`` elements: the cost of going parallel. An op whose input (for concat, output)
  holds more than ``above_k`` elements runs on every thread, and waking the others costs time of its own: a 1×1
  convolution of 36 channels on a 28×28 map took 16 µs on one thread and 79 µs on two of a 2-core VM, where
  20×20 took 11 µs either way. ``above_k`` is chosen per key from a grid of powers of √2;
- ``misaligned_k``: an op whose channels (of its first input or its output) are not all multiples of the target's
  vector lanes runs a slower code path; the lane count (4, 8, 16 or 32 fp32 values) is the one that fits best;
- ``fresh_bytes``: the output of an op that is not in place, when it passes the allocator's mmap threshold
  (:data:`cnnbench.allocator.MMAP_THRESHOLD_BYTES`): such a block is mapped afresh at every forward and
  each of its pages faults on first write; ``page_faults`` (GB/s) is one rate per target.

The numbers of each key are fitted on that key's ops, each timed in its place inside a synthetic network
(:mod:`cnnbench.costmodel.networks`), by least squares on the logarithm of time with a soft-L1 loss and a weight of
√(time / median time), so that a relative error counts, more for the ops that make a network's time. A key with
fewer than :data:`MIN_OPS` ops falls back to the fit of its counting kind (all its ops pooled), then to that of every
op. A network's time is then ``network_scale`` × the sum of its ops (the container calls and the Python between
ops, fitted on the networks timed whole). The attribution follows the formula: overhead (both overhead terms),
compute, and memory (traffic and fresh pages). Two baselines fitted on the same networks say what the formula adds:
latency proportional to multiply-adds (FLOPs-only) and to MAC bytes (MAC-only), the median time per unit.

Fitted for the eager backend. ONNX Runtime and OpenVINO fuse Conv+BatchNorm(+activation) into one kernel and choose
their own kernels per shape; those fusion rules are not modelled, so those backends are refused
(:func:`check_modelled`).
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import least_squares
from torch import nn

from cnnbench import allocator
from cnnbench.costmodel import networks
from cnnbench.errors import CnnbenchError
from cnnbench.measure import breakdown, counting, latency, profiling
from cnnbench.measure.disturbance import Quieting
from cnnbench.measure.latency import REPORT_TIMING, Timing
from cnnbench.measure.profiling import profile
from cnnbench.models import resolve
from cnnbench.provenance import environment, machine_identity, now
from cnnbench.store import atomic_write_text, cache_root, code_fingerprint
from cnnbench.target import Target, describe, resolve_target

__all__ = [
    "OpCost",
    "CostModel",
    "Prediction",
    "FORMAT",
    "check_modelled",
    "cost_key",
    "op_features",
    "fit_cost",
    "fit",
    "fit_timed",
    "calibrate",
    "predict",
    "default_path",
    "load",
    "save",
    "accuracy_summary",
    "CODE_MODULES",
    "misaligned",
    "vector_channels",
    "LANE_CHOICES",
    "MIN_OPS",
    "ANY",
]

FORMAT = 3  # the JSON layout's version (3: per-key costs fitted in place, the parallel step, page faults)
LANE_CHOICES = (4, 8, 16, 32)  # fp32 values per vector register: SSE/NEON, AVX2, AVX-512, ...
PER_MS = 1e6  # a rate in G/s (or GB/s) is this many units per millisecond
MIN_OPS = 20  # ops a cost key needs to be fitted on its own; fewer fall back to their kind's pooled fit
MIN_SIDE = 5  # ops each side of a parallel threshold, or of the lanes, needs before either is fitted
ANY = "any"  # the last fallback: every op pooled
GLOBAL_POOL = "pool_global"
KINDS_AS_KEYS = ("conv", "conv_1x1", "conv_depthwise", "conv_group", "linear")  # costed by kind, whatever the op
# Where an op may go parallel: 2^10 to 2^21 elements in steps of √2 (the coarse grid is every other one).
THRESHOLDS = tuple(2.0 ** (k / 2) for k in range(20, 43))
# A stored cost model stands while these are unchanged: the fit (this module), the networks, the counts, the timers.
CODE_MODULES = (sys.modules[__name__], networks, counting, profiling, breakdown, latency, allocator)


@dataclass(frozen=True)
class OpCost:
    """The fitted cost of one cost key (see the module docstring for the formula)."""

    overhead_ms: float  # per op: dispatch, Python, allocation
    parallel_ms: float  # added when the op is larger than ``parallel_above`` elements: waking the other threads
    parallel_above: float | None  # elements (None: the key's ops never paid it)
    compute_gops: float  # arithmetic (multiply-adds + element-wise operations) per second, in G
    memory_gbs: float  # MAC bytes per second, in GB
    misaligned_factor: float  # the rate terms' factor for an op whose channels are off the lanes
    ops: int  # ops it was fitted on
    error: float  # median |fitted / measured - 1| over those ops

    def terms(self, f: dict[str, np.ndarray]) -> np.ndarray:
        """(overhead, compute, memory) in ms, one row per op of the features ``f`` (:func:`op_features`), before
        page faults."""
        above = math.inf if self.parallel_above is None else self.parallel_above
        scale = np.where(f["misaligned"], self.misaligned_factor, 1.0)
        overhead = self.overhead_ms + self.parallel_ms * (f["size"] > above)
        compute = f["arithmetic"] / (self.compute_gops * PER_MS) * scale
        memory = f["mac_bytes"] / (self.memory_gbs * PER_MS) * scale
        return np.column_stack([overhead, compute, memory])


@dataclass(frozen=True)
class CostModel:
    """A target's fitted cost model, with where and when it was measured (JSON: :func:`save`, :func:`load`)."""

    target: dict[str, object]  # cnnbench.target.describe(): device, threads, dtype, layout, backend, key
    costs: dict[str, OpCost]  # per cost key, and per counting kind ("kind:norm") and ANY as fallbacks
    lanes: int  # channels are aligned when a multiple of this
    page_fault_gbs: float | None  # fresh-page bytes per second, in GB (None: no op of the suite passed the threshold)
    network_scale: float  # a network's time over the sum of its ops
    flops_ms_per_g: float  # FLOPs-only baseline: ms per 1e9 multiply-adds
    mac_ms_per_gb: float  # MAC-only baseline: ms per 1e9 MAC bytes
    networks: int  # synthetic networks timed
    ops: int  # their ops, each timed in place
    network_error: float  # median |predicted / measured - 1| over those networks
    environment: dict[str, str] = field(default_factory=dict)  # machine, torch, commit, cpu, measured_at, code

    @property
    def key(self) -> str:
        return str(self.target.get("key", ""))

    def cost_of(self, key: str, kind: str) -> OpCost:
        """The cost of a key: its own, else its counting kind's, else every op's."""
        return _cost_of(self.costs, key, kind)

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, **asdict(self)}, indent=2) + "\n"


@dataclass(frozen=True)
class Prediction:
    """A model's predicted latency: the total, its attribution, the baselines, and the per-op and per-kind tables."""

    model: str
    resolution: int
    batch: int
    latency_ms: float
    overhead_ms: float  # per-op overhead, parallel steps included
    compute_ms: float  # arithmetic at the compute rates
    memory_ms: float  # traffic at the memory rates, and fresh pages
    flops_only_ms: float
    mac_only_ms: float
    flops: int  # multiply-adds
    mac_bytes: int
    params: int
    ops: int
    layers: pd.DataFrame  # one row per op: module, kind, key, counts, overhead/compute/memory/time ms
    by_kind: pd.DataFrame

    def row(self) -> dict[str, object]:
        return {
            k: getattr(self, k)
            for k in (
                "model",
                "resolution",
                "batch",
                "latency_ms",
                "overhead_ms",
                "compute_ms",
                "memory_ms",
                "flops_only_ms",
                "mac_only_ms",
                "flops",
                "mac_bytes",
                "params",
                "ops",
            )
        }


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


# --- features ----------------------------------------------------------------------------------------------------


def _shapes(text: object) -> list[tuple[int, ...]]:
    """The shapes of the profile's ``"1×3×224×224, 16×3×3×3"`` (none for a blank, or a CSV's NaN)."""
    if not isinstance(text, str) or not text:
        return []
    return [tuple(int(n) for n in shape.split("×") if n) for shape in text.split(", ")]


def vector_channels(first_input: Sequence[int], output: Sequence[int]) -> tuple[int, ...]:
    """The channel counts an op's vector loops run over: of its first input and of its output, dim 1 of a 4-D
    (NCHW) tensor and the features of a 2-D one. Other ranks give none."""
    return tuple(shape[1] for shape in (first_input, output) if len(shape) in (2, 4))


def misaligned(channels: Iterable[Sequence[int]], lanes: int) -> np.ndarray:
    """Which ops have a channel count that is not a multiple of ``lanes``."""
    return np.array([any(c % lanes for c in counts) for counts in channels], dtype=bool)


def cost_key(kind: str, op: str, output: Sequence[int]) -> str:
    """The key an op is costed by: its kind for convolutions and linear layers, ``pool_global`` for a pool whose
    output has no spatial extent left (``1×C×1×1`` or ``1×C``), else its aten op (``relu_`` apart from ``relu``)."""
    if kind in KINDS_AS_KEYS:
        return kind
    if kind == "pool" and (len(output) == 2 or (len(output) == 4 and output[2] * output[3] == 1)):
        return GLOBAL_POOL
    return op


def op_features(layers: pd.DataFrame) -> dict[str, np.ndarray]:
    """What the formula needs of each op of a counting pass's layers (:func:`cnnbench.measure.profiling.profile`):
    ``key``, ``kind``, ``arithmetic``, ``mac_bytes``, ``size`` (elements of the input an op parallelises over: its
    first input, a linear layer's features, a concat's output), ``fresh_bytes`` (see the module docstring) and
    ``channels`` (:func:`vector_channels`)."""
    inputs, outputs = [_shapes(s) for s in layers["input_shapes"]], [_shapes(s) for s in layers["output_shape"]]
    kinds, ops = layers["kind"].to_numpy(dtype=object), layers["op"].to_numpy(dtype=object)
    sizes, fresh, channels, keys = [], [], [], []
    for kind, op, ins, outs in zip(kinds, ops, inputs, outputs, strict=True):
        out = outs[0] if outs else ()
        sizes.append(math.prod(_parallel_shape(kind, op, ins, out)))
        out_bytes = 4 * math.prod(out) if out else 0
        fresh.append(out_bytes if out_bytes > allocator.MMAP_THRESHOLD_BYTES and not op.endswith("_") else 0)
        channels.append(vector_channels(ins[0] if ins else (), out))
        keys.append(cost_key(kind, op, out))
    return {
        "key": np.array(keys, dtype=object),
        "kind": kinds,
        "size": np.array(sizes, dtype=float),
        "arithmetic": (layers["flops"] + layers["flops_elementwise"]).to_numpy(dtype=float),
        "mac_bytes": layers["mac_bytes"].to_numpy(dtype=float),
        "fresh_bytes": np.array(fresh, dtype=float),
        "channels": _objects(channels),
    }


def _parallel_shape(kind: str, op: str, inputs: list[tuple[int, ...]], output: tuple[int, ...]) -> tuple[int, ...]:
    """The tensor an op splits among threads: a concat's output, the features of a linear layer (``addmm``'s
    inputs are bias, features, weights), else the first input."""
    if kind == "concat" or not inputs:
        return output
    return inputs[1] if op == "addmm" and len(inputs) > 1 else inputs[0]


def _objects(values: Sequence[object]) -> np.ndarray:
    """A 1-D object array of ``values`` (tuples stay tuples, whatever their lengths)."""
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


# --- fitting -----------------------------------------------------------------------------------------------------


def _select(f: dict[str, np.ndarray], index: np.ndarray) -> dict[str, np.ndarray]:
    return {name: values[index] for name, values in f.items()}


def fit_cost(
    f: dict[str, np.ndarray],
    time_ms: np.ndarray,
    weight: np.ndarray | None = None,
    extra_ms: np.ndarray | None = None,
    parallel: bool = True,
) -> OpCost:
    """Fit one key's numbers to its ops' times (``f``: their :func:`op_features` with ``misaligned`` added;
    ``extra_ms``: what the formula adds beyond the key, page faults). Least squares on log time with a soft-L1 loss,
    the numbers fitted as logarithms so that all stay positive; the parallel threshold is the grid value that fits
    best, or none (``parallel=False`` fits without one). A split the ops do not support is not fitted: the factor
    off the lanes stays 1, and a threshold is a candidate only, unless each side holds :func:`_supported` ops."""
    time_ms = np.asarray(time_ms, dtype=float)
    weight = np.ones(len(time_ms)) if weight is None else np.asarray(weight, dtype=float)
    extra = np.zeros(len(time_ms)) if extra_ms is None else np.asarray(extra_ms, dtype=float)
    scale_on = f["misaligned"] if _supported(f["misaligned"]) else np.zeros(len(time_ms), dtype=bool)
    g = {**f, "misaligned": scale_on}
    size = f["size"]

    def model(p: np.ndarray, above: float) -> np.ndarray:
        return _cost(p, above).terms(g).sum(1) + extra

    # OpCost's numbers as logarithms: half the fastest op, 1 µs of parallel step, 100 G/s, 10 GB/s, no factor;
    # bounds far outside any real device
    start = np.log([max(float(time_ms.min()) / 2, 1e-4), 1e-3, 100.0, 10.0, 1.0])
    low = np.log([1e-7, 1e-7, 1e-3, 1e-3, 0.25])
    high = np.log([1e3, 1e3, 1e7, 1e7, 8.0])

    def solve(above: float, x0: np.ndarray) -> tuple[float, np.ndarray]:
        result = least_squares(
            lambda p: weight * (np.log(model(p, above)) - np.log(time_ms)),
            x0,
            bounds=(low, high),
            loss="soft_l1",
            f_scale=0.1,
        )
        return float(result.cost), result.x

    best = (*solve(math.inf, np.clip(start, low, high)), math.inf)
    if parallel:
        for above in THRESHOLDS[::2]:
            if _supported(size > above):
                best = min(best, (*solve(above, best[1]), above), key=lambda r: r[0])
        if best[2] != math.inf:
            i = THRESHOLDS.index(best[2])
            for above in {THRESHOLDS[max(0, i - 1)], THRESHOLDS[min(len(THRESHOLDS) - 1, i + 1)]}:
                if _supported(size > above):
                    best = min(best, (*solve(above, best[1]), above), key=lambda r: r[0])
    _, p, above = best
    cost = _cost(p, above)
    return replace(
        cost,
        parallel_ms=cost.parallel_ms if above != math.inf else 0.0,
        misaligned_factor=cost.misaligned_factor if scale_on.any() else 1.0,
        ops=len(time_ms),
        error=float(np.median(np.abs(model(p, above) / time_ms - 1))),
    )


def _cost(p: np.ndarray, above: float) -> OpCost:
    """The cost of the logarithms ``p`` (overhead, parallel step, compute, memory, factor) and a threshold."""
    overhead, step, compute, memory, factor = map(float, np.exp(p))
    return OpCost(overhead, step, None if above == math.inf else above, compute, memory, factor, 0, 0.0)


def _supported(split: np.ndarray) -> bool:
    """Whether both sides of a split of a key's ops hold at least :data:`MIN_SIDE` ops, and 5% of them: a step or a
    factor fitted on a handful of ops would fit those alone (a sigmoid above 8192 elements, seen once, got 164 ms)."""
    least = max(MIN_SIDE, math.ceil(0.05 * len(split)))
    return least <= int(np.count_nonzero(split)) <= len(split) - least


def _fit_costs(
    f: dict[str, np.ndarray], time_ms: np.ndarray, weight: np.ndarray, extra: np.ndarray, parallel: bool
) -> dict[str, OpCost]:
    """Every key with at least :data:`MIN_OPS` ops, every counting kind (its ops pooled) unless it is a key fitted on
    its own, and :data:`ANY`."""
    groups: dict[str, np.ndarray] = {}
    for key in np.unique(f["key"]):
        index = np.flatnonzero(f["key"] == key)
        if len(index) >= MIN_OPS:
            groups[str(key)] = index
    for kind in np.unique(f["kind"]):
        if kind not in groups:  # a convolution kind with too few ops still gets a fit, as its own fallback
            groups[f"kind:{kind}"] = np.flatnonzero(f["kind"] == kind)
    groups[ANY] = np.arange(len(time_ms))
    return {key: fit_cost(_select(f, i), time_ms[i], weight[i], extra[i], parallel) for key, i in groups.items()}


def _cost_of(costs: dict[str, OpCost], key: str, kind: str) -> OpCost:
    """A key's own cost, else its counting kind's, else every op's."""
    return costs.get(key) or costs.get(f"kind:{kind}") or costs[ANY]


def _apply(costs: dict[str, OpCost], f: dict[str, np.ndarray], page_fault_gbs: float | None) -> np.ndarray:
    """(overhead, compute, memory) per op, page faults in memory."""
    terms = np.zeros((len(f["key"]), 3))
    for key, kind in set(zip(f["key"], f["kind"], strict=True)):
        index = np.flatnonzero((f["key"] == key) & (f["kind"] == kind))
        terms[index] = _cost_of(costs, str(key), str(kind)).terms(_select(f, index))
    if page_fault_gbs:
        terms[:, 2] += f["fresh_bytes"] / (page_fault_gbs * PER_MS)
    return terms


def _log_error(predicted: np.ndarray, time_ms: np.ndarray, weight: np.ndarray) -> float:
    return float(np.sum(weight * np.abs(np.log(predicted) - np.log(time_ms))))


def fit(ops: pd.DataFrame, timed: pd.DataFrame, target: Target) -> CostModel:
    """The cost model of ``target`` from :func:`cnnbench.costmodel.networks.time_networks`' tables: ``ops`` (each op
    with its ``time_ms`` in place and its ``network``) and ``timed`` (each network's ``measured_ms``).

    The lane count is chosen first, on fits without a parallel step. The page-fault rate is read off the ops that
    mapped fresh pages: the median of their bytes over what keys fitted on every other op leave of their time (fitted
    with those ops, a key would absorb part of their faults). Then every key is fitted, with the faults."""
    return _fit(op_features(ops), ops, timed, target)[0]


def _fit(
    f: dict[str, np.ndarray],
    ops: pd.DataFrame,
    timed: pd.DataFrame,
    target: Target,
) -> tuple[CostModel, np.ndarray]:
    """:func:`fit` on the ops' features ``f`` (``misaligned`` is set to the chosen lanes' in place); also returns
    each op's fitted time, before the network scale."""
    if ops.empty:
        raise CnnbenchError("no op was timed; calibrate on at least one network")
    time_ms = ops["time_ms"].to_numpy(dtype=float)
    weight = np.sqrt(time_ms / np.median(time_ms))
    none = np.zeros(len(time_ms))
    lanes, best = LANE_CHOICES[0], math.inf
    for choice in LANE_CHOICES:
        trial = {**f, "misaligned": misaligned(f["channels"], choice)}
        error = _log_error(_apply(_fit_costs(trial, time_ms, weight, none, False), trial, None).sum(1), time_ms, weight)
        lanes, best = (choice, error) if error < best else (lanes, best)
    f["misaligned"] = misaligned(f["channels"], lanes)
    page_fault_gbs, extra = None, none
    fresh = f["fresh_bytes"] > 0
    if fresh.any() and not fresh.all():  # the rate, from what keys fitted without those ops leave of their time
        clean = np.flatnonzero(~fresh)
        rest = _apply(
            _fit_costs(_select(f, clean), time_ms[clean], weight[clean], none[clean], True),
            _select(f, np.flatnonzero(fresh)),
            None,
        ).sum(1)
        left = time_ms[fresh] - rest
        if (left > 0).any():
            page_fault_gbs = float(np.median(f["fresh_bytes"][fresh][left > 0] / left[left > 0])) / PER_MS
            extra = f["fresh_bytes"] / (page_fault_gbs * PER_MS)
    costs = _fit_costs(f, time_ms, weight, extra, True)
    per_op = _apply(costs, f, page_fault_gbs).sum(1)
    summed = pd.Series(per_op).groupby(ops["network"].to_numpy()).sum()
    measured = timed.set_index("network")["measured_ms"].reindex(summed.index).to_numpy(dtype=float)
    scale = float(np.exp(np.median(np.log(measured / summed.to_numpy()))))
    counts = ops.groupby("network")[["flops", "mac_bytes"]].sum().reindex(summed.index)
    env = environment(target.torch_device)
    model = CostModel(
        target={**describe(target), "key": target.key},
        costs=costs,
        lanes=lanes,
        page_fault_gbs=page_fault_gbs,
        network_scale=scale,
        flops_ms_per_g=_ratio(measured, counts["flops"].to_numpy(float)) * 1e9,
        mac_ms_per_gb=_ratio(measured, counts["mac_bytes"].to_numpy(float)) * 1e9,
        networks=len(summed),
        ops=len(ops),
        network_error=float(np.median(np.abs(scale * summed.to_numpy() / measured - 1))),
        environment={**env, "measured_at": now(), "code": code_fingerprint(None, CODE_MODULES)},
    )
    return model, per_op


def _ratio(time_ms: np.ndarray, count: np.ndarray) -> float:
    """The median of time per unit over the networks with a count (a proportional model fitted on log time)."""
    keep = count > 0
    return float(np.exp(np.median(np.log(time_ms[keep]) - np.log(count[keep]))))


def calibrate(
    target: Target | None = None,
    network_count: int = networks.NETWORKS,
    seed: int = 0,
    progress: Callable[[Sequence[object], str], Iterable[object]] = lambda items, desc: items,
    timing: Timing = REPORT_TIMING,
    quieting: Quieting | None = None,
) -> tuple[CostModel, pd.DataFrame, pd.DataFrame]:
    """Time ``network_count`` synthetic networks on ``target`` (never a zoo model), whole and op by op, each in a
    process of its own, and fit its cost model. A network timed while another process held the CPUs is timed again
    once the machine is quiet (``quieting``), or left out of the fit. Returns :func:`fit_timed`'s cost model and
    tables."""
    target = check_modelled(target or Target())
    if network_count < 1:
        raise CnnbenchError(f"--networks must be at least 1, got {network_count}")
    drawn = networks.network_suite(network_count, seed, progress)
    return fit_timed(*networks.time_networks(drawn, target, progress, timing, quieting=quieting), target)


def fit_timed(ops: pd.DataFrame, timed: pd.DataFrame, target: Target) -> tuple[CostModel, pd.DataFrame, pd.DataFrame]:
    """:func:`fit` on timed networks' tables, and those tables with what the fit gives: each op's ``key``,
    ``misaligned`` and ``fitted_ms``, each network's ``predicted_ms``."""
    f = op_features(ops)
    model, fitted = _fit(f, ops, timed, target)
    ops = ops.assign(key=f["key"], misaligned=f["misaligned"], fitted_ms=fitted)
    predicted = ops.groupby("network", sort=False)["fitted_ms"].sum() * model.network_scale
    return model, ops, timed.assign(predicted_ms=timed["network"].map(predicted))


# --- predicting ------------------------------------------------------------------------------------------------


def predict(
    model: nn.Module | str,
    cost_model: CostModel,
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
    f = op_features(counted.layers)
    f["misaligned"] = misaligned(f["channels"], cost_model.lanes)
    terms = _apply(cost_model.costs, f, cost_model.page_fault_gbs) * cost_model.network_scale
    layers["key"], layers["misaligned"] = f["key"], f["misaligned"]
    layers["overhead_ms"], layers["compute_ms"], layers["memory_ms"] = terms.T
    layers["time_ms"] = terms.sum(axis=1)
    by_kind = layers.groupby("kind", sort=False)[["overhead_ms", "compute_ms", "memory_ms", "time_ms"]].sum()
    by_kind.insert(0, "ops", layers.groupby("kind", sort=False).size())
    by_kind = by_kind.reindex([k for k in counting.KINDS if k in by_kind.index]).reset_index()
    total = float(by_kind["time_ms"].sum())
    by_kind["time_share"] = by_kind["time_ms"] / total if total else 0.0
    totals = counted.totals
    return Prediction(
        model=label,
        resolution=totals.resolution,
        batch=batch,
        latency_ms=total,
        overhead_ms=float(terms[:, 0].sum()),
        compute_ms=float(terms[:, 1].sum()),
        memory_ms=float(terms[:, 2].sum()),
        flops_only_ms=totals.flops * cost_model.flops_ms_per_g / 1e9,
        mac_only_ms=totals.mac_bytes * cost_model.mac_ms_per_gb / 1e9,
        flops=totals.flops,
        mac_bytes=totals.mac_bytes,
        params=totals.params,
        ops=len(layers),
        layers=layers,
        by_kind=by_kind,
    )


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


# --- storing ---------------------------------------------------------------------------------------------------


def default_path(target: Target, machine: str | None = None) -> Path:
    """Where ``calibrate`` keeps a target's cost model: the cache, under the machine's identity and the target."""
    return cache_root() / "costmodels" / (machine or machine_identity(target.torch_device)) / f"{target.key}.json"


def save(model: CostModel, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, model.to_json())
    return path


def _positive(value: object) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


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
        raise CnnbenchError(
            f"{path} is not a cost model's JSON ({type(err).__name__}); give a file that "
            "`cnnbench calibrate --out` wrote"
        ) from None
    try:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, dict) else None
            raise ValueError(f"format {found!r}, this cnnbench reads format {FORMAT}")
        costs = {str(k): OpCost(**dict(cost)) for k, cost in dict(data["costs"]).items()}
        for key, cost in costs.items():
            if not all(_positive(v) for v in (cost.compute_gops, cost.memory_gbs, cost.misaligned_factor)) or not (
                cost.overhead_ms >= 0 and cost.parallel_ms >= 0
            ):
                raise ValueError(f"key {key} has a rate that is not a positive number")
        if ANY not in costs:
            raise ValueError(f"it has no {ANY!r} cost")
        lanes, page_faults = int(data["lanes"]), data["page_fault_gbs"]
        if lanes < 1:
            raise ValueError(f"lanes {lanes} is not a positive count")
        if page_faults is not None and not _positive(page_faults):
            raise ValueError(f"page_fault_gbs {page_faults!r} is not a positive rate")
        numbers = {name: float(data[name]) for name in ("network_scale", "flops_ms_per_g", "mac_ms_per_gb")}
        if not all(_positive(v) for v in numbers.values()):
            raise ValueError(f"{numbers} are not all positive")
        return CostModel(
            target=dict(data["target"]),
            costs=costs,
            lanes=lanes,
            page_fault_gbs=page_faults,
            networks=int(data["networks"]),
            ops=int(data["ops"]),
            network_error=float(data["network_error"]),
            environment=dict(data.get("environment", {})),
            **numbers,
        )
    except (AttributeError, KeyError, TypeError, ValueError) as err:
        raise CnnbenchError(
            f"{path} is not a cost model cnnbench can read ({err}); recalibrate with `cnnbench calibrate`"
        ) from None
