"""``cnnbench compare OLD NEW``: which models got slower between two runs, beyond what their noise explains.

OLD and NEW are both results folders (every ``latency-*.csv`` in them, as ``cnnbench report`` writes them; a single
``latency-*.csv`` file works too) or both pytest-benchmark JSON files. A table's row is matched by its target (the
file name, ``latency-<target>.csv``; an imported ``latency-<target>@<host>-<machine>.csv`` stays apart), model and
batch; a benchmark by its ``fullname``. The times compared are the per-iteration samples: a table's ``samples_ms``
(:func:`cnnbench.measure.latency.samples_text`), a benchmark's ``stats.data``.

For each pair, ``ratio`` = median(new) / median(old), so above 1 is slower, and its ``confidence`` interval by a
percentile bootstrap that resamples the two sets of samples independently (:func:`cnnbench.stats.ratio_interval`,
seeded: the same files give the same interval). Such an interval measures the noise within one run, not the drift
between runs, which on a shared machine is larger. Either side may therefore be several runs (several folders or
files of the same kind): their samples are pooled for the medians, and the bootstrap resamples the runs first, then
the samples within each run drawn (a two-level bootstrap, :func:`cnnbench.stats.runs_ratio_interval`), so the
interval widens by as much as the runs disagree. The verdict needs both a big enough change and one the noise does
not explain (:func:`cnnbench.stats.change`):

- ``slower``: ratio > 1 + threshold, and the interval's low end above 1;
- ``faster``: ratio < 1 / (1 + threshold) (the mirror image of ``slower``), and the interval's high end below 1;
- ``unchanged`` otherwise.

Rows on one side only are listed with the verdict ``only in old`` / ``only in new``; rows on both sides that cannot
be compared (a failed run, fewer than 2 samples, a table written before samples were kept) as ``not comparable``,
with the reason in ``note``; a row flagged ``disturbed`` on either side (another process held the CPUs while it was
timed) as ``disturbed``: its ratio is shown, but no verdict is drawn from it. None of these fail the gate; only
``slower`` does (:func:`gate`). :func:`hardware` says what each side ran on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from cnnbench.benchmark_json import benchmark_samples_ms, hardware_of, load_benchmark_json
from cnnbench.errors import CnnbenchError
from cnnbench.measure.bench import BENCH_TEXT_COLUMNS
from cnnbench.measure.latency import parse_samples
from cnnbench.provenance import is_disturbed
from cnnbench.results import ResultsFolder
from cnnbench.stats import (
    ABOVE,
    ACROSS,
    BELOW,
    CONFIDENCE,
    RESAMPLES,
    SEED,
    change,
    ratio_interval,
    runs_ratio_interval,
)
from cnnbench.store import ResultTable

__all__ = [
    "compare",
    "gate",
    "hardware",
    "summary_line",
    "COLUMNS",
    "VERDICTS",
    "MIN_SAMPLES",
    "DEFAULT_THRESHOLD",
]

SLOWER, FASTER, UNCHANGED = "slower", "faster", "unchanged"
ONLY_OLD, ONLY_NEW, NOT_COMPARABLE, DISTURBED = "only in old", "only in new", "not comparable", "disturbed"
VERDICTS = (SLOWER, FASTER, UNCHANGED, ONLY_OLD, ONLY_NEW, NOT_COMPARABLE, DISTURBED)
CHANGE_VERDICTS = {ABOVE: SLOWER, BELOW: FASTER, ACROSS: UNCHANGED}  # new/old against 1 (cnnbench.stats.change)
COLUMNS = [
    "target",
    "model",
    "batch",
    "old_ms",
    "new_ms",
    "ratio",
    "ci_low",
    "ci_high",
    "n_old",
    "n_new",
    "runs_old",
    "runs_new",
    "verdict",
    "note",
]
DEFAULT_THRESHOLD = 0.05  # the smallest change called slower or faster: 5%
MIN_SAMPLES = 2  # a bootstrap of one sample is that sample: no interval
NO_SAMPLES = "no samples (its table was written before samples were kept)"
SAVE_DATA = "re-run pytest-benchmark with --benchmark-save-data (or --benchmark-json FILE, which keeps them)"


@dataclass(frozen=True)
class _Entry:
    """One row of a run: what the table shows of it, its samples (ms), and why it cannot be compared, if so."""

    target: str
    model: str
    batch: int | None
    samples: tuple[float, ...]  # every run's, pooled
    problem: str = ""
    runs: tuple[tuple[float, ...], ...] = ()  # the samples of each run that has this row
    disturbed: str = ""  # why the row was flagged disturbed ("cpu_share 0.50 < 0.9"); "" when it was not


_Run = dict[tuple[str, ...], _Entry]
Paths = Path | Sequence[Path]


def compare(
    old: Paths,
    new: Paths,
    threshold: float = DEFAULT_THRESHOLD,
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> pd.DataFrame:
    """One row per target, model and batch (or benchmark) of OLD and NEW, with the columns :data:`COLUMNS`:
    medians in ms, their ratio new/old with its ``confidence`` interval, sample and run counts, verdict and note.
    ``old`` and ``new`` are each one run (a path) or several runs of the same code (a sequence of paths, all of one
    kind); with several, the interval covers the drift between them.

    ``threshold`` is a fraction (0.05: 5%). Raises :class:`CnnbenchError` (one line) for a missing path, a folder
    with no latency table, a JSON file without per-iteration data, a folder and a JSON file mixed, or two runs
    with nothing to compare.
    """
    if not threshold >= 0:
        raise CnnbenchError(f"the threshold must be at least 0, got {threshold}")
    if not 0 < confidence < 1:
        raise CnnbenchError(f"the confidence must lie between 0 and 1, got {confidence}")
    if resamples < 1:
        raise CnnbenchError(f"resamples must be at least 1, got {resamples}")
    olds, news = ([old] if isinstance(old, Path) else list(old)), ([new] if isinstance(new, Path) else list(new))
    if not olds or not news:
        raise CnnbenchError("compare needs at least one OLD and one NEW run")
    kinds = {"OLD": sorted({_kind(p, "OLD") for p in olds}), "NEW": sorted({_kind(p, "NEW") for p in news})}
    for side, found in kinds.items():
        if len(found) > 1:
            raise CnnbenchError(f"the {side} runs mix {' and '.join(found)}; give runs of one kind a side")
    if kinds["OLD"] != kinds["NEW"]:
        raise CnnbenchError(
            f"OLD is {kinds['OLD'][0]} and NEW {kinds['NEW'][0]}; compare two results folders or two "
            "pytest-benchmark JSON files"
        )
    before, after = _merge([_read(p) for p in olds]), _merge([_read(p) for p in news])
    old, new = olds[0], news[0]  # for the messages
    common = [k for k in after if k in before]
    if not common:
        raise CnnbenchError(
            f"{old} and {new} have no row in common (target, model and batch, or benchmark name); "
            "compare runs of the same models on the same targets"
        )
    rows = [_compared(before[k], after[k], threshold, confidence, resamples, seed) for k in common]
    if all(r["verdict"] == NOT_COMPARABLE for r in rows):
        raise CnnbenchError(
            f"no row of {old} and {new} can be compared ({rows[0]['note']}, and so on); both sides "
            f"need status ok and at least {MIN_SAMPLES} samples"
        )
    rows += [_alone(e, ONLY_OLD) for k, e in before.items() if k not in after]
    rows += [_alone(e, ONLY_NEW) for k, e in after.items() if k not in before]
    rows.sort(key=lambda r: (str(r["target"]), str(r["model"]), r["batch"] if r["batch"] is not None else -1))
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame["batch"] = frame["batch"].astype("Int64")
    return frame


def gate(frame: pd.DataFrame) -> int:
    """The exit code of a regression gate: 1 when any row of :func:`compare`'s frame is ``slower``, else 0."""
    return int(bool((frame["verdict"] == SLOWER).any()))


