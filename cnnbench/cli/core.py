"""``cnnbench list``, ``profile``, ``bench`` and ``report``: parse, call the Python API, print."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from cnnbench.catalog import catalog, versus_published
from cnnbench.cli.common import (
    add_model_arguments,
    add_quiet_arguments,
    add_target_arguments,
    calibration_from,
    check_quiet,
    disturbed_summary,
    model_names,
    positive_float,
    positive_float_or_all,
    positive_int,
    printed_by,
    quieting_for,
    target_from,
)
from cnnbench.errors import CnnbenchError
from cnnbench.fronts import disturbed
from cnnbench.measure.bench import as_frame
from cnnbench.measure.disturbance import MIN_CPU_SHARE
from cnnbench.measure.latency import REPORT_TIMING, Timing
from cnnbench.measure.profiling import layers_frame, profile, totals_frame
from cnnbench.measure.resident import PeakResident
from cnnbench.measure.roofline import Roofline, cached_roofline
from cnnbench.measure.sweep import check_threads, iter_sweep, oversubscription_warning, with_speedup
from cnnbench.output import COLD_START_HEADINGS, emit, progress, say_to_stderr, with_megabytes
from cnnbench.results import DEFAULT_FOLDER, ResultsFolder
from cnnbench.runtimes import DEPLOY_MAX_FLOPS, DEPLOYMENTS
from cnnbench.store import check_writable
from cnnbench.target import DTYPES, INT8, Target, describe, resolve_target


def _cmd_list(args: argparse.Namespace) -> str:
    if args.vs_paper:
        return _list_vs_paper(args)
    frame = catalog(args.patterns or ["*"])
    table = frame.assign(
        params_m=(frame["params"] / 1e6).round(2),
        published_params_m=(pd.to_numeric(frame["published_params"]) / 1e6).round(2),  # all None for ResNet
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


MB = 1e6


def _cmd_profile(args: argparse.Namespace) -> str:
    if args.batch < 1:
        raise CnnbenchError(f"--batch must be at least 1, got {args.batch}")
    profiles = [
        profile(
            name,
            resolution=args.res,
            batch=args.batch,
            dtype=args.dtype,
            training_memory=not args.no_training,
            autocast=args.autocast,
        )
        for name in progress(model_names(args.models, args.all), "profile")
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


def _batches(text: str) -> list[int]:
    try:
        batches = [int(b) for b in text.split(",") if b.strip()]
    except ValueError:
        raise CnnbenchError(f"--batch takes comma-separated integers such as 1,8,32; got {text!r}") from None
    bad = [b for b in batches if b < 1]
    if not batches or bad:
        raise CnnbenchError(f"every --batch must be at least 1; got {text!r}")
    return batches


def _thread_counts(text: str) -> list[int]:
    """``--threads``: one count (any whole number from 1, as before), or a sweep such as 1,2,4 (checked by
    :func:`~cnnbench.measure.sweep.check_threads`: up to a few times the cores present)."""
    if "," not in text:
        return [positive_int(text)]
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        message = f"takes a whole number, or comma-separated ones such as 1,2,4; got {text!r}"
        raise argparse.ArgumentTypeError(message) from None


def _chart_folder(text: str | None) -> Path | None:
    """The ``--chart`` folder, made and proven writable now, before anything is measured."""
    if text is None:
        return None
    folder = Path(text)
    check_writable(folder, "--chart")
    return folder


def _threads(counts: list[int] | None) -> tuple[int | None, list[int] | None]:
    """``--threads`` as (the target's count, a sweep's counts): none given is (None, None), torch's default; one
    count, or several that are one once checked (2,2), is (N, None); several are (None, the sorted counts), checked
    by :func:`~cnnbench.measure.sweep.check_threads`."""
    if counts is None:
        return None, None
    checked = check_threads(counts) if len(counts) > 1 else counts
    return (None, checked) if len(checked) > 1 else (checked[0], None)


def _cmd_bench(args: argparse.Namespace) -> str:
    one, swept = _threads(args.threads)
    target, notes = resolve_target(target_from(argparse.Namespace(**{**vars(args), "threads": one})))
    batches = _batches(args.batch)
    names = model_names(args.models, args.all)
    if args.chart is not None and len(batches) == 1 and not swept:
        raise CnnbenchError("--chart draws a sweep: give more than one --batch (1,8,32) or --threads (1,2,4)")
    chart = _chart_folder(args.chart)
    for note in notes:
        print(f"cnnbench bench: note: {note}", file=sys.stderr)
    over = oversubscription_warning(swept or [target.threads or 1])
    if over:
        print(f"cnnbench bench: warning: {over}", file=sys.stderr)
    calibration = calibration_from(args)
    # The roofline is measured per target, threads included: a threads sweep goes without it.
    roof = None if args.no_roofline or not target.has_roofline or swept else cached_roofline(target)
    if args.res is not None:  # an impossible input side fails here, in one line, before the machine is sampled
        for name in names:
            profile(name, resolution=args.res, training_memory=False)
    check_quiet("bench", args)
    sweep = iter_sweep(
        names,
        target,
        batches,
        swept,
        args.res,
        Timing(min_time_s=args.min_time),
        roofline=roof,
        calibration=calibration,
        quieting=quieting_for("bench", args),
    )
    runs = [f"{n}@{b}" + (f"×{t}t" if swept else "") for n in names for t in (swept or [None]) for b in batches]
    frame = as_frame([row for _, row in zip(progress(runs, "bench", unit="run"), sweep, strict=True)])
    summary = disturbed_summary(frame[~frame["oversubscribed"].astype(bool)])  # their own threads lower their share
    if summary:
        print(f"cnnbench bench: {summary}", file=sys.stderr)
    if frame["status"].eq("failed").all() and len(frame) == 1:
        raise CnnbenchError(str(frame["error"].iloc[0]))
    if swept:
        frame = with_speedup(frame)
    if chart is not None:
        for path in _sweep_charts(frame, chart, target.key, len(batches) > 1, bool(swept)):
            print(f"cnnbench bench: wrote {path}", file=sys.stderr)
    if args.format in ("csv", "json"):
        return emit(frame, args.format)
    out = emit(_bench_table(frame), args.format, _bench_columns(target, roof is not None, bool(swept)))
    if args.format != "table":
        return out
    return _bench_header(target, frame, swept, calibration, roof) + out


BENCH_TABLE_COLUMNS = {
    "model": "model",
    "threads": "threads",
    "batch": "batch",
    "latency_ms_median": "median (ms)",
    "latency_ms_p95": "p95 (ms)",
    "cv": "CV",
    "throughput_img_s": "img/s",
    "speedup": "speed-up",
    "flops_g": "GFLOPs (mult-adds)",
    "mac_mb": "MAC (MB)",
    "roofline_bound_ms": "roofline (ms)",
    "roofline_fraction": "of roofline",
    **COLD_START_HEADINGS,
    "cpu_share": "CPU share",
    "status": "status",
}
BENCH_TABLE_DIGITS = {
    "latency_ms_median": 2,
    "latency_ms_p95": 2,
    "cv": 3,
    "throughput_img_s": 1,
    "flops_g": 3,
    "mac_mb": 1,
    "export_s": 2,
    "quantize_s": 2,
    "load_s": 3,
    "first_inference_ms": 1,
    "peak_rss_mb": 1,
    "activation_mb": 1,
    "cpu_share": 2,
    "roofline_bound_ms": 3,
    "roofline_fraction": 3,
    "speedup": 2,
}


def _bench_columns(target: Target, roofline: bool, swept: bool) -> dict[str, str]:
    """The columns the bench table shows: a runtime's export (and int8's quantization), the roofline where there
    is one, the thread count and speed-up in a threads sweep."""
    hidden = set()
    if not target.runtime:
        hidden |= {"export_s", "quantize_s"}
    elif target.dtype != INT8:
        hidden.add("quantize_s")
    if not roofline:
        hidden |= {"roofline_bound_ms", "roofline_fraction"}
    if not swept:
        hidden |= {"threads", "speedup"}
    return {k: v for k, v in BENCH_TABLE_COLUMNS.items() if k not in hidden}


def _bench_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The bench rows as the table prints them: sizes in G and MB, rounded, the failed and disturbed rows said."""
    table = with_megabytes(frame).assign(
        flops_g=pd.to_numeric(frame["flops"]) / 1e9,
        mac_mb=pd.to_numeric(frame["mac_bytes"]) / 1e6,
    )
    for column in ("export_s", "quantize_s", "load_s", "first_inference_ms"):
        table[column] = pd.to_numeric(table[column])
    table = table.round(BENCH_TABLE_DIGITS)
    failed = table["status"].eq("failed")
    table.loc[failed, "status"] = "failed: " + table.loc[failed, "error"].astype(str)
    table.loc[disturbed(table), "status"] = "disturbed"
    table.loc[~failed & table["oversubscribed"].astype(bool), "status"] = "oversubscribed"
    table["cpu_share"] = pd.to_numeric(table["cpu_share"])
    return table


