"""The latency harness without asserting any wall-clock time: statistics, warm-up logic, BN folding, targets,
the sweep's failure handling, the roofline formula and the CLI's bad input."""

from __future__ import annotations

import io
import itertools
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import conv_linear_madds
from torch import nn

import zoo
from cnnbench.cli import main
from cnnbench.errors import CnnbenchError
from cnnbench.measure.bench import BENCH_COLUMNS, bench
from cnnbench.measure.breakdown import OpTimer
from cnnbench.measure.forward import fuse_batchnorm
from cnnbench.measure.latency import LatencyResult, Timing, measure, time_callable
from cnnbench.measure.roofline import Roofline, roofline_bound_ms
from cnnbench.target import Target, describe, resolve_target

QUICK = Timing(min_time_s=0.0, min_iters=3, window=2, max_warmup_s=0.0, min_warmup_iters=0)


def test_statistics_by_hand() -> None:
    samples = (10.0, 12.0, 11.0, 13.0, 30.0)
    stats = LatencyResult("m", batch=4, resolution=32, samples_ms=samples, warmup_iters=0).stats()
    assert stats["latency_ms_median"] == 12.0
    assert stats["latency_ms_mean"] == pytest.approx(15.2)
    std = math.sqrt(sum((s - 15.2) ** 2 for s in samples) / 4)  # sample standard deviation
    assert stats["latency_ms_std"] == pytest.approx(std)
    assert stats["cv"] == pytest.approx(std / 15.2)
    assert stats["latency_ms_iqr"] == pytest.approx(13.0 - 11.0)  # numpy's linear percentiles: p75 13, p25 11
    assert stats["latency_ms_p95"] == pytest.approx(np.percentile(samples, 95))
    assert stats["throughput_img_s"] == pytest.approx(4 * 1000 / 12.0)


def test_warm_up_ends_when_timings_settle() -> None:
    """A fake clock: the first calls are slow (cold caches), then steady; warm-up must stop soon after."""
    durations = itertools.chain([50.0, 40.0, 30.0, 20.0], itertools.repeat(10.0))
    calls = 0

    def fn() -> None:
        nonlocal calls
        calls += 1

    import cnnbench.measure.latency as latency

    real_timer = latency._timer
    latency._timer = lambda device: (lambda f: (f(), next(durations))[1])  # type: ignore[assignment]
    try:
        samples, warmup = time_callable(fn, torch.device("cpu"), Timing(min_time_s=0.0, min_iters=7, window=2))
    finally:
        latency._timer = real_timer
    # windows: (50, 40) → (30, 20) → (10, 10) → (10, 10) settled: 8 warm-up calls
    assert warmup == 8
    assert samples == [10.0] * 7
    assert calls == 15


@pytest.mark.parametrize("name", ["resnet18", "shufflenet_v2_x0_5", "mobilenet_v3_small"])
def test_fuse_batchnorm_keeps_outputs(name: str) -> None:
    torch.manual_seed(0)
    model = zoo.create_model(name).eval()
    for m in model.modules():  # non-trivial statistics, so that a wrong fold would show
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        expected = model(x)
        fused, folded = fuse_batchnorm(model)
        got = fused(x)
    assert folded == sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) > 0
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_measure_runs_channels_last_and_bf16_on_cpu() -> None:
    target = Target(device="cpu", threads=1, dtype="bf16", channels_last=True)
    result = measure("mobilenet_v3_small", target, batch=2, resolution=32, timing=QUICK)
    assert len(result.samples_ms) >= 3 and all(s > 0 for s in result.samples_ms)
    assert result.target["channels_last"] is True and result.target["dtype"] == "bf16"
    assert result.target["target"] == "cpu-t1-bf16-nhwc-eager"
    assert result.peak_mem_bytes is None  # the CPU reports no device memory high-water mark


