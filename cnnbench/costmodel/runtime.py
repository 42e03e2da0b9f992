"""A cost model for a deployment runtime (``--backend onnxruntime`` or ``openvino``): what the runtime makes of a
network's ops is learned from its own per-node profile, then its latency is predicted from the counts.

A runtime rewrites the graph before it runs it. ONNX Runtime folds BatchNorm into the convolution before it, runs an
activation after a convolution inside it (``FusedConv``), turns GELU's exported Erf pattern into one ``Gelu`` node,
and puts layout nodes (``ReorderInput``/``ReorderOutput``) around its blocked-layout convolutions. OpenVINO's CPU
plugin fuses likewise, turns a channel shuffle's reshape-transpose-reshape into one ``ShuffleChannels``, and adds
``Reorder`` nodes where the layout changes. The eager formula, per op, would charge every folded op its overhead.
So, per calibration network (the same synthetic networks as :mod:`cnnbench.costmodel.networks`):

1. the network is exported to ONNX and run on the runtime, loaded as a latency row loads it: timed whole, as a
   latency row is, then once more with the runtime's profile on (ONNX Runtime's profiler, OpenVINO's performance
   counters), which lists every node it ran;
2. **the fusion rules**, read off the profile: the TorchScript exporter names each ONNX node after the module that
   made it (``/layer1/layer1.0/conv1/Conv``), and both runtimes keep that name on the nodes they keep. An op whose
   module has no node left was folded into a neighbour (BatchNorm after a convolution, an activation run inside a
   ``FusedConv``); nodes with no module name are the runtime's own (layout reorders, fused patterns). The rules are
   the share of ops of each counting kind that keep a node, given the kind of the op before them
   (``kept["norm<-conv"]``, else ``kept["norm"]``), and the runtime's own nodes per op of each kind
   (``made_per_op``, non-negative least squares over the networks). Nothing is listed by hand;
3. **the costs**: a network's latency = ``node_ms`` × its predicted node count (the kept ops and the runtime's own
   nodes) + per kind
   (arithmetic / compute rate + MAC bytes / memory rate) + ``base_ms`` (the call), fitted by non-negative least
   squares on relative error over the networks timed whole.

The interval comes from each network's error when the costs are fitted on the others (leave-one-out), through the
same ranks as the eager model's (:func:`cnnbench.costmodel.fit.interval_ratios`).
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import nnls

from cnnbench.costmodel import blocks, networks
from cnnbench.costmodel import features as features_module
from cnnbench.costmodel import model as model_module
from cnnbench.costmodel.features import op_features, parse_shapes
from cnnbench.costmodel.fit import interval_ratios, median_ratio
from cnnbench.costmodel.model import RUNTIMES_MODELLED, RuntimeCostModel, check_modelled
from cnnbench.errors import CnnbenchError
from cnnbench.measure import counting, latency, profiling
from cnnbench.measure.counting import KINDS
from cnnbench.measure.disturbance import Disturbance, Quieting, watch
from cnnbench.measure.isolated import run_isolated
from cnnbench.measure.latency import REPORT_TIMING, Timing, time_callable
from cnnbench.provenance import environment, now
from cnnbench.store import code_fingerprint
from cnnbench.target import Target, describe

__all__ = [
    "CODE_MODULES",
    "PROFILED_RUNS",
    "RuntimeNetworkTimer",
    "calibrate_runtime",
    "check_runtime",
    "cost_kinds",
    "fit_runtime_model",
    "kind_table",
    "kept_ops",
    "learn_fusion",
    "node_module",
    "openvino_nodes",
    "predicted_nodes",
    "profile_nodes",
    "runtime_terms",
]

PROFILED_RUNS = 5  # runs with the profiler on; a network's node count is their median
OPENVINO_SPLIT_BIAS = "/WithoutBiases"  # the suffix OpenVINO gives a convolution whose bias it split off
# A stored runtime cost model stands while these are unchanged: the fit and timing (this module), the model's
# layout, the features, the networks and their blocks, the counts, the timers.
CODE_MODULES = (
    sys.modules[__name__],
    model_module,
    features_module,
    networks,
    blocks,
    counting,
    profiling,
    latency,
)


# --- the fusion rules: which ops keep a node, and the runtime's own nodes ----------------------------------------


def node_module(name: str) -> str | None:
    """The module an ONNX Runtime node was exported from, as the counting pass names it, or None for a node the
    runtime made (no module path: ``ReorderOutput_token_3``, ``Gelu_token_0``).

    The TorchScript exporter writes one scope per module level, each named relative to the last module that is not
    a container: ``/1/1.0/1.0.3/Conv`` is ``1.0.3``, ``/2/body/body.0/Conv`` is ``2.body.0``, ResNet's
    ``/layer1/layer1.0/conv1/Conv`` is ``layer1.0.conv1``; a root-level ``/Flatten`` is ``""``."""
    if not name.startswith("/"):
        return None
    scopes = name.split("/")[1:-1]
    path, last = "", ""
    for scope in scopes:
        if last and scope.startswith(last + "."):  # the same container, one level down: it extends the last name
            path = path[: len(path) - len(last)] + scope
        else:
            path = f"{path}.{scope}" if path else scope
        last = scope
    return path


def kept_ops(layers: pd.DataFrame, nodes: pd.DataFrame) -> np.ndarray:
    """Which of a counting pass's ops kept a node on the runtime: the ops of a module take its named nodes in
    order (a module with two ops and one node left: the first kept it, the second was folded)."""
    named = Counter(module for module in map(node_module, nodes["node"]) if module is not None)
    seen: Counter[str] = Counter()
    kept = []
    for module in layers["module"].astype(str):
        seen[module] += 1
        kept.append(seen[module] <= named[module])
    return np.array(kept, dtype=bool)


def _pair(kinds: Sequence[str]) -> list[str]:
    """Each op's kind with the kind before it: ``norm<-conv`` (the first op: ``conv<-input``)."""
    return [f"{kind}<-{before}" for kind, before in zip(kinds, ["input", *kinds[:-1]], strict=True)]


