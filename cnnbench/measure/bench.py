"""A latency sweep: models × batch sizes on one target, each row joined with the model's counts and the roofline.

A model that fails (out of memory, an input it cannot take, an export or a runtime that refuses it) is recorded as
failed with its reason; the sweep goes on. Each measurement runs in a child process of its own
(:func:`cnnbench.measure.isolated.run_isolated`), so its resident-memory peak is its own and a crash costs one row.
Rows come out one at a time (:func:`iter_bench`) so a caller can show progress and save as it goes.

Every row says whether another process took the CPUs while it was timed (``disturbed``, ``cpu_share`` and the
other :data:`~cnnbench.measure.disturbance.DISTURBANCE_COLUMNS`); a disturbed row is measured again once the machine
is quiet, within the bounds of a :class:`~cnnbench.measure.disturbance.Quieting`, and ``attempts`` says how many
times. Every row also records the machine's ``hardware`` and the latest speed probe (``probe_ms``,
:class:`~cnnbench.measure.probe.Probe`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import pandas as pd

from cnnbench.errors import CnnbenchError
from cnnbench.measure.disturbance import DISTURBANCE_COLUMNS, Disturbance, Quieting
from cnnbench.measure.isolated import run_isolated
from cnnbench.measure.latency import LatencyResult, Timing, measure
from cnnbench.measure.probe import Probe, speed_probe
from cnnbench.measure.profiling import profile
from cnnbench.measure.roofline import Roofline, roofline_bound_ms
from cnnbench.target import INT8, Target, describe, resolve_target

__all__ = ["iter_bench", "bench", "as_frame", "BENCH_COLUMNS", "BENCH_TEXT_COLUMNS"]

T = TypeVar("T")

# The leading columns of a bench row, in order; the target's description follows.
BENCH_COLUMNS = [
    "model",
    "batch",
    "resolution",
    "status",
    "error",
    "latency_ms_median",
    "latency_ms_mean",
    "latency_ms_std",
    "latency_ms_iqr",
    "latency_ms_p5",
    "latency_ms_p95",
    "latency_ms_p99",
    "cv",
    "throughput_img_s",
    "iters",
    "warmup_iters",
    "peak_mem_bytes",
    "peak_rss_bytes",
    "activation_peak_bytes",
    "export_s",
    "quantize_s",
    "load_s",
    "first_inference_ms",
    "params",
    "flops",
    "mac",
    "mac_bytes",
    "roofline_bound_ms",
    "roofline_fraction",
    *DISTURBANCE_COLUMNS,
    "probe_ms",
    "hardware",
    "notes",
    "samples_ms",  # per-iteration times, space-separated (cnnbench.measure.latency.samples_text)
]
# Bench columns a results table reads back as text, besides cnnbench.store's own: one sample would parse as a number.
BENCH_TEXT_COLUMNS = ("samples_ms",)


def _counts(name: str, resolution: int | None, batch: int, target: Target) -> dict[str, object]:
    # The target runs fp16/bf16 under autocast: fp32 weights, activations at the dtype (cnnbench.counting). INT8
    # moves one byte per element: int8 weights, uint8 activations (the int32 biases, a tiny share, counted as one).
    int8 = target.dtype == INT8
    totals = profile(
        name,
        resolution=resolution,
        batch=batch,
        dtype="fp32" if int8 else target.dtype,
        training_memory=False,
        autocast=True,
    ).totals
    return {
        "resolution": totals.resolution,
        "params": totals.params,
        "flops": totals.flops,
        "mac": totals.mac,
        "mac_bytes": totals.mac if int8 else totals.mac_bytes,
        "activation_peak_bytes": totals.activation_peak_bytes // (4 if int8 else 1),
    }


def iter_bench(
    models: Sequence[str],
    target: Target,
    batches: Sequence[int] = (1,),
    resolution: int | None = None,
    timing: Timing | None = None,
    roofline: Roofline | None = None,
    isolate: bool = True,
    calibration: Path | None = None,
    quieting: Quieting | None = None,
    probe: Probe | None = None,
) -> Iterator[dict[str, object]]:
    """Yield one row per (model, batch), in order. ``roofline`` adds the bound and the attained fraction (not for
    int8: the roofline's peak is fp32's). ``isolate=False`` measures in this process (faster; the resident-memory
    peak then includes what earlier rows left allocated). ``calibration`` is an image folder for int8 (default:
    the digits). ``quieting`` says how a disturbed row is measured again (default :class:`Quieting`'s bounds);
    ``probe`` gives ``probe_ms`` (default: a probe of this target, in a child process when ``isolate``)."""
    target, _ = resolve_target(target)
    for bad in [b for b in batches if b < 1]:
        raise CnnbenchError(f"batch must be at least 1, got {bad}")
    description = describe(target)
    quieting = quieting or Quieting()
    probe = probe or Probe(target, run=None if isolate else speed_probe)
    run = run_isolated if isolate else _in_process
    for name in models:
        for batch in batches:
            row: dict[str, object] = {"model": name, "batch": batch, "status": "ok", "error": ""}
            try:
                row.update(_counts(name, resolution, batch, target))
                result, attempts = quieting.measure(
                    f"{name} at batch {batch}",
                    lambda: run(measure, name, target, batch, resolution, timing, None, calibration),  # noqa: B023
                    _disturbance,
                )
                row.update({**result.row(), "attempts": attempts, "probe_ms": round(probe.ms(), 4)})
            except CnnbenchError as err:
                row.update({"status": "failed", "error": str(err), **description})
                yield row
                continue
            if roofline is not None and target.has_roofline:
                bound = roofline_bound_ms(result_int(row, "flops"), result_int(row, "mac_bytes"), roofline)
                row["roofline_bound_ms"] = bound
                row["roofline_fraction"] = bound / result.median_ms
            yield row


def _disturbance(result: LatencyResult) -> Disturbance:
    return result.disturbance


def _in_process(fn: Callable[..., T], *args: object) -> T:
    return fn(*args)


def result_int(row: dict[str, object], key: str) -> int:
    value = row[key]
    assert isinstance(value, int)
    return value


def bench(
    models: Sequence[str],
    target: Target | None = None,
    batches: Sequence[int] = (1,),
    resolution: int | None = None,
    timing: Timing | None = None,
    roofline: Roofline | None = None,
    isolate: bool = True,
    calibration: Path | None = None,
    quieting: Quieting | None = None,
) -> pd.DataFrame:
    """Every row of :func:`iter_bench` as a DataFrame (:data:`BENCH_COLUMNS` first, then the target)."""
    rows = list(
        iter_bench(models, target or Target(), batches, resolution, timing, roofline, isolate, calibration, quieting)
    )
    return as_frame(rows)


def as_frame(rows: list[dict[str, object]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    for column in BENCH_COLUMNS:
        if column not in frame.columns:
            frame[column] = None
    return frame[BENCH_COLUMNS + [c for c in frame.columns if c not in BENCH_COLUMNS]]
