"""Several results folders (one per machine) and published tables read, checked and merged into one :class:`Fleet`:
one long frame, a row per device × target × model, the device labelled by its host and a short form of its
hardware (``boxa · AMD EPYC 7763, avx512_vnni``).

Everything a fleet can be refused for is checked here, before anything is written, in one line naming the folder
or table: a missing folder, one without latency tables, a broken CSV, a table without the columns rows carry
since provenance was kept, a row twice, the same folder or machine twice, a table that other code measured.

A row takes part in the rankings only when ``left_out`` is empty. It is left out, and listed, when its run failed,
when it was ``disturbed`` (another process held the CPUs while it was timed), or when its ``code`` fingerprint
differs from the one most devices measured that target and model with (ties go to the device named first):
figures of other code are shown apart, never mixed in. A table whose every row is from other code is refused. Rows
``cnnbench fleet import`` read from a device's own log carry no fingerprint: they are noted, not checked.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

import pandas as pd

from cnnbench.errors import CnnbenchError
from cnnbench.fleet.imports import SOURCE as DEVICE_LOG
from cnnbench.measure.bench import BENCH_TEXT_COLUMNS
from cnnbench.provenance import KERNEL_FLAGS, is_disturbed
from cnnbench.results import ResultsFolder
from cnnbench.store import ResultTable

__all__ = [
    "FROM_DEVICE_LOG",
    "Fleet",
    "LONG_COLUMNS",
    "MEASURED",
    "PUBLISHED",
    "REQUIRED_COLUMNS",
    "device_label",
    "isa_flags",
    "merge_folders",
    "short_hardware",
]

MEASURED, PUBLISHED = "measured", "published"

# What a latency row must carry to be compared with another machine's: written by every cnnbench report since
# provenance was kept. A table lacking one is from an older cnnbench and is refused.
REQUIRED_COLUMNS = ("model", "batch", "status", "latency_ms_median", "target", "machine", "host", "hardware", "code")

# What else of a latency row the fleet keeps, where the table has it.
_OPTIONAL_COLUMNS = ("disturbed", "cpu_share", "backend", "dtype", "threads", "commit", "source")
# The note of a row `cnnbench fleet import` read from a device's own log: it has no code fingerprint to compare.
FROM_DEVICE_LOG = "imported from a device log"

# The fleet's long frame, one row per device × target × model.
LONG_COLUMNS = [
    "device",  # the label every table and chart shows
    "source",  # MEASURED or PUBLISHED
    "target",  # the target key (latency-<target>.csv), or a published table's ("published-ncnn-fp32")
    "model",
    "batch",
    "latency_ms_median",
    "left_out",  # why the row takes no part in the rankings; "" when it does
    "note",  # anything else worth a reader's eye (a published row whose max/min > 3)
    "disturbed",
    "cpu_share",
    "status",
    "backend",
    "dtype",
    "threads",
    "host",
    "machine",
    "hardware",
    "code",
    "commit",
    "folder",  # the results folder; "" for published rows
    "table",  # the latency table the row was read from; "" for published rows
]

# The flag that says most about a CPU's INT8 kernels, strongest first: what a device's short label shows.
_INT8_FLAGS = ("amx_int8", "avx512_vnni", "avx_vnni", "i8mm", "asimddp", "avx512f", "avx2", "asimd")
_NOISE_WORDS = {"CPU", "Processor", "processor"}


def isa_flags(hardware: str) -> list[str]:
    """The :data:`~cnnbench.provenance.KERNEL_FLAGS` a row's ``hardware`` lists, in that order."""
    present = set(str(hardware).replace(";", " ").split())
    return [flag for flag in KERNEL_FLAGS if flag in present]


def short_hardware(hardware: str) -> str:
    """``Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz; x86_64 6/106/6; avx2 ... avx512_vnni; 64 cpus; 256 GiB`` →
    ``Intel Xeon Gold 6338, avx512_vnni``: the first words of the device's name, then its strongest INT8 flag."""
    name = str(hardware).split(";")[0]
    name = re.sub(r"\((R|TM|r|tm)\)", "", name)
    name = re.sub(r"\s*@.*$", "", name)
    words = [w for w in name.split() if w not in _NOISE_WORDS and not w.lower().endswith("-core")]
    short = " ".join(words[:4]) or "unknown hardware"
    flags = isa_flags(hardware)
    best = next((f for f in _INT8_FLAGS if f in flags), "")
    return f"{short}, {best}" if best else short


def device_label(host: str, hardware: str) -> str:
    """``boxa · AMD EPYC 7763, avx512_vnni``: the host, then :func:`short_hardware`."""
    return f"{host} · {short_hardware(hardware)}"