def _bench_header(
    target: Target, frame: pd.DataFrame, swept: list[int] | None, calibration: Path | None, roof: Roofline | None
) -> str:
    """The lines above the bench table: where it ran, and what its less obvious columns mean."""
    about = describe(target)
    runtime = f", {target.backend} {about['runtime_version']}" if target.runtime else ""
    header = f"# target: {target.key} ({about['device_name']}), torch {about['torch']}{runtime}\n"
    probes = pd.to_numeric(frame["probe_ms"], errors="coerce").dropna()
    header += f"# hardware: {about['hardware']}" + (f"; speed probe {probes.iloc[-1]:.2f} ms" if len(probes) else "")
    header += (
        "\n# CPU share: of the CPU time the timed threads asked for, the share they had (below "
        f"{MIN_CPU_SHARE} another process slowed the row: disturbed)\n"
    )
    if swept:
        header += (
            f"# threads swept: {', '.join(map(str, swept))}; speed-up = median at {min(swept)} "
            "thread(s) / median at this count, per model and batch; no roofline (it is per thread count)\n"
        )
    if target.dtype == INT8:
        header += f"# int8: static QDQ, per-channel weights, calibrated on {_calibration_text(calibration)}\n"
    header += (
        "# peak RSS: resident memory high-water mark during inference above that after load, each run in "
        "its own process; activations: the counted peak of live activations\n"
    )
    if roof is not None:
        header += (
            f"# roofline: {roof.peak_flops_per_s / 1e9:.1f} GFLOP/s peak (matmul / 3×3 conv), "
            f"{roof.bandwidth_bytes_per_s / 1e9:.1f} GB/s (copy)\n"
        )
    return header


