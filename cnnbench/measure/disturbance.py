"""Whether a timed row had the machine to itself: what the machine gave the measuring threads while they were timed.

A competing process (a browser, an indexer, a second benchmark) makes a row slower without making it noisy: a
busy loop that lasts the whole row slows every iteration alike, so the row's own spread (cv) cannot see it. What
can see it is the scheduler's account of the measuring process, read before and after the timed iterations
(:func:`watch`):

- ``cpu_share``: of the time the measuring threads wanted a CPU (on one, or waiting in its run queue), the
  fraction they had one. Linux keeps both per thread (``/proc/self/task/*/schedstat``: time on the CPU, time
  runnable but waiting). Alone on the machine a thread waits a few microseconds per wake-up, and the share is
  0.99 or more; beside a busy loop on every core the scheduler splits each core in two, and it falls to about 0.5.
  A niced competitor gets a small slice (nice 19 weighs 15 against 1024) and leaves it near 1: that is a
  competitor that does not change the figure. Where ``schedstat`` is missing (macOS, a kernel without it), the
  share is the process's CPU time over wall time × threads, which a thread that sleeps also lowers.
- ``cpu_others``: CPU time the rest of the machine spent, outside this process and outside niced processes, as a
  fraction of all its CPUs (``/proc/stat``).
- ``cpu_steal``: the fraction of the machine's CPU time the hypervisor gave to other guests (``/proc/stat``'s
  steal): a VM's neighbours, whom no process list shows.
- ``involuntary_switches_per_s``: how often the measuring threads were taken off their CPU against their will.

A row is ``disturbed`` when ``cpu_share`` is below :data:`MIN_CPU_SHARE` or ``cpu_steal`` above :data:`MAX_STEAL`.
The thresholds were set on real competitors on a 2-core VM (docs/results.md gives the figures).
:func:`machine_load` samples the machine between rows: who else is busy, and whether it is quiet again
(:class:`Quieting` waits for that, then re-measures a disturbed row, within bounds).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from cnnbench.measure.resident import process_children

__all__ = [
    "MIN_CPU_SHARE",
    "MAX_STEAL",
    "QUIET_OTHERS",
    "Disturbance",
    "DISTURBANCE_COLUMNS",
    "watch",
    "Load",
    "machine_load",
    "Quieting",
]

# Below this share of the CPU time its threads asked for, a row was slowed by another process. Quiet rows on a
# 2-core VM gave 0.985-1.0; one busy loop per core 0.45-0.6; a second cnnbench 0.5-0.8; a niced loop 0.97-0.99.
MIN_CPU_SHARE = 0.9
# Above this fraction of the machine's CPU time stolen by the hypervisor during a row, the row is disturbed.
MAX_STEAL = 0.05
# The machine counts as quiet when the other (un-niced) processes use less than this fraction of all its CPUs.
QUIET_OTHERS = 0.10

T = TypeVar("T")


def _clock() -> float:
    """The clock of windows and waits (tests replace it)."""
    return time.perf_counter()


@dataclass(frozen=True)
class Disturbance:
    """What the machine gave one timed window. Fractions in 0..1; None where the system does not tell."""

    cpu_share: float | None = None
    cpu_others: float | None = None
    cpu_steal: float | None = None
    involuntary_switches_per_s: float | None = None
    window_s: float = 0.0

    @property
    def reasons(self) -> list[str]:
        reasons = []
        if self.cpu_share is not None and self.cpu_share < MIN_CPU_SHARE:
            reasons.append(f"cpu_share {self.cpu_share:.2f} < {MIN_CPU_SHARE}")
        if self.cpu_steal is not None and self.cpu_steal > MAX_STEAL:
            reasons.append(f"steal {self.cpu_steal:.2f} > {MAX_STEAL}")
        return reasons

    @property
    def disturbed(self) -> bool:
        return bool(self.reasons)

    def columns(self) -> dict[str, object]:
        """The row's disturbance columns (:data:`DISTURBANCE_COLUMNS`)."""
        return {
            "disturbed": self.disturbed,
            "cpu_share": _rounded(self.cpu_share),
            "cpu_others": _rounded(self.cpu_others),
            "cpu_steal": _rounded(self.cpu_steal),
            "involuntary_switches_per_s": _rounded(self.involuntary_switches_per_s, 1),
            "disturbance": "; ".join(self.reasons),
        }

    @staticmethod
    def worst(items: list[Disturbance]) -> Disturbance:
        """The least favourable reading of several windows (a network timed whole, then op by op)."""

        def low(values: list[float | None]) -> float | None:
            known = [v for v in values if v is not None]
            return min(known) if known else None

        def high(values: list[float | None]) -> float | None:
            known = [v for v in values if v is not None]
            return max(known) if known else None

        return Disturbance(
            cpu_share=low([d.cpu_share for d in items]),
            cpu_others=high([d.cpu_others for d in items]),
            cpu_steal=high([d.cpu_steal for d in items]),
            involuntary_switches_per_s=high([d.involuntary_switches_per_s for d in items]),
            window_s=sum(d.window_s for d in items),
        )


