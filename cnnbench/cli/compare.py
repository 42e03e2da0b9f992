"""``cnnbench compare OLD NEW``: a regression gate over two runs' latency samples (:mod:`cnnbench.compare`).

Its exit code is the verdict: 1 when a model got slower beyond the threshold and the noise, 0 when none did, 2 for
bad input (as every command).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import pandas as pd

from cnnbench.cli.common import percentage
from cnnbench.compare import DEFAULT_THRESHOLD, compare, gate, hardware, summary_line
from cnnbench.output import FORMATS, emit
from cnnbench.stats import CONFIDENCE

__all__ = ["add_commands"]


def _cmd_compare(args: argparse.Namespace) -> tuple[str, int]:
    olds = [Path(args.old), *map(Path, args.more_old)]
    news = [Path(args.new), *map(Path, args.more_new)]
    frame = compare(olds, news, threshold=args.threshold)
    code = gate(frame)
    if args.format in ("csv", "json"):
        return emit(frame, args.format), code
    interval = f"{CONFIDENCE * 100:g}% CI"
    lows, highs = frame["ci_low"], frame["ci_high"]
    table = frame.assign(
        ci=[f"[{lo:.3f}, {hi:.3f}]" if pd.notna(lo) else math.nan for lo, hi in zip(lows, highs, strict=True)],
        batch=frame["batch"].astype(object).where(frame["batch"].notna(), math.nan),  # "–", not <NA>, if unknown
    ).round({"old_ms": 3, "new_ms": 3, "ratio": 3})
    columns = {
        "target": "target",
        "model": "model",
        "batch": "batch",
        "old_ms": "old (ms)",
        "new_ms": "new (ms)",
        "ratio": "new/old",
        "ci": interval,
        "verdict": "verdict",
    }
    several = len(olds) > 1 or len(news) > 1
    if several:
        columns = {**columns, "runs_old": "old runs", "runs_new": "new runs"}
    if frame["note"].astype(bool).any():
        columns["note"] = "note"
    how = (
        "bootstrap over the runs, then their samples: it covers the drift between runs"
        if several
        else "bootstrap of one run a side: it covers the noise within a run, not the drift between runs"
    )
    old_names, new_names = ", ".join(map(str, olds)), ", ".join(map(str, news))
    header = (
        f"# old: {old_names}  new: {new_names}  (medians of the per-iteration times; {interval} of the ratio "
        f"by {how})\n# old hardware: {hardware(olds)}\n# new hardware: {hardware(news)}\n"
        if args.format == "table"
        else ""
    )
    return header + emit(table, args.format, columns) + summary_line(frame, args.threshold) + "\n", code


def add_commands(sub: Any) -> None:
    """``compare``."""
    p_compare = sub.add_parser(
        "compare",
        help="regression gate: which models got slower between two runs, with bootstrap intervals",
        description="OLD and NEW are two results folders (cnnbench report --out; every latency-*.csv in them) or "
        "two pytest-benchmark JSON files (--benchmark-json); --old and --new add more runs a side, so that the "
        "interval covers the drift between runs. Compares the median per-iteration time of each model, "
        "target and batch found in both. A row is slower when new/old exceeds 1 + threshold and the "
        f"{CONFIDENCE * 100:g}% bootstrap interval of that ratio lies above 1; faster, mirrored. Exit code 1 when a "
        "row is slower, 0 when none is, 2 for bad input.",
    )
    p_compare.add_argument("old", metavar="OLD", help="the baseline: a results folder or a pytest-benchmark JSON file")
    p_compare.add_argument("new", metavar="NEW", help="the run to check, of the same kind as OLD")
    more = {
        "old": "another baseline run of the same code (repeatable): the interval then covers the drift between runs",
        "new": "another run of the code to check (repeatable)",
    }
    for side, text in more.items():
        p_compare.add_argument(f"--{side}", dest=f"more_{side}", action="append", default=[], metavar="PATH", help=text)
    p_compare.add_argument(
        "--threshold",
        type=percentage,
        default=DEFAULT_THRESHOLD,
        metavar="PCT",
        help="the smallest change that counts, in percent with or without the sign: 5 and 5%% are 5%%, 0.5 is half "
        "a percent (default 5%%)",
    )
    p_compare.add_argument(
        "--format",
        choices=FORMATS,
        default="table",
        help="table (default) or markdown: the summary; csv, json: every column",
    )
    p_compare.set_defaults(run=_cmd_compare)
