"""The report's tables of ShuffleNetV2's guidelines: the paper's Tables 1–4 re-run on the report's target
(``results/guidelines-<target>.csv``), every model audited against G1–G4 (``guidelines-audit.csv``), and the
Markdown the README shows of them (``guidelines-<target>.md``)."""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

import pandas as pd

from cnnbench.guidelines import microbench as g
from cnnbench.guidelines.audit import audit
from cnnbench.guidelines.verdicts import TIE, verdict
from cnnbench.measure.disturbance import Disturbance
from cnnbench.report.config import ReportConfig
from cnnbench.report.tables import Guard, Progress, measured_by, stamp_now
from cnnbench.results import table_code
from cnnbench.store import ResultTable, atomic_write_text, write_sidecar

__all__ = ["guidelines_tables"]


def guidelines_tables(
    config: ReportConfig, names: list[str], progress: Progress[str], guard: Guard | None = None
) -> pd.DataFrame:
    """results/guidelines-<target>.csv (SN2 Tables 1–4 re-run here, one interleaved table per guideline and scale),
    guidelines-audit.csv (models audited) and guidelines-<target>.md (tables with verdicts, for the README)."""
    target = config.target
    table = ResultTable(config.results.guidelines(target.key), key=["guideline", "config", "scale"])
    scales = (1,) if config.quick else g.SCALES
    rounds = config.guideline_rounds or (g.QUICK_ROUNDS if config.quick else g.ROUNDS)
    batch = g.default_batch(target)
    settings = {"timing": asdict(config.timing), "batch": batch, "rounds": rounds}
    guard = guard or Guard.of(config)
    stamp = stamp_now(config, target.key, settings, table_code("guidelines"))
    for guideline, scale in progress([(k, s) for k in g.GUIDELINES for s in scales], "guidelines"):
        size = len(g.GUIDELINES[guideline].rows)
        stamp = replace(stamp, probe_ms=guard.probe.ms())
        if not config.force and table.reusable_group(stamp, size, guideline=guideline, scale=scale):
            continue
        rows, attempts = guard.quieting.measure(
            f"{guideline} at scale {scale}",
            lambda: g.run_table(guideline, scale, target, batch, config.timing, rounds),  # noqa: B023
            _table_disturbance,
        )
        rows = [{**row, "attempts": attempts} for row in rows]
        columns = stamp.columns(target.torch_device)
        table.replace([{**row, **columns} for row in rows], guideline=guideline, scale=scale)
    write_sidecar(
        table.path,
        table.frame(),
        {"target": target.key, "target_settings": asdict(target), "timing": asdict(config.timing), "rounds": rounds},
    )
    mine = table.frame(measured_by(stamp.machine))
    frame = g.results_frame(mine.to_dict("records")) if not mine.empty else mine
    _audit_table(config, names, progress)
    _guidelines_page(config, frame, rounds)
    return frame


def _audit_table(config: ReportConfig, names: list[str], progress: Progress[str]) -> None:
    """guidelines-audit.csv: every model's layers counted against G1–G4 (meta device)."""
    audits = ResultTable(config.results.guidelines_audit, key=["model"], text_columns=["g2_groups", "flags"])
    for name in progress(names, "audit"):
        stamp = stamp_now(config, "meta", {"batch": 1}, table_code("guidelines audit", name))
        if config.force or audits.reusable(stamp, model=name) is None:
            audits.put({**audit(name).summary, **stamp.columns()})
    if config.whole_zoo and not config.quick:
        audits.keep_only([{"model": n} for n in names])
    write_sidecar(audits.path, audits.frame(), {"counted_on": "meta device", "batch": 1})


def _table_disturbance(rows: list[dict[str, object]]) -> Disturbance | None:
    """A guideline table's rows share one timed window: the first row's reading stands for all."""
    if not rows or rows[0].get("cpu_share") is None:
        return None
    first = rows[0]
    return Disturbance(
        cpu_share=float(first["cpu_share"]),  # type: ignore[arg-type]
        cpu_steal=None if first.get("cpu_steal") is None else float(first["cpu_steal"]),
    )  # type: ignore[arg-type]


def _guidelines_page(config: ReportConfig, frame: pd.DataFrame, rounds: int) -> Path:
    key = config.target.key
    md = config.results.guidelines_page(key)
    lines = [f"## ShuffleNetV2's guidelines on {key}", ""]
    if frame.empty:
        atomic_write_text(md, "\n".join([*lines, "Not measured on this machine.", ""]))
        return md
    lines += [
        f"Each table (a guideline at one scale) was timed in {rounds} interleaved rounds; `speed vs base` is the "
        "median of the per-round speed ratios with its 95% bootstrap interval. The verdicts judge each ordering the "
        'paper claims by that interval per multiply-add (the rows\' FLOPs differ by up to 5.5%): "no faster than" '
        f"holds when the interval lies at or below {1 + TIE:.2f} and fails when it lies above; a claimed speed-up "
        "holds when it lies below 1; anything else is undecided.",
        "",
    ]
    lines += [
        f"- {verdict(frame, guideline).summary}" for guideline in g.GUIDELINES if guideline in set(frame["guideline"])
    ]
    shown = frame[["guideline", "config", "scale", "flops", "mac", "latency_ms_median", "images_s", "paper_vs_base"]]
    shown = shown.copy()
    shown.insert(7, "speed_vs_base", g.speed_texts(frame))
    shown["flops"] = (pd.to_numeric(shown["flops"]) / 1e6).round(1)
    shown["mac"] = (pd.to_numeric(shown["mac"]) / 1e6).round(2)
    shown = shown.round(3).rename(
        columns={"flops": "MFLOPs (mult-adds)", "mac": "MAC (M elem)", "speed_vs_base": "speed vs base [95% CI]"}
    )
    lines += [
        "",
        shown.to_markdown(index=False),
        "",
        f"Audit of every model: `{config.results.guidelines_audit.name}` (`cnnbench guidelines --audit --all` "
        "explains the columns).",
        "",
    ]
    atomic_write_text(md, "\n".join(lines))
    return md
