"""Fitting a target's cost model: ops timed in place inside synthetic networks in, a
:class:`~cnnbench.costmodel.model.CostModel` out (the formula: :mod:`cnnbench.costmodel.model`).

:func:`fit_cost_model` takes these steps, each a function of its own:

1. the lanes (:func:`choose_lanes`): of :data:`LANE_CHOICES`, the count whose fits, without a parallel step, fit
   best;
2. the page-fault rate (:func:`fit_page_fault_rate`), read off the ops that mapped fresh pages: the median of their
   bytes over what keys fitted on every other op leave of their time (fitted with those ops, a key would absorb part
   of their faults);
3. every key's numbers, with the faults (:func:`fit_costs_per_key`, each fit by :func:`fit_op_cost`): least squares
   on the logarithm of time with a soft-L1 loss and a weight of √(time / median time), so that a relative error
   counts, more for the ops that make a network's time. A key with fewer than :data:`MIN_OPS` ops falls back to the
   fit of its counting kind (all its ops pooled), then to that of every op;
4. the network scale: a network's time over the sum of its ops (the container calls and the Python between ops),
   the interval (:func:`interval_ratios`), and the two baselines that say what the formula adds, latency
   proportional to multiply-adds (FLOPs-only) and to MAC bytes (MAC-only): each the median ratio over the
   networks timed whole (:func:`median_ratio`).

:func:`calibrate` times the synthetic networks (:mod:`cnnbench.costmodel.networks`) and fits them.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

from cnnbench import allocator
from cnnbench.costmodel import blocks, networks
from cnnbench.costmodel import features as features_module
from cnnbench.costmodel import model as model_module
from cnnbench.costmodel.features import Features, misaligned, op_features, select
from cnnbench.costmodel.model import ANY, INTERVAL_SHARE, PER_MS, CostModel, OpCost, check_modelled, op_terms
from cnnbench.errors import CnnbenchError
from cnnbench.measure import breakdown, counting, latency, profiling
from cnnbench.measure.disturbance import Quieting
from cnnbench.measure.latency import REPORT_TIMING, Timing
from cnnbench.provenance import environment, now
from cnnbench.store import code_fingerprint
from cnnbench.target import Target, describe

__all__ = [
    "CODE_MODULES",
    "FITTED",
    "LANE_CHOICES",
    "MIN_OPS",
    "MIN_SIDE",
    "THRESHOLDS",
    "Range",
    "MAX_NETWORK_ERROR",
    "calibrate",
    "check_publishable",
    "choose_lanes",
    "fit_cost_model",
    "fit_costs_per_key",
    "fit_op_cost",
    "fit_page_fault_rate",
    "fitted_times",
    "interval_ratios",
    "median_ratio",
]

LANE_CHOICES = (4, 8, 16, 32)  # fp32 values per vector register: SSE/NEON, AVX2, AVX-512, ...
MIN_OPS = 20  # ops a cost key needs to be fitted on its own; fewer fall back to their kind's pooled fit
MAX_NETWORK_ERROR = 0.25  # a fit that misses its own networks by more (8% on a quiet 2-core VM) is not kept
MIN_SIDE = 5  # ops each side of a parallel threshold, or of the lanes, needs before either is fitted
# Where an op may go parallel: 2^10 to 2^21 elements in steps of √2 (the coarse grid is every other one).
THRESHOLDS = tuple(2.0 ** (k / 2) for k in range(20, 43))
# A stored cost model stands while these are unchanged: the formula, the features, the fit (this module), the
# networks, the counts, the timers.
CODE_MODULES = (
    model_module,
    features_module,
    sys.modules[__name__],
    networks,
    blocks,
    counting,
    profiling,
    breakdown,
    latency,
    allocator,
)


@dataclass(frozen=True)
class Range:
    """Where the search for one of an :class:`OpCost`'s numbers starts, and the bounds it keeps to."""

    start: float
    low: float
    high: float


