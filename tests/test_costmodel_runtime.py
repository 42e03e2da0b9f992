"""A deployment runtime's cost model: the fusion rules read off a profile's node names (by hand), OpenVINO's counters
read (by hand), the runtime's own nodes per op (by hand), the fit recovering a network's time it was built from, and
a small real calibration on ONNX Runtime and on OpenVINO whose model round-trips through JSON and predicts through
``predict`` and ``pick --predicted``. No timing is asserted."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import synthetic_suite

from cnnbench import costmodel
from cnnbench.cli import main
from cnnbench.costmodel import runtime
from cnnbench.measure.latency import QUICK_TIMING
from cnnbench.target import Target


def _layers(modules: list[str], kinds: list[str]) -> pd.DataFrame:
    """A counting pass of 1×8×8×8 ops: a 3×3 convolution's counts for a conv, an element-wise op's for the rest."""
    conv = [k.startswith("conv") for k in kinds]
    return pd.DataFrame({
        "module": modules, "kind": kinds, "op": ["convolution" if c else "relu" for c in conv],
        "input_shapes": ["1×8×8×8, 8×8×3×3" if c else "1×8×8×8" for c in conv], "output_shape": "1×8×8×8",
        "flops": [36864 if c else 0 for c in conv], "flops_elementwise": [0 if c else 512 for c in conv],
        "mac_bytes": [4 * (512 + 512 + 576) if c else 4096 for c in conv]})  # fmt: skip


def test_a_node_names_the_module_it_came_from() -> None:
    assert runtime.node_module("/1/1.0/1.0.3/Conv_output_0_nchwc") == "1.0.3"
    assert runtime.node_module("/layer1/layer1.0/conv1/Conv") == "layer1.0.conv1"  # relative to its block
    assert runtime.node_module("/2/body/body.0/Conv") == "2.body.0"
    assert runtime.node_module("/features/features.3/block/block.1/block.1.0/Conv") == "features.3.block.1.0"
    assert runtime.node_module("/Flatten") == ""  # the root module
    assert runtime.node_module("ReorderOutput_token_249") is None  # the runtime's own
    assert runtime.node_module("Gelu_token_0") is None


def test_ops_keep_their_modules_named_nodes_in_order() -> None:
    """A conv module with its node, a BatchNorm module with none (folded), a module with two ops and one node (the
    first keeps it), a GELU whose node the runtime renamed (it made its own)."""
    layers = _layers(["0", "1", "2", "2", "3"], ["conv", "norm", "pool", "elementwise", "activation"])
    nodes = pd.DataFrame({"node": ["/0/Conv", "/2/GlobalAveragePool", "Gelu_token_0"], "op": "", "us": 1.0})
    assert list(runtime.kept_ops(layers, nodes)) == [True, False, True, False, False]


def test_fusion_rules_and_the_runtimes_own_nodes_by_hand() -> None:
    """Twelve conv→norm→activation triples where BatchNorm never keeps a node and the activation keeps one in
    four; the runtime makes 1 node of its own per 2 convs: the shares are 0 and 1/4 (per kind and per pair, 12 ops
    ≥ MIN_PAIR_OPS), and 0.5 own nodes per conv (activation and norm: none)."""
    tables, profiles = [], []
    for convs in (4, 8):
        modules = [f"{i}.{j}" for i in range(convs) for j in range(3)]
        kinds = ["conv", "norm", "activation"] * convs
        named = [f"/{i}/{i}.0/Conv" for i in range(convs)] + [f"/{i}/{i}.2/Relu" for i in range(0, convs, 4)]
        own = [f"ReorderOutput_token_{i}" for i in range(convs // 2)]
        tables.append(_layers(modules, kinds))
        profiles.append(pd.DataFrame({"node": named + own, "op": "", "us": 1.0}))
    kept, made, examples = runtime.learn_fusion(tables, profiles)
    assert examples == 36 and kept["conv"] == 1.0 and kept["norm"] == 0.0 == kept["norm<-conv"]
    assert kept["activation"] == pytest.approx(3 / 12) == kept["activation<-norm"]
    assert made["conv"] == pytest.approx(0.5) and made["norm"] == pytest.approx(0) == made["activation"]
    nodes = runtime.predicted_nodes(kept, made, tables[0])
    assert nodes.sum() == pytest.approx(4 * 1.5 + 4 / 4)  # each conv 1 + 0.5 of its own, each activation 1/4


def test_the_fit_recovers_the_times_it_was_built_from() -> None:
    """Thirty synthetic networks whose time is 6 µs per node (as the fusion rules learnt from their profiles count
    them), 40 G/s on convolutions, 5 GB/s on the other ops' bytes and 50 µs per call: left out one at a time, each
    is predicted within 1%, and the model's rates are those."""
    drawn = synthetic_suite()[:30]
    layers = [n.layers for n in drawn]
    profiles = []
    for table in layers:
        kept = np.arange(len(table)) % 2 == 0  # every other op keeps a node; 1 node of the runtime's own
        names = [f"/{m}/Op" for m, k in zip(table["module"], kept, strict=True) if k] + ["Reorder_token_0"]
        profiles.append(pd.DataFrame({"node": names, "op": "", "us": 1.0}))
    shares, made, _ = runtime.learn_fusion(layers, profiles)
    convolutions = ["conv", "conv_1x1", "conv_depthwise", "conv_group", "linear"]
    measured = []
    for table in layers:
        kinds = runtime.kind_table(table)
        nodes = runtime.predicted_nodes(shares, made, table).sum()
        rest = kinds.drop(convolutions)["mac_bytes"].sum()
        measured.append(0.006 * nodes + kinds.loc[convolutions, "arithmetic"].sum() / 40e6 + rest / 5e6 + 0.05)
    fitted = runtime.fit_runtime_model(layers, profiles, np.array(measured), Target(threads=1))
    assert fitted.network_error < 0.01 and fitted.node_error < 0.1
    assert fitted.compute_gops["conv"] == pytest.approx(40, rel=0.05)
    assert fitted.memory_gbs["activation"] == pytest.approx(5, rel=0.05)
    assert math.isinf(fitted.memory_gbs["conv"]) or fitted.memory_gbs["conv"] > 1e3  # no cost on conv bytes