@dataclass(frozen=True)
class Fleet:
    """Merged rows of several devices. ``rows`` has :data:`LONG_COLUMNS`; ``devices`` one row per device
    (``device, source, folder, host, machine, hardware, isa``) in the order given; ``reference`` is the device the
    ranks are compared against; ``notes`` say what was left out and why, in words."""

    rows: pd.DataFrame
    devices: pd.DataFrame
    reference: str
    notes: tuple[str, ...] = ()

    def ranked(self, target: str | None = None) -> pd.DataFrame:
        """The rows that take part in the rankings (``left_out`` empty), of ``target`` when given."""
        rows = self.rows[self.rows["left_out"] == ""]
        return rows[rows["target"] == target] if target is not None else rows

    def left_out(self) -> pd.DataFrame:
        """The rows shown apart, with the reason in ``left_out``."""
        return self.rows[self.rows["left_out"] != ""]

    def targets(self) -> list[str]:
        """Every target with ranked rows: measured ones first, then published, each sorted by name."""
        ranked = self.ranked()
        order = ranked.assign(published=ranked["source"] == PUBLISHED).sort_values(["published", "target"])
        return list(dict.fromkeys(order["target"]))

    def device_order(self, target: str | None = None) -> list[str]:
        """The devices in the order given (those with ranked rows of ``target``, when given)."""
        names = list(self.devices["device"])
        if target is None:
            return names
        present = set(self.ranked(target)["device"])
        return [d for d in names if d in present]

    def reference_for(self, target: str) -> str:
        """The device a target's ranks are compared against: :attr:`reference` if it measured the target, else the
        first device that did."""
        devices = self.device_order(target)
        return self.reference if self.reference in devices else (devices[0] if devices else "")


@dataclass(frozen=True)
class _Folder:
    path: Path
    rows: pd.DataFrame
    machine: str
    host: str
    hardware: str
    notes: tuple[str, ...]


def _read_folder(path: Path, batch: int) -> _Folder:
    """One folder's latency rows at ``batch``, measured by the machine that measured most of them."""
    if not path.is_dir():
        raise CnnbenchError(f"{path}: no such folder; give results folders that `cnnbench report --out` wrote")
    folder = ResultsFolder(path)
    tables = [t for t in folder.latency_tables() if "@" not in t.stem]  # "@": pytest-benchmark imports, apart
    if not tables:
        raise CnnbenchError(f"{path} holds no latency-*.csv table; give a results folder `cnnbench report` wrote")
    frames = []
    for table in tables:
        frame = ResultTable(table, key=["model", "batch"], text_columns=BENCH_TEXT_COLUMNS).frame()
        if frame.empty:
            continue
        missing = [c for c in REQUIRED_COLUMNS if c not in frame]
        if missing:
            raise CnnbenchError(
                f"{table} lacks the columns {', '.join(missing)} (an older cnnbench wrote it); re-run cnnbench "
                "report there"
            )
        kept = [c for c in (*REQUIRED_COLUMNS, *_OPTIONAL_COLUMNS) if c in frame]
        frame = frame[kept].assign(target=folder.latency_target(table), table=str(table))
        repeated = frame[frame.duplicated(["model", "batch"], keep=False)]
        if not repeated.empty:
            first = repeated.iloc[0]
            raise CnnbenchError(
                f"{table} holds {first['model']} at batch {first['batch']} more than once; keep one row per model "
                "and batch"
            )
        frames.append(frame)
    if not frames:
        raise CnnbenchError(f"{path}: every latency table is empty; run cnnbench report there")
    rows = pd.concat(frames, ignore_index=True)
    rows = rows[pd.to_numeric(rows["batch"], errors="coerce") == batch]
    if rows.empty:
        raise CnnbenchError(f"{path} has no latency row at batch {batch}; give --batch a batch it measured")
    machine = str(rows["machine"].astype(str).value_counts().index[0])
    notes = []
    others = rows[rows["machine"].astype(str) != machine]
    if not others.empty:
        notes.append(
            f"{path}: {len(others)} rows measured by other machines "
            f"({', '.join(sorted(set(others['machine'])))}) left out"
        )
    rows = rows[rows["machine"].astype(str) == machine]
    first = rows.iloc[0]
    return _Folder(path, rows, machine, str(first["host"]), str(first["hardware"]), tuple(notes))


