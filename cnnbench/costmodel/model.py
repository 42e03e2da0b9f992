"""A per-target cost model of latency: the formula, its fitted numbers, and their JSON.

For an op of cost key *k* (:func:`cnnbench.costmodel.features.cost_key`)::

    time = overhead_k + parallel_k · [size > above_k]
           + (arithmetic / compute_k + mac_bytes / memory_k) × (misaligned_k if off the lanes)
           + fresh_bytes / page_faults

- ``arithmetic``: multiply-adds plus element-wise operations; ``mac_bytes``: ShuffleNetV2's memory access cost in
  bytes (weights included), counted with fp32 bytes (under fp16/bf16 the fitted rates absorb the factor);
- ``parallel_k`` above ``above_k`` elements: the cost of going parallel. An op whose input (for concat, output)
  holds more than ``above_k`` elements runs on every thread, and waking the others costs time of its own: a 1×1
  convolution of 36 channels on a 28×28 map took 16 µs on one thread and 79 µs on two of a 2-core VM, where
  20×20 took 11 µs either way;
- ``misaligned_k``: an op whose channels (of its first input or its output) are not all multiples of the target's
  vector lanes runs a slower code path;
- ``fresh_bytes``: the output of an op that is not in place, when it passes the allocator's mmap threshold
  (:data:`cnnbench.allocator.MMAP_THRESHOLD_BYTES`): such a block is mapped afresh at every forward and
  each of its pages faults on first write; ``page_faults`` (GB/s) is one rate per target.

A prediction carries an interval: the calibration networks' own errors (each network timed whole against its
prediction) give the ratios below and above which :data:`INTERVAL_SHARE` of networks fall outside, half each side
(:attr:`CostModel.interval`), and a prediction's interval is the prediction times those ratios.

Each key's numbers are one :class:`OpCost`; a key fitted on too few ops falls back to its counting kind's pooled fit
(``kind:norm``), then to that of every op (:data:`ANY`) (:func:`costed_by`). A network's time is ``network_scale`` ×
the sum of its ops. :class:`Terms` names the formula's terms; the attribution of a prediction follows them:
overhead (both overhead terms), compute, and memory (traffic and fresh pages).

How the numbers are fitted: :mod:`cnnbench.costmodel.fit`; how a model's latency is predicted with them:
:mod:`cnnbench.costmodel.predict`.

Fitted for the eager backend. ONNX Runtime fuses Conv+BatchNorm(+activation) into one kernel and runs nodes of its
own: its cost model (:class:`RuntimeCostModel`) learns those rules from its profile (:mod:`cnnbench.costmodel.runtime`).
OpenVINO and the phone runtimes are not modelled (:func:`check_modelled`).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd

from cnnbench.costmodel.features import Features, misaligned, op_features, select
from cnnbench.errors import CnnbenchError
from cnnbench.provenance import machine_identity
from cnnbench.store import atomic_write_text, cache_root
from cnnbench.target import Target, resolve_target

__all__ = [
    "ANY",
    "FORMAT",
    "INTERVAL_PERCENT",
    "INTERVAL_SHARE",
    "PER_MS",
    "RUNTIMES_MODELLED",
    "RUNTIME_FORMAT",
    "CostModel",
    "OpCost",
    "RuntimeCostModel",
    "Terms",
    "check_modelled",
    "costed_by",
    "default_path",
    "load",
    "load_for",
    "op_terms",
    "read_runtime_model",
    "save",
]

RUNTIME_FORMAT = "runtime-1"  # the JSON layout of a deployment runtime's cost model (:class:`RuntimeCostModel`)
RUNTIMES_MODELLED = (
    "onnxruntime",
    "openvino",
)  # the deployment runtimes with a cost model (cnnbench.costmodel.runtime), at fp32
FORMAT = 4  # the JSON layout's version (3: per-key costs fitted in place, the parallel step, page faults; 4: interval)
PER_MS = 1e6  # a rate in G/s (or GB/s) is this many units per millisecond
ANY = "any"  # the last fallback: every op pooled
INTERVAL_SHARE = 0.2  # a prediction's interval is meant to miss this share of networks, half above and half below
INTERVAL_PERCENT = round((1 - INTERVAL_SHARE) * 100)  # its coverage as tables name it: "80% interval"


@dataclass(frozen=True)
class Terms:
    """The formula's terms of a set of ops, in ms: one array per term, one value per op."""

    overhead_ms: np.ndarray  # the per-op overhead, and the parallel step above its size
    compute_ms: np.ndarray  # arithmetic at the compute rate (× the factor off the lanes)
    memory_ms: np.ndarray  # MAC bytes at the memory rate (× the factor off the lanes)
    page_fault_ms: np.ndarray  # fresh bytes at the page-fault rate

    @property
    def time_ms(self) -> np.ndarray:
        """Each op's time: the sum of its terms."""
        return self.overhead_ms + self.compute_ms + self.memory_ms + self.page_fault_ms


