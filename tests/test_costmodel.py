"""The cost model: its fit recovers known rates, a hand-built two-layer network's prediction equals the formula
computed by hand, every kernel of the suite runs one op of its kind, the JSON round-trips and a bad one is refused
in one line, and ``calibrate``/``predict`` work from the command line. No timing is asserted."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ELEMENTWISE, fixed_model
from torch import nn

from cnnbench.cli import main
from cnnbench.costmodel import model as costmodel
from cnnbench.costmodel import networks, suite
from cnnbench.errors import CnnbenchError
from cnnbench.target import Target


def test_the_fit_recovers_known_rates() -> None:
    rng = np.random.default_rng(0)
    arithmetic = rng.uniform(1e4, 1e9, 60)
    mac_bytes = rng.uniform(1e3, 1e8, 60)
    truth = costmodel.KindCost(0.01, 50.0, 10.0, 60, 0.0)  # 10 µs, 50 G/s, 10 GB/s
    fitted = costmodel.fit_kind(arithmetic, mac_bytes, truth.time_ms(arithmetic, mac_bytes))
    assert fitted.overhead_ms == pytest.approx(0.01, rel=0.02)
    assert fitted.compute_gops == pytest.approx(50.0, rel=0.02)
    assert fitted.memory_gbs == pytest.approx(10.0, rel=0.02)
    assert fitted.kernel_error < 0.01 and fitted.kernels == 60
    assert fitted.misaligned_factor == 1.0  # no op was off the lanes: nothing to fit


def test_the_fit_recovers_the_misaligned_factor_and_the_lanes() -> None:
    """Kernels whose channels are multiples of 8 but not of 16 run 1.5× slower: the fit finds 16 lanes (8 would call
    them aligned, 32 would call the 16-multiples misaligned too) and the factor 1.5."""
    rng = np.random.default_rng(1)
    n = 90
    arithmetic, mac_bytes = rng.uniform(1e5, 1e9, n), rng.uniform(1e4, 1e8, n)
    channels = [f"{c} {c}" for c in rng.choice([16, 24, 32, 40, 64, 72, 96, 104], n)]
    off = costmodel.misaligned(channels, 16)
    truth = costmodel.KindCost(0.01, 50.0, 10.0, n, 0.0, misaligned_factor=1.5)
    kernels = pd.DataFrame({"kind": "elementwise", "kernel": [f"k{i}" for i in range(n)], "flops": arithmetic / 2,
                            "flops_elementwise": arithmetic / 2, "mac_bytes": mac_bytes, "ops": 1, "channels": channels,
                            "time_ms": truth.time_ms(arithmetic, mac_bytes, off)})  # fmt: skip
    fitted = costmodel.fit(kernels, Target(threads=1))
    assert fitted.lanes == 16
    assert fitted.kinds["elementwise"].misaligned_factor == pytest.approx(1.5, rel=0.02)
    assert list(costmodel.misaligned(["3 16", "16 32", "116", ""], 16)) == [True, False, True, False]


def test_two_layer_prediction_equals_the_formula_by_hand() -> None:
    side = 32
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.ReLU())
    predicted = costmodel.predict(net, fixed_model(), resolution=side)
    hw = side * side
    conv_flops = 16 * hw * 3 * 3 * 3  # every output element: 3·3·3 multiply-adds
    conv_bytes = 4 * (3 * hw + 16 * hw + 16 * 3 * 3 * 3)  # input, output, weights, fp32
    relu_ops, relu_bytes = 16 * hw, 4 * (16 * hw + 16 * hw)
    conv_ms = 0.02 + max(conv_flops / 50e6, conv_bytes / 10e6)  # rates per ms: 50 G/s = 5e7 per ms
    relu_ms = 0.005 + max(relu_ops / 100e6, relu_bytes / 20e6)
    calls = 1  # the Sequential runs no op of its own; its two leaves' calls are in their kernels' overhead
    assert predicted.module_calls == calls
    assert predicted.latency_ms == pytest.approx(conv_ms + relu_ms + calls * 0.001)
    # attribution: the conv is compute-bound (8.85 µs of compute > 7.96 µs of traffic), the ReLU memory-bound
    assert predicted.compute_ms == pytest.approx(conv_flops / 50e6)
    assert predicted.memory_ms == pytest.approx(relu_bytes / 20e6)
    assert predicted.overhead_ms == pytest.approx(0.025 + 0.001)
    assert predicted.flops_only_ms == pytest.approx(conv_flops * 20.0 / 1e9)
    by_kind = predicted.by_kind.set_index("kind")
    assert list(by_kind.index) == ["conv", "activation", "module"]
    assert by_kind["time_ms"].sum() == pytest.approx(predicted.latency_ms)
    assert by_kind["time_share"].sum() == pytest.approx(1.0)
    assert predicted.layers["time_ms"].sum() + calls * 0.001 == pytest.approx(predicted.latency_ms)


def test_off_the_lanes_the_rate_terms_take_the_factor_by_hand() -> None:
    """The same two layers with 16 lanes: the conv reads 3 channels (not a multiple of 16), so its rate terms take
    the conv's factor 2; the ReLU's 16 channels are aligned and keep theirs."""
    side = 32
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.ReLU())
    base = fixed_model()
    kinds = {**base.kinds, "conv": costmodel.KindCost(0.02, 50.0, 10.0, 1, 0.0, misaligned_factor=2.0),
             "activation": costmodel.KindCost(0.005, 100.0, 20.0, 1, 0.0, misaligned_factor=3.0)}  # fmt: skip
    predicted = costmodel.predict(net, costmodel.CostModel(**{**base.__dict__, "kinds": kinds, "lanes": 16}),
                                  resolution=side)  # fmt: skip
    hw = side * side
    conv_ms = 0.02 + 2.0 * max(16 * hw * 27 / 50e6, 4 * (3 * hw + 16 * hw + 16 * 27) / 10e6)
    relu_ms = 0.005 + max(16 * hw / 100e6, 4 * 2 * 16 * hw / 20e6)
    assert list(predicted.layers["misaligned"]) == [True, False]
    assert predicted.latency_ms == pytest.approx(conv_ms + relu_ms + 0.001)
    assert predicted.compute_ms == pytest.approx(2.0 * 16 * hw * 27 / 50e6)


def test_in_a_network_each_term_takes_its_factor_by_hand() -> None:
    """The two layers again, with in-network factors 2 (overhead), 1.5 (compute) and 1.25 (memory): the conv's
    compute, the ReLU's traffic and every overhead, the container call's included, scale by their term's factor."""
    side = 32
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.ReLU())
    factors = {"overhead": 2.0, "compute": 1.5, "memory": 1.25}
    predicted = costmodel.predict(net, costmodel.CostModel(**{**fixed_model().__dict__, "network_factors": factors}),
                                  resolution=side)  # fmt: skip
    hw = side * side
    compute, memory, overhead = 16 * hw * 27 / 50e6, 4 * 2 * 16 * hw / 20e6, 0.02 + 0.005 + 0.001
    assert predicted.compute_ms == pytest.approx(1.5 * compute)
    assert predicted.memory_ms == pytest.approx(1.25 * memory)
    assert predicted.overhead_ms == pytest.approx(2.0 * overhead)
    assert predicted.latency_ms == pytest.approx(1.5 * compute + 1.25 * memory + 2.0 * overhead)


