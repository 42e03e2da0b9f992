"""``cnnbench fleet``: several machines' results side by side (:mod:`cnnbench.fleet`).

``cnnbench fleet DIR...`` is ``cnnbench fleet merge DIR...``: the first word after ``fleet`` that is not a
subcommand's name makes the merge the command (:func:`merge_by_default`). ``import`` and ``run`` hang under
``fleet`` too, registered only when their modules are there.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from importlib import import_module
from pathlib import Path
from typing import Any

import pandas as pd

from cnnbench.cli.common import Parser, positive_int
from cnnbench.fleet.merge import merge_folders
from cnnbench.fleet.page import DEFAULT_OUT, write_page
from cnnbench.fleet.ranks import agreement

__all__ = ["SUBCOMMANDS", "add_commands", "merge_by_default", "name_pair", "published_pair"]

MERGE = "merge"
# The words after ``fleet`` that name a subcommand; anything else is a folder to merge.
SUBCOMMANDS = (MERGE, "import", "run")
# The modules that add a subcommand under ``fleet``, and the function each exposes; absent ones are skipped.
_MORE = (("cnnbench.cli.fleet_import", "add_import_command"), ("cnnbench.cli.fleet_run", "add_run_command"))
PUBLISHED_SOURCES = ("ncnn",)


def merge_by_default(argv: Sequence[str]) -> list[str]:
    """``fleet DIR...`` → ``fleet merge DIR...``; any other command line as it is."""
    argv = list(argv)
    if len(argv) > 1 and argv[0] == "fleet" and argv[1] not in (*SUBCOMMANDS, "-h", "--help"):
        return [argv[0], MERGE, *argv[1:]]
    return argv


def name_pair(text: str) -> tuple[str, str]:
    """An argparse type: ``DIR=LABEL``."""
    folder, sep, label = text.partition("=")
    if not sep or not folder or not label.strip():
        raise argparse.ArgumentTypeError(f"takes DIR=LABEL, got {text!r}")
    return folder, label.strip()


def published_pair(text: str) -> tuple[str, Path | None]:
    """An argparse type: ``ncnn`` (the table the package carries) or ``ncnn=FILE``."""
    source, _, file = text.partition("=")
    if source not in PUBLISHED_SOURCES:
        raise argparse.ArgumentTypeError(f"takes one of {', '.join(PUBLISHED_SOURCES)}[=FILE], got {text!r}")
    return source, Path(file) if file else None


def _agreement_line(agree: pd.DataFrame) -> str:
    """``ρ 0.938, τ 0.791 (62 models) on boxc · ...``, every device against the reference; past three devices, the
    lowest and highest ρ."""
    others = agree[agree["device"] != agree["reference"]].dropna(subset=["spearman_rho"])
    if others.empty:
        return f"{len(agree)} device(s), nothing to compare"
    said = [
        f"{r.device}: ρ {r.spearman_rho:.3f}, τ {r.kendall_tau:.3f} ({r.models} models)" for r in others.itertuples()
    ]
    if len(others) <= 3:
        return f"against {agree['reference'].iloc[0]}: " + "; ".join(said)
    order = others.sort_values("spearman_rho")
    low, high = said[others.index.get_loc(order.index[0])], said[others.index.get_loc(order.index[-1])]
    return f"{len(agree)} devices against {agree['reference'].iloc[0]}; lowest {low}; highest {high}"


def _cmd_merge(args: argparse.Namespace) -> str:
    published = None
    if args.published is not None:
        from cnnbench.fleet.published import published_rows  # only when asked: its table loads here

        published = published_rows(args.published[1])
    fleet = merge_folders(
        [Path(d) for d in args.folders],
        dict(args.name),
        published=published,
        published_devices=args.devices,
        batch=args.batch,
        reference=args.reference,
    )
    readme = write_page(fleet, Path(args.out))
    lines = [f"# {len(fleet.devices)} devices, {len(fleet.targets())} targets; reference: {fleet.reference}"]
    lines += [f"# {note}" for note in fleet.notes]
    for target in fleet.targets():
        lines.append(f"{target}: {_agreement_line(agreement(fleet, target))}")
    lines.append(f"wrote {readme}")
    return "\n".join(lines) + "\n"


def add_commands(sub: Any) -> None:
    """``fleet`` with its subcommands ``merge`` (the default), and ``import``, ``run`` where present."""
    p_fleet = sub.add_parser(
        "fleet",
        help="several machines' results side by side: matrix, ranks, fronts (fleet DIR... merges)",
        description="cnnbench fleet DIR... (= cnnbench fleet merge DIR...) merges results folders from several "
        "machines into one page; cnnbench fleet SUBCOMMAND --help for the others.",
    )
    fleet_sub = p_fleet.add_subparsers(dest="fleet_command", required=True, metavar="SUBCOMMAND", parser_class=Parser)
    p_merge = fleet_sub.add_parser(
        MERGE,
        help="merge results folders (one per machine) into fleet/README.md",
        description="Merges results folders (cnnbench report --out, one per machine) into one page: a device × "
        "model latency matrix per target, each model's rank per device with Spearman ρ and Kendall τ against the "
        "reference device, a rank-change chart, the Pareto fronts overlaid, and INT8 against fp32. Disturbed rows, "
        "failed runs and rows of other code are listed apart, never ranked. Bad input: one line, exit 2, nothing "
        "written.",
    )
    p_merge.add_argument("folders", nargs="+", metavar="DIR", help="results folders, one per machine")
    p_merge.add_argument(
        "--published",
        type=published_pair,
        default=None,
        metavar="ncnn[=FILE]",
        help="add the devices of ncnn's published benchmark table (its benchmark/README.md, or FILE)",
    )
    p_merge.add_argument(
        "--devices",
        action="append",
        default=[],
        metavar="PATTERN",
        help="keep the published devices this wildcard matches, case-insensitive (repeatable): 'raspberry pi*'",
    )
    p_merge.add_argument(
        "--name", type=name_pair, action="append", default=[], metavar="DIR=LABEL", help="label DIR's device LABEL"
    )
    p_merge.add_argument(
        "--reference", default=None, metavar="LABEL", help="rank against this device (default: the first)"
    )
    p_merge.add_argument("--batch", type=positive_int, default=1, help="the batch compared (default 1)")
    p_merge.add_argument(
        "--out", default=str(DEFAULT_OUT), metavar="DIR", help=f"the page's folder (default {DEFAULT_OUT})"
    )
    p_merge.set_defaults(run=_cmd_merge)
    for module, function in _MORE:
        try:
            commands = import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:
                raise
            continue
        getattr(commands, function)(fleet_sub)