def summary_line(frame: pd.DataFrame, threshold: float) -> str:
    """``2 slower, 0 faster, 10 unchanged at threshold 5%``, then the rows not compared, where there are some."""
    counts = frame["verdict"].value_counts()
    line = ", ".join(f"{counts.get(v, 0)} {v}" for v in VERDICTS[:3]) + f" at threshold {threshold * 100:g}%"
    rest = [f"{counts[v]} {v}" for v in VERDICTS[3:] if counts.get(v, 0)]
    return line + (f" ({', '.join(rest)})" if rest else "")


def _compared(
    old: _Entry, new: _Entry, threshold: float, confidence: float, resamples: int, seed: int
) -> dict[str, object]:
    row: dict[str, object] = {
        "target": new.target,
        "model": new.model,
        "batch": new.batch,
        "n_old": len(old.samples),
        "n_new": len(new.samples),
        "runs_old": len(old.runs),
        "runs_new": len(new.runs),
    }
    notes = [f"old target {old.target}"] if old.target != new.target else []
    problems = [f"{side}: {e.problem}" for side, e in (("old", old), ("new", new)) if e.problem]
    if problems:
        return {**row, "verdict": NOT_COMPARABLE, "note": "; ".join(problems + notes)}
    if len(old.runs) == len(new.runs) == 1:
        ratio, low, high = ratio_interval(old.samples, new.samples, confidence, resamples, seed)
    else:
        ratio, low, high = runs_ratio_interval(old.runs, new.runs, confidence, resamples, seed)
    disturbed = [f"{side} disturbed ({e.disturbed})" for side, e in (("old", old), ("new", new)) if e.disturbed]
    verdict = DISTURBED if disturbed else CHANGE_VERDICTS[change(ratio, low, high, threshold)]
    return {
        **row,
        "old_ms": float(np.median(old.samples)),
        "new_ms": float(np.median(new.samples)),
        "ratio": ratio,
        "ci_low": low,
        "ci_high": high,
        "verdict": verdict,
        "note": "; ".join(disturbed + notes),
    }


