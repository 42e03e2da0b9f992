"""Latency of a model on a target: warm up until timings settle, then time iterations until a minimum time.

The method, and why:

- eval mode and ``torch.inference_mode()``: what deployment runs;
- one input tensor made once (random normal, channels-last when asked), reused every iteration;
- per-iteration timing, samples kept: CUDA events around each forward on a GPU (the host clock would time the
  launch, not the kernels), ``torch.mps.synchronize()`` on an Apple GPU, ``time.perf_counter`` on the CPU;
- warm-up in windows of ``window`` iterations until the median of a window is within ``settle`` of the previous
  one (allocator, cuDNN autotuning, oneDNN primitive caches and torch.compile all settle), bounded by
  ``max_warmup_s``;
- then iterations until both ``min_time_s`` and ``min_iters`` are reached.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode

from .counting import HANDLES, KINDS, ZERO_COST
from .errors import CnnbenchError
from .models import build_model
from .target import Target, describe, resolve_target

__all__ = [
    "Timing", "LatencyResult", "measure", "prepare", "fuse_batchnorm", "warm_up", "time_iterations", "time_callable",
    "time_by_kind",
]  # fmt: skip


@dataclass(frozen=True)
class Timing:
    """How long to measure."""

    min_time_s: float = 1.0
    min_iters: int = 10
    window: int = 5  # warm-up window, iterations
    settle: float = 0.05  # a window's median within 5% of the previous one ends the warm-up
    max_warmup_s: float = 10.0
    min_warmup_iters: int = 3


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
        """One flat record: model, batch, statistics, memory, target description."""
        return {
            "model": self.model,
            "batch": self.batch,
            "resolution": self.resolution,
            **self.stats(),
            "warmup_iters": self.warmup_iters,
            "peak_mem_bytes": self.peak_mem_bytes,
            "notes": self.notes,
            **{k: v for k, v in self.target.items()},
        }


def fuse_batchnorm(model: nn.Module) -> tuple[nn.Module, int]:
    """Fold every BatchNorm that directly follows a convolution into it (eval only); returns (model, folded).

    Tries torch.fx's conv-BN fusion on the traced graph first (it sees through any module layout); models that fx
    cannot trace (shape-dependent code such as channel shuffle) fall back on folding adjacent Conv2d → BatchNorm2d
    children of every ``nn.Sequential``, which covers the zoo's conv-BN-activation blocks.
    """
    from torch.fx.experimental.optimization import fuse as fx_fuse
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    before = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    try:
        fused: nn.Module = fx_fuse(model)
    except Exception:  # noqa: BLE001 - any tracing failure sends us to the structural fallback
        fused = model
        for container in list(fused.modules()):
            if not isinstance(container, nn.Sequential):
                continue
            children = list(container._modules.items())
            for (_, first), (bn_name, second) in zip(children, children[1:], strict=False):
                if isinstance(first, nn.Conv2d) and isinstance(second, nn.BatchNorm2d):
                    conv_name = next(n for n, m in children if m is first)
                    container._modules[conv_name] = fuse_conv_bn_eval(first, second)
                    container._modules[bn_name] = nn.Identity()
    after = sum(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
    return fused, before - after


def prepare(model: nn.Module, target: Target) -> tuple[nn.Module, list[str]]:
    """Move a model to the target's device and layout, optionally fold BN and compile. Returns notes."""
    notes: list[str] = []
    model = model.eval()
    if target.fuse_bn:
        model, folded = fuse_batchnorm(model)
        left = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
        notes.append(f"fuse-bn folded {folded} BatchNorm" + (f", {left} left (not after a conv)" if left else ""))
    model = model.to(target.torch_device)
    if target.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if target.backend == "compile":
        model = torch.compile(model)  # type: ignore[assignment]
    return model, notes


