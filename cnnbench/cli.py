"""``cnnbench``: a thin command line over the Python API. Every command prints a table, CSV or JSON.

A :class:`~cnnbench.errors.CnnbenchError` becomes one line on stderr and exit code 2, with no traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import pandas as pd

from .catalog import catalog
from .errors import CnnbenchError

FORMATS = ("table", "csv", "json")


def _emit(frame: pd.DataFrame, fmt: str, table_columns: dict[str, str] | None = None) -> str:
    """Render a frame: the full frame for csv/json, a readable selection (renamed columns) for table."""
    if fmt == "csv":
        return frame.to_csv(index=False)
    if fmt == "json":
        return frame.to_json(orient="records", indent=2) + "\n"
    shown = frame[list(table_columns)].rename(columns=table_columns) if table_columns else frame
    return shown.to_string(index=False, na_rep="–") + "\n"


def _cmd_list(args: argparse.Namespace) -> str:
    frame = catalog(args.patterns or ["*"])
    table = frame.assign(
        params_m=(frame["params"] / 1e6).round(2),
        published_params_m=(frame["published_params"] / 1e6).round(2),
    )
    columns = {
        "name": "name",
        "family": "family",
        "resolution": "res",
        "params_m": "params (M)",
        "published_params_m": "paper params (M)",
        "published_top1": "paper top-1 (%)",
    }
    return _emit(frame if args.format != "table" else table, args.format, columns)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cnnbench",
        description="Compare lightweight CNNs side by side on your own hardware.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p_list = sub.add_parser("list", help="list the zoo's models (name, family, resolution, params, published top-1)")
    p_list.add_argument("patterns", nargs="*", metavar="PATTERN", help="shell-style wildcards, e.g. 'efficientnet*'")
    p_list.add_argument("--format", choices=FORMATS, default="table")
    p_list.set_defaults(run=_cmd_list)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        out = args.run(args)
    except CnnbenchError as err:
        print(f"cnnbench {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cnnbench: interrupted", file=sys.stderr)
        return 130
    sys.stdout.write(out)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