def _alone(entry: _Entry, verdict: str) -> dict[str, object]:
    median = float(np.median(entry.samples)) if entry.samples else None
    side = "old" if verdict == ONLY_OLD else "new"
    return {
        "target": entry.target,
        "model": entry.model,
        "batch": entry.batch,
        f"{side}_ms": median,
        f"n_{side}": len(entry.samples),
        f"runs_{side}": len(entry.runs),
        "verdict": verdict,
        "note": entry.problem,
    }


# --- reading the two runs ----------------------------------------------------------------------------------------


def hardware(paths: Paths) -> str:
    """What one side of a comparison ran on: the ``hardware`` of its tables' rows (or of its JSON files' tests),
    every distinct one, joined by `` | ``; ``unknown`` for tables written before rows named it."""
    found: list[str] = []
    for path in [paths] if isinstance(paths, Path) else list(paths):
        if path.is_dir() or path.suffix == ".csv":
            for table in ResultsFolder(path).latency_tables() if path.is_dir() else [path]:
                frame = ResultTable(table, key=["model", "batch"], text_columns=BENCH_TEXT_COLUMNS).frame()
                if "hardware" in frame:
                    found += [str(h) for h in frame["hardware"].dropna() if str(h)]
        elif path.is_file():
            found.append(hardware_of(path))
    return " | ".join(dict.fromkeys(found)) or "unknown (tables written before rows named their hardware)"


def _kind(path: Path, side: str) -> str:
    if path.is_dir() or (path.is_file() and path.suffix == ".csv"):
        return "a results folder"
    if path.is_file():
        return "a pytest-benchmark JSON file"
    raise CnnbenchError(
        f"{side} {path}: no such folder or file; give a results folder (cnnbench report --out) or a "
        "pytest-benchmark JSON file"
    )


