"""A latency sweep: models × batch sizes on one target, each row joined with the model's counts and the roofline.

A model that fails (out of memory, an input it cannot take) is recorded as failed with its reason; the sweep goes
on. Rows come out one at a time (:func:`iter_bench`) so a caller can show progress and save as it goes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pandas as pd

from cnnbench.errors import CnnbenchError
from cnnbench.measure.latency import Timing, measure
from cnnbench.measure.profiling import profile
from cnnbench.measure.roofline import Roofline, roofline_bound_ms
from cnnbench.target import Target, describe, resolve_target

__all__ = ["iter_bench", "bench", "as_frame", "BENCH_COLUMNS"]

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
    "params",
    "flops",
    "mac",
    "mac_bytes",
    "roofline_bound_ms",
    "roofline_fraction",
    "notes",
]


def _counts(name: str, resolution: int | None, batch: int, target: Target) -> dict[str, object]:
    # The target runs fp16/bf16 under autocast: fp32 weights, activations at the dtype (cnnbench.counting).
    totals = profile(name, resolution=resolution, batch=batch, dtype=target.dtype, training_memory=False,
                     autocast=True).totals  # fmt: skip
    return {
        "resolution": totals.resolution,
        "params": totals.params,
        "flops": totals.flops,
        "mac": totals.mac,
        "mac_bytes": totals.mac_bytes,
    }


def iter_bench(
    models: Sequence[str],
    target: Target,
    batches: Sequence[int] = (1,),
    resolution: int | None = None,
    timing: Timing | None = None,
    roofline: Roofline | None = None,
) -> Iterator[dict[str, object]]:
    """Yield one row per (model, batch), in order. ``roofline`` adds the bound and the attained fraction."""
    target, _ = resolve_target(target)
    for bad in [b for b in batches if b < 1]:
        raise CnnbenchError(f"batch must be at least 1, got {bad}")
    description = describe(target)
    for name in models:
        for batch in batches:
            row: dict[str, object] = {"model": name, "batch": batch, "status": "ok", "error": ""}
            try:
                row.update(_counts(name, resolution, batch, target))
                result = measure(name, target, batch, resolution, timing)
                row.update(result.row())
            except CnnbenchError as err:
                row.update({"status": "failed", "error": str(err), **description})
                yield row
                continue
            if roofline is not None:
                bound = roofline_bound_ms(result_int(row, "flops"), result_int(row, "mac_bytes"), roofline)
                row["roofline_bound_ms"] = bound
                row["roofline_fraction"] = bound / result.median_ms
            yield row


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
) -> pd.DataFrame:
    """Every row of :func:`iter_bench` as a DataFrame (:data:`BENCH_COLUMNS` first, then the target)."""
    rows = list(iter_bench(models, target or Target(), batches, resolution, timing, roofline))
    return as_frame(rows)


def as_frame(rows: list[dict[str, object]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    for column in BENCH_COLUMNS:
        if column not in frame.columns:
            frame[column] = None
    return frame[BENCH_COLUMNS + [c for c in frame.columns if c not in BENCH_COLUMNS]]