def _labels(folders: Sequence[_Folder], names: Mapping[str, str]) -> list[str]:
    """Each folder's device label: ``--name DIR=LABEL`` where given, else :func:`device_label`; a label two
    devices would share gets the first six digits of each machine."""
    given = {Path(k).resolve(): v for k, v in names.items()}
    unknown = [k for k in given if k not in {f.path.resolve() for f in folders}]
    if unknown:
        raise CnnbenchError(f"--name names {unknown[0]}, which is not one of the folders given")
    labels = [given.get(f.path.resolve()) or device_label(f.host, f.hardware) for f in folders]
    labels = [
        f"{label} ({f.machine[:6]})" if labels.count(label) > 1 and f.path.resolve() not in given else label
        for f, label in zip(folders, labels, strict=True)
    ]
    twice = next((label for label in labels if labels.count(label) > 1), None)
    if twice is not None:
        raise CnnbenchError(f"two devices are labelled {twice!r}; give each its own with --name DIR=LABEL")
    return labels


def _check_distinct(folders: Sequence[_Folder]) -> None:
    seen: dict[str, Path] = {}
    for folder in folders:
        if folder.machine in seen:
            raise CnnbenchError(
                f"{seen[folder.machine]} and {folder.path} were both measured on machine {folder.machine} (host "
                f"{folder.host}); give each machine once (`cnnbench compare` compares two runs of one machine)"
            )
        seen[folder.machine] = folder.path


def _why_left_out(status: str, disturbed: bool, cpu_share: float) -> str:
    """Why a measured row takes no part in the rankings; "" when it does."""
    if status != "ok":
        return f"status {status}"
    if disturbed:
        return f"disturbed (cpu_share {cpu_share:.2f})" if pd.notna(cpu_share) else "disturbed"
    return ""


def _long(folder: _Folder, label: str) -> pd.DataFrame:
    rows = folder.rows
    status = rows["status"].astype(str)
    flagged = rows.apply(is_disturbed, axis=1).astype(bool)
    shares = (
        pd.to_numeric(rows["cpu_share"], errors="coerce")
        if "cpu_share" in rows
        else pd.Series(float("nan"), index=rows.index)
    )
    left_out = [_why_left_out(s, d, c) for s, d, c in zip(status, flagged, shares, strict=True)]
    out = pd.DataFrame(
        {
            "device": label,
            "source": MEASURED,
            "target": rows["target"],
            "model": rows["model"].astype(str),
            "batch": pd.to_numeric(rows["batch"]).astype(int),
            "latency_ms_median": pd.to_numeric(rows["latency_ms_median"], errors="coerce"),
            "left_out": left_out,
            "note": [FROM_DEVICE_LOG if s == DEVICE_LOG else "" for s in rows.get("source", pd.Series("", rows.index))],
            "disturbed": flagged,
            "cpu_share": shares,
            "status": status,
            **{c: rows[c] if c in rows else "" for c in ("backend", "dtype", "threads", "host", "machine")},
            "hardware": rows["hardware"],
            "code": rows["code"].astype(str),
            "commit": rows["commit"] if "commit" in rows else "",
            "folder": str(folder.path),
            "table": rows["table"],
        }
    )
    return out.reset_index(drop=True)


def _mark_other_code(rows: pd.DataFrame, devices: list[str]) -> pd.DataFrame:
    """Leave out the measured rows whose ``code`` differs from the one most devices measured the same target and
    model with (ties: the first device's); refuse a table whose every row is from other code."""
    checked = (rows["source"] == MEASURED) & (rows["note"] != FROM_DEVICE_LOG)
    measured = rows[checked]
    order = {d: i for i, d in enumerate(devices)}
    reference: dict[tuple[str, str], str] = {}
    for (target, model), group in measured.groupby(["target", "model"], sort=False):
        codes = list(group.sort_values("device", key=lambda s: s.map(order))["code"])
        reference[(target, model)] = max(dict.fromkeys(codes), key=codes.count)  # max keeps the first of a tie
    expected = [reference.get((t, m), c) for t, m, c in zip(rows["target"], rows["model"], rows["code"], strict=True)]
    other = checked & (rows["code"] != pd.Series(expected, index=rows.index))
    for table, group in measured.groupby("table", sort=False):
        if other[group.index].all():
            theirs = group["code"].iloc[0]
            ours = expected[rows.index.get_loc(group.index[0])]
            raise CnnbenchError(
                f"{table} was measured by other code than the other devices (its code {theirs}, theirs {ours}); "
                "re-run cnnbench report there at the same commit, or leave that folder out"
            )
    reasons = [
        f"other code ({c}; the others {e})" if o and not why else why
        for c, e, o, why in zip(rows["code"], expected, other, rows["left_out"], strict=True)
    ]
    return rows.assign(left_out=reasons)