def test_the_network_factors_are_recovered_from_whole_networks() -> None:
    rng = np.random.default_rng(2)
    terms = rng.uniform(0.1, 10.0, (30, 3))  # each network's overhead, compute and memory terms, predicted alone
    measured = terms @ np.array([2.0, 1.1, 1.3])
    factors, error = costmodel.fit_network_factors(terms, measured)
    assert factors == {"overhead": pytest.approx(2.0, rel=1e-3), "compute": pytest.approx(1.1, rel=1e-3),
                       "memory": pytest.approx(1.3, rel=1e-3)}  # fmt: skip
    assert error < 1e-3


def test_the_synthetic_networks_are_seeded_and_hold_no_zoo_model() -> None:
    drawn = networks.network_suite(4, seed=3)
    assert [n.name for n in drawn] == [n.name for n in networks.network_suite(4, seed=3)]
    assert [n.name for n in drawn] != [n.name for n in networks.network_suite(4, seed=4)]
    for network in drawn:
        net = network.build()
        homes = {type(m).__module__ for m in net.modules()}
        assert all(h.startswith(("torch.nn.", networks.__name__, suite.__name__)) for h in homes), homes  # no zoo
        profile = costmodel.predict(net, fixed_model(), resolution=network.resolution)
        assert profile.ops > 10 and {"conv", "norm", "activation", "linear"} <= set(profile.by_kind["kind"])
        assert sum(p.numel() for p in net.parameters()) == sum(p.numel() for p in network.build().parameters())


