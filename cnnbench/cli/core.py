"""``cnnbench``: a thin command line over the Python API. Every command prints a table, CSV or JSON.

A :class:`~cnnbench.errors.CnnbenchError` becomes one line on stderr and exit code 2, with no traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import pandas as pd

from .bench import as_frame, iter_bench
from .catalog import catalog, resolve_patterns, resolve_specs, versus_published
from .cli_accuracy import add_commands as add_accuracy_commands
from .cli_guidelines import add_commands as add_guideline_commands
from .errors import CnnbenchError
from .latency import Timing
from .output import FORMATS, emit, progress
from .profiling import DTYPES, layers_frame, profile, totals_frame
from .roofline import cached_roofline
from .target import Target, describe, resolve_target


def _cmd_list(args: argparse.Namespace) -> str:
    if args.vs_paper:
        return _list_vs_paper(args)
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
    return emit(frame if args.format != "table" else table, args.format, columns)


def _list_vs_paper(args: argparse.Namespace) -> str:
    frame = versus_published(args.patterns or ["*"])
    table = frame.assign(
        params_m=(frame["params"] / 1e6).round(2),
        published_params_m=frame["published_params"] / 1e6,
        flops_m=(frame["flops"] / 1e6).round(1),
        published_flops_m=frame["published_flops"] / 1e6,
    )
    columns = {
        "name": "model",
        "resolution": "res",
        "params_m": "params (M)",
        "published_params_m": "paper (M)",
        "params_dev_pct": "Δ params %",
        "flops_m": "FLOPs (M mult-adds)",
        "published_flops_m": "paper (M)",
        "flops_dev_pct": "Δ FLOPs %",
        "published_source": "source",
    }
    return emit(frame if args.format in ("csv", "json") else table, args.format, columns)


def _model_names(args: argparse.Namespace) -> list[str]:
    """Zoo names and wildcards resolve against the registry; ``timm:``/``torchvision:`` names pass through."""
    if args.all:
        return resolve_patterns(["*"])
    if not args.models:
        raise CnnbenchError("name at least one model, or pass --all (`cnnbench list` shows the zoo)")
    return resolve_specs(args.models)


MB = 1e6


def _cmd_profile(args: argparse.Namespace) -> str:
    if args.batch < 1:
        raise CnnbenchError(f"--batch must be at least 1, got {args.batch}")
    profiles = [
        profile(name, resolution=args.res, batch=args.batch, dtype=args.dtype, training_memory=not args.no_training,
                autocast=args.autocast)
        for name in progress(_model_names(args), "profile")
    ]
    if args.per_layer:
        frame = layers_frame(profiles)
        shown = ["module", "op", "kind", "output_shape", "flops", "flops_elementwise", "mac"]
        if len(profiles) > 1:
            shown.insert(0, "model")
        return emit(frame, args.format, {c: c for c in shown})
    if args.by:
        frame = pd.concat(
            [
                (p.by_kind() if args.by == "kind" else p.by_module(args.depth)).assign(model=p.totals.model)
                for p in profiles
            ],
            ignore_index=True,
        )
        frame = frame[["model", *[c for c in frame.columns if c != "model"]]]
        return emit(frame.round(4), args.format)
    frame = totals_frame(profiles)
    table = frame.assign(
        params_m=frame["params"] / 1e6,
        flops_m=frame["flops"] / 1e6,
        flops_elementwise_m=frame["flops_elementwise"] / 1e6,
        mac_m=frame["mac"] / 1e6,
        mac_mb=frame["mac_bytes"] / MB,
        act_mb=frame["activation_peak_bytes"] / MB,
        train_mb=frame["training_saved_bytes"] / MB,
    ).round(2)
    columns = {
        "model": "model",
        "resolution": "res",
        "params_m": "params (M)",
        "flops_m": "FLOPs (M mult-adds)",
        "flops_elementwise_m": "elementwise (M)",
        "mac_m": "MAC (M elem)",
        "mac_mb": "MAC (MB)",
        "arithmetic_intensity": "mult-adds/byte",
        "act_mb": "act peak (MB)",
        "train_mb": "train saved (MB)",
    }
    return emit(frame if args.format != "table" else table, args.format, columns)


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that make a target: device, threads, dtype, memory format, backend, BN folding."""
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps (default cpu)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    parser.add_argument("--dtype", choices=list(DTYPES), default="fp32", help="fp16/bf16 run under autocast")
    parser.add_argument("--channels-last", action="store_true", help="NHWC memory format for model and input")
    parser.add_argument("--backend", choices=("eager", "compile"), default="eager", help="compile: torch.compile")
    parser.add_argument("--fuse-bn", action="store_true", help="fold BatchNorm into the convolutions first")