def _published(published: pd.DataFrame, batch: int) -> pd.DataFrame:
    """Published rows (:func:`cnnbench.fleet.published.published_rows`) in the long frame's columns."""
    rows = published.drop_duplicates(["device", "target", "model"])  # one figure per device, target and model
    unstable = rows["unstable"].astype(bool) if "unstable" in rows else pd.Series(False, index=rows.index)
    return pd.DataFrame(
        {
            "device": rows["device"].astype(str),
            "source": PUBLISHED,
            "target": rows["target"].astype(str),
            "model": rows["model"].astype(str),
            "batch": batch,
            "latency_ms_median": pd.to_numeric(rows["latency_ms_median"], errors="coerce"),
            "left_out": "",
            "note": ["unstable (max/min > 3)" if u else "" for u in unstable],
            "disturbed": False,
            "cpu_share": float("nan"),
            "status": "ok",
            "backend": rows.get("backend", "ncnn"),
            "dtype": rows.get("dtype", ""),
            "threads": rows.get("threads", ""),
            "host": "",
            "machine": "",
            "hardware": "",
            "code": "",
            "commit": rows.get("published_commit", ""),
            "folder": "",
            "table": "",
        }
    )


def _only(published: pd.DataFrame, patterns: Sequence[str]) -> pd.DataFrame:
    """The published rows of the devices some pattern matches; one line when a pattern matches none."""
    names = published["device"].astype(str)
    keep = pd.Series(False, index=published.index)
    for pattern in patterns:
        hit = names.map(lambda n, p=pattern: fnmatchcase(n.lower(), p.lower()))
        if not hit.any():
            some = "; ".join(list(dict.fromkeys(names))[:5])
            raise CnnbenchError(f"--devices {pattern!r} matches no published device (they read: {some}; ...)")
        keep |= hit
    return published[keep]


def merge_folders(
    paths: Sequence[Path | str],
    names: Mapping[str, str] | None = None,
    *,
    published: pd.DataFrame | None = None,
    published_devices: Sequence[str] = (),
    batch: int = 1,
    reference: str | None = None,
) -> Fleet:
    """The results folders ``paths`` (one machine each, as ``cnnbench report --out`` wrote them) and, optionally,
    ``published`` rows, merged into one :class:`Fleet` of rows at ``batch``.

    ``names`` maps a folder to its device label (``--name DIR=LABEL``); ``published_devices``: shell-style patterns
    (case-insensitive) that keep only the published devices they match (ncnn's table has over 200); ``reference`` is
    the label ranks are compared against (default: the first device). Raises :class:`CnnbenchError`, one line
    naming the folder or table, for anything the module docstring lists."""
    folders_given = [Path(p) for p in paths]
    resolved = [p.resolve() for p in folders_given]
    twice = next((p for i, p in enumerate(folders_given) if resolved[i] in resolved[:i]), None)
    if twice is not None:
        raise CnnbenchError(f"{twice} is given twice; give each results folder once")
    folders = [_read_folder(p, batch) for p in folders_given]
    _check_distinct(folders)
    labels = _labels(folders, names or {})
    frames = [_long(f, label) for f, label in zip(folders, labels, strict=True)]
    devices = [
        {
            "device": label,
            "source": MEASURED,
            "folder": str(f.path),
            "host": f.host,
            "machine": f.machine,
            "hardware": f.hardware,
            "isa": " ".join(isa_flags(f.hardware)),
        }
        for f, label in zip(folders, labels, strict=True)
    ]
    notes = [n for f in folders for n in f.notes]
    if published is not None and published_devices:
        published = _only(published, published_devices)
    if published is not None and not published.empty:
        frames.append(_published(published, batch))
        repeated = int(published.duplicated(["device", "target", "model"]).sum())
        if repeated:
            notes.append(f"{repeated} published rows repeat a device, target and model: the first of each kept")
        taken = set(labels)
        for device in dict.fromkeys(published["device"].astype(str)):
            if device in taken:
                raise CnnbenchError(f"the published device {device!r} has the label of a measured one; rename it")
            empty = {"folder": "", "host": "", "machine": "", "hardware": "", "isa": ""}
            devices.append({"device": device, "source": PUBLISHED, **empty})
    if len(devices) < 2:
        raise CnnbenchError("a fleet needs at least two devices; give more results folders, or --published ncnn")
    order = [d["device"] for d in devices]
    rows = _mark_other_code(pd.concat(frames, ignore_index=True), order)
    reference = reference or order[0]
    if reference not in order:
        raise CnnbenchError(f"--reference {reference!r} is none of the devices ({'; '.join(order)})")
    left = rows[rows["left_out"] != ""]
    for reason in ("disturbed", "other code", "status"):
        hit = left[left["left_out"].str.startswith(reason)]
        if not hit.empty:
            notes.append(f"{len(hit)} rows left out of the rankings: {reason} (listed under 'Left out')")
    return Fleet(rows[LONG_COLUMNS], pd.DataFrame(devices), reference, tuple(notes))
