"""The deployment runtimes: each model's forward on every runtime and dtype it takes (this test's row), and the
overhead cnnbench's harness adds over a bare loop of the runtime's own call on the same loaded object.

``extra_info["ratio"]`` = cnnbench's median (``time_callable`` over :class:`RuntimeForward`) / the median of a bare
loop of the runtime's own call (:data:`BARE`), each call timed by ``time.perf_counter``, in interleaved rounds on
one loaded model. The goal is at most 1.03, checked here. Each runtime runs every dtype it takes: an int8 file is
made (and cached) as cnnbench's latency rows make it, by :func:`~cnnbench.runtimes.session.deployable`, calibrated
on the same default images (the digits).

    pytest benchmarks/test_runtimes.py --benchmark-only --threads 1 --models mobilenet_v3_small,resnet18
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any

import numpy as np
import pytest
import torch

import zoo
from cnnbench.measure.forward import running
from cnnbench.measure.latency import Timing, time_callable
from cnnbench.runtimes.session import runtime_forward
from cnnbench.target import RUNTIMES, Target, describe

ROUNDS = 5
ROUND_S = 0.4
GOAL = 1.03


def _ncnn(loaded: Any, x: np.ndarray) -> Callable[[], object]:
    """An app's per-frame ncnn call: a fresh extractor, the image in, the output out. ``loaded.net`` is the
    ``ncnn.Net`` itself; everything below is ncnn's own API."""
    import ncnn

    net = loaded.net
    input_name, output_name = net.input_names()[0], net.output_names()[0]
    mat = ncnn.Mat(np.ascontiguousarray(x[0], dtype=np.float32)).clone()

    def call() -> object:
        extractor = net.create_extractor()
        extractor.input(input_name, mat)
        return extractor.extract(output_name)

    return call


# The bare call per backend: from the runtime's own loaded object (``Session.raw``) and the input batch, the
# runtime's own call on an input made once with the runtime's own types. Nothing of cnnbench runs inside it.
BARE: dict[str, Callable[[Any, np.ndarray], Callable[[], object]]] = {
    "onnxruntime": lambda session, x: partial(session.run, None, {session.get_inputs()[0].name: x}),
    "openvino": lambda request, x: partial(request.infer, {request.model_inputs[0].get_any_name(): x}),
    "executorch": lambda method, x: partial(method.execute, [torch.from_numpy(x)]),
    "ncnn": _ncnn,
}
CASES = [pytest.param(b, d, id=f"{b}-{d}") for b, runtime in RUNTIMES.items() for d in runtime.dtypes]


def _bare(call: Callable[[], object], seconds: float) -> float:
    """Median ms of ``call``, with nothing of cnnbench around it but the clock."""
    samples, started = [], time.perf_counter()
    while time.perf_counter() - started < seconds:
        t0 = time.perf_counter()
        call()
        samples.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(samples)


def test_every_runtime_has_a_bare_call() -> None:
    assert set(BARE) == set(RUNTIMES)


@pytest.mark.parametrize(("backend", "dtype"), CASES)
@pytest.mark.benchmark(group="runtime-overhead")
def test_runtime_harness_overhead(benchmark, target: Target, model_name: str, backend: str, dtype: str) -> None:  # type: ignore[no-untyped-def]
    if target.torch_device.type not in RUNTIMES[backend].devices:
        pytest.skip(f"cnnbench runs {backend} on {' or '.join(RUNTIMES[backend].devices)} only")
    runtime = replace(target, backend=backend, dtype=dtype, channels_last=False, fuse_bn=False)
    info = zoo.model_info(model_name)
    forward = runtime_forward(None, runtime, 1, info.resolution, name=model_name)
    bare = BARE[backend](forward.session.raw, forward.x)
    ours, theirs = [], []
    with running(runtime):
        time_callable(forward, runtime.torch_device, Timing(min_time_s=0.5))  # warm both up once
        for _ in range(ROUNDS):  # interleaved, so that drift on a shared machine hits both
            samples, _ = time_callable(forward, runtime.torch_device, Timing(min_time_s=ROUND_S, max_warmup_s=0.2))
            ours.append(statistics.median(samples))
            theirs.append(_bare(bare, ROUND_S))
        benchmark.pedantic(forward, rounds=20, warmup_rounds=2, iterations=1)
    ratio = statistics.median(ours) / statistics.median(theirs)
    about = {f"target_{k}": v for k, v in describe(runtime).items()}
    benchmark.extra_info.update({"model": model_name, "backend": backend, "dtype": dtype, "ours_ms": ours,
                                 "bare_ms": theirs, "ratio": ratio, **about})  # fmt: skip
    print(f"\n{model_name} on {backend} {dtype}: cnnbench / bare {backend} loop = {ratio:.3f}")
    assert ratio <= GOAL, f"cnnbench adds {100 * (ratio - 1):.1f}% over a bare {backend} loop (goal ≤ 3%)"