@pytest.mark.parametrize("device", ["mps", "cuda"])
def test_per_op_timer_synchronises_on_gpus(device: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Each op is timed between two synchronisations of its device, MPS as well as CUDA; none on the CPU.
    calls: list[str] = []
    monkeypatch.setattr(torch.mps, "synchronize", lambda: calls.append("mps"))
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a: calls.append("cuda"))
    x = torch.ones(4, 4)
    with OpTimer(torch.device(device)) as timer:
        torch.relu(x @ x)
    assert [kind for kind, _ in timer.times] == ["linear", "activation"]
    assert calls == [device] * 4
    calls.clear()
    with OpTimer(torch.device("cpu")):
        torch.relu(x)
    assert calls == []


def test_per_op_timer_times_the_copy_a_contiguous_call_makes() -> None:
    """Under inference mode ``.contiguous()`` of a transposed tensor copies inside ``aten.contiguous``, which no
    mode sees as ``clone``: the timer records it as the shuffle the counting engine counts; a no-op one is free."""
    x = torch.ones(1, 4, 3, 3)
    with torch.inference_mode(), OpTimer(torch.device("cpu")) as timer:
        x.view(1, 2, 2, 3, 3).transpose(1, 2).contiguous()
        x.contiguous()
    assert [kind for kind, _ in timer.times] == ["shuffle"] and timer.ops == ["clone"]


def test_target_descriptions() -> None:
    target, notes = resolve_target(Target(device="cpu", dtype="fp16", threads=2))
    assert any("fp16 on the CPU" in n for n in notes)
    assert target.key == "cpu-t2-fp16-nchw-eager"
    described = describe(target)
    assert {"device_name", "torch", "commit", "cpu", "threads", "dtype", "channels_last", "backend"} <= set(described)
    assert described["torch"] == torch.__version__
    assert "malloc" in str(described["allocator"]) or "not glibc" in str(described["allocator"])


_DESCRIBE_ONLY = """
from cnnbench import allocator
from cnnbench.target import Target, describe
described = describe(Target())["allocator"]
assert allocator.hold_freed_memory.cache_info().currsize == 0, "describe set the allocator"
print(described)
"""


def test_describing_a_target_changes_nothing() -> None:
    """The description says what the allocator does while timing; only a timed region sets it (in a fresh process,
    as this one may already have timed something)."""
    done = subprocess.run([sys.executable, "-c", _DESCRIBE_ONLY], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "malloc" in done.stdout or "not glibc" in done.stdout


_GIVE_BACK = """
from cnnbench.allocator import give_back_freed_memory, hold_freed_memory
def resident():
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS:")).split()[1]) * 1024
if "glibc" not in hold_freed_memory():  # a timed region's setting: freed memory up to 1 GiB is kept
    raise SystemExit(77)
blocks = [bytearray(2**20) for _ in range(256)]  # 256 MiB from the heap (each block under the mmap threshold)
before = resident()
del blocks
held = resident()
give_back_freed_memory()
print(before, held, resident())
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmRSS from /proc")
def test_a_parent_gives_back_what_it_freed() -> None:
    """With freed memory held (as while timing), 256 MiB freed stay resident; given back, they leave (by hand:
    at least 200 MiB of the 256)."""
    done = subprocess.run([sys.executable, "-c", _GIVE_BACK], capture_output=True, text=True)
    if done.returncode == 77:
        pytest.skip("malloc is not glibc's")
    assert done.returncode == 0, done.stderr
    before, held, after = (int(n) for n in done.stdout.split())
    assert held > before - 32 * 2**20  # kept by the 1 GiB trim threshold
    assert held - after > 200 * 2**20


_FAULTS_PER_FORWARD = """
import resource, sys, torch
from cnnbench.allocator import hold_freed_memory
from cnnbench.models import build_model
if sys.argv[1] == "held":
    print(hold_freed_memory(), file=sys.stderr)
net = build_model("mobilenet_v2", device="cpu").model.eval()
x = torch.randn(1, 3, 224, 224)
with torch.inference_mode():
    for _ in range(3):
        net(x)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(4):
        net(x)
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 4)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc and page-fault counts: Linux")
def test_a_forward_reuses_the_memory_the_previous_one_freed() -> None:
    """With glibc's default thresholds, MobileNetV2's 224 px activations (0.4–4.8 MB each) are mapped afresh on
    every forward: about 2,600 page faults of 4 KiB per forward measured here, 10 MB. Held, a warm forward faults
    on (almost) no page: its 10 MB of activations fit in the memory the previous forward freed."""
    def faults(mode: str) -> float:
        done = subprocess.run([sys.executable, "-c", _FAULTS_PER_FORWARD, mode], capture_output=True, text=True,
                              check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
        return float(done.stdout.strip().splitlines()[-1])

    assert faults("default") > 1000  # the control: the effect exists on this libc
    assert faults("held") < 50


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (Target(device="cuda:7"), "use --device cpu" if not torch.cuda.is_available() else "does not exist"),
        (Target(device="tpu"), "unknown device 'tpu'"),
        (Target(threads=0), "--threads must be at least 1"),
        (Target(dtype="fp8"), "unknown dtype 'fp8'"),
        (Target(backend="jit"), "unknown backend 'jit'"),
    ],
)
def test_bad_targets(target: Target, message: str) -> None:
    with pytest.raises(CnnbenchError, match=message):
        resolve_target(target)