MIN_PAIR_OPS = 10  # ops a "kind<-kind" rule needs; fewer fall back to the kind's own share


def learn_fusion(
    layers: Sequence[pd.DataFrame], nodes: Sequence[pd.DataFrame]
) -> tuple[dict[str, float], dict[str, float], int]:
    """The fusion rules from the networks' counting passes and profiles: the share of ops that keep a node per kind
    and per ``kind<-kind before`` (with at least :data:`MIN_PAIR_OPS` ops), the runtime's own nodes per op of
    each kind, and the ops read. A network the dynamo exporter made (its nodes carry no module names) is not read."""
    kinds, pairs, kept = [], [], []
    made, counts = [], []
    for table, profiled in zip(layers, nodes, strict=True):
        if "exporter" in profiled and (profiled["exporter"] == "dynamo").any():
            continue  # the dynamo exporter (the fallback) does not name nodes after modules
        kinds += list(table["kind"].astype(str))
        pairs += _pair(list(table["kind"].astype(str)))
        kept += list(kept_ops(table, profiled))
        made.append(sum(node_module(name) is None for name in profiled["node"]))
        counts.append(table["kind"].value_counts().reindex(list(KINDS), fill_value=0).to_numpy(dtype=float))
    frame = pd.DataFrame({"kind": kinds, "pair": pairs, "kept": kept})
    shares = frame.groupby("kind")["kept"].mean().to_dict()
    by_pair = frame.groupby("pair")["kept"].agg(["mean", "size"])
    shares |= by_pair.loc[by_pair["size"] >= MIN_PAIR_OPS, "mean"].to_dict()
    ops = np.array(counts)
    per_op = nnls(ops, np.array(made, dtype=float), maxiter=5000)[0]
    made_per_op = {kind: float(v) for kind, v, n in zip(KINDS, per_op, ops.sum(axis=0), strict=True) if n > 0}
    return {str(k): float(v) for k, v in shares.items()}, made_per_op, len(frame)


