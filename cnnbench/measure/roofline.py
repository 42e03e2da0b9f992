"""The roofline of a target: attainable compute (a large matmul or 3×3 conv) and memory bandwidth (a large copy).

A model's roofline lower bound on latency is ``max(2·flops / peak_flops, mac_bytes / bandwidth)``: the time it
would take if it ran at the target's peak compute or streamed its memory traffic at full bandwidth, whichever is
slower. ``flops`` are multiply-adds, so they count twice against a peak in floating-point operations per second.
The attained fraction is that bound over the measured latency (1.0 = at the roof).
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch

from cnnbench.measure.forward import autocast, forward_on, running
from cnnbench.measure.latency import Timing, time_callable
from cnnbench.provenance import git_commit, machine_identity, now
from cnnbench.store import atomic_write_text, cache_root, code_fingerprint
from cnnbench.target import RUNTIMES, Target, resolve_target

__all__ = ["Roofline", "measure_roofline", "cached_roofline", "roofline_bound_ms", "default_cache"]


@dataclass(frozen=True)
class Roofline:
    target: str  # Target.key
    peak_flops_per_s: float  # FLOP/s (2 per multiply-add): the faster of a large matmul and a large 3×3 conv
    bandwidth_bytes_per_s: float  # bytes read + written per second, large copy
    matmul_size: int
    copy_bytes: int
    machine: str = ""  # where and when it was measured (cnnbench.provenance)
    commit: str = ""
    measured_at: str = ""

    @property
    def ridge_point(self) -> float:
        """Arithmetic intensity (multiply-adds per byte) where a kernel turns from memory- to compute-bound."""
        return self.peak_flops_per_s / 2 / self.bandwidth_bytes_per_s


def measure_roofline(target: Target, timing: Timing | None = None) -> Roofline:
    """Measure peak matmul throughput and copy bandwidth on the target (a few seconds on a CPU)."""
    target, _ = resolve_target(target)
    timing = timing or Timing(min_time_s=0.5, min_iters=3, max_warmup_s=3.0)
    device = target.torch_device
    n, peak = _peak_matmul(target)
    peak = max(peak, _peak_conv(target))
    elements = (64 if device.type == "cpu" else 256) * 2**20  # 256 MB (1 GB on a GPU) of fp32: far beyond any cache
    src = torch.empty(elements, device=device, dtype=target.torch_dtype)
    dst = torch.empty_like(src)
    with running(target):
        copy_ms, _ = time_callable(lambda: dst.copy_(src), device, timing)
    copy_s = sorted(copy_ms)[len(copy_ms) // 2] / 1e3
    copy_bytes = 2 * src.numel() * src.element_size()  # read once, written once
    return Roofline(target.key, peak, copy_bytes / copy_s, n, copy_bytes, machine_identity(device), git_commit(), now())


def _peak_matmul(target: Target, max_n: int = 8192, max_call_ms: float = 500.0) -> tuple[int, float]:
    """(side, FLOP/s) of the fastest square matmul among sides 512, 1024, ...: throughput rises with size until the
    kernel saturates the machine; sizes stop growing once a call takes ``max_call_ms`` (bf16 on an older CPU runs at
    ~1 GFLOP/s) or throughput falls."""
    timing = Timing(min_time_s=0.3, min_iters=3, window=2, max_warmup_s=1.0)
    best_n, best, n = 512, 0.0, 512
    while n <= max_n:
        a = torch.randn(n, n, device=target.torch_device)
        with running(target):

            def matmul(a: torch.Tensor = a) -> object:
                with autocast(target):
                    return a @ a

            samples, _ = time_callable(matmul, target.torch_device, timing)
        ms = sorted(samples)[len(samples) // 2]
        rate = 2 * n**3 / (ms / 1e3)
        if rate < best:
            break
        best_n, best = n, rate
        if ms > max_call_ms:
            break
        n *= 2
    return best_n, best


def _peak_conv(target: Target) -> float:
    """FLOP/s of a large dense 3×3 convolution (256 → 256 channels on 56×56, batch 4, or 1 on a runtime that takes
    one image): on CPUs oneDNN's direct convolutions outrun the BLAS matmul, so the attainable compute is the faster
    of the two."""
    timing = Timing(min_time_s=0.3, min_iters=3, window=2, max_warmup_s=1.0)
    conv = torch.nn.Conv2d(256, 256, 3, padding=1, bias=False)
    batch = 1 if target.runtime and RUNTIMES[target.backend].batch_one else 4  # ncnn takes one image per call
    forward = forward_on(conv, target, batch, 56, channels=256, copy_model=False)
    with running(target):
        samples, _ = time_callable(forward, target.torch_device, timing)
    ms = sorted(samples)[len(samples) // 2]
    return 2 * batch * 56 * 56 * 256 * 256 * 9 / (ms / 1e3)


def default_cache() -> Path:
    return cache_root() / "roofline.json"


def cached_roofline(target: Target, cache: Path | None = None, refresh: bool = False) -> Roofline:
    """The target's roofline from the cache, measured once if absent.

    Keyed by target, machine identity, torch version and the code of this module, so another machine with the same
    host name and CPU, or a changed measurement, measures anew. The cache is rewritten atomically under a unique
    temporary name, so two runs at once cannot clobber each other's half-written file.
    """
    target, _ = resolve_target(target)
    cache = cache or default_cache()
    code = code_fingerprint(None, [sys.modules[__name__]])
    key = f"v3|{target.key}|{machine_identity(target.torch_device)}|{torch.__version__}|{code}"
    entries: dict[str, dict[str, object]] = {}
    if cache.exists():
        try:
            entries = json.loads(cache.read_text())
        except (OSError, json.JSONDecodeError):
            entries = {}
    known = {f.name for f in fields(Roofline)}
    if key in entries and not refresh and set(entries[key]) <= known:
        return Roofline(**entries[key])  # type: ignore[arg-type]
    roof = measure_roofline(target)
    entries[key] = asdict(roof)
    atomic_write_text(cache, json.dumps(entries, indent=2))
    return roof


def roofline_bound_ms(flops: int, mac_bytes: int, roof: Roofline) -> float:
    """The roofline lower bound on latency in ms: max(2·flops / peak, mac_bytes / bandwidth)."""
    return 1e3 * max(2 * flops / roof.peak_flops_per_s, mac_bytes / roof.bandwidth_bytes_per_s)
