"""How the CLI renders tables and shows progress, and the column headings its tables share with the README's.
Measurement code never prints; only the CLI calls these (and the report, for the headings and Markdown).

Progress goes to stderr: a bar on a terminal; without one (``cnnbench report > log 2>&1``, CI, ``nohup``) a plain
line as each item starts, with the stage, the item, the time elapsed in the stage and an estimate of what is left,
so that a log shows where a long run is.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TypeVar

import pandas as pd
from tqdm import tqdm

__all__ = [
    "interval_text",
    "FORMATS",
    "FRONT_HEADINGS",
    "COLD_START_HEADINGS",
    "emit",
    "markdown",
    "with_megabytes",
    "progress",
    "say_to_stderr",
]

FORMATS = ("table", "csv", "json", "markdown")
LINE_EVERY_S = 1.0  # piped progress of unnamed items: at most one line a second, besides the first and the last
T = TypeVar("T")

# The headings of a model on an accuracy–latency front (:func:`cnnbench.fronts.candidates`' columns), in
# `cnnbench pick`'s table and the README's best models.
FRONT_HEADINGS = {
    "model": "model",
    "latency_ms": "median (ms)",
    "top1": "top-1 (%)",
    "top1_from": "top-1 from",
    "params_m": "params (M)",
    "memory_mb": "peak mem (MB)",
}
# The headings of a bench row's cold start and memory (its MB columns from :func:`with_megabytes`), in
# `cnnbench bench`'s table and the README's deployment tables.
COLD_START_HEADINGS = {
    "export_s": "export (s)",
    "quantize_s": "quantize (s)",
    "load_s": "load (s)",
    "first_inference_ms": "first (ms)",
    "peak_rss_mb": "peak RSS (MB)",
    "activation_mb": "activations (MB)",
}


def with_megabytes(rows: pd.DataFrame) -> pd.DataFrame:
    """Bench rows with their memory in MB (10^6 bytes): ``peak_rss_mb`` from ``peak_rss_bytes`` and
    ``activation_mb`` from ``activation_peak_bytes`` (empty where a row, or the table, has none)."""

    def megabytes(column: str) -> pd.Series:
        if column not in rows:
            return pd.Series(float("nan"), index=rows.index)
        return pd.to_numeric(rows[column], errors="coerce") / 1e6

    return rows.assign(peak_rss_mb=megabytes("peak_rss_bytes"), activation_mb=megabytes("activation_peak_bytes"))


def interval_text(low: Iterable[float], high: Iterable[float]) -> list[str]:
    """``12.30-15.10``: each interval (ms) as text, for a table's interval column."""
    return [f"{a:.2f}-{b:.2f}" for a, b in zip(low, high, strict=True)]


def markdown(frame: pd.DataFrame) -> str:
    """A Markdown table of ``frame``, a missing value shown as ``–``."""
    return frame.astype(object).where(frame.notna(), "–").to_markdown(index=False)


def emit(frame: pd.DataFrame, fmt: str, table_columns: dict[str, str] | None = None) -> str:
    """Render a frame: every column for csv/json; for table/markdown the ``table_columns`` (renamed), if given."""
    if fmt == "csv":
        return frame.to_csv(index=False)
    if fmt == "json":
        return frame.to_json(orient="records", indent=2) + "\n"
    shown = frame[list(table_columns)].rename(columns=table_columns) if table_columns else frame
    if fmt == "markdown":
        return markdown(shown) + "\n"
    return shown.to_string(index=False, na_rep="–") + "\n"


def progress(items: Sequence[T], desc: str, unit: str = "model") -> Iterable[T]:
    """On stderr, when there is more than one item: a bar on a terminal, otherwise a line per item
    (:func:`progress_lines`)."""
    if not sys.stderr.isatty():
        return progress_lines(items, desc) if len(items) > 1 else items
    return tqdm(items, desc=desc, unit=unit, disable=None if len(items) > 1 else True, file=sys.stderr)


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def progress_lines(
    items: Sequence[T],
    desc: str,
    write: Callable[[str], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> Iterator[T]:
    """Yield ``items``, writing ``cnnbench: latency eager fp32 [3/62] mobilenet_v2 (1m05s, ~19m40s left)`` as each
    starts; the estimate is the mean time of the items done so far times the items left. A named item (a model)
    always has its line; others (the draw's network numbers, a child's future) quicker than :data:`LINE_EVERY_S`
    share one: a hundred synthetic networks drawn in ten seconds write ten lines."""
    write = write or (lambda line: print(line, file=sys.stderr, flush=True))
    total, started = len(items), clock()
    written_at = None
    for index, item in enumerate(items):
        now = clock()
        elapsed = now - started
        if isinstance(item, str) or written_at is None or now - written_at >= LINE_EVERY_S:
            left = f", ~{_duration(elapsed / index * (total - index))} left" if index else ""
            label = _label(item)
            write(f"cnnbench: {desc} [{index + 1}/{total}]{' ' + label if label else ''} ({_duration(elapsed)}{left})")
            written_at = now
        yield item
    if total:
        write(f"cnnbench: {desc} done: {total} in {_duration(clock() - started)}")


def _label(item: object) -> str:
    """What a progress line calls an item: a name, or the names of a tuple; nothing for other objects (a child
    process's future says nothing a reader needs)."""
    if isinstance(item, str | int):
        return str(item)
    if isinstance(item, tuple) and all(isinstance(part, str | int) for part in item):
        return " ".join(map(str, item))
    return ""


def say_to_stderr(command: str) -> Callable[[str], None]:
    """A line from ``command`` on stderr that does not break a progress bar (tqdm.write)."""

    def say(line: str) -> None:
        tqdm.write(f"cnnbench {command}: {line}", file=sys.stderr)
        sys.stderr.flush()

    return say
