"""``fleet/README.md``: a :class:`~cnnbench.fleet.merge.Fleet` on one page, with its tables as CSV beside it and its
charts. :class:`FleetFolder` is the one home of the page's file names.

The page is written whole or not at all: into a temporary folder beside ``out``, then moved into place, so that a
failure leaves the previous page (or nothing) and never half of one. A folder that is not a fleet page is never
replaced.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from cnnbench.errors import CnnbenchError
from cnnbench.fleet.charts import bump_chart, fronts_chart
from cnnbench.fleet.merge import PUBLISHED, Fleet
from cnnbench.fleet.ranks import agreement, front_counts, fronts, int8_vs_fp32, matrix, ranks
from cnnbench.fronts import accuracy_for
from cnnbench.output import markdown
from cnnbench.results import DEFAULT_FOLDER, ResultsFolder
from cnnbench.store import atomic_folder

__all__ = ["DEFAULT_OUT", "FleetFolder", "PAGE_MARK", "write_page"]

DEFAULT_OUT = ResultsFolder(DEFAULT_FOLDER).fleet
SHOWN_DEVICES = 12  # the most devices a Markdown matrix or a chart shows; the CSV files hold every one


def _first_few(names: list[str]) -> str:
    """At most :data:`SHOWN_DEVICES` device names for a table cell, then how many more (the CSV names them all)."""
    shown = "; ".join(names[:SHOWN_DEVICES])
    return shown if len(names) <= SHOWN_DEVICES else f"{shown}; and {len(names) - SHOWN_DEVICES} more"


PAGE_MARK = "<!-- written by cnnbench fleet -->"  # the page's second line: a folder without it is not replaced


@dataclass(frozen=True)
class FleetFolder:
    """The files of a fleet page; tables are CSV, charts a stem written as ``stem.png`` and ``stem.svg``."""

    path: Path = Path()

    @property
    def readme(self) -> Path:
        return self.path / "README.md"

    @property
    def rows(self) -> Path:
        """Every merged row, long, with why it was left out of the rankings (``left_out``)."""
        return self.path / "fleet-latency.csv"

    @property
    def devices(self) -> Path:
        return self.path / "devices.csv"

    def matrix(self, target: str) -> Path:
        return self.path / f"matrix-{target}.csv"

    def ranks(self, target: str) -> Path:
        return self.path / f"ranks-{target}.csv"

    def agreement(self, target: str) -> Path:
        return self.path / f"agreement-{target}.csv"

    def fronts(self, target: str) -> Path:
        return self.path / f"fronts-{target}.csv"

    @property
    def int8(self) -> Path:
        return self.path / "int8_vs_fp32.csv"

    def bump_chart(self, target: str) -> Path:
        return self.path / f"bump-{target}"

    def fronts_chart(self, target: str) -> Path:
        return self.path / f"fronts-{target}"


FRONT_COLUMNS = {"top1": "top-1 (%)", "on": "on the front on", "front_on": "devices"}


def _ms(value: float) -> str:
    """Three significant digits without an exponent: 0.771, 15.5, 1047; ``–`` when missing."""
    if pd.isna(value):
        return "–"
    return f"{value:.3g}" if value < 1000 else f"{value:.0f}"


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise CnnbenchError(f"--out {out} is a file; give a folder for the fleet page")
    if out.is_dir() and any(out.iterdir()):
        readme = FleetFolder(out).readme
        lines = readme.read_text(encoding="utf-8").splitlines()[:2] if readme.exists() else []
        if PAGE_MARK not in lines:
            raise CnnbenchError(
                f"--out {out} holds files that are not a fleet page; give a new or empty folder (the default is "
                f"{DEFAULT_OUT})"
            )


def write_page(fleet: Fleet, out: Path | str = DEFAULT_OUT, accuracy: pd.DataFrame | None = None) -> Path:
    """Write the fleet page (README.md, its CSV tables and charts) to ``out``, replacing a previous fleet page there
    whole; returns the README's path. ``accuracy``: one top-1 per model for the fronts (default: the papers',
    :func:`cnnbench.fronts.accuracy_for`)."""
    out = Path(out)
    _check_out(out)
    top1 = accuracy_for("paper") if accuracy is None else accuracy
    with atomic_folder(out) as staging:  # a previous fleet page is replaced whole
        _write_into(fleet, FleetFolder(staging), top1)
    return FleetFolder(out).readme


def _write_into(fleet: Fleet, files: FleetFolder, top1: pd.DataFrame) -> None:
    fleet.rows.to_csv(files.rows, index=False)
    fleet.devices.to_csv(files.devices, index=False)
    measured = fleet.devices[fleet.devices["source"] != PUBLISHED]
    folders = ", ".join(f"`{f}`" for f in measured["folder"])
    backends = sorted(set(fleet.rows.loc[fleet.rows["source"] == PUBLISHED, "backend"].astype(str)))
    published = f" and the published table of {', '.join(backends)}" if backends else ""
    lines = [
        f"# Fleet: {len(fleet.devices)} devices side by side",
        PAGE_MARK,
        "",
        f"Written by `cnnbench fleet` on {dt.date.today().isoformat()} from {folders or 'no folder'}{published}. "
        "Latency is each row's median (ms). A device is labelled by its host and a short form of its hardware "
        "(its strongest INT8 instruction-set flag); ranks are 1 for the fastest. Disturbed rows, failed runs and rows "
        "of other code are left out of every ranking and listed under [Left out](#left-out-of-the-rankings). Every "
        f"row, with why it was left out, is in [{files.rows.name}]({files.rows.name}).",
        "",
        "## Devices",
        "",
        markdown(_devices_table(fleet)),
        "",
    ]
    lines += [f"- {note}" for note in fleet.notes] + ([""] if fleet.notes else [])
    for target in fleet.targets():
        lines += _target_section(fleet, target, files, top1)
    lines += _int8_section(fleet, files)
    lines += _left_out_section(fleet)
    (files.readme).write_text("\n".join(lines), encoding="utf-8")


def _devices_table(fleet: Fleet) -> pd.DataFrame:
    rows = fleet.rows
    ranked = rows[rows["left_out"] == ""].groupby("device").size()
    left = rows[rows["left_out"] != ""].groupby("device").size()
    devices = fleet.devices
    return pd.DataFrame(
        {
            "device": devices["device"],
            "source": devices["source"],
            "folder": devices["folder"].replace("", "–"),
            "machine": devices["machine"].replace("", "–"),
            "ISA flags": devices["isa"].replace("", "–"),
            "rows ranked": devices["device"].map(ranked).fillna(0).astype(int),
            "left out": devices["device"].map(left).fillna(0).astype(int),
        }
    )


def _target_section(fleet: Fleet, target: str, files: FleetFolder, top1: pd.DataFrame) -> list[str]:
    wide = matrix(fleet, target)
    reference = fleet.reference_for(target)
    wide.to_csv(files.matrix(target))
    lines = [f"## {target}", "", f"### Latency (ms), {len(wide.columns)} devices × {len(wide)} models", ""]
    devices = list(wide.columns[:SHOWN_DEVICES])
    cut = (
        f" The matrix and the charts show the first {SHOWN_DEVICES} devices of {len(wide.columns)}: the CSV files "
        "hold every one, and `--devices PATTERN` keeps the published devices you name."
        if len(wide.columns) > SHOWN_DEVICES
        else ""
    )
    shown = wide[devices].map(_ms).reset_index()
    lines += [markdown(shown), "", f"As CSV: [{files.matrix(target).name}]({files.matrix(target).name}).{cut}", ""]
    if len(wide.columns) < 2:
        return [*lines, "One device ranked this target: nothing to compare.", ""]
    ranks(fleet, target).to_csv(files.ranks(target))
    ranked = ranks(fleet, target, devices)
    agree = agreement(fleet, target)
    agree.to_csv(files.agreement(target), index=False)
    lines += [
        f"### Ranks against {reference}",
        "",
        f"Spearman ρ and Kendall τ of each device's latencies against {reference}'s, over the models both ranked "
        "(scipy.stats; 1: the same order).",
        "",
        markdown(agree.drop(columns="reference").round({"spearman_rho": 3, "kendall_tau": 3})),
        "",
    ]
    if len(ranked) >= 2:
        stem = files.bump_chart(target)
        bump_chart(ranked, stem, f"{target}: rank of each model on each device ({len(ranked)} models on all)")
        lines += [f"![rank changes across devices]({stem.name}.png)", ""]
    points = fronts(fleet, target, top1)
    if not points.empty:
        points.to_csv(files.fronts(target), index=False)
        stem = files.fronts_chart(target)
        drawn = points[points["device"].isin(devices)]
        fronts_chart(drawn, stem, f"{target}: published top-1 against latency, each device's Pareto front")
        counts = front_counts(points)
        table = counts.assign(
            on=[f"{k} of {n}" for k, n in zip(counts["on_front"], counts["devices"], strict=True)],
            front_on=[_first_few(names.split("; ")) for names in counts["front_on"]],
        )
        lines += [
            "### Pareto fronts",
            "",
            f"![every device's front]({stem.name}.png)",
            "",
            "Each model on some device's front, with the number of devices whose front it is on, of those that "
            "ranked it.",
            "",
            markdown(table[["model", "top1", "on", "front_on"]].rename(columns=FRONT_COLUMNS)),
            "",
        ]
    return lines


def _int8_section(fleet: Fleet, files: FleetFolder) -> list[str]:
    table = int8_vs_fp32(fleet)
    if table.empty:
        return []
    table.to_csv(files.int8, index=False)
    shown = table.assign(
        median_speedup=table["median_speedup"].round(2),
        slower=[f"{k} of {n}" for k, n in zip(table["int8_slower"], table["models"], strict=True)],
        flag=table["flagged"].map({True: "INT8 slower", False: ""}),
        isa=table["isa"].replace("", "–"),
    )
    columns = {
        "device": "device",
        "int8_target": "INT8 target",
        "median_speedup": "fp32 / INT8 (median)",
        "slower": "INT8 slower on",
        "isa": "ISA flags",
        "flag": "flag",
    }
    return [
        "## INT8 against fp32",
        "",
        "Per device, the median over models of fp32 latency / INT8 latency on the same runtime (above 1: INT8 is "
        "faster), beside the instruction-set flags that decide which INT8 kernels run (VNNI, AMX, dot-product).",
        "",
        markdown(shown[list(columns)].rename(columns=columns)),
        "",
    ]


def _left_out_section(fleet: Fleet) -> list[str]:
    left = fleet.left_out()
    lines = ["## Left out of the rankings", ""]
    if left.empty:
        return [*lines, "No row: every row was ranked.", ""]
    shown = left.assign(latency=left["latency_ms_median"].map(_ms))
    columns = {"device": "device", "target": "target", "model": "model", "latency": "median (ms)", "left_out": "why"}
    return [*lines, markdown(shown[list(columns)].rename(columns=columns)), ""]
