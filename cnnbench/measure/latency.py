"""Latency of a model on a target: warm up until timings settle, then time iterations until a minimum time.

The method, and why:

- eval mode and ``torch.inference_mode()``: what deployment runs;
- one input tensor made once (random normal, channels-last when asked), reused every iteration;
- per-iteration timing, samples kept: CUDA events around each forward on a GPU (the host clock would time the
  launch, not the kernels), ``torch.mps.synchronize()`` on an Apple GPU, ``time.perf_counter`` on the CPU;
- warm-up in windows of ``window`` iterations until the median of a window is within ``settle`` of the previous
  one (allocator, cuDNN autotuning, oneDNN primitive caches and torch.compile all settle), bounded by
  ``max_warmup_s``;
- then iterations until both ``min_time_s`` and ``min_iters`` are reached, watched for other processes taking the
  CPUs (:func:`cnnbench.measure.disturbance.watch`): every row says whether it was ``disturbed`` and what share of
  the CPU time its threads asked for they had (``cpu_share``).

Beside the steady state, what a deployer also asks (:class:`ColdStart`): the export and quantization times of a
runtime's file, the load (building and preparing the module, or creating the runtime's session), the first
inference, and the resident memory's high-water mark during inference above what was resident after the load
(Linux: ``VmHWM`` reset through ``/proc/self/clear_refs``). Run in a fresh process
(:func:`cnnbench.measure.isolated.run_isolated`), that peak is the inference's own.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from cnnbench.errors import CnnbenchError, first_line
from cnnbench.measure.disturbance import Disturbance, watch
from cnnbench.measure.forward import forward_on, running, synchronize
from cnnbench.models import resolve
from cnnbench.target import Target, describe, resolve_target

if TYPE_CHECKING:
    from cnnbench.runtimes.int8 import Calibration

__all__ = [
    "Timing",
    "QUICK_TIMING",
    "REPORT_TIMING",
    "LatencyResult",
    "ColdStart",
    "measure",
    "warm_up",
    "time_iterations",
    "time_callable",
    "resident_bytes",
    "samples_text",
    "parse_samples",
]


@dataclass(frozen=True)
class Timing:
    """How long to measure."""

    min_time_s: float = 1.0
    min_iters: int = 10
    window: int = 5  # warm-up window, iterations
    settle: float = 0.05  # a window's median within 5% of the previous one ends the warm-up
    max_warmup_s: float = 10.0
    min_warmup_iters: int = 3


# `--quick` everywhere (a first look, and the tests): 0.1 s and 3 iterations at least, a short warm-up. Figures
# taken with it are never reused by a run with full timing (the report stamps its rows ``quick``).
QUICK_TIMING = Timing(min_time_s=0.1, min_iters=3, window=2, max_warmup_s=0.5, min_warmup_iters=0)
# The report times ~60 models on four targets, and the guideline tables, within 15 minutes on a 2-core CPU: each row
# gets 0.3 s and at least 5 iterations (EfficientNet-B7 and the VGGs stop at 5), after at most 2 s of warm-up in
# windows of 3. `bench` keeps the longer default (1 s, 10 iterations); a row records the timing it was measured
# with, and a row is reused only under the same timing.
REPORT_TIMING = Timing(min_time_s=0.3, min_iters=5, window=3, max_warmup_s=2.0)


@dataclass(frozen=True)
class ColdStart:
    """What happens before the steady state, and the memory the inference takes. Seconds and bytes."""

    export_s: float | None = None  # torch.onnx.export (runtimes; from the cache's record when the file was cached)
    quantize_s: float | None = None  # INT8 pre-processing, calibration and quantization (int8 targets)
    load_s: float | None = None  # building and preparing the module (eager, compile), or the runtime's session
    first_inference_ms: float | None = None  # the first forward after the load (torch.compile compiles here)
    peak_rss_bytes: int | None = None  # resident memory high-water mark during inference, above that after load


_STATUS = Path("/proc/self/status")


def resident_bytes(field_name: str = "VmRSS") -> int | None:
    """This process's resident memory (``VmRSS``) or its high-water mark (``VmHWM``) in bytes; None off Linux."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    """Reset the resident high-water mark to the current resident size (Linux ≥ 4.0); False where it cannot."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


