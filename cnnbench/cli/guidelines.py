"""``cnnbench guidelines``: ShuffleNetV2's G1–G4 microbenchmarks on a target, or an audit of models against them."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from cnnbench.cli.common import (
    add_target_arguments,
    model_names,
    positive_float,
    positive_int,
    printed_by,
    target_from,
)
from cnnbench.errors import CnnbenchError
from cnnbench.guidelines.audit import G1_FLAG, audit, audit_frame, offenders_frame
from cnnbench.guidelines.microbench import (
    BLOCKS,
    GUIDELINES,
    PAPER_COLUMNS,
    QUICK_ROUNDS,
    ROUNDS,
    SIDE,
    paper_column,
    speed_texts,
)
from cnnbench.guidelines.run import GuidelineRun, run_guidelines
from cnnbench.measure.latency import Timing
from cnnbench.output import emit, progress
from cnnbench.stats import CONFIDENCE
from cnnbench.target import Target, describe, resolve_target

__all__ = ["add_commands"]


def _target(args: argparse.Namespace) -> Target:
    target, notes = resolve_target(target_from(args))
    for note in notes:
        print(f"cnnbench guidelines: note: {note}", file=sys.stderr)
    return target


def _by_table(tables: Sequence[tuple[str, int]], desc: str) -> Iterable[tuple[str, int]]:
    return progress(tables, desc, "table")


def _microbenchmarks(args: argparse.Namespace) -> str:
    target = _target(args)
    run = GuidelineRun.chosen(
        quick=args.quick,
        guidelines=args.only,
        batch=args.batch,
        timing=None if args.quick else Timing(min_time_s=args.min_time),
        rounds=args.rounds,
    )
    frame = run_guidelines(target, run, progress=_by_table)
    if args.format in ("csv", "json"):
        return emit(frame, args.format)
    info = describe(target)
    shown = frame.assign(
        scale=frame["scale"].map(lambda s: f"×{s}"),
        flops_m=(frame["flops"] / 1e6).round(1),
        mac_m=(frame["mac"] / 1e6).round(2),
    ).round({"latency_ms_median": 3, "batches_s": 1, "images_s": 1, "flops_vs_base": 3, "paper_vs_base": 2})
    shown["speed_vs_base"] = speed_texts(frame)
    columns = {
        "config": "config",
        "scale": "scale",
        "channels": "channels",
        "flops_m": "MFLOPs (mult-adds)",
        "flops_vs_base": "FLOPs vs base",
        "mac_m": "MAC (M elem)",
        "latency_ms_median": "median (ms)",
        "batches_s": "batches/s",
        "images_s": "images/s",
        "speed_vs_base": f"speed vs base [{CONFIDENCE:.0%} CI]",
        "paper_speed": "paper",
        "paper_vs_base": "paper vs base",
    }
    batch, column = run.batch_on(target), paper_column(target)
    parts = [
        f"# target: {target.key} ({info['device_name']}), torch {info['torch']}, batch {batch}, "
        f"input {batch}×c×{SIDE}×{SIDE}, {BLOCKS} blocks; channels and 'paper' speeds: SN2's {column.upper()} column "
        f"({PAPER_COLUMNS[column]}); each table timed in {run.rounds} interleaved rounds\n"
    ]
    for key, rows in shown.groupby("guideline", sort=False):
        g = GUIDELINES[str(key)]
        parts.append(f"\n## {g.key} ({g.source}): {g.title}\n")
        parts.append(emit(rows, args.format, columns))
        parts.append(f"verdict: {rows['verdict'].iloc[0]}\n")
    return "".join(parts)


def _audit(args: argparse.Namespace) -> str:
    if args.top < 1:
        raise CnnbenchError(f"--top must be at least 1, got {args.top}")
    time_target = _target(args) if args.time else None
    names = model_names(args.audit, args.all, option="--audit")
    audits = [
        audit(name, resolution=args.res, batch=args.batch or 1, time_target=time_target)
        for name in progress(names, "audit")
    ]
    if args.per_layer:
        frame = offenders_frame(audits, args.top)
        if args.format in ("csv", "json"):
            return emit(frame, args.format)
        table = frame.assign(mac_pct=(100 * frame["mac_share"]).round(2), mac_k=(frame["mac"] / 1e3).round(1))
        columns = {
            "model": "model",
            "guideline": "guideline",
            "module": "module",
            "kind": "kind",
            "detail": "detail",
            "mac_k": "MAC (k elem)",
            "mac_pct": "% of model MAC",
        }
        return emit(table, args.format, columns)
    frame = audit_frame(audits)
    if args.format in ("csv", "json"):
        return emit(frame, args.format)
    pct = {c: (100 * frame[c]).round(1) for c in frame.columns if c.endswith("_share")}
    table = frame.assign(
        flops_m=(frame["flops"] / 1e6).round(1),
        mac_m=(frame["mac"] / 1e6).round(2),
        g1_mac_over_bound=frame["g1_mac_over_bound"].round(3),
        g1_worst=frame["g1_worst"].round(2),
        g3_mean_fragments=frame["g3_mean_fragments"].round(2),
        **pct,
    )
    columns: dict[str, str] = {
        "model": "model",
        "flops_m": "MFLOPs",
        "mac_m": "MAC (M)",
        "g1_mac_over_bound": "G1 1×1 MAC/bound",
        "g1_worst": "G1 worst",
        "g1_flagged": f"G1 ≥{G1_FLAG}",
        "g2_mac_share": "G2 group-conv MAC %",
        "g2_groups": "G2 groups",
        "g3_max_branches": "G3 max branches",
        "g3_flagged_blocks": "G3 blocks >2 br.",
        "g3_mean_fragments": "G3 conv/pool per block",
        "g4_mac_share": "G4 elementwise MAC %",
        "g4_conv_depthwise_share": "G4 of which depthwise %",
        "flags": "flags",
    }
    if "g4_time_share" in frame:
        columns = {**{k: v for k, v in columns.items() if k != "flags"}, "g4_time_share": "G4 time %", "flags": "flags"}
    table["g2_groups"] = table["g2_groups"].where(table["g2_groups"] != "", "–")
    legend = (
        f"# G1: ΣMAC/ΣBound over 1×1 convs (1 = equal widths), worst layer, layers ≥{G1_FLAG}; G2: MAC share in group "
        "convs, group counts; G3: most branches in a block, blocks with >2, conv/pool ops per block; G4: MAC share "
        "of activation + add/mul + norm + depthwise conv. flags: the guidelines a model breaks by these thresholds "
        "(G4: ≥50%).\n"
    )
    out = emit(table, args.format, columns)
    return legend + out if args.format == "table" else out


def _cmd_guidelines(args: argparse.Namespace) -> str:
    if args.batch is not None and args.batch < 1:
        raise CnnbenchError(f"--batch must be at least 1, got {args.batch}")
    if args.audit is not None or args.all:
        return _audit(args)
    for flag, given in (("--per-layer", args.per_layer), ("--time", args.time), ("--res", args.res is not None)):
        if given:
            raise CnnbenchError(f"{flag} goes with --audit MODEL... or --all")
    return _microbenchmarks(args)


def add_commands(sub: Any) -> None:
    """Add ``cnnbench guidelines`` to the CLI's subparsers."""
    p = sub.add_parser(
        "guidelines",
        help="ShuffleNetV2's guidelines G1-G4: the paper's microbenchmarks on a target, or an audit of models",
        description="Without --audit: SN2 Tables 1-4 re-run on the target (10 blocks on a 56×56 input, FLOPs held "
        "constant per table), each row beside the paper's figure, with a verdict per guideline. With --audit: each "
        "model's 1×1 MAC over its bound (G1), group-conv MAC share (G2), branches and conv/pool ops per block (G3) "
        "and element-wise MAC share (G4), counted on the meta device. FLOPs are multiply-adds; MAC is memory "
        "access cost (elements read + written).",
    )
    add_target_arguments(p)
    p.add_argument("--batch", type=int, default=None, help="batch size (default: 1 on the CPU, 8 on a GPU; audit: 1)")
    p.add_argument("--quick", action="store_true", help="the ×1 scale only, with short timing (tests, CI)")
    p.add_argument("--only", nargs="+", choices=list(GUIDELINES), metavar="G", help="run only these: G1 G2 G3 G4")
    p.add_argument("--min-time", type=positive_float, default=1.0, help="seconds of timed iterations per configuration")
    p.add_argument(
        "--rounds",
        type=positive_int,
        default=None,
        help=f"interleaved rounds per table (default {ROUNDS}, {QUICK_ROUNDS} with --quick); ratios get a "
        f"{CONFIDENCE * 100:g}%% bootstrap interval over them",
    )
    p.add_argument(
        "--audit", nargs="*", metavar="MODEL", help="audit models: zoo names or wildcards, timm:NAME, torchvision:NAME"
    )
    p.add_argument("--all", action="store_true", help="audit every zoo model")
    p.add_argument("--per-layer", action="store_true", help="with --audit: the worst offending layers per guideline")
    p.add_argument("--top", type=int, default=5, help="offenders listed per guideline and model (default 5)")
    p.add_argument("--res", type=int, default=None, help="with --audit: input side (default: each model's own)")
    p.add_argument("--time", action="store_true", help="with --audit: also time each op on the target (G4 time %%)")
    printed_by(p, _cmd_guidelines)