@contextlib.contextmanager
def _threads(n: int | None) -> Iterator[None]:
    previous = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _autocast(target: Target) -> contextlib.AbstractContextManager[object]:
    if target.dtype == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=target.torch_device.type, dtype=target.torch_dtype)


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
) -> LatencyResult:
    """Measure one model at one batch size on one target. ``model`` is a module or a name (zoo, timm:, torchvision:).

    Raises :class:`CnnbenchError` for an unavailable target, a bad batch, or a model that runs out of memory.
    """
    target, notes = resolve_target(target or Target())
    timing = timing or Timing()
    if batch < 1:
        raise CnnbenchError(f"batch must be at least 1, got {batch}")
    if isinstance(model, str):
        resolved = build_model(model, device="cpu")
        name, net = name or model, resolved.model
        resolution = resolution or resolved.resolution
    else:
        name, net = name or type(model).__name__, model
        resolution = resolution or int(getattr(model, "resolution", 224))
    device = target.torch_device
    net, prep_notes = prepare(net, target)
    notes += prep_notes
    x = torch.randn(batch, 3, resolution, resolution, device=device)
    if target.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)

    def forward() -> Tensor:
        with _autocast(target):
            return net(x)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    try:
        with _threads(target.threads), torch.inference_mode():
            samples, warmup = time_callable(forward, device, timing)
    except torch.OutOfMemoryError:
        raise CnnbenchError(
            f"{name} ran out of memory at batch {batch} on {target.device}; try a smaller --batch"
        ) from None
    except RuntimeError as err:
        message = str(err).lower()
        if "out of memory" in message or "can't allocate memory" in message:  # CUDA / CPU allocator wording
            raise CnnbenchError(f"{name} ran out of memory at batch {batch}; try a smaller --batch") from None
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
    )


class _OpTimer(TorchDispatchMode):
    """Times every aten op (synchronised on a GPU) and names its kind with the counting engine's handles."""

    def __init__(self, device: torch.device) -> None:
        super().__init__()
        self.device = device
        self.times: list[tuple[str, float]] = []

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        elif self.device.type == "mps":
            torch.mps.synchronize()

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        self._sync()
        t0 = time.perf_counter()
        result = func(*args, **kwargs)
        self._sync()
        elapsed = (time.perf_counter() - t0) * 1e3
        packet = func.overloadpacket
        if packet in ZERO_COST:
            return result
        handle = HANDLES.get(packet)
        outputs = [t for t in (result if isinstance(result, (tuple, list)) else [result]) if isinstance(t, Tensor)]
        kind = handle(args, kwargs, outputs).kind if handle is not None else "other"
        self.times.append((kind, elapsed))
        return result


def time_by_kind(
    model: nn.Module | str,
    target: Target | None = None,
    batch: int = 1,
    resolution: int | None = None,
    repeats: int = 5,
) -> pd.DataFrame:
    """Time per op kind (conv, conv_1x1, conv_depthwise, ..., the counting engine's kinds) of one forward.

    Every aten op is timed on its own (synchronised on a GPU, CUDA or MPS), ``repeats`` times after a warm-up; the
    median per op is summed per kind, and ``timed_ops`` counts the ops of each kind. The per-op synchronisation and
    Python dispatch add a little to each op, so use the shares, not the sum, beside :func:`measure`'s end-to-end
    latency.
    """
    target, _ = resolve_target(target or Target())
    if isinstance(model, str):
        resolved = build_model(model, device="cpu")
        net, resolution = resolved.model, resolution or resolved.resolution
    else:
        net, resolution = model, resolution or int(getattr(model, "resolution", 224))
    net, _ = prepare(net, replace(target, backend="eager"))
    x = torch.randn(batch, 3, resolution, resolution, device=target.torch_device)
    if target.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    runs: list[list[tuple[str, float]]] = []
    with _threads(target.threads), torch.inference_mode(), _autocast(target):
        net(x)  # warm-up
        for _ in range(repeats):
            timer = _OpTimer(target.torch_device)
            with timer:
                net(x)
            runs.append(timer.times)
    kinds = [k for k, _ in runs[0]]
    per_op = np.median(np.array([[t for _, t in run] for run in runs]), axis=0)
    grouped = pd.DataFrame({"kind": kinds, "time_ms": per_op}).groupby("kind", sort=False)["time_ms"]
    frame = pd.DataFrame({"timed_ops": grouped.size(), "time_ms": grouped.sum()})
    frame = frame.reindex([k for k in KINDS if k in frame.index]).rename_axis("kind").reset_index()
    frame["time_share"] = frame["time_ms"] / frame["time_ms"].sum()
    return frame