@dataclass(frozen=True)
class LatencyResult:
    """Per-iteration samples and their statistics, for one model, batch and target. Times in milliseconds."""

    model: str
    batch: int
    resolution: int
    samples_ms: tuple[float, ...]
    warmup_iters: int
    target: dict[str, object] = field(default_factory=dict)  # describe(target)
    peak_mem_bytes: int | None = None  # device memory high-water mark of the timed run (CUDA only)
    notes: str = ""
    cold: ColdStart = field(default_factory=ColdStart)
    disturbance: Disturbance = field(default_factory=Disturbance)  # what the machine gave the timed iterations

    @property
    def median_ms(self) -> float:
        return float(np.median(self.samples_ms))

    def stats(self) -> dict[str, float]:
        s = np.asarray(self.samples_ms)
        p5, p25, p75, p95, p99 = np.percentile(s, [5, 25, 75, 95, 99])
        mean = float(s.mean())
        std = float(s.std(ddof=1)) if len(s) > 1 else 0.0
        median = float(np.median(s))
        return {
            "latency_ms_median": median,
            "latency_ms_mean": mean,
            "latency_ms_std": std,
            "latency_ms_iqr": float(p75 - p25),
            "latency_ms_p5": float(p5),
            "latency_ms_p95": float(p95),
            "latency_ms_p99": float(p99),
            "cv": std / mean if mean else 0.0,
            "throughput_img_s": 1000.0 * self.batch / median if median else 0.0,
            "iters": float(len(s)),
        }

    def row(self) -> dict[str, object]:
        """One flat record: model, batch, statistics, memory, the samples (:func:`samples_text`), target description."""
        return {
            "model": self.model,
            "batch": self.batch,
            "resolution": self.resolution,
            **self.stats(),
            "warmup_iters": self.warmup_iters,
            "peak_mem_bytes": self.peak_mem_bytes,
            **asdict(self.cold),
            **self.disturbance.columns(),
            "notes": self.notes,
            "samples_ms": samples_text(self.samples_ms),
            **{k: v for k, v in self.target.items()},
        }


def samples_text(samples_ms: Sequence[float]) -> str:
    """Per-iteration times as one text field, space-separated, to 5 significant digits (0.01% at worst): how a
    results table keeps them (``samples_ms``), so that a later run can be compared with this one."""
    return " ".join(f"{x:.5g}" for x in samples_ms)


def parse_samples(text: str) -> tuple[float, ...]:
    """The times :func:`samples_text` wrote; ``ValueError`` for text that is not numbers."""
    return tuple(float(x) for x in text.split())


def _timer(device: torch.device) -> Callable[[Callable[[], object]], float]:
    """A function that runs ``fn`` once and returns its duration in ms, synchronised for the device."""
    if device.type == "cuda":

        def cuda_time(fn: Callable[[], object]) -> float:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            return float(start.elapsed_time(end))

        return cuda_time
    if device.type == "mps":

        def mps_time(fn: Callable[[], object]) -> float:
            torch.mps.synchronize()
            t0 = time.perf_counter()
            fn()
            torch.mps.synchronize()
            return (time.perf_counter() - t0) * 1e3

        return mps_time

    def cpu_time(fn: Callable[[], object]) -> float:
        t0 = time.perf_counter()
        fn()
        return (time.perf_counter() - t0) * 1e3

    return cpu_time


def warm_up(fn: Callable[[], object], device: torch.device, timing: Timing) -> int:
    """Run ``fn`` in windows until a window's median settles (see :class:`Timing`); returns the iterations run."""
    once = _timer(device)
    warmup, previous, started = 0, None, time.perf_counter()
    while True:
        window = [once(fn) for _ in range(timing.window)]
        warmup += timing.window
        median = statistics.median(window)
        settled = previous is not None and abs(median - previous) <= timing.settle * previous
        if (settled and warmup >= timing.min_warmup_iters) or time.perf_counter() - started > timing.max_warmup_s:
            return warmup
        previous = median


