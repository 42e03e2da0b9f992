"""``cnnbench``: a thin command line over the Python API. Every command parses, calls the API and prints a table,
CSV or JSON; nothing else happens here.

A :class:`~cnnbench.errors.CnnbenchError` becomes one line on stderr and exit code 2, with no traceback. The
commands live by concern: :mod:`.core` (list, profile, bench, report), :mod:`.guidelines`, :mod:`.accuracy`
(train, eval); :mod:`.common` holds what they share.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from cnnbench.cli import accuracy, core, guidelines
from cnnbench.cli.common import Parser
from cnnbench.errors import CnnbenchError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="cnnbench", description="Compare lightweight CNNs side by side on your own hardware.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
    for commands in (core, guidelines, accuracy):
        commands.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # a bad option (one line already printed), or --help
        return stop.code if isinstance(stop.code, int) else 2
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