# The numbers of an OpCost that least squares fits, as logarithms so that all stay positive: where each search starts
# and its bounds, far outside any real device. The parallel threshold is chosen from THRESHOLDS instead.
FITTED = {
    "overhead_ms": Range(start=1e-4, low=1e-7, high=1e3),  # starts at half the fastest op, if that is more
    "parallel_ms": Range(start=1e-3, low=1e-7, high=1e3),  # 1 µs
    "compute_gops": Range(start=100.0, low=1e-3, high=1e7),
    "memory_gbs": Range(start=10.0, low=1e-3, high=1e7),
    "misaligned_factor": Range(start=1.0, low=0.25, high=8.0),  # no factor
}


def _logs(numbers: dict[str, float]) -> np.ndarray:
    """The logarithms of :data:`FITTED`'s numbers, in its order: the vector least squares searches."""
    return np.log([numbers[name] for name in FITTED])


def _op_cost(logs: np.ndarray, above: float) -> OpCost:
    """The :class:`OpCost` of the vector ``logs`` (:func:`_logs`) and a parallel threshold (inf: none)."""
    numbers = {name: float(value) for name, value in zip(FITTED, np.exp(logs), strict=True)}
    return OpCost(**numbers, parallel_above=None if above == math.inf else above, ops=0, error=0.0)


def _supported(split: np.ndarray) -> bool:
    """Whether both sides of a split of a key's ops hold at least :data:`MIN_SIDE` ops, and 5% of them: a step or a
    factor fitted on a handful of ops would fit those alone (a sigmoid above 8192 elements, seen once, got 164 ms)."""
    least = max(MIN_SIDE, math.ceil(0.05 * len(split)))
    return least <= int(np.count_nonzero(split)) <= len(split) - least


def fit_op_cost(
    features: Features,
    time_ms: np.ndarray,
    weight: np.ndarray | None = None,
    page_fault_gbs: float | None = None,
    parallel: bool = True,
) -> OpCost:
    """Fit one :class:`OpCost` to ops' times (``features``: their :func:`op_features` with ``misaligned`` set;
    ``page_fault_gbs``: the target's rate, whose faults the formula adds beyond the key). Least squares on log time
    with a soft-L1 loss, over :data:`FITTED`; the parallel threshold is the value of :data:`THRESHOLDS` that fits
    best, or none (``parallel=False`` fits without one). A split the ops do not support is not fitted: the factor
    off the lanes stays 1, and a threshold is a candidate only, unless each side holds :func:`_supported` ops."""
    time_ms = np.asarray(time_ms, dtype=float)
    weight = np.ones(len(time_ms)) if weight is None else np.asarray(weight, dtype=float)
    scale_on = features["misaligned"] if _supported(features["misaligned"]) else np.zeros(len(time_ms), dtype=bool)
    with_scale = {**features, "misaligned": scale_on}
    size = features["size"]

    def fitted_ms(logs: np.ndarray, above: float) -> np.ndarray:
        return _op_cost(logs, above).terms(with_scale, page_fault_gbs).time_ms

    start = {name: bounds.start for name, bounds in FITTED.items()}
    start["overhead_ms"] = max(float(time_ms.min()) / 2, start["overhead_ms"])  # half the fastest op
    low, high = _logs({n: b.low for n, b in FITTED.items()}), _logs({n: b.high for n, b in FITTED.items()})

    def solve(above: float, x0: np.ndarray) -> tuple[float, np.ndarray]:
        result = least_squares(
            lambda logs: weight * (np.log(fitted_ms(logs, above)) - np.log(time_ms)),
            x0,
            bounds=(low, high),
            loss="soft_l1",
            f_scale=0.1,
        )
        return float(result.cost), result.x

    best = (*solve(math.inf, np.clip(_logs(start), low, high)), math.inf)
    if parallel:
        for above in THRESHOLDS[::2]:
            if _supported(size > above):
                best = min(best, (*solve(above, best[1]), above), key=lambda r: r[0])
        if best[2] != math.inf:
            i = THRESHOLDS.index(best[2])
            for above in {THRESHOLDS[max(0, i - 1)], THRESHOLDS[min(len(THRESHOLDS) - 1, i + 1)]}:
                if _supported(size > above):
                    best = min(best, (*solve(above, best[1]), above), key=lambda r: r[0])
    _, logs, above = best
    cost = _op_cost(logs, above)
    return replace(
        cost,
        parallel_ms=cost.parallel_ms if above != math.inf else 0.0,
        misaligned_factor=cost.misaligned_factor if scale_on.any() else 1.0,
        ops=len(time_ms),
        error=float(np.median(np.abs(fitted_ms(logs, above) / time_ms - 1))),
    )


