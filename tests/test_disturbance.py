"""The disturbance detector: readings from fake /proc files computed by hand, the thresholds, the quieting policy with
a fake machine, and one real competitor (a busy loop per core) that must be seen."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import pytest
import torch

from cnnbench.measure import disturbance
from cnnbench.measure.disturbance import MAX_STEAL, MIN_CPU_SHARE, Disturbance, Load, Quieting, watch


def _fake_proc(root: Path, threads: dict[str, tuple[int, int, int]], stat: tuple[int, ...]) -> None:
    """/proc/self/task/<tid>/{schedstat,status} and /proc/stat as the kernel writes them."""
    for tid, (on_cpu, waiting, switches) in threads.items():
        folder = root / "task" / tid
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "schedstat").write_text(f"{on_cpu} {waiting} 7\n")
        (folder / "status").write_text(f"Name:\tpython\nvoluntary_ctxt_switches:\t3\nnonvoluntary_ctxt_switches:\t"
                                       f"{switches}\n")  # fmt: skip
    (root / "stat").write_text("cpu  " + " ".join(map(str, stat)) + " 0 0\ncpu0 1 2 3\nprocs_running 3\n")


def test_a_window_is_read_as_the_kernel_counts_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two threads: 0.6 s and 0.2 s more on a CPU, 0.2 s more waiting in a run queue: a share of 0.8 by hand. The
    machine: 210 ticks in all, of which user+system 150, nice 10 (not counted), steal 20."""
    monkeypatch.setattr(disturbance, "_TASKS", tmp_path / "task")
    monkeypatch.setattr(disturbance, "_STAT", tmp_path / "stat")
    monkeypatch.setattr(os, "times", lambda: os.times_result((0.0, 0.0, 0.0, 0.0, 0.0)))
    _fake_proc(tmp_path, {"11": (10**9, 0, 4), "12": (5 * 10**8, 10**8, 1)}, (1000, 0, 100, 5000, 0, 0, 0, 0))
    window = disturbance._Window(threads=2)
    _fake_proc(tmp_path, {"11": (16 * 10**8, 10**8, 14), "12": (7 * 10**8, 2 * 10**8, 1)},
               (1120, 10, 130, 5030, 0, 0, 0, 20))  # fmt: skip
    window.wall -= 1.0  # the window lasted a second (and a little)
    seen = window.close()
    assert seen.cpu_share == pytest.approx(0.8)
    assert seen.cpu_steal == pytest.approx(20 / 210)
    assert seen.cpu_others == pytest.approx(150 / 210)  # this process used no CPU time here
    assert seen.involuntary_switches_per_s == pytest.approx(10, rel=0.01)
    assert seen.disturbed and seen.reasons == [f"cpu_share 0.80 < {MIN_CPU_SHARE}", f"steal 0.10 > {MAX_STEAL}"]


