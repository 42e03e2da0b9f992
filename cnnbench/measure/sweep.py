"""Sweeps of a model on one target: throughput and latency against batch size, and speed-up against CPU threads.

Every row is a :func:`cnnbench.measure.bench.iter_bench` row (its statistics, counts and target description), so a
sweep's figures read the same as ``cnnbench bench``'s. Throughput is images per second, ``1000 · batch / median
ms``. In a threads sweep, ``speedup`` is the median latency at the fewest threads measured over the median at this
count (exactly 1 at the fewest) and ``efficiency`` is speed-up per added thread, ``speedup / (threads / fewest)``:
1.0 is linear scaling.

A thread count may exceed the cores present (``os.cpu_count()``), up to :data:`MAX_OVERSUBSCRIPTION` times them, to
show what oversubscription costs: such a row is ``oversubscribed`` (a column of every sweep row), and it times the
scheduler's sharing of the cores among the runtime's own threads as well as the model. Its ``cpu_share`` is low
because its threads wait for each other, not because another process took the CPUs, so it is not measured again
for it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from cnnbench.errors import CnnbenchError
from cnnbench.measure.bench import as_frame, iter_bench
from cnnbench.measure.disturbance import Quieting
from cnnbench.measure.latency import Timing
from cnnbench.measure.probe import Probe, speed_probe
from cnnbench.measure.roofline import Roofline
from cnnbench.target import Target

__all__ = [
    "batch_sweep",
    "thread_sweep",
    "iter_sweep",
    "with_speedup",
    "default_threads",
    "check_threads",
    "oversubscribed",
    "oversubscription_warning",
    "cores",
    "MAX_OVERSUBSCRIPTION",
]

MAX_OVERSUBSCRIPTION = 4  # a sweep's counts go up to this many times the cores: enough to show the cost of more


def cores() -> int:
    """The CPU cores present, as ``os.cpu_count()`` counts them."""
    return os.cpu_count() or 1


def default_threads() -> list[int]:
    """1, 2, 4, … below the cores present, then the core count itself: ``[1, 2, 4, 6]`` on 6 cores."""
    counts, n = [], 1
    while n < cores():
        counts.append(n)
        n *= 2
    return [*counts, cores()]


def check_threads(threads: Sequence[int]) -> list[int]:
    """The thread counts of a sweep, sorted and without repeats; one line if any is below 1 or above
    :data:`MAX_OVERSUBSCRIPTION` times the cores (counts above the cores are :func:`oversubscribed`)."""
    if not threads:
        raise CnnbenchError("a threads sweep needs at least one thread count, such as 1,2,4")
    most = MAX_OVERSUBSCRIPTION * cores()
    bad = [t for t in threads if not 1 <= t <= most]
    if bad:
        cap = f"{most} ({MAX_OVERSUBSCRIPTION}× the {cores()} cores present here)"
        raise CnnbenchError(f"threads must be from 1 to {cap}, got {bad[0]}")
    return sorted(set(threads))


def oversubscribed(threads: int | None) -> bool:
    """Whether ``threads`` is more than the cores present (``None``, the target's default, is not)."""
    return threads is not None and threads > cores()


def oversubscription_warning(threads: Sequence[int]) -> str | None:
    """The one line a sweep with counts above the cores warns with, or None when there are none."""
    over = sorted({t for t in threads if oversubscribed(t)})
    if not over:
        return None
    counts = ", ".join(map(str, over))
    return (
        f"threads {counts} oversubscribed: more than the {cores()} cores present, their rows time the runtime's "
        "threads taking turns on the cores as well as the model"
    )


def iter_sweep(
    models: Sequence[str],
    target: Target,
    batches: Sequence[int] = (1,),
    threads: Sequence[int] | None = None,
    resolution: int | None = None,
    timing: Timing | None = None,
    *,
    stop_after_ms: float | None = None,
    roofline: Roofline | None = None,
    isolate: bool = True,
    calibration: Path | None = None,
    quieting: Quieting | None = None,
) -> Iterator[dict[str, object]]:
    """Yield one row per model × thread count × batch, in that order (``threads=None``: the target's own).

    With ``stop_after_ms``, a model's batches at one thread count stop after the first whose median exceeds it:
    larger batches would only take longer. The thread counts are checked (:func:`check_threads`) before the first
    measurement; ``roofline``, ``isolate``, ``calibration`` and ``quieting`` are
    :func:`~cnnbench.measure.bench.iter_bench`'s. Each thread count has its speed probe (``probe_ms``). Every row
    says whether its count is ``oversubscribed``; such a row is not measured again for a low ``cpu_share``, which
    its own threads cause."""
    counts: list[int | None] = list(check_threads(threads)) if threads is not None else [target.threads]
    quieting = quieting or Quieting()
    probes = {count: Probe(replace(target, threads=count), run=None if isolate else speed_probe) for count in counts}
    for name in models:
        for count in counts:
            over = oversubscribed(count)
            for row in iter_bench(
                [name],
                replace(target, threads=count),
                batches,
                resolution,
                timing,
                roofline,
                isolate,
                calibration,
                replace(quieting, retries=0) if over else quieting,
                probes[count],
            ):
                yield {**row, "oversubscribed": over}
                if stop_after_ms is not None and row["status"] == "ok" and _median(row) > stop_after_ms:
                    break


def _median(row: dict[str, object]) -> float:
    return float(row["latency_ms_median"])  # type: ignore[arg-type]


def with_speedup(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with ``speedup`` and ``efficiency`` per model and batch, against the fewest threads measured (failed
    rows get none)."""
    out = frame.copy()
    out["speedup"], out["efficiency"] = np.nan, np.nan
    ok = out[out["status"] == "ok"]
    median = pd.to_numeric(ok["latency_ms_median"])
    threads = pd.to_numeric(ok["threads"])
    for index in ok.groupby(["model", "batch"]).groups.values():
        fewest = threads[index].idxmin()
        speedup = median[fewest] / median[index]
        out.loc[index, "speedup"] = speedup
        out.loc[index, "efficiency"] = speedup / (threads[index] / threads[fewest])
    return out


def batch_sweep(
    name: str,
    target: Target,
    batches: Sequence[int],
    resolution: int | None = None,
    timing: Timing | None = None,
    *,
    stop_after_ms: float | None = None,
    isolate: bool = True,
    calibration: Path | None = None,
    quieting: Quieting | None = None,
) -> pd.DataFrame:
    """One row per batch (``latency_ms_median``, ``latency_ms_p95``, ``throughput_img_s``, ``status``, …), on
    ``target`` at its own threads; ``stop_after_ms``, ``isolate``, ``calibration`` and ``quieting`` as in
    :func:`iter_sweep`."""
    rows = iter_sweep(
        [name],
        target,
        batches,
        None,
        resolution,
        timing,
        stop_after_ms=stop_after_ms,
        isolate=isolate,
        calibration=calibration,
        quieting=quieting,
    )
    return as_frame(list(rows))


def thread_sweep(
    name: str,
    target: Target,
    threads: Sequence[int],
    batch: int = 1,
    resolution: int | None = None,
    timing: Timing | None = None,
    *,
    isolate: bool = True,
    calibration: Path | None = None,
    quieting: Quieting | None = None,
) -> pd.DataFrame:
    """One row per thread count (sorted), with ``speedup`` and ``efficiency`` (see the module docstring). Raises
    :class:`CnnbenchError` for a count below 1 or above :data:`MAX_OVERSUBSCRIPTION` times the cores present."""
    rows = iter_sweep(
        [name],
        target,
        [batch],
        threads,
        resolution,
        timing,
        isolate=isolate,
        calibration=calibration,
        quieting=quieting,
    )
    return with_speedup(as_frame(list(rows)))