def time_iterations(fn: Callable[[], object], device: torch.device, min_time_s: float, min_iters: int) -> list[float]:
    """Per-iteration times (ms) of ``fn``, synchronised for the device, until both ``min_time_s`` and ``min_iters``."""
    once = _timer(device)
    samples: list[float] = []
    started = time.perf_counter()
    while len(samples) < min_iters or time.perf_counter() - started < min_time_s:
        samples.append(once(fn))
    return samples


def time_callable(fn: Callable[[], object], device: torch.device, timing: Timing) -> tuple[list[float], int]:
    """Warm up until settled, then time; returns (samples in ms, warm-up iterations)."""
    warmup = warm_up(fn, device, timing)
    return time_iterations(fn, device, timing.min_time_s, timing.min_iters), warmup


def measure(
    model: nn.Module | str,
    target: Target | None = None,
    batch: int = 1,
    resolution: int | None = None,
    timing: Timing | None = None,
    name: str | None = None,
    calibration: Path | Calibration | None = None,
) -> LatencyResult:
    """Measure one model at one batch size on one target. ``model`` is a module or a name (zoo, timm:, torchvision:).

    On a deployment runtime a named model's export is cached (:mod:`cnnbench.runtimes.export`); an int8 target
    calibrates on ``calibration``: a :class:`cnnbench.runtimes.int8.Calibration`, an image folder, or by default
    the digits.
    Raises :class:`CnnbenchError` for an unavailable target, a bad batch, or a model that runs out of memory.
    """
    target, notes = resolve_target(target or Target())
    timing = timing or Timing()
    if batch < 1:
        raise CnnbenchError(f"batch must be at least 1, got {batch}")
    started = time.perf_counter()
    # On a runtime a named model's export is cached by its name, and built for real only if the file is missing:
    # here the meta device gives its resolution, with no weights.
    resolved = resolve(model, resolution, name=name, device="meta" if target.runtime else "cpu")
    name, net, resolution = resolved.name, resolved.model, resolved.resolution
    cached_name = resolved.spec if target.runtime else None
    device = target.torch_device
    if isinstance(calibration, Path):  # an image folder: preprocessed as this model's reference evaluates
        from cnnbench.runtimes.int8 import latency_calibration

        calibration = latency_calibration(name, resolution, calibration)
    forward = forward_on(
        net, target, batch, resolution, copy_model=not resolved.built, name=cached_name, calibration=calibration
    )
    notes += forward.notes
    load_s = getattr(forward, "load_s", time.perf_counter() - started)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    try:
        with running(target):
            baseline = resident_bytes() if _reset_peak() else None
            t0 = time.perf_counter()
            forward()
            synchronize(device)
            first_ms = (time.perf_counter() - t0) * 1e3
            warmup = warm_up(forward, device, timing)
            with watch(target.threads) as seen:
                samples = time_iterations(forward, device, timing.min_time_s, timing.min_iters)
            high = resident_bytes("VmHWM") if baseline is not None else None
    except torch.OutOfMemoryError:
        raise CnnbenchError(
            f"{name} ran out of memory at batch {batch} on {target.device}; try a smaller --batch"
        ) from None
    except RuntimeError as err:
        message = str(err).lower()
        if "out of memory" in message or "can't allocate memory" in message:  # CUDA / CPU allocator wording
            raise CnnbenchError(f"{name} ran out of memory at batch {batch}; try a smaller --batch") from None
        if target.runtime:
            raise CnnbenchError(f"{target.backend} failed running {name} ({first_line(err)[:160]})") from None
        raise
    peak = int(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else None
    return LatencyResult(
        model=name,
        batch=batch,
        resolution=resolution,
        samples_ms=tuple(samples),
        warmup_iters=warmup,
        target=describe(target),
        peak_mem_bytes=peak,
        notes="; ".join(notes),
        cold=ColdStart(
            getattr(forward, "export_s", None),
            getattr(forward, "quantize_s", None),
            load_s,
            first_ms,
            max(0, high - baseline) if high is not None and baseline is not None else None,
        ),
        disturbance=seen[0],
    )
