"""Reading what a results folder holds: latency rows imported from pytest-benchmark JSON, every latency row to show
side by side, and which rows of a table this machine measured (the report shows only those)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

import zoo
from cnnbench.measure.bench import BENCH_TEXT_COLUMNS
from cnnbench.report.config import ReportConfig
from cnnbench.results import ResultsFolder
from cnnbench.store import ResultTable, write_sidecar

__all__ = ["merge_benchmarks", "all_latency", "digits_here", "measured_elsewhere", "here", "families"]


# --- pytest-benchmark JSON from other targets and machines --------------------------------------------------------


def merge_benchmarks(config: ReportConfig, frames: list[pd.DataFrame]) -> list[Path]:
    """Write ``latency-<target>@<host>-<machine>.csv`` for each target and machine found in the JSON files: apart
    from anything this report measures, with the provenance the files record."""
    written = []
    merged = pd.concat(frames, ignore_index=True)
    for (target, machine, host), group in merged.groupby(["target", "machine", "host"], sort=False):
        path = config.results.imported_latency(str(target), str(host), str(machine))
        table = ResultTable(path, key=["model", "batch"], text_columns=BENCH_TEXT_COLUMNS)
        for record in group.to_dict("records"):
            table.put(record)
        write_sidecar(path, table.frame(), {"target": target, "from": sorted(set(group["source"]))})
        written.append(path)
    return written


def _measured_on(frame: pd.DataFrame, machine: str) -> pd.Series:
    """Which rows ``machine`` measured (none, for a table written before rows carried their machine)."""
    return frame["machine"].astype(str) == machine if "machine" in frame else pd.Series(False, frame.index)


def families() -> dict[str, str]:
    return {n: zoo.model_info(n).family for n in zoo.list_models()}


def all_latency(out: Path, machine: str) -> tuple[pd.DataFrame, list[str]]:
    """Every latency row to show side by side: this machine's on any target, and imported ones (``@`` files),
    labelled ``target @ host``. Also returns the files left out because another machine measured them."""
    frames, left_out = [], []
    for path in ResultsFolder(out).latency_tables():
        frame = ResultTable(path, key=["model", "batch"], text_columns=BENCH_TEXT_COLUMNS).frame()
        if frame.empty:
            continue
        if "target" not in frame:
            frame["target"] = ResultsFolder.latency_target(path)
        if "@" in path.stem:
            frame["target"] = frame["target"].astype(str) + " @ " + frame["host"].astype(str)
        else:
            mine = _measured_on(frame, machine)
            if not mine.all():
                left_out.append(f"{path.name} ({int((~mine).sum())} rows measured elsewhere)")
            frame = frame[mine]
        if not frame.empty:
            frames.append(frame.dropna(axis=1, how="all"))  # a column empty on one target (quantize_s) stays
    return (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()), left_out


def digits_here(out: Path, machine: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows of accuracy-digits.csv (``cnnbench train``) measured on this machine, and the others (:func:`here`)."""
    return here(ResultsFolder(out).digits, ["model"], machine)


def measured_elsewhere(others: pd.DataFrame) -> str:
    """Where rows another machine measured (:func:`here`'s second table) come from, in words ("62 rows of machine
    82145c9c93be at commit b17351f, measured 2026-12-02"); "" when there are none."""
    if others.empty:
        return ""
    machines = ", ".join(sorted({str(v) for v in others.get("machine", []) if v})) or "?"
    commits = ", ".join(sorted({str(v) for v in others.get("commit", []) if v})) or "?"
    days = sorted({str(t)[:10] for t in others.get("measured_at", []) if t})
    when = f", measured {days[0]}" + (f" to {days[-1]}" if days[-1] != days[0] else "") if days else ""
    return f"{len(others)} row{'s' if len(others) > 1 else ''} of machine {machines} at commit {commits}{when}"


def here(path: Path, key: list[str], machine: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows of a results table that ``machine`` measured, and the rows other machines did."""
    if not path.exists():
        return pd.DataFrame(), pd.DataFrame()
    frame = ResultTable(path, key=key).frame()
    if frame.empty:
        return frame, frame
    mine = _measured_on(frame, machine)
    return frame[mine].reset_index(drop=True), frame[~mine].reset_index(drop=True)
