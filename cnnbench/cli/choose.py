"""``cnnbench pick``: the best models within a latency, accuracy, size and memory budget on one target."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from cnnbench.choose import (
    FLEET_COLUMNS,
    Budget,
    fleet_no_fit_message,
    no_fit_message,
    pick,
    pick_fleet,
    target_pattern,
)
from cnnbench.cli.common import (
    add_target_arguments,
    calibration_from,
    percent,
    positive_float,
    positive_int,
    printed_by,
    target_from,
)
from cnnbench.cli.fleet import name_pair
from cnnbench.costmodel.model import INTERVAL_PERCENT
from cnnbench.errors import CnnbenchError
from cnnbench.fronts import ACCURACY_SOURCES
from cnnbench.output import FRONT_HEADINGS, emit, interval_text, progress
from cnnbench.results import DEFAULT_FOLDER
from cnnbench.target import describe, resolve_target

__all__ = ["add_commands"]

COLUMNS = {
    "rank": "rank",
    **FRONT_HEADINGS,
    "front": "Pareto",
    "dominated_by": "dominated by",
}


def _cmd_pick_fleet(args: argparse.Namespace) -> str:
    single = {"--max-params": args.max_params, "--max-memory": args.max_memory, "--predicted": args.predicted}
    alone = [option for option, value in single.items() if value is not None]
    if alone:
        raise CnnbenchError(f"--fleet takes --latency-ms, --on and --min-top1, not {', '.join(alone)}")
    if args.latency_ms is None:
        raise CnnbenchError("--fleet needs --latency-ms MS, the budget every device must meet")
    target = target_from(args)
    ranked = pick_fleet(
        [Path(d) for d in args.fleet],
        args.latency_ms,
        on=args.on,
        target=target,
        batch=args.batch,
        min_top1=args.min_top1,
        accuracy=args.accuracy,
        models=tuple(args.models) or ("*",),
        names=dict(args.name),
    )
    devices = [c for c in ranked.columns if c not in FLEET_COLUMNS]
    fits = ranked[ranked["rank"].notna()]
    where = "every device" if args.on is None else f"{args.on} of {len(devices)} devices"
    budget = Budget(args.latency_ms, args.min_top1)
    if fits.empty:
        raise CnnbenchError(fleet_no_fit_message(ranked, budget, where))
    if args.format in ("csv", "json"):
        return emit(ranked, args.format)
    shown = fits.round({"top1": 2, **{d: 2 for d in devices}})
    columns = {"rank": "rank", "model": "model", "top1": "top-1 (%)", **{d: f"{d} (ms)" for d in devices}}
    columns["binding"] = "binding device"
    lines = [
        f"# fleet of {len(devices)} devices, target {target_pattern(target)}, batch {args.batch}; budget: "
        f"{budget.describe()} on {where}",
        f"# {len(fits)} of {len(ranked)} models fit, ranked by {args.accuracy} top-1; binding device: the one that "
        f"decides ({'the slowest' if args.on is None else f'number {args.on} from the fastest'})",
        emit(shown, args.format, columns).rstrip("\n"),
    ]
    return "\n".join(lines + _excluded(ranked, args.format)) + "\n"


def _cmd_pick(args: argparse.Namespace) -> str:
    if args.fleet:
        return _cmd_pick_fleet(args)
    if args.on is not None or args.name:
        raise CnnbenchError("--on and --name go with --fleet DIR...")
    target, notes = resolve_target(target_from(args))
    for note in notes:
        print(f"cnnbench pick: note: {note}", file=sys.stderr)
    ranked = pick(
        args.latency_ms,
        target=target,
        batch=args.batch,
        min_top1=args.min_top1,
        max_params_m=args.max_params,
        max_memory_mb=args.max_memory,
        accuracy=args.accuracy,
        results=Path(args.results),
        models=tuple(args.models) or ("*",),
        calibration=calibration_from(args),
        progress=progress,
        predicted=True if args.predicted == "" else args.predicted,
    )
    budget = Budget(args.latency_ms, args.min_top1, args.max_params, args.max_memory)
    fits = ranked[ranked["rank"].notna()]
    if fits.empty:
        raise CnnbenchError(no_fit_message(ranked, budget))
    if args.format in ("csv", "json"):
        return emit(ranked, args.format)
    shown = fits.assign(front=fits["pareto"].map({True: "yes", False: ""})).round(
        {"latency_ms": 2, "top1": 2, "params_m": 2, "memory_mb": 1}
    )
    about = describe(target)
    source = "" if args.predicted is None else "; latency PREDICTED by the cost model, not measured"
    columns = COLUMNS
    if args.predicted is not None:
        shown["interval"] = interval_text(shown["low_ms"], shown["high_ms"])
        columns = {**COLUMNS, "latency_ms": "predicted (ms)", "interval": f"{INTERVAL_PERCENT}% interval (ms)",
                   "overlaps": "intervals overlap (order uncertain)"}  # fmt: skip
    lines = [
        f"# target: {target.key} ({about['device_name']}), batch {args.batch}; budget: {budget.describe()}{source}",
        f"# {len(fits)} of {len(ranked)} models fit, ranked by {args.accuracy} top-1; Pareto: no other fitting "
        "model is both faster and more accurate",
        emit(shown, args.format, columns).rstrip("\n"),
    ]
    if args.predicted is not None and args.latency_ms is not None:
        crossing = _crossing_the_budget(ranked, args.latency_ms)
        if crossing:
            lines += ["", f"# {INTERVAL_PERCENT}% intervals across the {args.latency_ms:g} ms budget: {crossing}"]
    return "\n".join(lines + _excluded(ranked, args.format)) + "\n"


def _excluded(ranked: pd.DataFrame, output: str) -> list[str]:
    """The lines under a pick's table that list the models left out and why (none when every model fits)."""
    excluded = ranked[ranked["rank"].isna()]
    if excluded.empty:
        return []
    table = excluded[["model", "excluded_by"]].rename(columns={"excluded_by": "excluded by"})
    return ["", f"# excluded ({len(excluded)}):", emit(table, output).rstrip("\n")]