def _sweep_charts(frame: pd.DataFrame, folder: Path, key: str, batches: bool, threads: bool) -> list[Path]:
    from cnnbench.report import charts  # matplotlib loads only when charts are asked for

    written = []
    if batches:
        written += charts.batch_chart(frame, ResultsFolder(folder).sweep_chart("batch", key), f"Batch sweep on {key}")
    if threads:
        written += charts.threads_chart(
            frame, ResultsFolder(folder).sweep_chart("threads", key), f"Threads sweep on {key}"
        )
    return written


def _calibration_text(folder: Path | None) -> str:
    from cnnbench.runtimes.int8 import LATENCY_CALIBRATION_IMAGES

    where = str(folder) if folder is not None else "the scikit-learn digits' training images"
    return f"up to {LATENCY_CALIBRATION_IMAGES} images of {where}"


def _cmd_report(args: argparse.Namespace) -> str:
    from cnnbench.report import ReportConfig, run_report  # matplotlib and the rest load only for the report
    from cnnbench.report.config import check_config

    target = target_from(args)
    files = tuple(Path(p) for p in args.from_benchmark)
    out = Path(args.out)
    deploy = tuple(d.strip() for d in args.deploy.split(",") if d.strip() and d.strip() != "none")
    common = {
        "target": target,
        "force": args.force,
        "benchmark_files": files,
        "resolution": args.res,
        "guideline_rounds": args.rounds,
        "deployments": deploy,
        "calibration": calibration_from(args),
        "baseline": Path(args.baseline) if args.baseline else None,
        "sweeps": not args.no_sweeps,
        "predict": not args.no_predict,
        "deploy_max_flops": args.deploy_max_gflops * 1e9 if args.deploy_max_gflops is not None else None,
    }
    if args.models:
        common["models"] = tuple(args.models)
    common["retries"] = args.retries
    if args.quick:
        config = ReportConfig.quick_config(out, **common)
    else:
        timing = replace(REPORT_TIMING, min_time_s=args.min_time)
        config = ReportConfig(out=out, batch=args.batch, timing=timing, **common)
    check_config(config)  # every input, in seconds, before the machine is sampled or a model measured
    check_quiet("report", args)
    started = time.perf_counter()
    with PeakResident() as memory:
        written = run_report(config, progress, say=say_to_stderr("report"))
    lines = [f"wrote {len(written)} files to {out}/:"] + [f"  {p}" for p in sorted(map(str, set(written.values())))]
    lines += _disturbed_lines(out)
    lines.append(f"took {(time.perf_counter() - started) / 60:.1f} min; {memory.describe()}")
    return "\n".join(lines) + "\n"