def test_a_global_pool_is_costed_apart_from_a_windowed_one() -> None:
    assert [costmodel.cost_kind("pool", o) for o in ("1×32×1×1", "1×1024", "1×64×56×56", "1×8×7×7")] == [
        "pool_global", "pool_global", "pool", "pool"]  # fmt: skip
    assert costmodel.cost_kind("conv_1x1", "1×32×1×1") == "conv_1x1"
    side = 16
    net = nn.Sequential(nn.MaxPool2d(3, 2, 1), nn.AdaptiveAvgPool2d(1))
    base = fixed_model()
    window, reduce = costmodel.KindCost(0.01, 1.0, 1.0, 1, 0.0), costmodel.KindCost(0.002, 100.0, 50.0, 1, 0.0)
    model = costmodel.CostModel(**{**base.__dict__, "kinds": {**base.kinds, "pool": window, "pool_global": reduce}})
    layers = costmodel.predict(net, model, resolution=side).layers
    # the max pool reads 3·16·16 and writes 3·8·8 elements (9 compares each); the global pool reads 3·8·8, writes 3
    pooled, read = 3 * 8 * 8, 3 * side * side
    assert layers["time_ms"].iloc[0] == pytest.approx(0.01 + max(pooled * 9 / 1e6, 4 * (read + pooled) / 1e6))
    assert layers["time_ms"].iloc[1] == pytest.approx(0.002 + max(pooled / 100e6, 4 * (pooled + 3) / 50e6))
    assert model.cost_of("pool_global") is reduce and fixed_model().cost_of("pool_global") is ELEMENTWISE


def test_unknown_kinds_cost_as_elementwise_ops() -> None:
    partial = costmodel.CostModel(target={"key": "k"}, kinds={"elementwise": ELEMENTWISE}, module_call_ms=0.0,
                                  flops_ms_per_g=1.0, mac_ms_per_gb=1.0, kernels=1)  # fmt: skip
    assert partial.cost_of("shuffle") is ELEMENTWISE and partial.cost_of("other") is ELEMENTWISE


@pytest.mark.parametrize("kind", suite.KERNEL_KINDS)
def test_every_kernel_runs_one_op_of_its_kind(kind: str) -> None:
    kernels = suite.kernel_suite(per_kind=3, kinds=(kind,))
    assert len(kernels) == 3 * (2 if kind.startswith("conv") or kind == "pool" else 1) + 3  # and the containers
    assert suite.suite_size(per_kind=3, kinds=(kind,)) == len(kernels)  # known without drawing them
    for kernel in kernels:
        if kernel.kind == suite.MODULE_KIND:
            continue
        count = suite.count_kernel(kernel)
        assert count.ops == 1 and count.mac_bytes > 0 and count.flops <= suite.MAX_KERNEL_FLOPS, kernel.name
        if kernel.side and kind not in ("shuffle", "elementwise"):  # its op reads the kernel's input first
            assert count.channels[0] == kernel.channels, kernel.name
        assert kernel.kind == kind
    assert [k.name for k in kernels] == [k.name for k in suite.kernel_suite(per_kind=3, kinds=(kind,))]  # seeded