def test_a_thread_born_in_the_window_counts_from_zero(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(disturbance, "_TASKS", tmp_path / "task")
    monkeypatch.setattr(disturbance, "_STAT", tmp_path / "stat")
    _fake_proc(tmp_path, {"11": (10**9, 0, 0)}, (0,) * 8)
    window = disturbance._Window(threads=1)
    _fake_proc(tmp_path, {"11": (2 * 10**9, 0, 0), "13": (3 * 10**8, 10**8, 0)}, (0,) * 8)
    assert window.close().cpu_share == pytest.approx(13 / 14)


def test_without_schedstat_the_share_is_cpu_time_over_wall_time(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setattr(disturbance, "_TASKS", tmp_path / "no-such-folder")
    monkeypatch.setattr(disturbance, "_STAT", tmp_path / "no-stat")
    clock = iter([0.0, 2.0])
    cpu = iter([(1.0, 0.0, 0, 0, 0), (2.0, 1.0, 0, 0, 0)])
    monkeypatch.setattr(disturbance, "_clock", lambda: next(clock))
    monkeypatch.setattr(os, "times", lambda: os.times_result((*next(cpu)[:2], 0.0, 0.0, 0.0)))
    seen = disturbance._Window(threads=2).close()
    assert seen.cpu_share == pytest.approx(2.0 / (2.0 * 2))  # 2 s of CPU time in 2 s on 2 threads
    assert seen.cpu_steal is None and seen.cpu_others is None


@pytest.mark.parametrize(
    ("reading", "flagged"),
    [
        (Disturbance(cpu_share=0.995, cpu_steal=0.0), False),
        (Disturbance(cpu_share=MIN_CPU_SHARE), False),
        (Disturbance(cpu_share=0.5), True),
        (Disturbance(cpu_share=0.99, cpu_steal=0.2), True),
        (Disturbance(), False),  # nothing known: not flagged
    ],
)
def test_the_thresholds(reading: Disturbance, flagged: bool) -> None:
    assert reading.disturbed is flagged
    assert reading.columns()["disturbed"] is flagged


def test_the_worst_of_several_windows() -> None:
    worst = Disturbance.worst([Disturbance(0.99, 0.1, 0.0, 5.0, 1.0), Disturbance(0.6, 0.4, None, 50.0, 2.0)])
    assert (worst.cpu_share, worst.cpu_others, worst.cpu_steal, worst.window_s) == (0.6, 0.4, 0.0, 3.0)


class FakeMachine:
    """A machine busy for its first ``busy`` samples, quiet after; each sample counts 1 s of a fake clock."""

    def __init__(self, busy: int) -> None:
        self.busy, self.samples, self.now = busy, 0, 0.0

    def load(self, sample_s: float = 0.5, top: int = 3) -> Load:
        self.samples += 1
        self.now += 1.0
        quiet = self.samples > self.busy
        return Load(0.0 if quiet else 1.0, 0.0, () if quiet else ((42, "yes", 100.0),))


def _policy(monkeypatch: pytest.MonkeyPatch, machine: FakeMachine, **bounds: float) -> tuple[Quieting, list[str]]:
    monkeypatch.setattr(disturbance, "machine_load", machine.load)
    monkeypatch.setattr(disturbance, "_clock", lambda: machine.now)
    said: list[str] = []
    return Quieting(say=said.append, **bounds), said  # type: ignore[arg-type]


def test_a_disturbed_row_is_measured_again_once_the_machine_is_quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    policy, said = _policy(monkeypatch, FakeMachine(busy=3))
    results = iter([Disturbance(cpu_share=0.5), Disturbance(cpu_share=0.99)])
    result, attempts = policy.measure("m", lambda: next(results), lambda r: r)
    assert attempts == 2 and not result.disturbed
    assert "waiting up to 20 s" in said[0] and "undisturbed now" in said[-1]


def test_a_machine_busy_all_along_keeps_the_flag_within_the_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    machine = FakeMachine(busy=10**6)
    policy, said = _policy(monkeypatch, machine, wait_s=5.0, budget_s=12.0)
    calls = []

    def run() -> Disturbance:
        calls.append(1)
        return Disturbance(cpu_share=0.5)

    for row in range(4):
        result, attempts = policy.measure(f"row{row}", run, lambda r: r)
        assert result.disturbed and attempts == 1  # never measured again under the same load
    assert len(calls) == 4
    assert policy.waited_s <= 12.0 + 1.0  # the run's budget, within one sample
    assert any("still busy" in line and "yes (pid 42) 100%" in line for line in said)


def test_retries_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    policy, _ = _policy(monkeypatch, FakeMachine(busy=0), retries=2)
    result, attempts = policy.measure("m", lambda: Disturbance(cpu_share=0.5), lambda r: r)
    assert attempts == 3 and result.disturbed


def _busy_loop(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


@pytest.mark.slow
def test_a_busy_loop_on_every_core_is_seen() -> None:
    """A real competitor: one busy loop per core, started before a timed window of torch work on every core. The
    threshold leaves a wide margin: quiet windows read 0.99 and more, this one about 0.5."""
    threads = len(os.sched_getaffinity(0))
    x, w = torch.randn(1, 64, 56, 56), torch.randn(64, 64, 3, 3)
    context = multiprocessing.get_context("fork")
    loops = [context.Process(target=_busy_loop, args=(4.0,)) for _ in range(threads)]
    for loop in loops:
        loop.start()
    try:
        time.sleep(0.3)
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        with watch(threads) as seen:
            end = time.perf_counter() + 1.0
            while time.perf_counter() < end:
                torch.nn.functional.conv2d(x, w, padding=1)
        torch.set_num_threads(previous)
    finally:
        for loop in loops:
            loop.join()
    assert seen[0].disturbed and seen[0].cpu_share is not None and seen[0].cpu_share < 0.8
    assert seen[0].cpu_others is not None and seen[0].cpu_others > 0.3