@dataclass(frozen=True, kw_only=True)
class OpCost:
    """The fitted numbers of one cost key (the formula: the module docstring), and how well they fit its ops."""

    overhead_ms: float  # per op: dispatch, Python, allocation
    parallel_ms: float  # added when the op is larger than ``parallel_above`` elements: waking the other threads
    parallel_above: float | None  # elements (None: the key's ops never paid it)
    compute_gops: float  # arithmetic (multiply-adds + element-wise operations) per second, in G
    memory_gbs: float  # MAC bytes per second, in GB
    misaligned_factor: float  # the rate terms' factor for an op whose channels are off the lanes
    ops: int  # ops it was fitted on
    error: float  # median |fitted / measured - 1| over those ops

    def terms(self, features: Features, page_fault_gbs: float | None = None) -> Terms:
        """The terms of ops of this key, from their :func:`cnnbench.costmodel.features.op_features` with
        ``misaligned`` set; ``page_fault_gbs``: the target's rate for fresh pages (None: none paid)."""
        above = math.inf if self.parallel_above is None else self.parallel_above
        factor = np.where(features["misaligned"], self.misaligned_factor, 1.0)
        if page_fault_gbs:
            page_faults = features["fresh_bytes"] / (page_fault_gbs * PER_MS)
        else:
            page_faults = np.zeros(len(features["size"]))
        return Terms(
            overhead_ms=self.overhead_ms + self.parallel_ms * (features["size"] > above),
            compute_ms=features["arithmetic"] / (self.compute_gops * PER_MS) * factor,
            memory_ms=features["mac_bytes"] / (self.memory_gbs * PER_MS) * factor,
            page_fault_ms=page_faults,
        )


def costed_by(costs: dict[str, OpCost], key: str, kind: str) -> str:
    """Which fit of ``costs`` costs an op of ``key`` and counting ``kind``: the key's own, else its kind's pooled
    fit (``kind:<kind>``), else every op's (:data:`ANY`)."""
    for fitted in (key, f"kind:{kind}"):
        if fitted in costs:
            return fitted
    return ANY


def op_terms(costs: dict[str, OpCost], features: Features, page_fault_gbs: float | None) -> Terms:
    """The terms of every op of ``features`` (``misaligned`` set), each costed by its fit (:func:`costed_by`)."""
    parts = {term.name: np.zeros(len(features["key"])) for term in fields(Terms)}
    for key, kind in set(zip(features["key"], features["kind"], strict=True)):
        index = np.flatnonzero((features["key"] == key) & (features["kind"] == kind))
        terms = costs[costed_by(costs, str(key), str(kind))].terms(select(features, index), page_fault_gbs)
        for name, values in parts.items():
            values[index] = getattr(terms, name)
    return Terms(**parts)


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
    interval: tuple[float, float]  # measured / predicted on those networks: the ratios a prediction's interval spans
    environment: dict[str, str] = field(default_factory=dict)  # machine, torch, commit, cpu, measured_at, code

    @property
    def key(self) -> str:
        return str(self.target.get("key", ""))

    def cost_of(self, key: str, kind: str) -> OpCost:
        """The cost of a key: its own, else its counting kind's, else every op's (:func:`costed_by`)."""
        return self.costs[costed_by(self.costs, key, kind)]

    def terms_of(self, layers: pd.DataFrame) -> tuple[Features, Terms]:
        """The features of a counting pass's ops (``misaligned`` at this model's lanes) and their terms, before the
        network scale."""
        features = op_features(layers)
        features["misaligned"] = misaligned(features["channels"], self.lanes)
        return features, op_terms(self.costs, features, self.page_fault_gbs)

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, **asdict(self)}, indent=2) + "\n"


@dataclass(frozen=True)
class RuntimeCostModel:
    """A deployment runtime's fitted cost model (:mod:`cnnbench.costmodel.runtime`: the fusion rules read off its
    profile, the costs per node and per kind), with where and when it was measured."""

    target: dict[str, object]  # cnnbench.target.describe() and the key
    kept: dict[str, float]  # per counting kind, and per "kind<-kind before": the share of ops that keep a node
    made_per_op: dict[str, float]  # per counting kind: the runtime's own nodes (reorders, fused patterns) per op
    node_ms: float  # per node the runtime runs
    compute_gops: dict[str, float]  # per counting kind: arithmetic per second, in G (inf: no cost seen)
    memory_gbs: dict[str, float]  # per counting kind: MAC bytes per second, in GB (inf: no cost seen)
    base_ms: float  # per call
    flops_ms_per_g: float  # FLOPs-only baseline: ms per 1e9 multiply-adds
    mac_ms_per_gb: float  # MAC-only baseline: ms per 1e9 MAC bytes
    networks: int
    network_error: float  # median |predicted / measured - 1| over the networks, each left out of its own fit
    node_error: float  # median |predicted / profiled - 1| of the networks' node counts
    kept_examples: int  # ops whose module name the fusion rules were read from
    interval: tuple[float, float]  # measured / predicted, left-one-out: the ratios a prediction's interval spans
    environment: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return str(self.target.get("key", ""))

    def to_json(self) -> str:
        def finite(rates: dict[str, float]) -> dict[str, float | None]:
            return {kind: (None if math.isinf(rate) else rate) for kind, rate in rates.items()}

        data = {**asdict(self), "compute_gops": finite(self.compute_gops), "memory_gbs": finite(self.memory_gbs)}
        return json.dumps({"format": RUNTIME_FORMAT, **data}, indent=2) + "\n"