# The columns every timed row carries, in this order (``attempts``: how many times it was measured).
DISTURBANCE_COLUMNS = (
    "disturbed",
    "cpu_share",
    "cpu_others",
    "cpu_steal",
    "involuntary_switches_per_s",
    "disturbance",
    "attempts",
)


def _rounded(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)


# --- reading the counters -----------------------------------------------------------------------------------------

_TASKS = Path("/proc/self/task")
_STAT = Path("/proc/stat")


@dataclass(frozen=True)
class _Threads:
    """Per thread of this process: (ns on a CPU, ns runnable but waiting, involuntary switches)."""

    by_tid: dict[str, tuple[int, int, int]]


def _read_threads() -> _Threads | None:
    try:
        tids = os.listdir(_TASKS)
    except OSError:
        return None
    found: dict[str, tuple[int, int, int]] = {}
    for tid in tids:
        try:
            on_cpu, waiting, _ = (int(v) for v in (_TASKS / tid / "schedstat").read_text().split()[:3])
            switches = 0
            for line in (_TASKS / tid / "status").read_text().splitlines():
                if line.startswith("nonvoluntary_ctxt_switches:"):
                    switches = int(line.split()[1])
            found[tid] = (on_cpu, waiting, switches)
        except (OSError, ValueError):
            continue  # a thread that ended between the listing and the read
    return _Threads(found) if found else None


def _read_machine() -> tuple[int, ...] | None:
    """/proc/stat's first line: user nice system idle iowait irq softirq steal (clock ticks, all CPUs)."""
    try:
        first = _STAT.read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    if not first or first[0] != "cpu":
        return None
    return tuple(int(v) for v in first[1:9])


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _busy_not_niced(ticks: tuple[int, ...]) -> int:
    user, _nice, system, _idle, _iowait, irq, softirq, _steal = ticks
    return user + system + irq + softirq


@dataclass
class _Window:
    """Readings at the start of a window; :meth:`close` turns them into a :class:`Disturbance`."""

    threads: int
    wall: float = field(default_factory=lambda: _clock())
    process_cpu: float = field(default_factory=lambda: sum(os.times()[:2]))
    tasks: _Threads | None = field(default_factory=_read_threads)
    machine: tuple[int, ...] | None = field(default_factory=_read_machine)

    def close(self) -> Disturbance:
        wall = _clock() - self.wall
        process_cpu = sum(os.times()[:2]) - self.process_cpu
        tasks, machine = _read_threads(), _read_machine()
        share = switches = None
        if self.tasks is not None and tasks is not None:
            on_cpu = waiting = involuntary = 0
            for tid, (cpu_ns, wait_ns, count) in tasks.by_tid.items():
                before = self.tasks.by_tid.get(tid, (0, 0, 0))
                on_cpu += cpu_ns - before[0]
                waiting += wait_ns - before[1]
                involuntary += count - before[2]
            share = on_cpu / (on_cpu + waiting) if on_cpu + waiting > 0 else None
            switches = involuntary / wall if wall > 0 else None
        elif wall > 0:  # no schedstat: the process's CPU time against what its threads could have had
            share = min(1.0, process_cpu / (wall * max(1, self.threads)))
        others = steal = None
        if self.machine is not None and machine is not None:
            delta = [b - a for a, b in zip(self.machine, machine, strict=True)]
            total = sum(delta)
            if total > 0:
                tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
                busy = _busy_not_niced(tuple(delta)) / tick - process_cpu
                others = max(0.0, busy / (total / tick))
                steal = delta[7] / total
        return Disturbance(share, others, steal, switches, wall)


@contextmanager
def watch(threads: int | None = None) -> Iterator[list[Disturbance]]:
    """Watch the block: on exit the yielded list holds what the machine gave this process during it.

    ``threads`` is how many threads the block runs (the target's), for the fallback without ``schedstat``."""
    window = _Window(threads or 1)
    seen: list[Disturbance] = []
    try:
        yield seen
    finally:
        seen.append(window.close())


