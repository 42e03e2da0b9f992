"""Latency of zoo models on a target, one pytest-benchmark test per model × batch, and two side-by-side checks.

Every test times a real forward of the model it names (pytest-benchmark's row is that forward's latency); the two
checks also time it with other harnesses or against its twin, side by side in one run, and store the ratios in
``extra_info``.

Synchronisation: on CUDA each timed call ends with ``torch.cuda.synchronize()`` (pytest-benchmark's clock is the
host's, so the call must not return before the GPU is done); on MPS with ``torch.mps.synchronize()``.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import replace

import pytest
import torch
import torch.utils.benchmark as tb
from torch import nn

import zoo
from cnnbench.measure.disturbance import watch
from cnnbench.measure.forward import forward_on, running
from cnnbench.measure.latency import Timing, measure
from cnnbench.measure.probe import speed_probe
from cnnbench.measure.profiling import profile
from cnnbench.models import build_model
from cnnbench.target import Target, describe


def _forward(model: nn.Module, target: Target, batch: int, resolution: int) -> Callable[[], object]:
    # pytest-benchmark reads the host clock: each call waits for the device (sync=True)
    return forward_on(model, target, batch, resolution, sync=True)


@pytest.mark.benchmark(group="latency")
def test_latency(benchmark, target: Target, model_name: str, batch: int) -> None:  # type: ignore[no-untyped-def]
    info = zoo.model_info(model_name)
    counts = profile(model_name, batch=batch, dtype=target.dtype, training_memory=False, autocast=True).totals
    run = _forward(zoo.create_model(model_name), target, batch, info.resolution)
    benchmark.group = f"latency-batch{batch}"
    benchmark.extra_info.update(
        {
            "model": model_name,
            "family": info.family,
            "batch": batch,
            "resolution": info.resolution,
            "params": counts.params,
            "flops": counts.flops,  # multiply-adds
            "mac": counts.mac,
            "mac_bytes": counts.mac_bytes,
            "published_top1": info.published.top1,
            **{f"target_{k}": v for k, v in describe(target).items()},
            "probe_ms": speed_probe(target).probe_ms,  # the machine's speed now (cnnbench.measure.probe)
        }
    )
    with running(target):
        for _ in range(3):  # warm-up outside the measurement: allocator, oneDNN/cuDNN caches, torch.compile
            run()
        with watch(target.threads) as seen:  # did another process take the CPUs while it was timed?
            benchmark.pedantic(run, rounds=20, warmup_rounds=2, iterations=1)
    benchmark.extra_info.update(seen[0].columns())


@pytest.mark.benchmark(group="latency-overhead")
def test_latency_harness_overhead(benchmark, target: Target, model_name: str) -> None:  # type: ignore[no-untyped-def]
    """The model's forward timed by three harnesses side by side: ours (``measure``), torch.utils.benchmark's
    blocked_autorange, and pytest-benchmark itself (this test's row). ``extra_info["ratio"]`` = ours / torch's
    median, the overhead our harness adds (goal: at most 3%); ``ratio_vs_pytest_benchmark`` = ours / this row's."""
    info = zoo.model_info(model_name)
    model = zoo.create_model(model_name).eval()
    run = _forward(model, target, 1, info.resolution)
    ours, theirs = [], []
    with running(target):
        for _ in range(3):  # alternate the two so that drift on a shared machine hits both
            result = measure(model, target, 1, info.resolution, Timing(min_time_s=0.5), name=model_name)
            ours.append(result.median_ms)
            timer = tb.Timer(stmt="run()", globals={"run": run}, num_threads=target.threads or torch.get_num_threads())
            theirs.append(timer.blocked_autorange(min_run_time=0.5).median * 1e3)
        benchmark.pedantic(run, rounds=20, warmup_rounds=2, iterations=1)
    ratio = statistics.median(ours) / statistics.median(theirs)
    pytest_ms = benchmark.stats.stats.median * 1e3
    benchmark.extra_info.update({
        "model": model_name, "ours_ms": ours, "torch_benchmark_ms": theirs, "pytest_benchmark_ms": pytest_ms,
        "ratio": ratio, "ratio_vs_pytest_benchmark": statistics.median(ours) / pytest_ms,
    })  # fmt: skip
    print(f"\n{model_name}: cnnbench / torch.utils.benchmark = {ratio:.3f}, cnnbench / pytest-benchmark = "
          f"{statistics.median(ours) / pytest_ms:.3f}")


@pytest.mark.benchmark(group="latency-twin")
def test_latency_vs_twin(benchmark, target: Target, model_name: str) -> None:  # type: ignore[no-untyped-def]
    """Our model against its torchvision twin holding the same weights, and our model with BN folded, in
    interleaved rounds; the ratios go in ``extra_info``. This test's pytest-benchmark row times the twin's forward,
    the denominator of both ratios."""
    info = zoo.model_info(model_name)
    if not info.reference or not info.reference.startswith("torchvision:"):
        pytest.skip(f"{model_name} has no torchvision twin with the same state_dict")
    if target.runtime:
        pytest.skip("a runtime runs the exported graph: BN is folded there, and the twin exports the same graph")
    ours = zoo.create_model(model_name).eval()
    twin = build_model(info.reference, device="cpu").model.eval()
    twin.load_state_dict(ours.state_dict())
    plain, fused = replace(target, fuse_bn=False), replace(target, fuse_bn=True)
    timing = Timing(min_time_s=0.5)
    medians: dict[str, list[float]] = {"ours": [], "twin": [], "ours_fused": []}
    for _ in range(3):  # interleaved rounds
        medians["ours"].append(measure(ours, plain, 1, info.resolution, timing).median_ms)
        medians["twin"].append(measure(twin, plain, 1, info.resolution, timing).median_ms)
        medians["ours_fused"].append(
            measure(zoo.create_model(model_name).eval(), fused, 1, info.resolution, timing).median_ms
        )
    m = {k: statistics.median(v) for k, v in medians.items()}
    ratios = {"ours/twin": m["ours"] / m["twin"], "ours_fused/twin": m["ours_fused"] / m["twin"]}
    benchmark.extra_info.update({"model": model_name, "twin": info.reference, "median_ms": m, **ratios})
    run = _forward(twin, plain, 1, info.resolution)
    with running(target):
        for _ in range(3):
            run()
        benchmark.pedantic(run, rounds=20, warmup_rounds=2, iterations=1)
    print(f"\n{model_name}: ours/twin {ratios['ours/twin']:.3f}, fused/twin {ratios['ours_fused/twin']:.3f}")
