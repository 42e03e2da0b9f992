"""The cost model: its fit recovers known numbers (rates, the parallel step and its threshold, the lanes, the
network scale, the baselines), a hand-built two-layer network's prediction equals the formula computed by hand, the
synthetic networks cover every op kind the zoo is made of and hold no zoo model, the ops timed in place line up
with the counting pass, the JSON round-trips and a bad one is refused in one line, and ``calibrate``/``predict``
work from the command line. No timing is asserted."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import CONV, ELEMENTWISE, fixed_model, synthetic_suite
from torch import nn

from cnnbench import costmodel
from cnnbench.allocator import MMAP_THRESHOLD_BYTES
from cnnbench.cli import main
from cnnbench.costmodel import blocks, features, fit, networks
from cnnbench.errors import CnnbenchError
from cnnbench.measure.latency import QUICK_TIMING
from cnnbench.target import Target


def _features(size: np.ndarray, arithmetic: np.ndarray, mac_bytes: np.ndarray,
              off: np.ndarray) -> dict[str, np.ndarray]:  # fmt: skip
    return {"size": size, "arithmetic": arithmetic, "mac_bytes": mac_bytes, "misaligned": off}


def test_the_fit_recovers_known_numbers_and_the_parallel_threshold() -> None:
    """Ops above 2^15.5 elements pay a 60 µs parallel step, those off the lanes 1.5× on their rate terms: the fit
    finds the threshold between two points of the coarse grid, and every number."""
    rng = np.random.default_rng(0)
    n = 200
    f = _features(np.exp(rng.uniform(np.log(1e3), np.log(2e6), n)), rng.uniform(1e4, 1e9, n),
                  rng.uniform(1e3, 1e8, n), rng.random(n) < 0.5)  # fmt: skip
    above = 2**15.5
    truth = costmodel.OpCost(overhead_ms=0.01, parallel_ms=0.06, parallel_above=above, compute_gops=50.0,
                             memory_gbs=10.0, misaligned_factor=1.5, ops=n, error=0.0)
    time_ms = truth.terms(f).time_ms
    fitted = fit.fit_op_cost(f, time_ms)
    assert fitted.parallel_above == pytest.approx(above)
    for name in ("overhead_ms", "parallel_ms", "compute_gops", "memory_gbs", "misaligned_factor"):
        assert getattr(fitted, name) == pytest.approx(getattr(truth, name), rel=0.02), name
    assert fitted.error < 0.01 and fitted.ops == n
    flat = fit.fit_op_cost(f, costmodel.OpCost(overhead_ms=0.01, parallel_ms=0.0, parallel_above=None,
                                               compute_gops=50.0, memory_gbs=10.0, misaligned_factor=1.0, ops=n,
                                               error=0.0).terms(f).time_ms)
    assert flat.misaligned_factor == pytest.approx(1.0, rel=0.02) and flat.overhead_ms == pytest.approx(0.01, rel=0.02)
    assert flat.parallel_above is None or flat.parallel_ms < 1e-4  # no step to find: none, or a negligible one


def test_a_step_or_a_factor_needs_ops_on_both_sides() -> None:
    """Three ops of a hundred lie above 2^17 elements and take 100 ms more; one op is off the lanes and takes 10×:
    neither split holds five ops, so no threshold isolates the three and the factor stays 1."""
    rng = np.random.default_rng(3)
    n = 100
    size = np.concatenate([rng.uniform(1e3, 1e5, n - 3), [2e5, 3e5, 4e5]])
    off = np.zeros(n, dtype=bool)
    off[0] = True
    f = _features(size, rng.uniform(1e4, 1e8, n), rng.uniform(1e3, 1e7, n), off)
    time_ms = costmodel.OpCost(overhead_ms=0.01, parallel_ms=0.0, parallel_above=None, compute_gops=50.0,
                               memory_gbs=10.0, misaligned_factor=1.0, ops=n, error=0.0).terms(f).time_ms
    time_ms[-3:] += 100.0
    time_ms[0] *= 10
    fitted = fit.fit_op_cost(f, time_ms)
    assert fitted.misaligned_factor == 1.0
    assert fitted.parallel_above is None or (size > fitted.parallel_above).sum() >= fit.MIN_SIDE
    assert fitted.parallel_ms < 1.0  # not the 100 ms of three ops


def _conv_1x1_ops(channels: list[tuple[int, int]], sides: list[int], truth: costmodel.OpCost, lanes: int,
                  networks_of: list[str]) -> pd.DataFrame:  # fmt: skip
    """A per-op table of 1×1 convolutions, in the counting pass's columns, timed by ``truth`` at ``lanes``."""
    rows = []
    for (c_in, c_out), side, network in zip(channels, sides, networks_of, strict=True):
        hw = side * side
        rows.append({"network": network, "op": "convolution", "kind": "conv_1x1",
                     "input_shapes": f"1×{c_in}×{side}×{side}, {c_out}×{c_in}×1×1",
                     "output_shape": f"1×{c_out}×{side}×{side}",
                     "flops": c_in * c_out * hw, "flops_elementwise": 0,
                     "mac_bytes": 4 * (c_in * hw + c_out * hw + c_in * c_out)})  # fmt: skip
    ops = pd.DataFrame(rows)
    f = features.op_features(ops)
    f["misaligned"] = features.misaligned(f["channels"], lanes)
    return ops.assign(time_ms=truth.terms(f).time_ms)