def predicted_nodes(kept: dict[str, float], made_per_op: dict[str, float], layers: pd.DataFrame) -> np.ndarray:
    """Each op's expected nodes on the runtime: its share of keeping one (by ``kind<-kind before``, else its kind,
    else 1) plus the runtime's own nodes its kind brings."""
    kinds = list(layers["kind"].astype(str))
    return np.array(
        [
            kept.get(pair, kept.get(kind, 1.0)) + made_per_op.get(kind, 0.0)
            for kind, pair in zip(kinds, _pair(kinds), strict=True)
        ]
    )


# --- the features: per cost kind, ops, arithmetic and MAC bytes ----------------------------------------------


def cost_kinds(layers: pd.DataFrame) -> list[str]:
    """The kind each op of a counting pass is costed as: its counting kind, except a 1×1 group convolution, costed as
    a pointwise one (``conv_1x1``): both runtimes run it, group by group, on their pointwise kernel (OpenVINO's
    counters name it, ``brgconv_..._1x1``; ONNX Runtime's MLAS makes each group a matrix product)."""
    kinds = []
    for kind, shapes in zip(layers["kind"].astype(str), layers["input_shapes"], strict=True):
        weight = parse_shapes(shapes)[1:2]
        pointwise = kind == "conv_group" and bool(weight) and len(weight[0]) == 4 and weight[0][2:] == (1, 1)
        kinds.append("conv_1x1" if pointwise else kind)
    return kinds


def kind_table(layers: pd.DataFrame) -> pd.DataFrame:
    """One row per kind the ops of a counting pass are costed as (:func:`cost_kinds`): ``ops``, ``arithmetic``
    (multiply-adds plus element-wise operations) and ``mac_bytes``, for every kind of
    :data:`cnnbench.measure.counting.KINDS`."""
    features = op_features(layers)
    frame = pd.DataFrame(
        {"kind": cost_kinds(layers), "ops": 1, "arithmetic": features["arithmetic"], "mac_bytes": features["mac_bytes"]}
    )
    return frame.groupby("kind").sum().reindex(list(KINDS), fill_value=0)


@dataclass(frozen=True)
class RuntimeTerms:
    """A network's predicted time on the runtime by term, in ms, its predicted nodes, and the same per op
    (``nodes``, ``overhead_ms``, ``compute_ms``, ``memory_ms``, ``time_ms``, without the call's ``base_ms``)."""

    overhead_ms: float  # the nodes' overhead and the call's
    compute_ms: float
    memory_ms: float
    nodes: float
    per_op: pd.DataFrame

    @property
    def time_ms(self) -> float:
        return self.overhead_ms + self.compute_ms + self.memory_ms


def runtime_terms(model: RuntimeCostModel, layers: pd.DataFrame) -> RuntimeTerms:
    """The terms of a counting pass's ops under ``model``."""
    features = op_features(layers)
    kinds = pd.Series(cost_kinds(layers))
    nodes = predicted_nodes(model.kept, model.made_per_op, layers)
    compute = features["arithmetic"] / (kinds.map(model.compute_gops).fillna(math.inf).to_numpy(dtype=float) * 1e6)
    memory = features["mac_bytes"] / (kinds.map(model.memory_gbs).fillna(math.inf).to_numpy(dtype=float) * 1e6)
    per_op = pd.DataFrame(
        {"nodes": nodes, "overhead_ms": nodes * model.node_ms, "compute_ms": compute, "memory_ms": memory}
    )
    per_op["time_ms"] = per_op[["overhead_ms", "compute_ms", "memory_ms"]].sum(axis=1)
    return RuntimeTerms(
        overhead_ms=float(per_op["overhead_ms"].sum()) + model.base_ms,
        compute_ms=float(per_op["compute_ms"].sum()),
        memory_ms=float(per_op["memory_ms"].sum()),
        nodes=float(nodes.sum()),
        per_op=per_op,
    )