def target_from(args: argparse.Namespace) -> Target:
    return Target(
        device=args.device,
        threads=args.threads,
        dtype=args.dtype,
        channels_last=args.channels_last,
        backend=args.backend,
        fuse_bn=args.fuse_bn,
    )


def _batches(text: str) -> list[int]:
    try:
        batches = [int(b) for b in text.split(",") if b.strip()]
    except ValueError:
        raise CnnbenchError(f"--batch takes comma-separated integers such as 1,8,32; got {text!r}") from None
    bad = [b for b in batches if b < 1]
    if not batches or bad:
        raise CnnbenchError(f"every --batch must be at least 1; got {text!r}")
    return batches


def _cmd_bench(args: argparse.Namespace) -> str:
    target, notes = resolve_target(target_from(args))
    batches = _batches(args.batch)
    names = _model_names(args)
    for note in notes:
        print(f"cnnbench bench: note: {note}", file=sys.stderr)
    roof = None if args.no_roofline else cached_roofline(target)
    timing = Timing(min_time_s=args.min_time)
    sweep = iter_bench(names, target, batches, args.res, timing, roof)
    runs = [f"{n}@{b}" for n in names for b in batches]
    frame = as_frame([row for _, row in zip(progress(runs, "bench", unit="run"), sweep, strict=True)])
    if frame["status"].eq("failed").all() and len(frame) == 1:
        raise CnnbenchError(str(frame["error"].iloc[0]))
    columns = {
        "model": "model",
        "batch": "batch",
        "latency_ms_median": "median (ms)",
        "latency_ms_p95": "p95 (ms)",
        "cv": "CV",
        "throughput_img_s": "img/s",
        "flops_g": "GFLOPs (mult-adds)",
        "mac_mb": "MAC (MB)",
        "roofline_bound_ms": "roofline (ms)",
        "roofline_fraction": "of roofline",
        "status": "status",
    }
    table = frame.assign(
        flops_g=pd.to_numeric(frame["flops"]) / 1e9,
        mac_mb=pd.to_numeric(frame["mac_bytes"]) / 1e6,
    )
    digits = {"latency_ms_median": 2, "latency_ms_p95": 2, "cv": 3, "throughput_img_s": 1, "flops_g": 3, "mac_mb": 1}
    table = table.round({**digits, "roofline_bound_ms": 3, "roofline_fraction": 3})
    if table["status"].eq("failed").any():
        failed = table["status"].eq("failed")
        table.loc[failed, "status"] = "failed: " + table.loc[failed, "error"].astype(str)
    header = f"# target: {target.key} ({describe(target)['device_name']}), torch {describe(target)['torch']}\n"
    if roof is not None and args.format == "table":
        header += (
            f"# roofline: {roof.peak_flops_per_s / 1e9:.1f} GFLOP/s peak (matmul / 3×3 conv), "
            f"{roof.bandwidth_bytes_per_s / 1e9:.1f} GB/s (copy)\n"
        )
    out = emit(frame if args.format in ("csv", "json") else table, args.format, columns)
    return header + out if args.format == "table" else out


def _cmd_report(args: argparse.Namespace) -> str:
    from pathlib import Path

    from .report import ReportConfig, run_report

    target = target_from(args)
    files = tuple(Path(p) for p in args.from_benchmark)
    out = Path(args.out)
    common = {"target": target, "force": args.force, "benchmark_files": files, "resolution": args.res,
              "guideline_rounds": args.rounds}  # fmt: skip
    if args.models:
        common["models"] = tuple(args.models)
    if args.quick:
        config = ReportConfig.quick_config(out, **common)
    else:
        config = ReportConfig(out=out, batch=args.batch, timing=Timing(min_time_s=args.min_time), **common)
    written = run_report(config, progress)  # checks every input, in seconds, before the first model is measured
    lines = [f"wrote {len(written)} files to {out}/:"] + [f"  {p}" for p in sorted(map(str, set(written.values())))]
    return "\n".join(lines) + "\n"


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a number greater than 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
    return value