def test_fit_finds_the_lanes_the_network_scale_and_the_baselines() -> None:
    """1×1 convolutions whose channels are multiples of 8 but not of 16 run 1.5× slower: the fit finds 16 lanes
    (8 would call them aligned, 32 would call the multiples of 16 misaligned too) and the factor. The networks run
    1.25× the sum of their ops, and the baselines are the median time per multiply-add and per MAC byte."""
    rng = np.random.default_rng(1)
    n = 120
    grid = [16, 24, 32, 40, 64, 72, 96, 104]
    channels = [(int(a), int(b)) for a, b in zip(rng.choice(grid, n), rng.choice(grid, n), strict=True)]
    truth = costmodel.OpCost(overhead_ms=0.01, parallel_ms=0.0, parallel_above=None, compute_gops=50.0,
                             memory_gbs=10.0, misaligned_factor=1.5, ops=n, error=0.0)
    ops = _conv_1x1_ops(channels, [int(s) for s in rng.choice([7, 14, 28], n)], truth, 16,
                        [f"net{i % 6}" for i in range(n)])  # fmt: skip
    summed = ops.groupby("network")[["time_ms", "flops", "mac_bytes"]].sum()
    timed = pd.DataFrame({"network": summed.index, "measured_ms": 1.25 * summed["time_ms"].to_numpy()})
    fitted = costmodel.fit_cost_model(ops, timed, Target(threads=1))
    assert fitted.lanes == 16
    assert fitted.costs["conv_1x1"].misaligned_factor == pytest.approx(1.5, rel=0.02)
    assert fitted.network_scale == pytest.approx(1.25, rel=0.01) and fitted.network_error < 0.01
    # the median ratio, taken on logarithms: with six networks, the geometric mean of the middle two
    per_madd = np.exp(np.median(np.log(1.25 * summed["time_ms"] / summed["flops"])))
    per_byte = np.exp(np.median(np.log(1.25 * summed["time_ms"] / summed["mac_bytes"])))
    assert fitted.flops_ms_per_g == pytest.approx(per_madd * 1e9, rel=1e-6)
    assert fitted.mac_ms_per_gb == pytest.approx(per_byte * 1e9, rel=1e-6)
    assert fitted.networks == 6 and fitted.ops == n and fitted.page_fault_gbs is None
    assert set(fitted.costs) == {"conv_1x1", costmodel.ANY} and fitted.key == "cpu-t1-fp32-nchw-eager"
    few = costmodel.fit_cost_model(ops.iloc[:fit.MIN_OPS - 1], timed, Target(threads=1))  # too few for a key of its own
    assert set(few.costs) == {"kind:conv_1x1", costmodel.ANY} and few.cost_of("conv_1x1", "conv_1x1") is not few.costs[
        costmodel.ANY]  # fmt: skip
    assert list(features.misaligned([(3, 16), (16, 32), (116,), ()], 16)) == [True, False, True, False]