def test_a_1x1_group_convolution_is_costed_as_a_pointwise_one() -> None:
    shapes = ["1×8×8×8, 8×2×1×1", "1×8×8×8, 8×2×3×3", "1×8×8×8, 8×1×3×3", "1×8×8×8"]
    kinds = ["conv_group", "conv_group", "conv_depthwise", "activation"]
    layers = pd.DataFrame({"kind": kinds, "input_shapes": shapes})
    assert runtime.cost_kinds(layers) == ["conv_1x1", "conv_group", "conv_depthwise", "activation"]


def test_openvino_counters_give_the_nodes_it_ran_with_their_median_times() -> None:
    """OpenVINO's performance counters, read after each inference: a fused node (NOT_RUN) is not listed, the split-off
    bias suffix is dropped so the node names its module, and each node's time is its median over the runs."""
    from types import SimpleNamespace

    def counter(name: str, kind: str, status: str, us: float) -> SimpleNamespace:
        return SimpleNamespace(node_name=name, node_type=kind, status=SimpleNamespace(name=status),
                               real_time=SimpleNamespace(total_seconds=lambda: us / 1e6))  # fmt: skip

    runs = iter([[counter("/b/b.0/Conv/WithoutBiases", "Convolution", "EXECUTED", us),
                  counter("/b/b.1/Relu", "Relu", "NOT_RUN", 0.0),
                  counter("input_f32_abcd_/b/b.0/Conv", "Reorder", "EXECUTED", us / 10)]
                 for us in (30, 10, 20)])  # fmt: skip
    request = SimpleNamespace(get_profiling_info=lambda: current[0])
    current: list[object] = [None]
    nodes = runtime.openvino_nodes(request, lambda: current.__setitem__(0, next(runs)), 3)
    assert list(nodes["node"]) == ["/b/b.0/Conv", "input_f32_abcd_/b/b.0/Conv"]
    assert list(nodes["op"]) == ["Convolution", "Reorder"] and list(nodes["us"]) == pytest.approx([20.0, 2.0])
    assert [runtime.node_module(n) for n in nodes["node"]] == ["b.0", None]  # the reorder is OpenVINO's own


@pytest.mark.slow  # three networks exported, timed and profiled on the runtime, each in a process of its own
@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_a_small_real_calibration_on_a_runtime_predicts_through_the_cli(
    backend: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = Target(backend=backend, threads=1)
    fitted, table = runtime.calibrate_runtime(target, network_count=3, timing=QUICK_TIMING)
    assert list(table.columns) == ["network", "measured_ms", "nodes", "disturbed", "predicted_ms"]
    assert (table["measured_ms"] > 0).all() and (table["nodes"] > 0).all()
    assert fitted.key == f"cpu-t1-fp32-nchw-{backend}" and fitted.kept_examples > 0
    assert fitted.kept["norm"] < 0.5  # BatchNorm after a convolution folds into it, on both runtimes
    path = costmodel.save(fitted, tmp_path / f"{backend}.json")
    assert costmodel.load(path) == fitted
    predicted = costmodel.predict_latency("mobilenet_v3_small", fitted)
    assert 0 < predicted.low_ms <= predicted.latency_ms <= predicted.high_ms
    assert predicted.overhead_ms + predicted.compute_ms + predicted.memory_ms == pytest.approx(predicted.latency_ms)
    argv = ["predict", "mobilenet_v3_small", "--backend", backend, "--threads", "1", "--cost-model", str(path)]
    code = main(argv)
    out = capsys.readouterr().out
    assert code == 0 and f"cpu-t1-fp32-nchw-{backend}" in out and "mobilenet_v3_small" in out
