"""The deployment runtimes: each model's forward on ONNX Runtime and OpenVINO (this test's row), and the overhead
cnnbench's harness adds over a bare loop of the runtime's own call on the same session.

``extra_info["ratio"]`` = cnnbench's median (``time_callable`` over :class:`RuntimeForward`) / the median of a bare
loop of ``session.run(None, feed)`` or ``request.infer(feed)``, each call timed by ``time.perf_counter``, in
interleaved rounds on one session. The goal is at most 1.03, checked here.

    pytest benchmarks/test_runtimes.py --benchmark-only --threads 1 --models mobilenet_v3_small,resnet18
"""

from __future__ import annotations

import statistics
import time
from dataclasses import replace

import pytest

import zoo
from cnnbench.measure.forward import forward_on, running
from cnnbench.measure.latency import Timing, time_callable
from cnnbench.runtimes.session import RuntimeForward
from cnnbench.target import RUNTIMES, Target, describe

ROUNDS = 5
ROUND_S = 0.4
GOAL = 1.03


def _bare(forward: RuntimeForward, seconds: float) -> float:
    """Median ms of the runtime's own call, with nothing of cnnbench around it but the clock."""
    raw, feed = forward.session.raw, forward.session.feed(forward.x)
    call = raw.run if forward.target.backend == "onnxruntime" else raw.infer  # type: ignore[attr-defined]
    args = (None, feed) if forward.target.backend == "onnxruntime" else (feed,)
    samples, started = [], time.perf_counter()
    while time.perf_counter() - started < seconds:
        t0 = time.perf_counter()
        call(*args)
        samples.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(samples)


@pytest.mark.parametrize("backend", RUNTIMES)
@pytest.mark.benchmark(group="runtime-overhead")
def test_runtime_harness_overhead(benchmark, target: Target, model_name: str, backend: str) -> None:  # type: ignore[no-untyped-def]
    runtime = replace(target, backend=backend, dtype="fp32", channels_last=False, fuse_bn=False)
    info = zoo.model_info(model_name)
    forward = forward_on(zoo.create_model(model_name), runtime, 1, info.resolution)
    assert isinstance(forward, RuntimeForward)
    ours, bare = [], []
    with running(runtime):
        time_callable(forward, runtime.torch_device, Timing(min_time_s=0.5))  # warm both up once
        for _ in range(ROUNDS):  # interleaved, so that drift on a shared machine hits both
            samples, _ = time_callable(forward, runtime.torch_device, Timing(min_time_s=ROUND_S, max_warmup_s=0.2))
            ours.append(statistics.median(samples))
            bare.append(_bare(forward, ROUND_S))
        benchmark.pedantic(forward, rounds=20, warmup_rounds=2, iterations=1)
    ratio = statistics.median(ours) / statistics.median(bare)
    about = {f"target_{k}": v for k, v in describe(runtime).items()}
    benchmark.extra_info.update({"model": model_name, "backend": backend, "ours_ms": ours, "bare_ms": bare,
                                 "ratio": ratio, **about})  # fmt: skip
    print(f"\n{model_name} on {backend}: cnnbench / bare {backend} loop = {ratio:.3f}")
    assert ratio <= GOAL, f"cnnbench adds {100 * (ratio - 1):.1f}% over a bare {backend} loop (goal ≤ 3%)"