def test_two_layer_prediction_equals_the_formula_by_hand() -> None:
    """A 3→16 3×3 convolution and a ReLU on a 32×32 input. The convolution's 3·32·32 = 3072 input elements pass
    its 2048-element parallel threshold; the ReLU, keyed ``relu`` and not fitted, costs as its kind's fallback
    (ELEMENTWISE). The network is 1.1 × the sum of its ops."""
    side = 32
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.ReLU())
    base = fixed_model()
    conv = costmodel.OpCost(overhead_ms=0.02, parallel_ms=0.05, parallel_above=2048.0, compute_gops=50.0,
                            memory_gbs=10.0, misaligned_factor=1.0, ops=1, error=0.0)
    model = costmodel.CostModel(**{**base.__dict__, "costs": {**base.costs, "conv": conv}, "network_scale": 1.1})
    predicted = costmodel.predict_latency(net, model, resolution=side)
    hw = side * side
    conv_madds = 16 * hw * 3 * 3 * 3  # every output element: 3·3·3 multiply-adds
    conv_bytes = 4 * (3 * hw + 16 * hw + 16 * 3 * 3 * 3)  # input, output, weights, fp32
    relu_ops, relu_bytes = 16 * hw, 4 * (16 * hw + 16 * hw)
    # rates per ms: 50 G/s = 5e7 per ms, 10 GB/s = 1e7 bytes per ms
    conv_ms = 0.02 + 0.05 + conv_madds / 5e7 + conv_bytes / 1e7
    relu_ms = 0.005 + relu_ops / 1e8 + relu_bytes / 2e7
    assert predicted.latency_ms == pytest.approx(1.1 * (conv_ms + relu_ms))
    assert predicted.overhead_ms == pytest.approx(1.1 * (0.02 + 0.05 + 0.005))
    assert predicted.compute_ms == pytest.approx(1.1 * (conv_madds / 5e7 + relu_ops / 1e8))
    assert predicted.memory_ms == pytest.approx(1.1 * (conv_bytes / 1e7 + relu_bytes / 2e7))
    assert predicted.flops_only_ms == pytest.approx(conv_madds * 20.0 / 1e9)
    assert predicted.mac_only_ms == pytest.approx((conv_bytes + relu_bytes) * 100.0 / 1e9)
    assert list(predicted.layers["key"]) == ["conv", "relu"]
    by_kind = predicted.by_kind.set_index("kind")
    assert list(by_kind.index) == ["conv", "activation"]
    assert by_kind.loc["conv", "time_ms"] == pytest.approx(1.1 * conv_ms)
    assert by_kind["time_share"].sum() == pytest.approx(1.0)
    assert predicted.layers["time_ms"].sum() == pytest.approx(predicted.latency_ms)


def test_off_the_lanes_the_rate_terms_take_the_factor_by_hand() -> None:
    """The same two layers with 16 lanes: the convolution reads 3 channels (not a multiple of 16), so its rate terms
    take its factor 2; the ReLU's 16 channels are aligned and keep theirs."""
    side = 32
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.ReLU())
    base = fixed_model()
    costs = {**base.costs,
             "conv": costmodel.OpCost(overhead_ms=0.02, parallel_ms=0.0, parallel_above=None, compute_gops=50.0,
                                      memory_gbs=10.0, misaligned_factor=2.0, ops=1, error=0.0),
             "relu": costmodel.OpCost(overhead_ms=0.005, parallel_ms=0.0, parallel_above=None, compute_gops=100.0,
                                      memory_gbs=20.0, misaligned_factor=3.0, ops=1, error=0.0)}  # fmt: skip
    predicted = costmodel.predict_latency(net, costmodel.CostModel(**{**base.__dict__, "costs": costs, "lanes": 16}),
                                          resolution=side)  # fmt: skip
    hw = side * side
    conv_ms = 0.02 + 2.0 * (16 * hw * 27 / 5e7 + 4 * (3 * hw + 16 * hw + 16 * 27) / 1e7)
    relu_ms = 0.005 + 16 * hw / 1e8 + 4 * 2 * 16 * hw / 2e7
    assert list(predicted.layers["misaligned"]) == [True, False]
    assert predicted.latency_ms == pytest.approx(conv_ms + relu_ms)


