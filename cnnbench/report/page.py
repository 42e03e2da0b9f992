"""The report's charts and its results/README.md, made from the tables :mod:`cnnbench.report` wrote."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from cnnbench.measure.roofline import Roofline
from cnnbench.report import charts, deployment
from cnnbench.report.config import ReportConfig
from cnnbench.runtimes.int8 import LATENCY_CALIBRATION_IMAGES
from cnnbench.store import atomic_write_text
from cnnbench.target import Target

__all__ = ["Page", "write_charts", "write_readme", "accuracy_points", "provenance_line"]


@dataclass(frozen=True)
class Page:
    """What the README says beyond the tables: where the rows shown came from, and what was left out."""

    provenance: dict[str, object]  # store.provenance_summary of every row shown
    left_out: list[str] = field(default_factory=list)  # files measured on other machines, not shown
    digits: pd.DataFrame = field(default_factory=pd.DataFrame)  # accuracy-digits rows measured here
    digits_elsewhere: int = 0
    elapsed_s: float = 0.0
    deployments: tuple[str, ...] = ()  # target keys of the deployment runtimes' latency tables
    deployed_digits: pd.DataFrame = field(default_factory=pd.DataFrame)  # accuracy-digits-int8 rows measured here


def provenance_line(summary: dict[str, object]) -> str:
    """“Measured at commit(s) … on … between … and …”, from :func:`cnnbench.store.provenance_summary`."""
    if not summary.get("machines"):
        return "No row shown here was measured on this machine yet."
    machines = "; ".join(
        f"{m.get('host', '?')} ({m.get('device_name', '?')}, machine id {m['machine']})"
        for m in summary["machines"]  # type: ignore[union-attr]
    )
    commits = ", ".join(str(c) for c in summary.get("commits", []))  # type: ignore[union-attr]
    times = summary.get("measured") or {}
    when = f" between {times['first']} and {times['last']} (UTC)" if times else ""  # type: ignore[index]
    torch = ", ".join(str(t) for t in summary.get("torch", []))  # type: ignore[union-attr]
    quick = summary.get("quick_rows") or 0
    quick_text = f" {quick} of its rows come from `--quick` (short timing)." if quick else ""
    return (f"Every row shown was measured on {machines}, with torch {torch}, at commit(s) {commits}{when}."
            f"{quick_text}")  # fmt: skip


def accuracy_points(zoo_frame: pd.DataFrame, accuracy: pd.DataFrame) -> pd.DataFrame:
    """One point per model: the paper's top-1 where it has one, else the reference implementation's (marked so).
    fp32 figures only: torchvision's INT8 rows (``reference-int8``) are never plotted as the model's accuracy.

    ShuffleNetV1 keeps its g=3 members only (the paper's main line), so the chart stays readable.
    """
    accuracy = accuracy[accuracy["origin"].isin(["paper", "reference"])]
    chosen = (
        accuracy.assign(rank=accuracy["origin"].map({"paper": 0, "reference": 1}))
        .sort_values("rank")
        .drop_duplicates("model")
    )
    # Parameters the inference network uses: GoogLeNet's auxiliary heads exist only for training.
    points = chosen.merge(zoo_frame[["model", "params_used", "flops"]], on="model").rename(
        columns={"params_used": "params"}
    )
    return points[charts.main_line(points["model"])]


def write_charts(
    out: Path,
    zoo_frame: pd.DataFrame,
    accuracy: pd.DataFrame,
    everything: pd.DataFrame,
    breakdown: pd.DataFrame,
    latency_frame: pd.DataFrame,
    roof: Roofline,
    target: Target,
    deployments: tuple[str, ...] = (),
) -> dict[str, Path]:
    """Every chart as PNG and SVG; returns the PNG paths by name. ``deployments`` are the target keys of the
    deployment runtimes' tables (the speed-up chart compares them with ``target``)."""
    written: dict[str, Path] = {}
    points = accuracy_points(zoo_frame, accuracy)
    if not points.empty:
        for x, label in (("params", "parameters"), ("flops", "FLOPs (multiply-adds)")):
            stem = out / f"accuracy_vs_{x}"
            charts.accuracy_chart(points, x, stem, f"ImageNet top-1 vs {label} (published figures)")
            written[stem.name] = stem.with_suffix(".png")
    if not everything.empty and (everything["status"] == "ok").any():
        for x, label in (("flops", "FLOPs"), ("mac_bytes", "memory access cost")):
            stem = out / f"latency_vs_{'flops' if x == 'flops' else 'mac'}"
            charts.latency_chart(everything, x, stem, f"Latency vs {label}, batch {int(everything['batch'].iloc[0])}")
            written[stem.name] = stem.with_suffix(".png")
    deployed = [t for t in dict.fromkeys(everything.get("target", pd.Series(dtype=str))) if t in deployments]
    ups = deployment.speedups(everything, target.key, deployed) if deployed else pd.DataFrame()
    if not ups.empty:
        stem = out / "speedup_vs_eager"
        charts.speedup_chart(ups, target.key, stem, f"Deployment runtimes against {target.key}, batch "
                             f"{int(everything['batch'].iloc[0])}")  # fmt: skip
        written[stem.name] = stem.with_suffix(".png")
    if not breakdown.empty:
        stem = out / f"breakdown-{target.key}"
        charts.breakdown_chart(breakdown, stem, f"Where FLOPs, memory traffic and time go ({target.key})")
        written[stem.name] = stem.with_suffix(".png")
    if not latency_frame.empty and (latency_frame["status"] == "ok").any():
        stem = out / f"roofline-{target.key}"
        data = latency_frame.merge(zoo_frame[["model", "family"]], on="model", how="left", suffixes=("_x", ""))
        title = (
            f"Roofline of {target.key}: {roof.peak_flops_per_s / 1e9:.0f} GFLOP/s peak, "
            f"{roof.bandwidth_bytes_per_s / 1e9:.1f} GB/s copy"
        )
        charts.roofline_chart(data, roof.peak_flops_per_s, roof.bandwidth_bytes_per_s, stem, title)
        written[stem.name] = stem.with_suffix(".png")
    return written


def _md(frame: pd.DataFrame) -> str:
    return frame.astype(object).where(frame.notna(), "–").to_markdown(index=False)


DEPLOYED_COLUMNS = {
    "model": "model", "latency_ms_median": "median (ms)", "cv": "CV", "speedup": "vs eager", "export_s": "export (s)",
    "quantize_s": "quantize (s)", "load_s": "load (s)", "first_inference_ms": "first (ms)",
    "peak_rss_mb": "peak RSS (MB)", "activation_mb": "activations (MB)", "status": "status",
}


def _deployment_section(everything: pd.DataFrame, baseline: str, page: Page, chart_paths: dict[str, Path]) -> list[str]:
    """The README's part on deployment runtimes: what changed, in words from the figures, then the tables."""
    deployed = [t for t in page.deployments if "target" in everything and t in set(everything["target"])]
    if not deployed:
        return []
    lines = ["## Deployment runtimes: ONNX Runtime and OpenVINO, fp32 and INT8", ""]
    lines += [
        "Each model is exported once with `torch.onnx.export` (opset 17, cached), run on ONNX Runtime's CPU provider "
        "and OpenVINO's CPU plugin with the same threads, and for INT8 statically quantized (QDQ, per-channel int8 "
        f"weights, uint8 activations, MinMax calibration on {LATENCY_CALIBRATION_IMAGES} real images: the digits "
        "unless `--calibration DIR`; the ranges set the file's scales, not its graph or kernels, so latency needs no "
        "more). "
        "Every measurement runs in a process of its own. `vs eager` = eager latency / this latency (above 1 is "
        "faster). Cold start: `export` (torch.onnx.export), `quantize` (pre-processing, calibration, quantization), "
        "`load` (session creation or compilation; building the model for eager), `first` (first inference). "
        "`peak RSS` is the resident-memory high-water mark during inference above what was resident after the load; "
        "`activations` is the counted peak of live activations, for comparison (int8 at one byte per element).",
        "",
    ]
    lines += [f"- {line}" for line in deployment.summary_lines(everything, baseline, deployed)] + [""]
    if "speedup_vs_eager" in chart_paths:
        lines += ["![speedup_vs_eager](speedup_vs_eager.png)", "", "*Speed-up of each runtime and dtype against "
                  f"{baseline}, per model.* ([svg](speedup_vs_eager.svg))", ""]  # fmt: skip
    ranks = deployment.ranking(everything, [baseline, *deployed])
    if not ranks.empty:
        lines += ["### How the ranking changes", "", "Latency rank of each model (1 = fastest) on each target; the 15 "
                  "models whose rank moves most.", "", _md(ranks.head(15)), ""]  # fmt: skip
    ups = deployment.speedups(everything, baseline, deployed).set_index(["model", "target"])["speedup"]
    for key in deployed:
        part = everything[everything["target"] == key].copy()
        part["speedup"] = [ups.get((m, key)) for m in part["model"]]
        part["peak_rss_mb"] = pd.to_numeric(part.get("peak_rss_bytes"), errors="coerce") / 1e6
        part["activation_mb"] = pd.to_numeric(part.get("activation_peak_bytes"), errors="coerce") / 1e6
        shown = [c for c in DEPLOYED_COLUMNS if c in part and part[c].notna().any()]
        table = part[shown].rename(columns=DEPLOYED_COLUMNS)
        version = part["runtime_version"].dropna().iloc[0] if "runtime_version" in part and part[
            "runtime_version"].notna().any() else "?"  # fmt: skip
        lines += [f"### {key} ({part['backend'].iloc[0]} {version})", "", _md(_round(table)), ""]
    if not page.deployed_digits.empty:
        keep = [c for c in page.deployed_digits.columns if c.startswith(("top1", "agree"))]
        digits = page.deployed_digits[["model", "epochs", "resolution", *keep]]
        lines += ["### Accuracy on the deployed models (digits, held-out 360 images)", "",
                  "`cnnbench train --deployed` trains each model once, exports it, quantizes it on 32 training images "
                  "and scores the held-out split on each target; `agree` is the share of images whose top-1 class "
                  "equals eager fp32's.", "", _md(digits), ""]  # fmt: skip
    return lines


def _round(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for column in out.columns:
        numeric = pd.to_numeric(out[column], errors="coerce")
        if numeric.notna().any() and column not in ("model", "status"):
            out[column] = numeric.round(3 if column in ("CV", "load (s)") else 2)
    return out


def write_readme(
    out: Path,
    config: ReportConfig,
    zoo_frame: pd.DataFrame,
    accuracy: pd.DataFrame,
    latency_frame: pd.DataFrame,
    everything: pd.DataFrame,
    breakdown: pd.DataFrame,
    roof: Roofline,
    chart_paths: dict[str, Path],
    page: Page,
) -> Path:

    target = config.target
    sections = [
        "# Results",
        "",
        f"Written by `cnnbench report{' --quick' if config.quick else ''}` on {dt.date.today().isoformat()} in "
        f"{page.elapsed_s / 60:.1f} min for target **{target.key}**. {provenance_line(page.provenance)} Each row "
        "of each table names its own commit, machine and time (`commit`, `machine`, `host`, `measured_at`), and "
        "each table's `.env.json` lists the commits and machines of its rows. FLOPs are multiply-adds (one fused "
        "multiply-add = 1); MAC is memory access cost (bytes read + written, weights included).",
        "",
    ]
    if page.left_out:
        sections += ["Not shown, because another machine measured them: " + ", ".join(page.left_out) + ".", ""]
    for name, caption in (
        ("accuracy_vs_params", "ImageNet top-1 vs parameters. Filled: the paper's figure; hollow: torchvision's "
         "weights, only where the paper's figure is not transcribed. ShuffleNetV1: g=3 only."),
        ("accuracy_vs_flops", "ImageNet top-1 vs FLOPs (multiply-adds), same points."),
        ("latency_vs_flops", "Median latency vs FLOPs on every target measured, with Spearman's rank correlation."),
        ("latency_vs_mac", "Median latency vs memory access cost (MB): ShuffleNetV2's point that MAC, not FLOPs, "
         "tracks speed."),
        (f"breakdown-{target.key}", "Share of FLOPs, MAC and time by op kind, one model per family."),
        (f"roofline-{target.key}", "Attained throughput vs arithmetic intensity under the target's roofline."),
    ):
        if name in chart_paths:
            sections += [f"![{name}]({name}.png)", "", f"*{caption}* ([svg]({name}.svg))", ""]
    if not latency_frame.empty:
        lat = latency_frame
        lat_md = pd.DataFrame(
            {
                "model": lat["model"],
                "batch": lat["batch"],
                "median (ms)": pd.to_numeric(lat["latency_ms_median"]).round(2),
                "p95 (ms)": pd.to_numeric(lat["latency_ms_p95"]).round(2),
                "CV": pd.to_numeric(lat["cv"]).round(3),
                "img/s": pd.to_numeric(lat["throughput_img_s"]).round(1),
                "roofline bound (ms)": pd.to_numeric(lat["roofline_bound_ms"]).round(2),
                "of roofline": pd.to_numeric(lat["roofline_fraction"]).round(3),
                "status": lat["status"],
                "commit": lat["commit"],
            }
        )
        sections += [
            f"## Latency on {target.key}",
            "",
            f"Roofline of this machine (measured {roof.measured_at or 'earlier'}, commit {roof.commit or '?'}): peak "
            f"{roof.peak_flops_per_s / 1e9:.1f} GFLOP/s (the faster of a {roof.matmul_size}² matmul and a "
            f"256-channel 3×3 conv), bandwidth {roof.bandwidth_bytes_per_s / 1e9:.1f} GB/s (copy). `roofline bound` "
            "= max(2·multiply-adds / peak, MAC bytes / bandwidth), derived from each row's counts and this roofline; "
            "`of roofline` = bound / median: 1.0 is at the roof; above 1 means a kernel beat the peak or reused "
            "caches that the MAC count charges to memory.",
            "",
            _md(lat_md),
            "",
        ]
    sections += _deployment_section(everything, target.key, page, chart_paths)
    others = sorted(set(everything["target"]) - {target.key} - set(page.deployments)) if "target" in everything else []
    for other in others:
        part = everything[everything["target"] == other]
        origin = "imported from pytest-benchmark JSON" if " @ " in other else "measured on this machine"
        sections += [
            f"## Latency on {other} ({origin})",
            "",
            _md(part[["model", "batch", "latency_ms_median", "cv", "throughput_img_s", "commit"]].round(3)),
            "",
        ]
    if not page.digits.empty or page.digits_elsewhere:
        sections += ["## Accuracy measured here: scikit-learn's digits", ""]
        if not page.digits.empty:
            digits = page.digits[[c for c in page.digits.columns if c not in ("machine", "settings", "code",
                                                                             "quick", "host", "device_name")]]
            sections += [_md(digits), ""]
        if page.digits_elsewhere:
            sections += [f"`accuracy-digits.csv` holds {page.digits_elsewhere} rows measured on another machine, "
                         "not shown; `cnnbench train --all` measures them here.", ""]
    guidelines = out / f"guidelines-{target.key}.md"
    if guidelines.exists():
        sections += [guidelines.read_text().strip(), ""]
    if not zoo_frame.empty:
        zoo_md = zoo_frame.assign(
            params_m=(zoo_frame["params"] / 1e6).round(2),
            flops_m=(zoo_frame["flops"] / 1e6).round(1),
            mac_mb=(zoo_frame["mac_bytes"] / 1e6).round(1),
            act_mb=(zoo_frame["activation_peak_bytes"] / 1e6).round(1),
            train_mb=(zoo_frame["training_saved_bytes"] / 1e6).round(1),
        )[["model", "family", "resolution", "params_m", "flops_m", "mac_mb", "act_mb", "train_mb", "published_top1"]]
        zoo_md.columns = [
            "model", "family", "res", "params (M)", "FLOPs (M mult-adds)", "MAC (MB)", "act peak (MB)",
            "train saved (MB)", "paper top-1 (%)",
        ]
        sections += ["## The zoo: counts and published accuracy", "", _md(zoo_md), ""]
    sections += [
        "## Files",
        "",
        "| file | what |",
        "|---|---|",
        "| `zoo.csv` | every total of `cnnbench profile` per model, the paper's figures and the reference's |",
        "| `accuracy-imagenet.csv` | published top-1/top-5: origin `paper`, `reference` or `reference-int8` "
        "(torchvision's quantized weights), never mixed |",
        f"| `latency-{target.key}.csv` | every statistic of `cnnbench bench`, roofline bound, target description |",
        "| `latency-TARGET@HOST-ID.csv` | rows imported from pytest-benchmark JSON (`--from-benchmark`) |",
        f"| `breakdown-{target.key}.csv` | FLOPs, MAC and time per op kind for one model per family |",
        f"| `guidelines-{target.key}.csv` | SN2 Tables 1–4 re-run here, with each round's median (`rounds_ms`) |",
        "| `guidelines-audit.csv` | every model audited against G1–G4 (counted) |",
        f"| `roofline-{target.key}.json` | the target's measured peak FLOP/s and copy bandwidth, with provenance |",
        "| `*.env.json` | per table: the commits, machines, torch versions and times its rows were measured with |",
        "",
        "Every row carries `machine` (a hash of the OS machine id, host name and device name), `torch`, `target`, "
        "`settings` (a hash of timing, batch and resolution), `code` (a hash of the model's and the measuring "
        "code's source), `quick`, `commit` (`+dirty` for uncommitted code), `host`, `device_name` and "
        "`measured_at`. A rerun reuses a row only when the first five match, and measures it again otherwise.",
        "",
    ]
    path = out / "README.md"
    atomic_write_text(path, "\n".join(sections))
    return path