def fit_costs_per_key(
    features: Features,
    time_ms: np.ndarray,
    weight: np.ndarray,
    page_fault_gbs: float | None,
    parallel: bool,
) -> dict[str, OpCost]:
    """A :class:`CostModel`'s costs: every key with at least :data:`MIN_OPS` ops, every counting kind (its ops
    pooled, as ``kind:<kind>``) unless it is a key fitted on its own, and :data:`ANY`; each by :func:`fit_op_cost`."""
    groups: dict[str, np.ndarray] = {}
    for key in np.unique(features["key"]):
        index = np.flatnonzero(features["key"] == key)
        if len(index) >= MIN_OPS:
            groups[str(key)] = index
    for kind in np.unique(features["kind"]):
        if kind not in groups:  # a convolution kind with too few ops still gets a fit, as its own fallback
            groups[f"kind:{kind}"] = np.flatnonzero(features["kind"] == kind)
    groups[ANY] = np.arange(len(time_ms))
    return {
        key: fit_op_cost(select(features, i), time_ms[i], weight[i], page_fault_gbs, parallel)
        for key, i in groups.items()
    }


def _log_error(fitted_ms: np.ndarray, time_ms: np.ndarray, weight: np.ndarray) -> float:
    return float(np.sum(weight * np.abs(np.log(fitted_ms) - np.log(time_ms))))


def choose_lanes(features: Features, time_ms: np.ndarray, weight: np.ndarray) -> int:
    """The lane count of :data:`LANE_CHOICES` whose costs, fitted without a parallel step or page faults, fit the
    ops best (the weighted error on log time)."""
    lanes, best = LANE_CHOICES[0], math.inf
    for choice in LANE_CHOICES:
        trial = {**features, "misaligned": misaligned(features["channels"], choice)}
        costs = fit_costs_per_key(trial, time_ms, weight, None, parallel=False)
        error = _log_error(op_terms(costs, trial, None).time_ms, time_ms, weight)
        lanes, best = (choice, error) if error < best else (lanes, best)
    return lanes


def fit_page_fault_rate(features: Features, time_ms: np.ndarray, weight: np.ndarray) -> float | None:
    """Fresh-page bytes per second, in GB: the median, over the ops that mapped fresh pages, of their bytes over
    what costs fitted on every other op leave of their time. None when no op, or every op, mapped fresh pages, or
    none left any time."""
    fresh = features["fresh_bytes"] > 0
    if not fresh.any() or fresh.all():
        return None
    clean = np.flatnonzero(~fresh)
    costs = fit_costs_per_key(select(features, clean), time_ms[clean], weight[clean], None, parallel=True)
    left = time_ms[fresh] - op_terms(costs, select(features, np.flatnonzero(fresh)), None).time_ms
    if not (left > 0).any():
        return None
    return float(np.median(features["fresh_bytes"][fresh][left > 0] / left[left > 0])) / PER_MS


def median_ratio(time_ms: np.ndarray, count: np.ndarray) -> float:
    """The median of time per unit over the networks with a count, taken on logarithms: a proportional model
    fitted on log time (the network scale per op-summed ms, the baselines per multiply-add and per MAC byte)."""
    keep = count > 0
    return float(np.exp(np.median(np.log(time_ms[keep]) - np.log(count[keep]))))


def interval_ratios(ratios: np.ndarray, share: float = INTERVAL_SHARE) -> tuple[float, float]:
    """The measured-over-predicted ratios of the calibration networks below and above which ``share`` of networks
    fall, half each side, with split conformal prediction's finite-sample ranks: the ⌊(n+1)·share/2⌋-th smallest
    and the ⌈(n+1)·(1-share/2)⌉-th (the smallest and the largest when there are too few networks to do better)."""
    ordered = np.sort(np.asarray(ratios, dtype=float))
    n = len(ordered)
    low = max(1, math.floor((n + 1) * share / 2))
    high = min(n, math.ceil((n + 1) * (1 - share / 2)))
    return float(ordered[low - 1]), float(ordered[high - 1])