@pytest.mark.parametrize("inplace", [True, False])
def test_an_output_past_the_mmap_threshold_pays_its_fresh_pages_by_hand(inplace: bool) -> None:
    """A 3→64 1×1 convolution on a 400×400 input writes 64·400²·4 = 40.96 MB, past glibc's 32 MiB mmap threshold:
    its pages are mapped afresh at every forward, at 2 GB/s here. A ReLU in place allocates nothing; one that is not
    writes as much again."""
    side, rate = 400, 2.0
    out_bytes = 64 * side * side * 4
    assert out_bytes > MMAP_THRESHOLD_BYTES
    net = nn.Sequential(nn.Conv2d(3, 64, 1, bias=False), nn.ReLU(inplace=inplace))
    base = fixed_model()
    with_faults = costmodel.CostModel(**{**base.__dict__, "page_fault_gbs": rate})
    plain = costmodel.predict_latency(net, base, resolution=side).layers["memory_ms"]
    faulted = costmodel.predict_latency(net, with_faults, resolution=side).layers["memory_ms"]
    assert faulted.iloc[0] - plain.iloc[0] == pytest.approx(out_bytes / (rate * 1e6))
    assert faulted.iloc[1] - plain.iloc[1] == pytest.approx(0.0 if inplace else out_bytes / (rate * 1e6))