# --- the machine between rows -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    """A short sample of the whole machine: other processes' share of all CPUs, steal, and the busiest of them."""

    others: float | None
    steal: float | None
    busiest: tuple[tuple[int, str, float], ...] = ()  # (pid, name, % of one CPU), busiest first

    @property
    def quiet(self) -> bool:
        return (self.others is None or self.others < QUIET_OTHERS) and (self.steal is None or self.steal <= MAX_STEAL)

    def describe(self) -> str:
        """``others use 98% of the CPUs, steal 0%; busiest: python3 (pid 812) 99%, ...``"""
        parts = []
        if self.others is not None:
            parts.append(f"other processes use {self.others:.0%} of the {_cpus()} CPUs")
        if self.steal:
            parts.append(f"the hypervisor steals {self.steal:.0%}")
        text = ", ".join(parts) or "no load figures on this system"
        if self.busiest:
            text += "; busiest: " + ", ".join(f"{name} (pid {pid}) {cpu:.0f}%" for pid, name, cpu in self.busiest)
        return text


def _process_ticks(exclude: set[int]) -> dict[int, tuple[str, int]]:
    """user+system clock ticks of every process but ``exclude`` (Linux /proc)."""
    ticks: dict[int, tuple[str, int]] = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else ():
        if not entry.isdigit() or int(entry) in exclude:
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        name = text[text.find("(") + 1 : text.rfind(")")]
        fields = text[text.rfind(")") + 2 :].split()
        ticks[int(entry)] = (name, int(fields[11]) + int(fields[12]))  # utime, stime
    return ticks


def _own_tree() -> set[int]:
    """This process and its descendants (the children that measure, the forkserver)."""
    children, tree, stack = process_children(), set(), [os.getpid()]
    while stack:
        pid = stack.pop()
        tree.add(pid)
        stack += children.get(pid, [])
    return tree


def machine_load(sample_s: float = 0.5, top: int = 3) -> Load:
    """Sample the machine for ``sample_s`` while this process waits: the other processes' CPU use (niced ones
    apart: they yield to us), steal, and the ``top`` busiest processes outside this process tree."""
    exclude = _own_tree()
    window = _Window(1)
    before = _process_ticks(exclude)
    time.sleep(sample_s)
    after = _process_ticks(exclude)
    seen = window.close()
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    elapsed = max(seen.window_s, 1e-3)
    use = [
        (pid, name, (ticks - before[pid][1]) / tick / elapsed * 100)
        for pid, (name, ticks) in after.items()
        if pid in before and ticks > before[pid][1]
    ]
    use.sort(key=lambda item: -item[2])
    return Load(seen.cpu_others, seen.cpu_steal, tuple((p, n, round(c)) for p, n, c in use[:top] if c >= 5))


@dataclass
class Quieting:
    """What to do about a disturbed row: wait for the machine to be quiet, then measure it again.

    At most ``retries`` re-measurements a row; each waits up to ``wait_s`` for quiet, and the whole run waits at
    most ``budget_s`` (after that a disturbed row keeps its flag at once). A row is re-measured only once the
    machine has been seen quiet: measured again under the same load, it would be disturbed again. ``say`` gets
    one line for each thing done (the CLI prints it as progress)."""

    retries: int = 2
    wait_s: float = 20.0
    budget_s: float = 120.0
    say: Callable[[str], None] = lambda line: None
    waited_s: float = 0.0

    def wait_for_quiet(self, limit_s: float) -> Load:
        """Sample the machine until it is quiet or ``limit_s`` (within the run's budget) has passed."""
        limit_s = max(0.0, min(limit_s, self.budget_s - self.waited_s))
        started = _clock()
        load = machine_load()
        while not load.quiet and _clock() - started < limit_s:
            load = machine_load()
        self.waited_s += _clock() - started
        return load

    def measure(
        self, label: str, run: Callable[[], T], disturbance: Callable[[T], Disturbance | None]
    ) -> tuple[T, int]:
        """``run()`` until its result is undisturbed, or the retries or the wait run out; (result, attempts)."""
        result, attempts = run(), 1
        while (seen := disturbance(result)) is not None and seen.disturbed and attempts <= self.retries:
            reasons = "; ".join(seen.reasons)
            left = max(0.0, self.budget_s - self.waited_s)
            self.say(
                f"{label}: disturbed ({reasons}); waiting up to {min(self.wait_s, left):.0f} s for quiet, "
                f"then measuring again ({attempts}/{self.retries})"
            )
            load = self.wait_for_quiet(self.wait_s)
            if not load.quiet:
                self.say(f"{label}: still busy ({load.describe()}); kept and flagged disturbed")
                break
            result, attempts = run(), attempts + 1
        else:
            if attempts > 1:
                state = "still disturbed, flagged" if seen is not None and seen.disturbed else "undisturbed now"
                self.say(f"{label}: measured {attempts} times, {state}")
        return result, attempts