def test_baselines_are_the_median_ratio_over_the_kernels() -> None:
    kernels = pd.DataFrame({
        "kind": ["conv", "conv", "conv", "elementwise", "elementwise", suite.MODULE_KIND],
        "kernel": list("abcdef"), "flops": [1e6, 2e6, 4e6, 0, 0, 0], "flops_elementwise": [0, 0, 0, 1e3, 2e3, 0],
        "mac_bytes": [1e5, 1e5, 1e5, 1e4, 2e4, 0], "ops": [1, 1, 1, 1, 1, 0],
        "time_ms": [0.1, 0.4, 0.4, 0.01, 0.04, 0.002],
    })  # fmt: skip
    fitted = costmodel.fit(kernels, Target(threads=1))
    # ms per multiply-add: 1e-7, 2e-7, 1e-7 → median 1e-7, i.e. 100 ms per G; per byte over all five: median 2e-6
    assert fitted.flops_ms_per_g == pytest.approx(100.0)
    assert fitted.mac_ms_per_gb == pytest.approx(2000.0)
    assert fitted.module_call_ms == pytest.approx(0.002)
    assert fitted.key == "cpu-t1-fp32-nchw-eager" and set(fitted.kinds) == {"conv", "elementwise"}


def test_accuracy_summary_by_hand() -> None:
    measured = pd.Series([10.0, 10.0, 10.0, 10.0])
    predicted = pd.Series([10.5, 8.5, 13.0, 10.0])  # errors 5%, 15%, 30%, 0%
    summary = costmodel.accuracy_summary(predicted, measured)
    assert summary == {"mape": pytest.approx(10.0), "within_10": 50.0, "within_20": 75.0, "models": 4}


def test_json_round_trip_and_bad_files(tmp_path: Path) -> None:
    model = fixed_model()
    path = costmodel.save(model, tmp_path / "a" / "cm.json")
    assert costmodel.load(path) == model
    bad = tmp_path / "bad.json"
    for text, says in (("not json", "is not a cost model's JSON"), ('{"format": 99}', "format 99"),
                       (path.read_text().replace('"memory_gbs": 10.0', '"memory_gbs": -1'), "not a positive"),
                       (json.dumps({"format": 1}), "recalibrate")):  # fmt: skip
        bad.write_text(text)
        with pytest.raises(CnnbenchError, match=says) as err:
            costmodel.load(bad)
        assert "\n" not in str(err.value)
    with pytest.raises(CnnbenchError, match="no cost model at"):
        costmodel.load(tmp_path / "missing.json")


def test_runtime_backends_and_fused_bn_are_refused() -> None:
    with pytest.raises(CnnbenchError, match="eager backend only"):
        costmodel.check_modelled(Target(backend="onnxruntime"))
    with pytest.raises(CnnbenchError, match="fuse-bn"):
        costmodel.check_modelled(Target(fuse_bn=True))


def test_a_small_real_calibration_fits_every_kind() -> None:
    fitted, kernels, timed = costmodel.calibrate(Target(threads=1), per_kind=2, network_count=3)
    assert set(fitted.kinds) == set(suite.KERNEL_KINDS)
    assert (kernels["time_ms"] > 0).all() and len(kernels) == fitted.kernels
    assert fitted.networks == len(timed) == 3 and set(fitted.network_factors) == set(costmodel.TERMS)
    assert (timed["measured_ms"] > 0).all() and (timed["ops"] > 10).all()
    # the baselines' constants come from the networks: their median measured time per multiply-add
    per_madd = np.exp(np.median(np.log(timed["measured_ms"] / timed["flops"])))
    assert fitted.flops_ms_per_g == pytest.approx(float(per_madd) * 1e9)
    for cost in fitted.kinds.values():
        assert cost.overhead_ms > 0 and cost.compute_gops > 0 and cost.memory_gbs > 0
    predicted = costmodel.predict("mobilenet_v3_small", fitted)
    assert predicted.latency_ms > 0 and predicted.ops == len(predicted.layers)
    assert predicted.overhead_ms + predicted.compute_ms + predicted.memory_ms == pytest.approx(predicted.latency_ms)


