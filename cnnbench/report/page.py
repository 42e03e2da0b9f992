"""results/README.md, the page of ``cnnbench report``: where its rows came from, then its sections in order (those of
:mod:`.page_sections`, the charts, the latency, zoo and accuracy tables), and what each file of the folder holds."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

from cnnbench.measure.roofline import Roofline
from cnnbench.output import markdown
from cnnbench.provenance import PROBE_TOLERANCE
from cnnbench.report.config import ReportConfig
from cnnbench.report.page_sections import (
    Page,
    baseline_section,
    deployment_section,
    disturbance_section,
    front_section,
    prediction_section,
    runtime_prediction_section,
    status_text,
    sweep_section,
)
from cnnbench.results import ResultsFolder
from cnnbench.store import atomic_write_text

__all__ = ["provenance_line", "write_readme"]


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
    return f"Every row shown was measured on {machines}, with torch {torch}, at commit(s) {commits}{when}.{quick_text}"


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
    """Write ``out``/README.md from the run's tables, charts (``chart_paths``, by stem) and :class:`Page`."""
    files = ResultsFolder(out)
    key = config.target.key
    sections = [
        "# Results",
        "",
        f"Written by `cnnbench report{' --quick' if config.quick else ''}` on {dt.date.today().isoformat()} in "
        f"{page.elapsed_s / 60:.1f} min for target **{key}**. {provenance_line(page.provenance)} Each row "
        "of each table names its own commit, machine and time (`commit`, `machine`, `host`, `measured_at`), and "
        "each table's `.env.json` lists the commits and machines of its rows. FLOPs are multiply-adds (one fused "
        "multiply-add = 1); MAC is memory access cost (bytes read + written, weights included).",
        "",
    ]
    fleet_page = files.fleet / "README.md"
    if fleet_page.exists():
        sections += [f"Several machines side by side: [the fleet page]({fleet_page.relative_to(out)}).", ""]
    if page.left_out:
        sections += ["Not shown, because another machine measured them: " + ", ".join(page.left_out) + ".", ""]
    sections += disturbance_section(everything)
    sections += front_section(page, chart_paths)
    sections += baseline_section(page)
    sections += _charts_section(files, key, chart_paths)
    sections += _latency_section(latency_frame, roof, key)
    sections += deployment_section(everything, key, page, chart_paths)
    sections += sweep_section(key, page, chart_paths)
    sections += prediction_section(key, page, chart_paths)
    sections += runtime_prediction_section(page, chart_paths)
    sections += _other_targets_section(everything, key, page)
    sections += _digits_section(page)
    guidelines = files.guidelines_page(key)
    if guidelines.exists():
        sections += [guidelines.read_text().strip(), ""]
    sections += _zoo_section(zoo_frame)
    sections += _files_section(key)
    atomic_write_text(files.readme, "\n".join(sections))
    return files.readme


def _charts_section(files: ResultsFolder, key: str, chart_paths: dict[str, Path]) -> list[str]:
    """The charts of the zoo and of the report's target, each with its caption (those drawn)."""
    lines = []
    for stem, caption in (
        (
            files.accuracy_chart("params"),
            "ImageNet top-1 vs parameters. Filled: the paper's figure; hollow: torchvision's "
            "weights, only where the paper's figure is not transcribed. ShuffleNetV1: g=3 only.",
        ),
        (files.accuracy_chart("flops"), "ImageNet top-1 vs FLOPs (multiply-adds), same points."),
        (
            files.latency_chart("flops"),
            "Median latency vs FLOPs on every target measured, with Spearman's rank correlation.",
        ),
        (
            files.latency_chart("mac_bytes"),
            "Median latency vs memory access cost (MB): ShuffleNetV2's point that MAC, not FLOPs, tracks speed.",
        ),
        (files.breakdown_chart(key), "Share of FLOPs, MAC and time by op kind, one model per family."),
        (files.roofline_chart(key), "Attained throughput vs arithmetic intensity under the target's roofline."),
    ):
        name = stem.name
        if name in chart_paths:
            lines += [f"![{name}]({name}.png)", "", f"*{caption}* ([svg]({name}.svg))", ""]
    return lines


def _latency_section(latency_frame: pd.DataFrame, roof: Roofline, key: str) -> list[str]:
    """The report's own latency table, each row against this machine's roofline."""
    if latency_frame.empty:
        return []
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
            "CPU share": pd.to_numeric(lat.get("cpu_share"), errors="coerce").round(2),
            "status": status_text(lat),
            "commit": lat["commit"],
        }
    )
    return [
        f"## Latency on {key}",
        "",
        f"Roofline of this machine (measured {roof.measured_at or 'earlier'}, commit {roof.commit or '?'}): peak "
        f"{roof.peak_flops_per_s / 1e9:.1f} GFLOP/s (the faster of a {roof.matmul_size}² matmul and a "
        f"256-channel 3×3 conv), bandwidth {roof.bandwidth_bytes_per_s / 1e9:.1f} GB/s (copy). `roofline bound` "
        "= max(2·multiply-adds / peak, MAC bytes / bandwidth), derived from each row's counts and this roofline; "
        "`of roofline` = bound / median: 1.0 is at the roof; above 1 means a kernel beat the peak or reused "
        "caches that the MAC count charges to memory.",
        "",
        markdown(lat_md),
        "",
    ]