def test_sweep_records_a_failing_model_and_goes_on() -> None:
    frame = bench(["alexnet", "mobilenet_v3_small"], Target(threads=1), batches=(1,), resolution=16, timing=QUICK)
    assert list(frame.columns[: len(BENCH_COLUMNS)]) == BENCH_COLUMNS
    assert list(frame["status"]) == ["failed", "ok"]
    assert "too small for alexnet" in frame.loc[0, "error"]
    assert frame.loc[1, "flops"] == conv_linear_madds(zoo.create_model("mobilenet_v3_small"), 16)
    assert frame.loc[1, "latency_ms_median"] > 0 and frame.loc[1, "iters"] >= 3


def test_roofline_bound_by_hand() -> None:
    roof = Roofline("t", peak_flops_per_s=100e9, bandwidth_bytes_per_s=10e9, matmul_size=1024, copy_bytes=1)
    # compute-bound: 2·1e9 FLOP at 100 GFLOP/s = 20 ms beats 1e6 B at 10 GB/s = 0.1 ms
    assert roofline_bound_ms(flops=1_000_000_000, mac_bytes=1_000_000, roof=roof) == pytest.approx(20.0)
    # memory-bound: 1e9 B at 10 GB/s = 100 ms
    assert roofline_bound_ms(flops=1_000_000, mac_bytes=1_000_000_000, roof=roof) == pytest.approx(100.0)
    assert roof.ridge_point == pytest.approx(5.0)  # multiply-adds per byte where the two bounds meet


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_bench_cli_csv(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(
        capsys, "bench", "shufflenet_v2_x0_5", "--res", "32", "--batch", "1,2", "--threads", "1",
        "--min-time", "0.01", "--no-roofline", "--format", "csv",
    )
    assert code == 0
    frame = pd.read_csv(io.StringIO(out))
    assert list(frame["batch"]) == [1, 2]
    assert set(BENCH_COLUMNS) <= set(frame.columns)
    assert {"device_name", "torch", "commit", "threads", "dtype", "target"} <= set(frame.columns)
    assert (frame["status"] == "ok").all() and (frame["latency_ms_median"] > 0).all()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["bench", "resnet18", "--batch", "0"], "every --batch must be at least 1"),
        (["bench", "resnet18", "--batch", "a,b"], "comma-separated integers"),
        (["bench", "resnet18", "--device", "mps"], "not available on this machine"),
        (["bench", "resnet18", "--threads", "0"], "argument --threads: must be at least 1"),
        (["bench", "efficientnet_b9"], "closest: efficientnet_b"),
        (["bench", "alexnet", "--res", "16", "--no-roofline"], "the smallest it takes is 63"),
    ],
)
def test_bench_cli_bad_input(capsys: pytest.CaptureFixture[str], argv: list[str], expected: str) -> None:
    code, out, err = run_cli(capsys, *argv)
    assert (code, out) == (2, "")
    assert expected in err
    assert len(err.strip().splitlines()) == 1
