"""``cnnbench report``: regenerate results/ — the tables and charts of the whole zoo on one target.

Every table is a :class:`~cnnbench.store.ResultTable`: written atomically after each row, and keyed by model (and
batch) with a fingerprint of the code that built and measured it, so a rerun reuses finished rows and a run killed
half-way resumes where it stopped. Every table has a ``.env.json`` sidecar saying where it was measured.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

import pandas as pd

import zoo

from . import bench as bench_module
from . import counting, latency, profiling
from .bench import as_frame, iter_bench
from .catalog import resolve_patterns
from .errors import CnnbenchError
from .latency import Timing, time_by_kind
from .profiling import profile
from .roofline import Roofline, cached_roofline, roofline_bound_ms
from .store import ResultTable, atomic_write_text, code_fingerprint, write_sidecar
from .target import Target, describe, environment, resolve_target

__all__ = ["ReportConfig", "run_report", "QUICK_MODELS", "BREAKDOWN_MODELS", "read_benchmark_json"]

T = TypeVar("T")
Progress = Callable[[Sequence[T], str], Iterable[T]]

QUICK_MODELS = ("efficientnet_b0", "mobilenet_v3_small", "shufflenet_v2_x0_5", "resnet18")
# One representative per family for the per-kind breakdown chart.
BREAKDOWN_MODELS = (
    "efficientnet_b0", "mobilenet_v1_x1_0", "mobilenet_v2", "mobilenet_v3_large", "shufflenet_v1_g3_x1_0",
    "shufflenet_v2_x1_0", "resnet50", "googlenet", "squeezenet1_1", "alexnet", "vgg16",
)
QUICK_TIMING = Timing(min_time_s=0.0, min_iters=3, window=2, max_warmup_s=0.5, min_warmup_iters=0)


@dataclass(frozen=True)
class ReportConfig:
    out: Path = Path("results")
    target: Target = field(default_factory=Target)
    models: tuple[str, ...] = ("*",)  # zoo wildcards
    batch: int = 1
    timing: Timing = field(default_factory=Timing)
    quick: bool = False  # a few models, short timing (tests, a first look)
    force: bool = False  # re-measure rows that could be reused
    benchmark_files: tuple[Path, ...] = ()  # pytest-benchmark JSON files from benchmarks/ (other targets)
    breakdown_repeats: int = 5

    @classmethod
    def quick_config(cls, out: Path, **changes: object) -> ReportConfig:
        return replace(cls(out=out, models=QUICK_MODELS, timing=QUICK_TIMING, quick=True, breakdown_repeats=2),
                       **changes)  # type: ignore[arg-type]


def _identity(items: Sequence[T], desc: str) -> Iterable[T]:
    return items


# --- tables ----------------------------------------------------------------------------------------------------


def _zoo_row(name: str, code: str) -> dict[str, object]:
    info = zoo.model_info(name)
    totals = profile(name).totals
    ref = info.reference_figures
    return {
        "model": name,
        "family": info.family,
        **{k: v for k, v in totals.as_dict().items() if k not in ("model", "dtype", "batch", "unknown_ops")},
        "published_top1": info.published.top1,
        "published_top5": info.published.top5,
        "published_params": info.published.params,
        "published_flops": info.published.flops,
        "published_source": info.published.source,
        "reference": info.reference,
        "reference_top1": ref.top1 if ref else None,
        "reference_source": ref.source if ref else None,
        "code": code,
    }


def zoo_table(config: ReportConfig, names: list[str], progress: Progress[str]) -> pd.DataFrame:
    """results/zoo.csv: params, FLOPs (multiply-adds), MAC, memory and published figures of every model."""
    table = ResultTable(config.out / "zoo.csv", key=["model"])
    for name in progress(names, "profile"):
        code = code_fingerprint(name, [counting, profiling])
        row = table.get(model=name)
        if config.force or row is None or row.get("code") != code:
            table.put(_zoo_row(name, code))
    if not config.quick:
        table.keep_only([{"model": n} for n in names])
    write_sidecar(table.path, {**environment(), "dtype": "float32", "batch": 1, "counted_on": "meta device"})
    return table.frame()


def latency_table(
    config: ReportConfig, names: list[str], roof: Roofline, progress: Progress[str]
) -> pd.DataFrame:
    """results/latency-<target>.csv: one row per model at ``config.batch``; failed models keep their reason."""
    path = config.out / f"latency-{config.target.key}.csv"
    table = ResultTable(path, key=["model", "batch"])
    for name in progress(names, "latency"):
        code = code_fingerprint(name, [latency, bench_module])
        row = table.get(model=name, batch=config.batch)
        if not config.force and row is not None and row.get("code") == code and row.get("status") == "ok":
            continue
        (result,) = iter_bench([name], config.target, [config.batch], None, config.timing, roof)
        table.put({**result, "family": zoo.model_info(name).family, "code": code})
    frame = as_frame(table.frame().to_dict("records"))
    # Reused rows were bounded with the roofline of their day: bound every row with today's.
    ok = frame["status"] == "ok"
    pairs = zip(frame.loc[ok, "flops"], frame.loc[ok, "mac_bytes"], strict=True)
    frame.loc[ok, "roofline_bound_ms"] = [roofline_bound_ms(int(f), int(b), roof) for f, b in pairs]
    frame.loc[ok, "roofline_fraction"] = frame.loc[ok, "roofline_bound_ms"] / frame.loc[ok, "latency_ms_median"]
    atomic_write_text(path, frame.to_csv(index=False))
    write_sidecar(path, {**describe(config.target), "timing": config.timing.__dict__, "roofline": roof.__dict__})
    return frame


def breakdown_table(config: ReportConfig, names: list[str], progress: Progress[str]) -> pd.DataFrame:
    """results/breakdown-<target>.csv: share of FLOPs, MAC and time per op kind for one model of each family."""
    path = config.out / f"breakdown-{config.target.key}.csv"
    table = ResultTable(path, key=["model", "kind"])
    chosen = [n for n in BREAKDOWN_MODELS if n in names] or names[:4]
    for name in progress(chosen, "breakdown"):
        code = code_fingerprint(name, [counting, profiling, latency])
        if not config.force and table.find(model=name, code=code):
            continue
        counts = profile(name, training_memory=False).by_kind()
        times = time_by_kind(name, config.target, config.batch, repeats=config.breakdown_repeats)
        merged = counts.merge(times, on="kind", how="outer").fillna(0)
        for record in merged.to_dict("records"):
            table.put({"model": name, **record, "code": code})
    write_sidecar(path, describe(config.target))
    return table.frame()


def accuracy_table(config: ReportConfig, names: list[str]) -> pd.DataFrame:
    """results/accuracy-imagenet.csv: the papers' top-1 and, apart, the reference implementations' own."""
    rows = []
    for name in names:
        info = zoo.model_info(name)
        for origin, figures in (("paper", info.published), ("reference", info.reference_figures)):
            if figures is None or figures.top1 is None:
                continue
            rows.append(
                {
                    "model": name,
                    "family": info.family,
                    "origin": origin,
                    "top1": figures.top1,
                    "top5": figures.top5,
                    "source": figures.source,
                    "resolution": figures.resolution or info.resolution,
                }
            )
    frame = pd.DataFrame(rows)
    path = config.out / "accuracy-imagenet.csv"
    atomic_write_text(path, frame.to_csv(index=False))
    write_sidecar(path, {**environment(), "note": "published figures, not measured here"})
    return frame


def guidelines_tables(config: ReportConfig, names: list[str], progress: Progress[str]) -> Path:
    """results/guidelines-<target>.csv (SN2 Tables 1–4 re-run here), guidelines-audit.csv (every model audited)
    and guidelines-<target>.md (tables with verdicts, for results/README.md). Reused while the code is unchanged."""
    from . import guidelines as g
    from .guidelines_audit import audit, audit_frame

    path = config.out / f"guidelines-{config.target.key}.csv"
    code = code_fingerprint(None, [g, latency])  # no zoo model: keyed by the benchmark code alone
    table = ResultTable(path, key=["guideline", "config", "scale"])
    scales = (1,) if config.quick else g.SCALES
    wanted = len(g.cases(tuple(g.GUIDELINES), g.paper_column(config.target), scales))
    if config.force or len(table.find(code=code)) != wanted:
        frame = g.run_guidelines(config.target, scales=scales, timing=config.timing)
        for record in frame.assign(code=code).to_dict("records"):
            table.put(record)
    frame = table.frame()
    write_sidecar(path, describe(config.target))
    audits = audit_frame([audit(name) for name in progress(names, "audit")])
    atomic_write_text(config.out / "guidelines-audit.csv", audits.to_csv(index=False))
    lines = [f"## ShuffleNetV2's guidelines on {config.target.key}", ""]
    for guideline in g.GUIDELINES:
        lines += [f"- {g.verdict(frame, guideline).summary}"]
    shown = frame[["guideline", "config", "scale", "flops", "mac", "latency_ms_median", "images_s", "speed_vs_base",
                   "paper_vs_base"]].copy()
    shown["flops"] = (pd.to_numeric(shown["flops"]) / 1e6).round(1)
    shown["mac"] = (pd.to_numeric(shown["mac"]) / 1e6).round(2)
    shown = shown.round(3).rename(columns={"flops": "MFLOPs (mult-adds)", "mac": "MAC (M elem)"})
    lines += ["", shown.to_markdown(index=False), "", "Audit of every model: `guidelines-audit.csv` "
              "(`cnnbench guidelines --audit --all` explains the columns).", ""]
    md = config.out / f"guidelines-{config.target.key}.md"
    atomic_write_text(md, "\n".join(lines))
    return path


# --- pytest-benchmark JSON from other targets --------------------------------------------------------------------


def read_benchmark_json(path: Path) -> pd.DataFrame:
    """Latency rows from a ``pytest benchmarks/ --benchmark-json`` file, one per test of the latency group.

    The target comes from the ``extra_info`` our latency tests store (``target_target``, ``target_device_name``, ...)
    and falls back on pytest-benchmark's own ``machine_info``.
    """
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise CnnbenchError(f"cannot read benchmark JSON {path}: {err}") from None
    if "benchmarks" not in data:
        raise CnnbenchError(f"{path} is not a pytest-benchmark JSON file (no 'benchmarks' list)")
    machine = data.get("machine_info", {})
    rows = []
    for entry in data["benchmarks"]:
        extra = entry.get("extra_info", {})
        if "model" not in extra or "flops" not in extra:
            continue  # not a latency test of ours
        stats = entry["stats"]
        target = extra.get("target_target") or f"{machine.get('node', 'unknown')}-{machine.get('cpu', {}).get('arch')}"
        rows.append(
            {
                "model": extra["model"],
                "family": extra.get("family", ""),
                "batch": extra.get("batch", 1),
                "status": "ok",
                "latency_ms_median": stats["median"] * 1e3,
                "latency_ms_mean": stats["mean"] * 1e3,
                "latency_ms_std": stats["stddev"] * 1e3,
                "latency_ms_iqr": stats["iqr"] * 1e3,
                "cv": stats["stddev"] / stats["mean"] if stats["mean"] else 0.0,
                "throughput_img_s": extra.get("batch", 1) / stats["median"],
                "iters": stats["rounds"],
                "params": extra.get("params"),
                "flops": extra["flops"],
                "mac": extra.get("mac"),
                "mac_bytes": extra.get("mac_bytes"),
                "target": target,
                "device_name": extra.get("target_device_name", machine.get("cpu", {}).get("brand_raw", "")),
                "torch": extra.get("target_torch", ""),
                "commit": extra.get("target_commit", data.get("commit_info", {}).get("id", "")),
                "source": str(path),
            }
        )
    if not rows:
        raise CnnbenchError(f"{path} holds no latency test from benchmarks/test_latency.py")
    return pd.DataFrame(rows)


def merge_benchmarks(config: ReportConfig) -> list[Path]:
    """Write results/latency-<target>.csv for each target found in the JSON files (a target's rows replaced)."""
    written = []
    frames = [read_benchmark_json(p) for p in config.benchmark_files]
    merged = pd.concat(frames, ignore_index=True)
    for target, group in merged.groupby("target", sort=False):
        path = config.out / f"latency-{target}.csv"
        table = ResultTable(path, key=["model", "batch"])
        for record in group.to_dict("records"):
            table.put(record)
        sources = sorted(set(group["source"]))
        write_sidecar(path, {"target": target, "from": sources, "device": group["device_name"].iloc[0]})
        written.append(path)
    return written


def _all_latency(out: Path) -> pd.DataFrame:
    frames = []
    for path in sorted(out.glob("latency-*.csv")):
        frame = pd.read_csv(path)
        frame["target"] = frame["target"] if "target" in frame else path.stem.removeprefix("latency-")
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


# --- the whole report ----------------------------------------------------------------------------------------


def run_report(config: ReportConfig, progress: Progress[str] = _identity) -> dict[str, Path]:  # type: ignore[assignment]
    """Measure what is missing, then write every table, chart and results/README.md. Returns the files written."""
    started = time.perf_counter()
    target, _ = resolve_target(config.target)
    config = replace(config, target=target)
    names = resolve_patterns(config.models)
    out = config.out
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}

    zoo_frame = zoo_table(config, names, progress)
    written["zoo"] = out / "zoo.csv"
    accuracy = accuracy_table(config, names)
    written["accuracy-imagenet"] = out / "accuracy-imagenet.csv"
    roof = cached_roofline(target)
    atomic_write_text(out / f"roofline-{target.key}.json", json.dumps(roof.__dict__, indent=2) + "\n")
    latency_frame = latency_table(config, names, roof, progress)
    written["latency"] = out / f"latency-{target.key}.csv"
    breakdown = breakdown_table(config, names, progress)
    written["breakdown"] = out / f"breakdown-{target.key}.csv"
    written["guidelines"] = guidelines_tables(config, names, progress)
    for path in merge_benchmarks(config) if config.benchmark_files else []:
        written[path.stem] = path
    everything = _all_latency(out)
    if "family" not in everything or everything["family"].isna().any():
        families = {n: zoo.model_info(n).family for n in zoo.list_models()}
        everything["family"] = everything["model"].map(families).fillna("other")

    from .report_page import write_charts, write_readme  # charts and page, kept apart from measuring

    chart_paths = write_charts(out, zoo_frame, accuracy, everything, breakdown, latency_frame, roof, target)
    written.update(chart_paths)
    written["readme"] = write_readme(
        out, config, zoo_frame, accuracy, latency_frame, everything, breakdown, roof, chart_paths,
        elapsed_s=time.perf_counter() - started,
    )
    return written
