"""The speed probe: its parts and sum, and when a run takes it again. Its figure is never asserted (wall clock)."""

from __future__ import annotations

import pytest

from cnnbench.measure import probe as probe_module
from cnnbench.measure.disturbance import Disturbance
from cnnbench.measure.probe import Probe, ProbeResult, speed_probe
from cnnbench.target import Target


@pytest.mark.real_probe
def test_the_probe_is_the_sum_of_its_kernels_fastest_rounds() -> None:
    result = speed_probe(Target(threads=1))
    assert set(result.parts_ms) == {"gemm", "depthwise", "copy"}
    assert all(ms > 0 for ms in result.parts_ms.values())
    assert result.probe_ms == pytest.approx(sum(result.parts_ms.values()))
    assert result.disturbance.window_s > 0


@pytest.mark.real_probe
def test_a_run_probes_once_then_again_when_stale_or_disturbed(monkeypatch: pytest.MonkeyPatch) -> None:
    taken: list[float] = []
    readings = iter([(5.0, 0.5), (4.0, 0.99), (6.0, 0.99)])

    def fake(target: Target) -> ProbeResult:
        ms, share = next(readings)
        taken.append(ms)
        return ProbeResult(ms, {"gemm": ms}, Disturbance(cpu_share=share))

    now = [0.0]
    monkeypatch.setattr(probe_module.time, "perf_counter", lambda: now[0])
    probe = Probe(Target(threads=1), every_s=100.0, run=fake)
    assert probe.ms() == 4.0 and taken == [5.0, 4.0]  # the first was disturbed: taken again at once
    now[0] = 50.0
    assert probe.ms() == 4.0 and len(taken) == 2  # still fresh
    now[0] = 200.0
    assert probe.ms() == 6.0 and len(taken) == 3  # stale: taken again