def read_runtime_model(data: dict[str, object]) -> RuntimeCostModel:
    """A runtime's cost model from its JSON's data (``format`` ``runtime-1``); ValueError when it is not one."""

    def rates(name: str) -> dict[str, float]:
        values = {str(k): math.inf if v is None else float(v) for k, v in dict(data[name]).items()}  # type: ignore[arg-type]
        if not all(v > 0 for v in values.values()):
            raise ValueError(f"{name} holds a rate that is not positive")
        return values

    low, high = (float(r) for r in data["interval"])  # type: ignore[union-attr]
    return RuntimeCostModel(
        target=dict(data["target"]),  # type: ignore[arg-type]
        kept={str(k): float(v) for k, v in dict(data["kept"]).items()},  # type: ignore[arg-type]
        made_per_op={str(k): float(v) for k, v in dict(data["made_per_op"]).items()},  # type: ignore[arg-type]
        node_ms=float(data["node_ms"]),  # type: ignore[arg-type]
        compute_gops=rates("compute_gops"),
        memory_gbs=rates("memory_gbs"),
        base_ms=float(data["base_ms"]),  # type: ignore[arg-type]
        flops_ms_per_g=float(data["flops_ms_per_g"]),  # type: ignore[arg-type]
        mac_ms_per_gb=float(data["mac_ms_per_gb"]),  # type: ignore[arg-type]
        networks=int(data["networks"]),  # type: ignore[arg-type]
        network_error=float(data["network_error"]),  # type: ignore[arg-type]
        node_error=float(data["node_error"]),  # type: ignore[arg-type]
        kept_examples=int(data["kept_examples"]),  # type: ignore[arg-type]
        interval=(low, high),
        environment=dict(data.get("environment", {})),  # type: ignore[arg-type]
    )


def check_modelled(target: Target) -> Target:
    """The target resolved, if a cost model covers it (eager, or a runtime of :data:`RUNTIMES_MODELLED` at fp32);
    else one line that says which do."""
    target, _ = resolve_target(target)
    if target.backend != "eager" and (target.backend not in RUNTIMES_MODELLED or target.dtype != "fp32"):
        covered = ", ".join(["eager", *RUNTIMES_MODELLED[:-1]]) + f" and {RUNTIMES_MODELLED[-1]}"
        raise CnnbenchError(
            f"the cost model covers {covered} at fp32, not {target.backend} {target.dtype}; use one of them at fp32"
        )
    if target.fuse_bn:
        raise CnnbenchError("the cost model times BatchNorm as its own op; drop --fuse-bn")
    return target


# --- storing ---------------------------------------------------------------------------------------------------


def default_path(target: Target, machine: str | None = None) -> Path:
    """Where ``calibrate`` keeps a target's cost model: the cache, under the machine's identity and the target."""
    return cache_root() / "costmodels" / (machine or machine_identity(target.torch_device)) / f"{target.key}.json"


def save(model: CostModel | RuntimeCostModel, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, model.to_json())
    return path


def load_for(
    target: Target, path: Path | str | None = None, option: str = "--cost-model"
) -> CostModel | RuntimeCostModel:
    """The cost model to predict ``target`` with: the JSON at ``path`` as it is (another device's), else this
    machine's for ``target`` from ``cnnbench calibrate``, refused in one line when there is none or it is another
    target's. ``option``: the command-line option that gives a file, named in that line."""
    if path is not None:
        return load(path)
    target = check_modelled(target)
    path = default_path(target)
    if not path.exists():
        raise CnnbenchError(
            f"no cost model for {target.key} on this machine; run `cnnbench calibrate` with the same "
            f"target options first, or give one with {option} FILE"
        )
    fitted = load(path)
    if fitted.key != target.key:
        raise CnnbenchError(f"{path} is the cost model of {fitted.key}, not {target.key}; recalibrate")
    return fitted


def _positive(value: object) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def load(path: Path | str) -> CostModel | RuntimeCostModel:
    """A cost model from its JSON (this machine's or another device's, eager or a runtime's); one line for a file
    that is not one."""
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
        if isinstance(data, dict) and data.get("format") == RUNTIME_FORMAT:
            return read_runtime_model(data)
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
        low, high = (float(ratio) for ratio in data["interval"])
        if not (_positive(low) and _positive(high) and low <= high):
            raise ValueError(f"interval {data['interval']!r} is not two positive ratios, low first")
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
            interval=(low, high),
            environment=dict(data.get("environment", {})),
            **numbers,
        )
    except (AttributeError, KeyError, TypeError, ValueError) as err:
        raise CnnbenchError(
            f"{path} is not a cost model cnnbench can read ({err}); recalibrate with `cnnbench calibrate`"
        ) from None
