"""A fixed speed probe of about 0.2 s: how fast this machine is right now, so that a stored figure is reused only on
a machine as fast as the one that measured it.

Two runs on "the same" VM can differ by 10-30% for hours (another guest on the host, a new host after a restart);
the hardware description cannot see that. The probe times three kernels that stand for what a CNN's forward does:

- a GEMM (384 × 384 × 384, fp32): the compute of dense and 1×1 convolutions;
- a depthwise 3×3 convolution (1 × 256 × 56 × 56): the memory-bound kernels of lightweight networks;
- a 16 MiB copy (32 MiB moved): memory bandwidth beyond the core's caches.

Each kernel is warmed for :data:`WARM_S` (the first calls in a fresh process run up to 5× slower: the thread pool,
oneDNN's primitives, first-touch pages), then the three run in rounds until the probe has spent
:data:`PROBE_BUDGET_S`; ``probe_ms`` is the sum of each kernel's fastest round, so a moment of interference does
not move it while a slower machine does. It runs on the target's
device with the target's threads. A report probes at its start and again every :data:`PROBE_EVERY_S`; each timed
row records the latest probe (``probe_ms``), and a stored row is reused only while today's probe is within
:data:`cnnbench.provenance.PROBE_TOLERANCE` of it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from cnnbench.measure.disturbance import Disturbance, watch
from cnnbench.measure.forward import running, synchronize
from cnnbench.target import Target

__all__ = ["PROBE_BUDGET_S", "PROBE_EVERY_S", "WARM_S", "ProbeResult", "speed_probe", "Probe"]

PROBE_BUDGET_S = 0.2
WARM_S = 0.03  # per kernel, before the timed rounds
PROBE_EVERY_S = 180.0  # a report probes again after this long (the VM's speed was seen to move within minutes)
_ROUNDS_MIN = 3


@dataclass(frozen=True)
class ProbeResult:
    probe_ms: float  # the sum of each kernel's fastest round
    parts_ms: dict[str, float]  # each kernel's fastest round
    disturbance: Disturbance


def speed_probe(target: Target | None = None) -> ProbeResult:
    """Time the probe's three kernels on ``target``'s device with its threads (see the module doc)."""
    target = target or Target()
    device = target.torch_device
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(384, 384, generator=generator).to(device)
    b = torch.randn(384, 384, generator=generator).to(device)
    feature = torch.randn(1, 256, 56, 56, generator=generator).to(device)
    depthwise = torch.randn(256, 1, 3, 3, generator=generator).to(device)
    source = torch.randn(4 * 2**20, generator=generator).to(device)  # 16 MiB of fp32
    destination = torch.empty_like(source)
    kernels: dict[str, Callable[[], object]] = {
        "gemm": lambda: torch.mm(a, b),
        "depthwise": lambda: F.conv2d(feature, depthwise, padding=1, groups=256),
        "copy": lambda: destination.copy_(source),
    }
    best = {name: float("inf") for name in kernels}
    with running(target), watch(target.threads) as seen:
        for kernel in kernels.values():  # warm: the thread pool, oneDNN's primitive cache, the copy's pages
            warm_until = time.perf_counter() + WARM_S
            while time.perf_counter() < warm_until:
                kernel()
                synchronize(device)
        started, rounds = time.perf_counter(), 0
        while rounds < _ROUNDS_MIN or time.perf_counter() - started < PROBE_BUDGET_S:
            for name, kernel in kernels.items():
                synchronize(device)
                t0 = time.perf_counter()
                kernel()
                synchronize(device)
                best[name] = min(best[name], (time.perf_counter() - t0) * 1e3)
            rounds += 1
    return ProbeResult(sum(best.values()), best, seen[0])


class Probe:
    """The latest speed probe of a run, taken again once it is older than ``every_s``.

    ``run`` runs the probe (by default in a child process, as rows are timed: :func:`run_isolated`). A probe taken
    while another process held the CPUs is taken again once."""

    def __init__(
        self, target: Target, every_s: float = PROBE_EVERY_S, run: Callable[[Target], ProbeResult] | None = None
    ) -> None:
        self.target, self.every_s = target, every_s
        self._run = run or _isolated_probe
        self._latest: ProbeResult | None = None
        self._taken = 0.0

    def ms(self) -> float:
        """The probe's time in ms, from the last probe or a new one."""
        if self._latest is None or time.perf_counter() - self._taken > self.every_s:
            result = self._run(self.target)
            if result.disturbance.disturbed:
                result = self._run(self.target)
            self._latest, self._taken = result, time.perf_counter()
        return self._latest.probe_ms


def _isolated_probe(target: Target) -> ProbeResult:
    from cnnbench.measure.isolated import run_isolated

    return run_isolated(speed_probe, target)