def fit_cost_model(ops: pd.DataFrame, timed: pd.DataFrame, target: Target) -> CostModel:
    """The cost model of ``target`` from :func:`cnnbench.costmodel.networks.time_networks`' tables: ``ops`` (each op
    with its ``time_ms`` in place and its ``network``) and ``timed`` (each network's ``measured_ms``), by the steps
    of the module docstring."""
    if ops.empty:
        raise CnnbenchError("no op was timed; calibrate on at least one network")
    features = op_features(ops)
    time_ms = ops["time_ms"].to_numpy(dtype=float)
    weight = np.sqrt(time_ms / np.median(time_ms))
    lanes = choose_lanes(features, time_ms, weight)
    features["misaligned"] = misaligned(features["channels"], lanes)
    page_fault_gbs = fit_page_fault_rate(features, time_ms, weight)
    costs = fit_costs_per_key(features, time_ms, weight, page_fault_gbs, parallel=True)
    per_op = op_terms(costs, features, page_fault_gbs).time_ms
    summed = pd.Series(per_op).groupby(ops["network"].to_numpy()).sum()
    measured = timed.set_index("network")["measured_ms"].reindex(summed.index).to_numpy(dtype=float)
    scale = median_ratio(measured, summed.to_numpy())
    counts = ops.groupby("network")[["flops", "mac_bytes"]].sum().reindex(summed.index)
    env = environment(target.torch_device)
    return CostModel(
        target={**describe(target), "key": target.key},
        costs=costs,
        lanes=lanes,
        page_fault_gbs=page_fault_gbs,
        network_scale=scale,
        flops_ms_per_g=median_ratio(measured, counts["flops"].to_numpy(float)) * 1e9,
        mac_ms_per_gb=median_ratio(measured, counts["mac_bytes"].to_numpy(float)) * 1e9,
        networks=len(summed),
        ops=len(ops),
        network_error=float(np.median(np.abs(scale * summed.to_numpy() / measured - 1))),
        interval=interval_ratios(measured / (scale * summed.to_numpy())),
        environment={**env, "measured_at": now(), "code": code_fingerprint(None, CODE_MODULES)},
    )


def check_publishable(model: CostModel) -> CostModel:
    """``model``, unless it misses its own calibration networks by more than :data:`MAX_NETWORK_ERROR` (median):
    then the machine changed speed under the calibration, and one line says to calibrate again."""
    if not model.network_error <= MAX_NETWORK_ERROR:
        raise CnnbenchError(
            f"the fit misses its own calibration networks by {model.network_error * 100:.0f}% (median; "
            f"{MAX_NETWORK_ERROR * 100:.0f}% at most is kept): the machine's speed moved under the calibration; "
            "calibrate again on a quiet machine"
        )
    return model


def fitted_times(model: CostModel, ops: pd.DataFrame, timed: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The timed networks' tables with what ``model`` gives them: each op's ``key``, ``misaligned`` and
    ``fitted_ms`` (before the network scale), each network's ``predicted_ms``."""
    features, terms = model.terms_of(ops)
    ops = ops.assign(key=features["key"], misaligned=features["misaligned"], fitted_ms=terms.time_ms)
    predicted = ops.groupby("network", sort=False)["fitted_ms"].sum() * model.network_scale
    return ops, timed.assign(predicted_ms=timed["network"].map(predicted))


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
    once the machine is quiet (``quieting``), or left out of the fit. Returns the cost model and the timed tables
    with what it gives them (:func:`fitted_times`)."""
    target = check_modelled(target or Target())
    if target.runtime:
        raise CnnbenchError(
            f"{target.backend} is calibrated by cnnbench.costmodel.runtime.calibrate_runtime (its profile, not ops "
            "timed in place); `cnnbench calibrate --backend` picks it"
        )
    drawn = networks.network_suite(network_count, seed, progress)
    ops, timed = networks.time_networks(drawn, target, progress, timing, quieting=quieting)
    model = fit_cost_model(ops, timed, target)
    return (model, *fitted_times(model, ops, timed))