def test_a_prediction_names_its_terms_and_the_pooled_fits_it_fell_back_to(tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """The ReLU's key ``relu`` has no fit of its own: it is costed by its kind's pooled fit, and with that removed
    by every op's. The prediction lists those fallbacks with their op counts, per op and in its row, and the page
    faults are a term of their own inside memory."""
    side, rate = 400, 2.0
    net = nn.Sequential(nn.Conv2d(3, 64, 1, bias=False), nn.ReLU())
    base = costmodel.CostModel(**{**fixed_model().__dict__, "page_fault_gbs": rate})
    predicted = costmodel.predict_latency(net, base, resolution=side)
    assert list(predicted.layers["costed_by"]) == ["conv_1x1", "kind:activation"]
    assert predicted.fallbacks == {"kind:activation": 1} and predicted.row()["fallbacks"] == "kind:activation×1"
    out_bytes = 64 * side * side * 4
    assert predicted.page_fault_ms == pytest.approx(2 * out_bytes / (rate * 1e6))
    assert predicted.layers["page_fault_ms"].sum() == pytest.approx(predicted.page_fault_ms)
    assert (predicted.layers["page_fault_ms"] <= predicted.layers["memory_ms"]).all()
    costs = {k: v for k, v in base.costs.items() if k != "kind:activation"}
    alone = costmodel.predict_latency(net, costmodel.CostModel(**{**base.__dict__, "costs": costs}),
                                      resolution=side)  # fmt: skip
    assert alone.fallbacks == {costmodel.ANY: 1}
    path = costmodel.save(fixed_model(), tmp_path / "cm.json")
    assert main(["predict", "mobilenet_v3_small", "--cost-model", str(path)]) == 0
    out = capsys.readouterr().out
    text = costmodel.predict_latency("mobilenet_v3_small", fixed_model()).row()["fallbacks"]
    assert "costed by a pooled fit" in out and f"#   mobilenet_v3_small: {text}" in out and "kind:activation×" in text
    assert main(["predict", "mobilenet_v3_small", "--cost-model", str(path), "--format", "csv"]) == 0
    frame = pd.read_csv(__import__("io").StringIO(capsys.readouterr().out))
    assert frame.loc[0, "fallbacks"] == text


def test_the_committed_cost_model_is_read() -> None:
    """The cost model results/ holds was written by `cnnbench report`: it loads in this layout, with its interval, and
    predicts."""
    path = Path(__file__).resolve().parent.parent / "results" / "costmodel-cpu-t2-fp32-nchw-eager.json"
    stored = costmodel.load(path)
    assert stored.key == "cpu-t2-fp32-nchw-eager" and costmodel.ANY in stored.costs
    predicted = costmodel.predict_latency("mobilenet_v3_small", stored)
    assert 0 < predicted.low_ms < predicted.latency_ms < predicted.high_ms


def test_cost_keys_sizes_and_fallbacks() -> None:
    assert features.cost_key("conv_1x1", "convolution", (1, 8, 7, 7)) == "conv_1x1"
    assert features.cost_key("linear", "addmm", (1, 1000)) == "linear"
    assert [features.cost_key("pool", op, shape) for op, shape in (("mean", (1, 32, 1, 1)), ("mean", (1, 1024)),
            ("max_pool2d_with_indices", (1, 8, 7, 7)), ("_adaptive_avg_pool2d", (1, 512, 7, 7)))] == [
        "pool_global", "pool_global", "max_pool2d_with_indices", "_adaptive_avg_pool2d"]  # fmt: skip
    assert features.cost_key("activation", "relu_", (1, 8, 7, 7)) == "relu_"  # in place, apart from relu
    layers = pd.DataFrame({
        "op": ["convolution", "addmm", "cat"], "kind": ["conv_1x1", "linear", "concat"],
        "input_shapes": ["1×8×8×8, 16×8×1×1, 16", "1000, 1×512, 512×1000", "1×8×4×4, 1×8×4×4"],
        "output_shape": ["1×16×8×8", "1×1000", "1×16×4×4"], "flops": [8192, 512000, 0],
        "flops_elementwise": [1024, 1000, 0], "mac_bytes": [1, 2, 3]})  # fmt: skip
    f = features.op_features(layers)
    # a conv parallelises over its input, a linear layer over its features, a concat over its output
    assert list(f["size"]) == [8 * 8 * 8, 512, 16 * 4 * 4]
    assert list(f["arithmetic"]) == [8192 + 1024, 513000, 0] and list(f["fresh_bytes"]) == [0, 0, 0]
    assert list(f["channels"]) == [(8, 16), (1000,), (8, 16)]
    model = fixed_model()
    assert model.cost_of("relu", "activation") is model.costs["kind:activation"]
    assert model.cost_of("gelu_new", "other") is model.costs[costmodel.ANY] is ELEMENTWISE
    assert model.cost_of("conv", "conv") is CONV


@pytest.mark.slow
def test_the_synthetic_networks_are_seeded_cover_the_zoos_ops_and_hold_no_zoo_model() -> None:
    """The default suite (what ``calibrate`` times) holds every kind of op the issue lists, over strides 1 and 2,
    depthwise kernels of 3, 5, 7 and 9, in-place and not, and outputs past the mmap threshold; the blocks of the
    design spaces after the zoo's: channels-last LayerNorm and GELU (ConvNeXt), concatenations of many inputs
    (DenseNet, VoVNet), odd channel counts; no module comes from the zoo."""
    drawn = synthetic_suite()
    assert len(drawn) == networks.NETWORKS
    assert [n.name for n in drawn[:5]] == [n.name for n in networks.network_suite(5)]  # seeded
    assert [n.name for n in drawn[:5]] != [n.name for n in networks.network_suite(5, seed=1)]
    layers = pd.concat([n.layers for n in drawn], ignore_index=True)
    assert set(layers["kind"]) >= {"conv", "conv_1x1", "conv_depthwise", "conv_group", "linear", "norm",
                                   "activation", "pool", "elementwise", "concat", "shuffle"}  # fmt: skip
    assert set(layers["op"]) >= {"relu", "relu_", "hardtanh", "hardtanh_", "silu", "silu_", "hardswish",
                                 "hardswish_", "sigmoid", "hardsigmoid", "add", "add_", "mul", "mean", "cat",
                                 "max_pool2d_with_indices", "avg_pool2d", "_adaptive_avg_pool2d", "clone",
                                 "native_layer_norm", "gelu"}  # fmt: skip
    cat_inputs = [s.count(", ") + 1 for s in layers.loc[layers["op"] == "cat", "input_shapes"]]
    assert max(cat_inputs) >= 6
    f = features.op_features(layers)
    convs = layers[layers["kind"].str.startswith("conv")]
    shapes = [features.parse_shapes(s) for s in convs["input_shapes"]]
    strides = {ins[0][2] // out[0][2] for ins, out in zip(shapes, map(features.parse_shapes, convs["output_shape"]),
                                                          strict=True)}  # fmt: skip
    assert {1, 2} <= strides
    depthwise = [s[1][2] for s, kind in zip(shapes, convs["kind"], strict=True) if kind == "conv_depthwise"]
    assert {3, 5, 7, 9} <= set(depthwise)
    assert any(c % 2 for counts in f["channels"] for c in counts)  # odd channel counts
    assert (f["fresh_bytes"] > 0).sum() >= 5 and (features.misaligned(f["channels"], 16)).mean() > 0.2
    for network in drawn[:12]:
        homes = {type(m).__module__ for m in network.build().modules()}
        assert all(h.startswith(("torch.nn.", blocks.__name__)) for h in homes), homes
    assert all(n.layers["flops"].sum() <= networks.MAX_NETWORK_FLOPS for n in drawn)