def test_predict_cli_with_a_cost_model_from_another_device(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = costmodel.save(fixed_model("cuda-fp16-nchw-eager"), tmp_path / "phone.json")
    assert main(["predict", "efficientnet_b*", "--cost-model", str(path), "--by-kind"]) == 0
    out = capsys.readouterr().out
    assert "cuda-fp16-nchw-eager" in out and "efficientnet_b7" in out and "# efficientnet_b0: time per op kind" in out
    assert main(["predict", "--phi", "3.5", "--width", "mobilenet_v1=0.6", "--res", "176", "--cost-model", str(path),
                 "--format", "csv"]) == 0  # fmt: skip
    frame = pd.read_csv(__import__("io").StringIO(capsys.readouterr().out))
    assert list(frame["model"]) == ["efficientnet φ=3.5", "mobilenet_v1 α=0.6"] and set(frame["resolution"]) == {176}
    scaled = costmodel.predict(__import__("zoo.efficientnet").efficientnet.efficientnet_scaled(3.5), fixed_model(),
                               resolution=176)  # fmt: skip
    assert frame.loc[0, "latency_ms"] == pytest.approx(scaled.latency_ms)


@pytest.mark.parametrize(("argv", "says"), [
    (["predict", "resnet18"], "no cost model for cpu"),
    (["predict", "resnet18", "--backend", "onnxruntime"], "eager backend only"),
    (["predict", "--width", "resnet=2"], "FAMILY=ALPHA"),
    (["predict", "--phi", "-1"], "at least 0"),
    (["predict"], "name at least one model"),
    (["calibrate", "--backend", "openvino"], "eager backend only"),
])  # fmt: skip
def test_cli_refuses_in_one_line(argv: list[str], says: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    monkeypatch.setenv("CNNBENCH_CACHE", str(tmp_path))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1 and "Traceback" not in err


def test_calibrate_cli_writes_the_cost_model_predict_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    monkeypatch.setenv("CNNBENCH_CACHE", str(tmp_path))
    monkeypatch.setattr(costmodel, "calibrate", lambda target, per_kind, seed, progress, network_count: (
        costmodel.CostModel(**{**fixed_model().__dict__, "target": {"key": target.key}}), pd.DataFrame(),
        pd.DataFrame()))
    assert main(["calibrate", "--threads", "1"]) == 0
    assert "written to" in capsys.readouterr().out
    stored = costmodel.default_path(Target(threads=1))
    assert stored.exists() and costmodel.load(stored).key == "cpu-t1-fp32-nchw-eager"
    assert main(["predict", "squeezenet1_1", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "squeezenet1_1" in out and "time per op kind" in out and not math.isnan(float(out.split()[-1]))


def test_pick_ranks_by_predicted_latency(tmp_path: Path) -> None:
    from cnnbench.report.pick import pick

    path = costmodel.save(fixed_model(), tmp_path / "cm.json")
    small, big = (costmodel.predict(n, fixed_model()).latency_ms for n in ("mobilenet_v3_small", "resnet18"))
    assert small < big
    ranked = pick((small + big) / 2, models=("mobilenet_v3_small", "resnet18"), results=tmp_path / "results",
                  predicted=path).set_index("model")  # fmt: skip
    assert ranked.loc["mobilenet_v3_small", "latency_ms"] == pytest.approx(small)
    assert ranked.loc["mobilenet_v3_small", "rank"] == 1
    assert "latency" in ranked.loc["resnet18", "excluded_by"] and pd.isna(ranked.loc["resnet18", "rank"])
    assert not (tmp_path / "results" / "latency-cpu-t2-fp32-nchw-eager.csv").exists()  # nothing measured