def _other_targets_section(everything: pd.DataFrame, key: str, page: Page) -> list[str]:
    """The latency of every other target shown: measured here with other options, or imported."""
    others = sorted(set(everything["target"]) - {key} - set(page.deployments)) if "target" in everything else []
    lines = []
    for other in others:
        part = everything[everything["target"] == other]
        origin = "imported from pytest-benchmark JSON" if " @ " in other else "measured on this machine"
        lines += [
            f"## Latency on {other} ({origin})",
            "",
            markdown(part[["model", "batch", "latency_ms_median", "cv", "throughput_img_s", "commit"]].round(3)),
            "",
        ]
    return lines


def _digits_section(page: Page) -> list[str]:
    """The accuracy ``cnnbench train`` measured here on the digits, and what another machine measured."""
    if page.digits.empty and not page.digits_elsewhere:
        return []
    lines = ["## Accuracy measured here: scikit-learn's digits", ""]
    if not page.digits.empty:
        hidden = ("machine", "settings", "code", "quick", "host", "device_name")
        lines += [markdown(page.digits[[c for c in page.digits.columns if c not in hidden]]), ""]
    if page.digits_elsewhere:
        lines += [
            f"`{ResultsFolder().digits}` holds {page.digits_elsewhere}: another machine's, not shown; "
            "`cnnbench train --all` measures them here.",
            "",
        ]
    return lines


def _zoo_section(zoo_frame: pd.DataFrame) -> list[str]:
    """Every model's counts beside its paper's top-1."""
    if zoo_frame.empty:
        return []
    zoo_md = zoo_frame.assign(
        params_m=(zoo_frame["params"] / 1e6).round(2),
        flops_m=(zoo_frame["flops"] / 1e6).round(1),
        mac_mb=(zoo_frame["mac_bytes"] / 1e6).round(1),
        act_mb=(zoo_frame["activation_peak_bytes"] / 1e6).round(1),
        train_mb=(zoo_frame["training_saved_bytes"] / 1e6).round(1),
    )[["model", "family", "resolution", "params_m", "flops_m", "mac_mb", "act_mb", "train_mb", "published_top1"]]
    zoo_md.columns = [
        "model",
        "family",
        "res",
        "params (M)",
        "FLOPs (M mult-adds)",
        "MAC (MB)",
        "act peak (MB)",
        "train saved (MB)",
        "paper top-1 (%)",
    ]
    return ["## The zoo: counts and published accuracy", "", markdown(zoo_md), ""]


def _files_section(key: str) -> list[str]:
    """What each file of the folder holds, and what every row records."""
    names = ResultsFolder()  # file names, relative to the folder
    return [
        "## Files",
        "",
        "| file | what |",
        "|---|---|",
        f"| `{names.zoo}` | every total of `cnnbench profile` per model, the paper's figures and the reference's |",
        f"| `{names.imagenet_accuracy}` | published top-1/top-5: origin `paper`, `reference` or `reference-int8` "
        "(torchvision's quantized weights), never mixed |",
        f"| `{names.latency(key)}` | every statistic of `cnnbench bench`, roofline bound, target description |",
        "| `latency-TARGET@HOST-ID.csv` | rows imported from pytest-benchmark JSON (`--from-benchmark`) |",
        f"| `{names.breakdown(key)}` | FLOPs, MAC and time per op kind for one model per family |",
        f"| `{names.guidelines(key)}` | SN2 Tables 1–4 re-run here, with each round's median (`rounds_ms`) |",
        f"| `{names.guidelines_audit}` | every model audited against G1–G4 (counted) |",
        f"| `{names.roofline(key)}` | the target's measured peak FLOP/s and copy bandwidth, with provenance |",
        f"| `{names.prediction(key)}` | each model's predicted latency (cost model, FLOPs-only, MAC-only), "
        "its interval, its attribution and the measured median; `prediction-TARGET.csv` the same on a deployment "
        "runtime with a cost model (ONNX Runtime fp32) |",
        f"| `{names.cost_model(key)}` | the fitted cost model (`cnnbench predict --cost-model` reads it); "
        "`costmodel-TARGET.json` a runtime's |",
        "| `*.env.json` | per table: the commits, machines, torch versions and times its rows were measured with |",
        "",
        "Every row carries `machine` (a hash of the OS machine id, host name, device name and hardware), `hardware` "
        "(CPU model, family/model/stepping, the ISA flags that select kernels, CPUs, memory), `torch`, `target`, "
        "`settings` (a hash of timing, batch and resolution), `code` (a hash of the model's and the measuring "
        "code's source), `quick`, `commit` (`+dirty` for uncommitted code), `host`, `device_name`, `measured_at` "
        "and, for timed rows, `probe_ms` (a 0.2 s speed probe) and `disturbed`/`cpu_share`. A rerun reuses a row "
        f"only when the first six match, its probe is within {PROBE_TOLERANCE:.0%} of today's and it was not "
        "disturbed; it measures it again otherwise.",
        "",
    ]