@pytest.mark.slow
def test_a_small_real_calibration_times_ops_in_place() -> None:
    """Three networks timed whole and op by op, each in a process of its own: the ops line up with the counting
    pass, every op took time, and the fitted model predicts with an attribution that adds up."""
    fitted, ops, timed = costmodel.calibrate(Target(threads=1), network_count=3, timing=QUICK_TIMING)
    drawn = networks.network_suite(3)
    assert list(timed["network"]) == [n.name for n in drawn]
    # A network another process disturbed (a busy machine) stays in `timed`, flagged, and out of the fit.
    kept = [n for n, flag in zip(drawn, timed["disturbed"].astype(bool), strict=True) if not flag]
    assert fitted.networks == len(kept) and len(ops) == sum(len(n.layers) for n in kept) == fitted.ops
    timed = timed[~timed["disturbed"].astype(bool)]
    assert (ops["time_ms"] > 0).all() and (timed["measured_ms"] > 0).all()
    summed = ops.groupby("network", sort=False)["time_ms"].sum()
    assert timed.set_index("network")["ops_ms"].to_numpy() == pytest.approx(summed.loc[timed["network"]].to_numpy())
    assert costmodel.ANY in fitted.costs and fitted.lanes in fit.LANE_CHOICES
    assert timed["predicted_ms"].to_numpy() == pytest.approx(
        fitted.network_scale * ops.groupby("network", sort=False)["fitted_ms"].sum().loc[timed["network"]].to_numpy())
    predicted = costmodel.predict_latency("mobilenet_v3_small", fitted)
    assert predicted.latency_ms > 0 and predicted.ops == len(predicted.layers)
    assert predicted.overhead_ms + predicted.compute_ms + predicted.memory_ms == pytest.approx(predicted.latency_ms)


def test_accuracy_summary_by_hand() -> None:
    measured = pd.Series([10.0, 10.0, 10.0, 10.0])
    predicted = pd.Series([10.5, 8.5, 13.0, 10.0])  # errors 5%, 15%, 30%, 0%
    summary = costmodel.accuracy_summary(predicted, measured)
    assert summary == {"mape": pytest.approx(10.0), "within_10": 50.0, "within_20": 75.0, "models": 4}


def test_json_round_trip_and_bad_files(tmp_path: Path) -> None:
    model = costmodel.CostModel(**{**fixed_model().__dict__, "page_fault_gbs": 2.5,
                                   "costs": {**fixed_model().costs, "conv": CONV.__class__(
                                       overhead_ms=0.02, parallel_ms=0.06, parallel_above=23170.5, compute_gops=50.0,
                                       memory_gbs=10.0, misaligned_factor=1.4, ops=100, error=0.1)}})  # fmt: skip
    path = costmodel.save(model, tmp_path / "a" / "cm.json")
    assert costmodel.load(path) == model
    bad = tmp_path / "bad.json"
    for text, says in (("not json", "is not a cost model's JSON"), ('{"format": 99}', "format 99"),
                       (path.read_text().replace('"memory_gbs": 10.0', '"memory_gbs": -1'), "not a positive"),
                       (path.read_text().replace('"page_fault_gbs": 2.5', '"page_fault_gbs": 0'), "page_fault"),
                       (json.dumps({"format": 2}), "recalibrate"), ("[1, 2]", "recalibrate")):  # fmt: skip
        bad.write_text(text)
        with pytest.raises(CnnbenchError, match=says) as err:
            costmodel.load(bad)
        assert "\n" not in str(err.value)
    with pytest.raises(CnnbenchError, match="no cost model at"):
        costmodel.load(tmp_path / "missing.json")


def test_runtime_backends_and_fused_bn_are_refused() -> None:
    """ONNX Runtime and OpenVINO at fp32 have a cost model (tests/test_costmodel_runtime.py); the phone runtimes and
    INT8 have none."""
    for backend in ("onnxruntime", "openvino"):
        assert costmodel.check_modelled(Target(backend=backend)).backend == backend
    for target in (Target(backend="ncnn"), Target(backend="executorch"), Target(backend="openvino", dtype="int8")):
        with pytest.raises(CnnbenchError, match="covers eager, onnxruntime and openvino at fp32"):
            costmodel.check_modelled(target)
    with pytest.raises(CnnbenchError, match="fuse-bn"):
        costmodel.check_modelled(Target(fuse_bn=True))