# --- the costs ---------------------------------------------------------------------------------------------------


def _design_row(table: pd.DataFrame, nodes: float, used: Sequence[str]) -> list[float]:
    """A network's row: its predicted nodes, each kind's arithmetic and MAC bytes (in G), then 1 (the call)."""
    arithmetic = [table.loc[k, "arithmetic"] / 1e9 for k in used]
    return [nodes, *arithmetic, *(table.loc[k, "mac_bytes"] / 1e9 for k in used), 1.0]


def _solve(design: np.ndarray, measured_ms: np.ndarray) -> np.ndarray:
    """Non-negative coefficients of ``design`` fitting ``measured_ms`` in relative error (rows over the time)."""
    weights = 1.0 / measured_ms
    return nnls(design * weights[:, None], measured_ms * weights, maxiter=5000)[0]


def fit_runtime_model(
    layers: Sequence[pd.DataFrame], nodes: Sequence[pd.DataFrame], measured_ms: np.ndarray, target: Target
) -> RuntimeCostModel:
    """The runtime's cost model from its calibration networks: each one's counting pass, profiled nodes
    (:func:`profile_nodes`) and latency (the module docstring's steps 2 and 3)."""
    if len(layers) < 2:
        raise CnnbenchError("a runtime's cost model needs at least 2 networks timed; calibrate on more")
    measured_ms = np.asarray(measured_ms, dtype=float)
    kept, made_per_op, examples = learn_fusion(layers, nodes)
    counted = [predicted_nodes(kept, made_per_op, table).sum() for table in layers]
    profiled = np.array([len(table) for table in nodes], dtype=float)
    kinds = [kind_table(table) for table in layers]
    used = [k for k in KINDS if any(table.loc[k, "ops"] > 0 for table in kinds)]
    design = np.array([_design_row(t, n, used) for t, n in zip(kinds, counted, strict=True)])
    coefficients = _solve(design, measured_ms)
    left_out = np.empty(len(layers))
    for i in range(len(layers)):
        others = np.arange(len(layers)) != i
        left_out[i] = max(design[i] @ _solve(design[others], measured_ms[others]), 1e-9)

    def rates(offset: int) -> dict[str, float]:  # ms per G → G per s; a zero cost is an infinite rate
        costs = coefficients[offset : offset + len(used)]
        return {k: (1e3 / c if c > 0 else math.inf) for k, c in zip(used, costs, strict=True)}

    flops = np.array([float(table["flops"].sum()) for table in layers])  # multiply-adds
    mac = np.array([float(table["mac_bytes"].sum()) for table in layers])
    return RuntimeCostModel(
        target={**describe(target), "key": target.key},
        kept=kept,
        made_per_op=made_per_op,
        node_ms=float(coefficients[0]),
        compute_gops=rates(1),
        memory_gbs=rates(1 + len(used)),
        base_ms=float(coefficients[-1]),
        flops_ms_per_g=median_ratio(measured_ms, flops) * 1e9,
        mac_ms_per_gb=median_ratio(measured_ms, mac) * 1e9,
        networks=len(layers),
        network_error=float(np.median(np.abs(left_out / measured_ms - 1))),
        node_error=float(np.median(np.abs(np.array(counted) / np.maximum(profiled, 1) - 1))),
        kept_examples=examples,
        interval=interval_ratios(measured_ms / left_out),
        environment={
            **environment(target.torch_device),
            "measured_at": now(),
            "code": code_fingerprint(None, CODE_MODULES),
        },
    )


# --- timing on the runtime ---------------------------------------------------------------------------------------