def _crossing_the_budget(ranked: pd.DataFrame, latency_ms: float) -> str:
    """The models whose predicted interval holds the latency budget: measured, they may land on its other side."""
    crossing = ranked[(ranked["low_ms"] <= latency_ms) & (ranked["high_ms"] > latency_ms)]
    return ", ".join(
        f"{row.model} ({'meets' if row.latency_ms <= latency_ms else 'misses'} it as predicted)"
        for row in crossing.itertuples()
    )


def add_commands(sub: Any) -> None:
    p_pick = sub.add_parser(
        "pick",
        help="the most accurate models within a latency, size and memory budget on your target",
        description="Ranks the models that meet every budget by top-1 and marks their Pareto front (accuracy "
        "against latency). Uses the latency rows of --results measured on this machine, target and code, and "
        "measures the missing ones (saved there for the next run). Exit code 2 when no model fits.",
    )
    p_pick.add_argument("models", nargs="*", metavar="MODEL", help="zoo names or wildcards (default: the whole zoo)")
    p_pick.add_argument("--latency-ms", type=positive_float, default=None, help="median latency at most, ms")
    p_pick.add_argument("--min-top1", type=percent, default=None, help="top-1 at least, %%")
    p_pick.add_argument("--max-params", type=positive_float, default=None, help="parameters at most, millions")
    p_pick.add_argument(
        "--max-memory",
        type=positive_float,
        default=None,
        help="measured peak memory of inference at most, MB (CPU: resident peak above the loaded "
        "model; CUDA: allocator peak)",
    )
    p_pick.add_argument(
        "--accuracy",
        choices=ACCURACY_SOURCES,
        default="paper",
        help="paper: the paper's ImageNet top-1, else the reference weights'; reference: the "
        "reference weights' only; digits: measured here by `cnnbench train`",
    )
    p_pick.add_argument(
        "--predicted",
        nargs="?",
        const="",
        default=None,
        metavar="FILE",
        help="rank by latency predicted from the counts (`cnnbench predict`) instead of measured: this "
        "machine's cost model for the target, or FILE from another device",
    )
    p_pick.add_argument(
        "--fleet",
        nargs="+",
        default=None,
        metavar="DIR",
        help="results folders of several machines: the models within --latency-ms on every one (measures nothing)",
    )
    p_pick.add_argument(
        "--on", type=positive_int, default=None, metavar="K", help="with --fleet: within budget on K of the devices"
    )
    p_pick.add_argument(
        "--name",
        type=name_pair,
        action="append",
        default=[],
        metavar="DIR=LABEL",
        help="with --fleet: a device's label",
    )
    p_pick.add_argument("--batch", type=positive_int, default=1)
    p_pick.add_argument(
        "--results", default=str(DEFAULT_FOLDER), metavar="DIR", help=f"the results folder (default {DEFAULT_FOLDER})"
    )
    add_target_arguments(p_pick)
    printed_by(p_pick, _cmd_pick)