@pytest.mark.slow
def test_predict_cli_with_a_cost_model_from_another_device(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = costmodel.save(fixed_model("cuda-fp16-nchw-eager"), tmp_path / "phone.json")
    assert main(["predict", "efficientnet_b*", "--cost-model", str(path), "--by-kind"]) == 0
    out = capsys.readouterr().out
    assert "cuda-fp16-nchw-eager" in out and "efficientnet_b7" in out and "# efficientnet_b0: time per op kind" in out
    assert main(["predict", "--phi", "3.5", "--width", "mobilenet_v1=0.6", "--res", "176", "--cost-model", str(path),
                 "--format", "csv"]) == 0  # fmt: skip
    frame = pd.read_csv(__import__("io").StringIO(capsys.readouterr().out))
    assert list(frame["model"]) == ["efficientnet φ=3.5", "mobilenet_v1 α=0.6"] and set(frame["resolution"]) == {176}
    scaled = costmodel.predict_latency(__import__("zoo.efficientnet").efficientnet.efficientnet_scaled(3.5),
                                       fixed_model(), resolution=176)  # fmt: skip
    assert frame.loc[0, "latency_ms"] == pytest.approx(scaled.latency_ms)


@pytest.mark.parametrize(("argv", "says"), [
    (["predict", "resnet18"], "no cost model for cpu"),
    (["predict", "resnet18", "--backend", "onnxruntime"], "-fp32-nchw-onnxruntime on this machine"),
    (["predict", "resnet18", "--backend", "ncnn"], "covers eager, onnxruntime and openvino at fp32"),
    (["predict", "--width", "resnet=2"], "FAMILY=ALPHA"),
    (["predict", "--phi", "-1"], "at least 0"),
    (["predict"], "name at least one model"),
    (["calibrate", "--backend", "executorch"], "covers eager, onnxruntime and openvino at fp32"),
    (["calibrate", "--networks", "0"], "at least 1"),
])  # fmt: skip
def test_cli_refuses_in_one_line(argv: list[str], says: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    monkeypatch.setenv("CNNBENCH_CACHE", str(tmp_path))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1 and "Traceback" not in err


def test_this_machines_cost_model_of_another_target_is_refused(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """``predict`` and ``pick --predicted`` find the target's cost model by one rule (:func:`costmodel.load_for`)."""
    monkeypatch.setenv("CNNBENCH_CACHE", str(tmp_path))
    with pytest.raises(CnnbenchError, match="give one with --predicted FILE"):
        costmodel.load_for(Target(threads=1), option="--predicted")
    costmodel.save(fixed_model("cuda-fp16-nchw-eager"), costmodel.default_path(Target(threads=1)))
    with pytest.raises(CnnbenchError, match="is the cost model of cuda-fp16-nchw-eager, not cpu-t1"):
        costmodel.load_for(Target(threads=1))


def test_calibrate_cli_writes_the_cost_model_predict_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    monkeypatch.setenv("CNNBENCH_CACHE", str(tmp_path))
    monkeypatch.setattr(costmodel, "calibrate", lambda target, network_count, seed, progress, quieting: (
        costmodel.CostModel(**{**fixed_model().__dict__, "target": {"key": target.key}}), pd.DataFrame(),
        pd.DataFrame()))
    assert main(["calibrate", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "written to" in out and "kind:activation" in out and "never" in out
    stored = costmodel.default_path(Target(threads=1))
    assert stored.exists() and costmodel.load(stored).key == "cpu-t1-fp32-nchw-eager"
    assert main(["predict", "squeezenet1_1", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "squeezenet1_1" in out and "time per op kind" in out and not math.isnan(float(out.split()[-1]))


def test_pick_ranks_by_predicted_latency(tmp_path: Path) -> None:
    from cnnbench.choose import pick

    path = costmodel.save(fixed_model(), tmp_path / "cm.json")
    small, big = (costmodel.predict_latency(n, fixed_model()).latency_ms for n in ("mobilenet_v3_small", "resnet18"))
    assert small < big
    ranked = pick((small + big) / 2, models=("mobilenet_v3_small", "resnet18"), results=tmp_path / "results",
                  predicted=path).set_index("model")  # fmt: skip
    assert ranked.loc["mobilenet_v3_small", "latency_ms"] == pytest.approx(small)
    assert ranked.loc["mobilenet_v3_small", "rank"] == 1
    assert "latency" in ranked.loc["resnet18", "excluded_by"] and pd.isna(ranked.loc["resnet18", "rank"])
    assert not (tmp_path / "results" / "latency-cpu-t2-fp32-nchw-eager.csv").exists()  # nothing measured