def profile_nodes(profile_json: Path) -> pd.DataFrame:
    """The nodes of an ONNX Runtime profile (``enable_profiling``'s JSON): per node name, in the order they ran,
    its op (``op_name``) and its median time over the profiled runs, in µs."""
    events = json.loads(profile_json.read_text(encoding="utf-8"))
    nodes = [e for e in events if e.get("cat") == "Node" and str(e.get("name", "")).endswith("_kernel_time")]
    frame = pd.DataFrame(
        {
            "node": [str(e["name"])[: -len("_kernel_time")] for e in nodes],
            "op": [str(e.get("args", {}).get("op_name", "")) for e in nodes],
            "us": [float(e.get("dur", 0)) for e in nodes],
        }
    )
    return frame.groupby(["node", "op"], sort=False)["us"].median().reset_index()


def time_on_runtime(
    network: networks.Network, target: Target, timing: Timing = REPORT_TIMING
) -> tuple[float, pd.DataFrame, Disturbance]:
    """One synthetic network exported to ONNX and run on ``target``'s runtime, loaded as a latency row loads it
    (:func:`cnnbench.runtimes.session.load_session`): its median latency (timed as a latency row is), the nodes the
    runtime's profile saw (:func:`profile_nodes`, :func:`openvino_nodes`), and what the machine gave the timing;
    run it in a process of its own."""
    from cnnbench.runtimes.export import export_onnx
    from cnnbench.runtimes.session import load_session

    net, resolution = network.build(), network.resolution
    x = np.random.default_rng(network.draw).standard_normal((1, 3, resolution, resolution)).astype(np.float32)
    with tempfile.TemporaryDirectory(prefix="cnnbench-runtime-") as scratch:
        path = Path(scratch) / "network.onnx"
        with _silenced():  # the TorchScript exporter prints its graph from C++ when it falls back to dynamo
            _, exporter = export_onnx(net, path, 1, resolution)
        session = load_session(path, target)
        feed = session.feed(x)
        with watch(target.threads) as seen:
            samples, _ = time_callable(lambda: session.call(feed), target.torch_device, timing)
        profiled = load_session(path, target, profile=Path(scratch) / "profile")
        if target.backend == "onnxruntime":
            for _ in range(PROFILED_RUNS):
                profiled.call(feed)
            nodes = profile_nodes(Path(profiled.raw.end_profiling()))  # type: ignore[attr-defined]
        else:
            nodes = openvino_nodes(profiled.raw, lambda: profiled.call(feed), PROFILED_RUNS)
    return float(np.median(samples)), nodes.assign(exporter=exporter), seen[0]


def openvino_nodes(request: object, infer: Callable[[], object], runs: int) -> pd.DataFrame:
    """The nodes OpenVINO's CPU plugin executed (its performance counters, ``PERF_COUNT``), each inference of
    ``runs`` read after it: per node name, in the order they ran, its type and its median time, in µs. A node the
    plugin fused into another or left out is reported ``NOT_RUN``/``OPTIMIZED_OUT`` and is not listed. OpenVINO names
    a convolution whose bias it split off ``.../Conv/WithoutBiases``; the suffix is dropped, so that the name is the
    exporter's, as :func:`node_module` reads it."""
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(runs):
        infer()
        for counter in request.get_profiling_info():  # type: ignore[attr-defined]
            if counter.status.name != "EXECUTED":
                continue
            name = str(counter.node_name).removesuffix(OPENVINO_SPLIT_BIAS)
            times.setdefault((name, str(counter.node_type)), []).append(counter.real_time.total_seconds() * 1e6)
    return pd.DataFrame(
        [{"node": name, "op": op, "us": float(np.median(us))} for (name, op), us in times.items()],
        columns=["node", "op", "us"],
    )


@contextmanager
def _silenced() -> Iterator[None]:
    """The process's own stdout and stderr (file descriptors 1 and 2, which C++ writes to) sent to /dev/null."""
    saved = [os.dup(1), os.dup(2)]
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 1)
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            for fd, copy in zip((1, 2), saved, strict=True):
                os.dup2(copy, fd)
                os.close(copy)