def _read(path: Path) -> _Run:
    return _read_tables(path) if path.is_dir() or path.suffix == ".csv" else _read_json(path)


def _merge(runs: Sequence[_Run]) -> _Run:
    """One side's runs as one: per row, the pooled samples and each run's own, from the runs where the row can be
    compared; a row that none of them can compare keeps the first run's problem."""
    merged: _Run = {}
    for key in dict.fromkeys(k for run in runs for k in run):
        entries = [run[key] for run in runs if key in run]
        good = [e for e in entries if not e.problem]
        if not good:
            merged[key] = replace(entries[0], runs=())
            continue
        pooled = tuple(t for e in good for t in e.samples)
        disturbed = "; ".join(e.disturbed for e in good if e.disturbed)
        merged[key] = replace(good[0], samples=pooled, runs=tuple(e.samples for e in good), disturbed=disturbed)
    return merged


def _problem(status: object, samples: tuple[float, ...], kept: bool) -> str:
    if str(status) != "ok":
        return f"status {status}"
    if not kept:
        return NO_SAMPLES
    if len(samples) < MIN_SAMPLES:
        return f"{len(samples)} sample(s), {MIN_SAMPLES} needed"
    return ""


def _read_tables(path: Path) -> _Run:
    tables = ResultsFolder(path).latency_tables() if path.is_dir() else [path]
    if not tables:
        raise CnnbenchError(f"{path} holds no latency-*.csv table; give a folder `cnnbench report --out` wrote")
    run: _Run = {}
    for table in tables:
        target = ResultsFolder.latency_target(table)
        frame = ResultTable(table, key=["model", "batch"], text_columns=BENCH_TEXT_COLUMNS).frame()
        for row in frame.to_dict("records"):
            model, batch, text = str(row["model"]), int(row["batch"]), row.get("samples_ms")
            kept = isinstance(text, str) and bool(text.strip())
            try:
                samples = parse_samples(text) if isinstance(text, str) else ()
            except ValueError:
                raise CnnbenchError(
                    f"{table}: the samples_ms of {model} at batch {batch} are not numbers; re-run cnnbench report"
                ) from None
            flagged = (str(row.get("disturbance") or "") or "flagged") if is_disturbed(row) else ""
            run[(target, model, str(batch))] = _Entry(
                target, model, batch, samples, _problem(row.get("status"), samples, kept), disturbed=flagged
            )
    if not any(e.samples for e in run.values()) and any(e.problem == NO_SAMPLES for e in run.values()):
        raise CnnbenchError(
            f"{path} keeps no per-iteration samples (samples_ms): this results folder was written "
            "before samples were kept; re-run cnnbench report"
        )
    return run


def _read_json(path: Path) -> _Run:
    data = load_benchmark_json(path)
    run: _Run = {}
    for bench in data["benchmarks"]:
        if not isinstance(bench, dict):
            continue
        name = str(bench.get("fullname") or bench.get("name") or "?")
        extra = bench.get("extra_info") if isinstance(bench.get("extra_info"), dict) else {}
        samples = benchmark_samples_ms(bench)
        batch = extra.get("batch")
        problem = "no per-iteration data" if samples is None else _problem("ok", samples, True)
        flagged = (str(extra.get("disturbance") or "") or "flagged") if is_disturbed(extra) else ""
        run[(name,)] = _Entry(
            str(extra.get("target_target", "")),
            name,
            int(batch) if batch is not None else None,
            samples or (),
            problem,
            disturbed=flagged,
        )
    if not run:
        raise CnnbenchError(f"{path} holds no benchmark; run pytest-benchmark with --benchmark-json FILE")
    if all(e.problem == "no per-iteration data" for e in run.values()):
        raise CnnbenchError(f"{path} keeps no per-iteration times (stats.data); {SAVE_DATA}")
    return run