class Parser(argparse.ArgumentParser):
    """argparse, with its errors in one line (``cnnbench report: error: ...``) and exit code 2, no usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="cnnbench",
        description="Compare lightweight CNNs side by side on your own hardware.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)

    p_list = sub.add_parser("list", help="list the zoo's models (name, family, resolution, params, published top-1)")
    p_list.add_argument("patterns", nargs="*", metavar="PATTERN", help="shell-style wildcards, e.g. 'efficientnet*'")
    p_list.add_argument(
        "--vs-paper",
        action="store_true",
        help="counted params and FLOPs (multiply-adds) beside the paper's figures, with the deviation",
    )
    p_list.add_argument("--format", choices=FORMATS, default="table")
    p_list.set_defaults(run=_cmd_list)

    p_prof = sub.add_parser(
        "profile",
        help="count params, FLOPs (multiply-adds), memory-access cost and memory, per model or per layer",
        description="Counted on the meta device: nothing is computed, nothing downloaded. FLOPs are multiply-adds "
        "(one fused multiply-add = 1); MAC is ShuffleNetV2's memory access cost (elements read + written).",
    )
    p_prof.add_argument(
        "models", nargs="*", metavar="MODEL", help="zoo names or wildcards, timm:NAME, torchvision:NAME"
    )
    p_prof.add_argument("--all", action="store_true", help="every zoo model")
    p_prof.add_argument("--res", type=positive_int, default=None, help="input side in pixels (default: each "
                        "model's own)")
    p_prof.add_argument("--batch", type=positive_int, default=1)
    p_prof.add_argument("--dtype", choices=list(DTYPES), default="fp32", help="sets mac_bytes and memory")
    p_prof.add_argument(
        "--autocast", action="store_true",
        help="count --dtype as a target runs it, under autocast: fp32 weights, activations at --dtype",
    )
    p_prof.add_argument("--per-layer", action="store_true", help="one row per aten op, with its module path")
    p_prof.add_argument("--by", choices=("kind", "module"), help="sums per op kind or per module")
    p_prof.add_argument("--depth", type=int, default=2, help="module path depth for --by module (default 2)")
    p_prof.add_argument("--no-training", action="store_true", help="skip the training-memory pass (faster)")
    p_prof.add_argument("--format", choices=FORMATS, default="table")
    p_prof.set_defaults(run=_cmd_profile)

    p_bench = sub.add_parser(
        "bench",
        help="measure latency on a target (device, threads, dtype, layout, backend) beside the roofline",
        description="Warm-up until timings settle, then timed iterations until --min-time; CUDA events on a GPU. "
        "Prints the median, its spread, throughput, and the roofline bound max(2·FLOPs/peak, MAC bytes/bandwidth).",
    )
    p_bench.add_argument(
        "models", nargs="*", metavar="MODEL", help="zoo names or wildcards, timm:NAME, torchvision:NAME"
    )
    p_bench.add_argument("--all", action="store_true", help="every zoo model")
    add_target_arguments(p_bench)
    p_bench.add_argument("--batch", default="1", help="batch sizes, comma-separated (default 1)")
    p_bench.add_argument("--res", type=positive_int, default=None, help="input side (default: each model's own)")
    p_bench.add_argument("--min-time", type=positive_float, default=1.0, help="seconds of timed iterations per run")
    p_bench.add_argument("--no-roofline", action="store_true", help="skip the roofline (measured once per target)")
    p_bench.add_argument("--format", choices=FORMATS, default="table")
    p_bench.set_defaults(run=_cmd_bench)

    p_report = sub.add_parser(
        "report",
        help="the main job: profile and time the whole zoo, write results/ tables, charts and README.md",
        description="Reuses rows already measured for the same model, target and code (--force re-measures); "
        "every file is written atomically, so an interrupted run resumes.",
    )
    p_report.add_argument(
        "models", nargs="*", metavar="MODEL",
        help="zoo names or wildcards to report (default: the whole zoo); their rows join the same tables",
    )
    p_report.add_argument("--out", default="results", help="output folder (default results/)")
    p_report.add_argument("--quick", action="store_true", help="four models, short timing: a first look, or tests")
    add_target_arguments(p_report)
    p_report.add_argument("--batch", type=positive_int, default=1)
    p_report.add_argument("--res", type=positive_int, default=None,
                          help="input side for latency and breakdown (default: each model's own)")
    p_report.add_argument("--min-time", type=positive_float, default=1.0, help="seconds of timed iterations per model")
    p_report.add_argument("--rounds", type=positive_int, default=None,
                          help="interleaved rounds per guideline table (default 7, 3 with --quick)")
    p_report.add_argument(
        "--from-benchmark", nargs="*", default=[], metavar="JSON",
        help="pytest-benchmark JSON files from benchmarks/ (other targets, other machines) to add side by side",
    )
    p_report.add_argument("--force", action="store_true", help="re-measure every row")
    p_report.set_defaults(run=_cmd_report)
    add_guideline_commands(sub)
    add_accuracy_commands(sub)
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
