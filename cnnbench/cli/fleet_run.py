"""``cnnbench fleet run --ray ADDRESS|auto``: parse, call :func:`cnnbench.fleet.ray_run.run_on_ray`, print the
folders it gathered. The ``fleet`` command registers it with :func:`add_run_command`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cnnbench.cli.common import positive_int
from cnnbench.fleet.ray_run import AUTO, ReportOptions, run_on_ray
from cnnbench.output import say_to_stderr
from cnnbench.runtimes import DEPLOYMENTS

__all__ = ["add_run_command"]


def _cmd_run(args: argparse.Namespace) -> str:
    options = ReportOptions(
        quick=args.quick,
        device=args.device,
        threads=args.threads,
        deploy=args.deploy,
        sweeps=not args.no_sweeps,
        predict=not args.no_predict,
    )
    out = Path(args.out)
    folders = run_on_ray(args.ray, args.models, options, out, say=say_to_stderr("fleet run"))
    return "\n".join([f"gathered {len(folders)} board folder(s) into {out}/:", *(f"  {f}" for f in folders)]) + "\n"


def add_run_command(sub: Any) -> None:
    """``run`` on ``sub``, the subparsers of ``cnnbench fleet`` (what ``add_subparsers`` returned); its handler is
    the parsed arguments' ``run``, as every command's."""
    p_run = sub.add_parser(
        "run",
        help="run `cnnbench report` on every board of a Ray cluster and gather each board's folder",
        description="One Ray task per board (a custom resource of a node, such as rpi5), pinned to its node "
        "with all of the node's CPUs, so that nothing else runs beside the timed report; each board's results "
        "folder comes back as OUT/<host>-<board>/. See docs/fleet-ray.md.",
    )
    p_run.add_argument(
        "models",
        nargs="*",
        metavar="MODEL",
        help="zoo names or wildcards to report (default: the whole zoo, four models with --quick)",
    )
    p_run.add_argument(
        "--ray",
        required=True,
        metavar="ADDRESS|auto",
        help=f"the Ray cluster's address (HEAD:6379, as `ray status` prints it); {AUTO}: start a local Ray "
        "instance whose one board is this machine",
    )
    p_run.add_argument("--out", required=True, metavar="DIR", help="where each board's folder is gathered")
    p_run.add_argument("--quick", action="store_true", help="four models, short timing: a first look, or tests")
    p_run.add_argument("--device", default=None, help="the torch device on each board: cpu, cuda, cuda:N, mps")
    p_run.add_argument("--threads", type=positive_int, default=None, help="CPU threads (default: torch's)")
    p_run.add_argument(
        "--deploy",
        default=None,
        metavar="BACKEND:DTYPE,...",
        help=f"the report's deployment runtimes (default {','.join(DEPLOYMENTS)}; 'none' for none)",
    )
    p_run.add_argument("--no-sweeps", action="store_true", help="skip the batch and threads sweeps")
    p_run.add_argument("--no-predict", action="store_true", help="skip the cost model's predictions")
    p_run.set_defaults(run=_cmd_run)