def check_runtime(target: Target) -> Target:
    """The target resolved, if it is a runtime with a cost model of its own; else one line that says which model
    covers it."""
    target = check_modelled(target)
    if target.backend not in RUNTIMES_MODELLED:
        backend = target.backend
        raise CnnbenchError(f"{backend} has the eager cost model; `cnnbench calibrate` without --backend fits it")
    return target


class RuntimeNetworkTimer(networks.QueuedTimer):
    """Times drawn networks on a runtime a few at a time, each in a process of its own, so that a report can
    interleave them with the runtime's latency rows (a machine whose speed drifts over minutes then slows both
    alike); :meth:`finish` times what is left and fits. A network timed while another process held the CPUs is timed
    again once the machine is quiet (``quieting``), and left out of the fit if it stays so."""

    def __init__(
        self,
        drawn: Sequence[networks.Network],
        target: Target,
        timing: Timing = REPORT_TIMING,
        quieting: Quieting | None = None,
    ) -> None:
        super().__init__(drawn)
        self.target = check_runtime(target)
        self.timing, self.quieting = timing, quieting or Quieting()
        self.rows: list[dict[str, object]] = []
        self.layers: list[pd.DataFrame] = []
        self.nodes: list[pd.DataFrame] = []

    def finish(
        self,
        progress: Callable[[Sequence[networks.Network], str], Iterable[networks.Network]] = lambda items, desc: items,
    ) -> tuple[RuntimeCostModel, pd.DataFrame]:
        """Time every network left and fit: the model and the per-network table (``network``, ``measured_ms``,
        ``nodes``, ``disturbed``, ``predicted_ms``), in the order the networks were drawn."""
        self.time_rest(progress)
        table = pd.DataFrame(self.rows)
        kept = ~table["disturbed"].to_numpy(dtype=bool) if len(table) else np.zeros(0, dtype=bool)
        if kept.sum() < 2:
            raise CnnbenchError("the runtime's calibration networks were disturbed; calibrate again on a quiet machine")
        model = fit_runtime_model(
            [t for t, keep in zip(self.layers, kept, strict=True) if keep],
            [n for n, keep in zip(self.nodes, kept, strict=True) if keep],
            table.loc[kept, "measured_ms"].to_numpy(),
            self.target,
        )
        table["predicted_ms"] = [runtime_terms(model, t).time_ms for t in self.layers]
        return model, table

    def _time(self, network: networks.Network) -> None:
        (measured, profiled, seen), _ = self.quieting.measure(
            network.name,
            lambda: run_isolated(time_on_runtime, network, self.target, self.timing),
            lambda result: result[2],
        )
        self.rows.append(
            {"network": network.name, "measured_ms": measured, "nodes": len(profiled), "disturbed": seen.disturbed}
        )
        self.layers.append(network.layers)
        self.nodes.append(profiled)


def calibrate_runtime(
    target: Target,
    network_count: int = networks.RUNTIME_NETWORKS,
    seed: int = 0,
    progress: Callable[[Sequence[object], str], Iterable[object]] = lambda items, desc: items,
    timing: Timing = REPORT_TIMING,
    quieting: Quieting | None = None,
    between: Callable[[], None] = lambda: None,
) -> tuple[RuntimeCostModel, pd.DataFrame]:
    """Time ``network_count`` synthetic networks on ``target``'s runtime (:class:`RuntimeNetworkTimer`) and fit its
    cost model. ``between`` runs after each network (the held-out check measures its models there). Returns the
    model and the per-network table (:meth:`RuntimeNetworkTimer.finish`)."""
    target = check_runtime(target)  # before any network is drawn
    drawn = networks.network_suite(network_count, seed, progress)
    timer = RuntimeNetworkTimer(drawn, target, timing, quieting)
    for _ in progress(range(len(drawn)), "networks"):
        timer.step(1)
        between()
    return timer.finish()