def _disturbed_lines(out: Path) -> list[str]:
    """One line per latency table of ``out`` that holds disturbed rows (this machine's or not)."""
    from cnnbench.store import ResultTable

    lines = []
    for path in ResultsFolder(out).latency_tables():
        frame = ResultTable(path, key=["model", "batch"]).frame()
        summary = disturbed_summary(frame)
        if summary:
            lines.append(f"{path.name}: {summary}")
    return lines


# What each command says of itself in --help: kept apart, as data, from the options it takes.
ABOUT: dict[str, dict[str, str]] = {
    "profile": dict(
        help="count params, FLOPs (multiply-adds), memory-access cost and memory, per model or per layer",
        description="Counted on the meta device: nothing is computed, nothing downloaded. FLOPs are multiply-adds "
        "(one fused multiply-add = 1); MAC is ShuffleNetV2's memory access cost (elements read + written).",
    ),
    "bench": dict(
        help="measure latency on a target (device, threads, dtype, layout, backend) beside the roofline",
        description="Warm-up until timings settle, then timed iterations until --min-time; CUDA events on a GPU. "
        "Prints the median, its spread, throughput, and the roofline bound max(2·FLOPs/peak, MAC bytes/bandwidth).",
    ),
    "report": dict(
        help="the main job: profile and time the whole zoo, write results/ tables, charts and README.md",
        description="Reuses rows already measured for the same model, target and code (--force re-measures); "
        "every file is written atomically, so an interrupted run resumes.",
    ),
}


def add_commands(sub: Any) -> None:
    """``list``, ``profile``, ``bench`` and ``report``."""
    for add in (_add_list, _add_profile, _add_bench, _add_report):
        add(sub)


def _add_list(sub: Any) -> None:
    p_list = sub.add_parser("list", help="list the zoo's models (name, family, resolution, params, published top-1)")
    p_list.add_argument("patterns", nargs="*", metavar="PATTERN", help="shell-style wildcards, e.g. 'efficientnet*'")
    p_list.add_argument(
        "--vs-paper",
        action="store_true",
        help="counted params and FLOPs (multiply-adds) beside the paper's figures, with the deviation",
    )
    printed_by(p_list, _cmd_list)


def _add_profile(sub: Any) -> None:
    p_prof = sub.add_parser("profile", **ABOUT["profile"])
    add_model_arguments(p_prof)
    p_prof.add_argument(
        "--res", type=positive_int, default=None, help="input side in pixels (default: each model's own)"
    )
    p_prof.add_argument("--batch", type=positive_int, default=1)
    p_prof.add_argument("--dtype", choices=list(DTYPES), default="fp32", help="sets mac_bytes and memory")
    p_prof.add_argument(
        "--autocast",
        action="store_true",
        help="count --dtype as a target runs it, under autocast: fp32 weights, activations at --dtype",
    )
    p_prof.add_argument("--per-layer", action="store_true", help="one row per aten op, with its module path")
    p_prof.add_argument("--by", choices=("kind", "module"), help="sums per op kind or per module")
    p_prof.add_argument("--depth", type=int, default=2, help="module path depth for --by module (default 2)")
    p_prof.add_argument("--no-training", action="store_true", help="skip the training-memory pass (faster)")
    printed_by(p_prof, _cmd_profile)


