"""``cnnbench``: a thin command line over the Python API. Every command parses, calls the API and prints a table,
CSV or JSON; nothing else happens here.

A :class:`~cnnbench.errors.CnnbenchError` becomes one line on stderr and exit code 2, with no traceback. The
commands live by concern: :mod:`.core` (list, profile, bench, report), :mod:`.guidelines`, :mod:`.accuracy`
(train, eval), :mod:`.choose` (pick), :mod:`.compare`, :mod:`.costmodel` (calibrate, predict), :mod:`.export`,
:mod:`.fleet` (fleet and its subcommands); :mod:`.common` holds what they share. A command returns the text to
print, or the text and an exit code where the code is its answer (``compare``'s gate: 1 when a model got slower).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from cnnbench.cli import accuracy, choose, compare, core, costmodel, export, fleet, guidelines
from cnnbench.cli.common import Parser
from cnnbench.errors import CnnbenchError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="cnnbench", description="Compare lightweight CNNs side by side on your own hardware.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
    for commands in (core, export, guidelines, accuracy, choose, compare, costmodel, fleet):
        commands.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(fleet.merge_by_default(sys.argv[1:] if argv is None else argv))
    except SystemExit as stop:  # a bad option (one line already printed), or --help
        return stop.code if isinstance(stop.code, int) else 2
    try:
        out: str | tuple[str, int] = args.run(args)
    except CnnbenchError as err:
        print(f"cnnbench {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cnnbench: interrupted", file=sys.stderr)
        return 130
    text, code = out if isinstance(out, tuple) else (out, 0)
    sys.stdout.write(text)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
