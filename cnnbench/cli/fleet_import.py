"""``cnnbench fleet import``: a device's own benchmark log (benchncnn, ExecuTorch's executor_runner) as a results
folder. :mod:`cnnbench.cli.fleet` registers it with :func:`add_import_command`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from cnnbench.cli.common import positive_int, printed_by
from cnnbench.errors import CnnbenchError
from cnnbench.output import emit

__all__ = ["add_import_command"]


def _read_log(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as err:
        raise CnnbenchError(f"cannot read the log {path} ({err.strerror or type(err).__name__})") from None


def _cmd_import(args: argparse.Namespace) -> str:
    from cnnbench.fleet.imports import import_benchncnn, import_executor_runner, write_imported

    if args.from_benchncnn is None and args.from_executor_runner is None:
        raise CnnbenchError("give the log with --from-benchncnn LOG or --from-executor-runner LOG")
    if args.from_benchncnn is not None and (args.threads is not None or args.dtype is not None):
        raise CnnbenchError("a benchncnn log says its threads and dtype; drop --threads and --dtype")
    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):  # refused before the log is read
        raise CnnbenchError(f"{out} is not a new folder (it holds other files); give --out a new or empty folder")
    if args.from_benchncnn is not None:
        rows = import_benchncnn(_read_log(args.from_benchncnn), args.hardware, args.host)
    else:
        log = _read_log(args.from_executor_runner)
        rows = import_executor_runner(log, args.hardware, args.host, args.dtype or "fp32", args.threads)
    written = write_imported(rows, out)
    for left in rows.attrs.get("left_out", []):
        print(f"cnnbench fleet import: left out {left}", file=sys.stderr)
    print(f"cnnbench fleet import: wrote {', '.join(str(p) for p in written)}", file=sys.stderr)
    columns = {
        "model": "model",
        "target": "target",
        "latency_ms_median": "ms",
        "latency_ms_min": "min ms",
        "latency_ms_max": "max ms",
    }
    return emit(rows, args.format, columns)


def add_import_command(sub: Any) -> None:
    """``import`` under the subparsers ``sub`` (``cnnbench fleet``'s)."""
    parser = sub.add_parser(
        "import",
        help="a device's benchncnn or executor_runner log as a results folder",
        description="Reads the timing a phone or a board printed for the files of `cnnbench export` (or for "
        "ncnn's built-in models) and writes latency-<target>.csv tables into a new folder, rows marked "
        "source = 'device log'. benchncnn's avg is a mean; it fills the median column.",
    )
    parser.add_argument("--from-benchncnn", metavar="LOG", default=None, help="benchncnn's output")
    parser.add_argument(
        "--from-executor-runner", metavar="LOG", default=None, help="ExecuTorch executor_runner's output"
    )
    parser.add_argument("--hardware", default="", metavar="TEXT", help="the device, in words (required)")
    parser.add_argument("--host", metavar="NAME", default="device", help="the device's name (default: device)")
    parser.add_argument("--out", required=True, metavar="DIR", help="a new folder for the tables")
    parser.add_argument(
        "--threads", type=positive_int, default=None, help="executor_runner: threads, where the log does not say"
    )
    parser.add_argument("--dtype", choices=("fp32", "int8"), default=None, help="executor_runner: the files' dtype")
    printed_by(parser, _cmd_import)