def _add_bench(sub: Any) -> None:
    p_bench = sub.add_parser("bench", **ABOUT["bench"])
    add_model_arguments(p_bench)
    add_target_arguments(p_bench, sweep_threads=_thread_counts)
    p_bench.add_argument(
        "--chart",
        metavar="DIR",
        default=None,
        help="write the sweep's charts (batch: throughput and latency; threads: speed-up) into DIR",
    )
    p_bench.add_argument("--batch", default="1", help="batch sizes, comma-separated (default 1)")
    p_bench.add_argument("--res", type=positive_int, default=None, help="input side (default: each model's own)")
    p_bench.add_argument("--min-time", type=positive_float, default=1.0, help="seconds of timed iterations per run")
    p_bench.add_argument("--no-roofline", action="store_true", help="skip the roofline (measured once per target)")
    add_quiet_arguments(p_bench)
    printed_by(p_bench, _cmd_bench)


def _add_report(sub: Any) -> None:
    p_report = sub.add_parser("report", **ABOUT["report"])
    p_report.add_argument(
        "models",
        nargs="*",
        metavar="MODEL",
        help="zoo names or wildcards to report (default: the whole zoo); their rows join the same tables",
    )
    p_report.add_argument("--out", default=str(DEFAULT_FOLDER), help=f"output folder (default {DEFAULT_FOLDER}/)")
    p_report.add_argument("--quick", action="store_true", help="four models, short timing: a first look, or tests")
    add_target_arguments(p_report)
    p_report.add_argument("--batch", type=positive_int, default=1)
    p_report.add_argument(
        "--res",
        type=positive_int,
        default=None,
        help="input side for latency and breakdown (default: each model's own)",
    )
    p_report.add_argument(
        "--min-time",
        type=positive_float,
        default=REPORT_TIMING.min_time_s,
        help="seconds of timed iterations per model and target (at least 5 iterations)",
    )
    p_report.add_argument(
        "--rounds",
        type=positive_int,
        default=None,
        help="interleaved rounds per guideline table (default 7, 3 with --quick)",
    )
    p_report.add_argument(
        "--from-benchmark",
        nargs="*",
        default=[],
        metavar="JSON",
        help="pytest-benchmark JSON files from benchmarks/ (other targets, other machines) to add side by side",
    )
    p_report.add_argument(
        "--deploy",
        default=",".join(DEPLOYMENTS),
        metavar="BACKEND:DTYPE,...",
        help=f"latency tables on deployment runtimes besides the target's own (default {','.join(DEPLOYMENTS)}; "
        "'none' for none)",
    )
    p_report.add_argument(
        "--deploy-max-gflops",
        type=positive_float_or_all,
        default=DEPLOY_MAX_FLOPS / 1e9,
        metavar="G|all",
        help=f"deploy only the models of at most G giga multiply-adds (default {DEPLOY_MAX_FLOPS / 1e9:g}: all but "
        "the VGGs, ResNet-101/152 and EfficientNet-B5-B7, whose exports, INT8 quantizations and rows take a third of "
        "the report on 2 cores); 'all' deploys every model",
    )
    p_report.add_argument(
        "--baseline",
        metavar="DIR",
        default=None,
        help="an earlier results folder: the README adds `cnnbench compare DIR OUT`",
    )
    p_report.add_argument("--no-sweeps", action="store_true", help="skip the batch and threads sweeps")
    p_report.add_argument(
        "--no-predict",
        action="store_true",
        help="skip the cost model's calibration and its predictions beside the measured latency",
    )
    p_report.add_argument("--force", action="store_true", help="re-measure every row")
    add_quiet_arguments(p_report)
    p_report.set_defaults(run=_cmd_report)
