"""Latency rows from the JSON files ``pytest benchmarks/test_latency.py --benchmark-json FILE`` writes.

A file is checked whole before anything is measured: it must parse, have pytest-benchmark's shape, and hold latency
tests of ours whose ``extra_info`` names the model, its counts and the target with its provenance (machine,
commit, torch). A file of another shape is refused with one line naming what it lacks. The rows keep the
provenance the file records; they are never labelled as measured by the report that reads them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from cnnbench.errors import CnnbenchError
from cnnbench.measure.latency import samples_text
from cnnbench.provenance import KERNEL_FLAGS, fingerprint

__all__ = [
    "read_benchmark_json",
    "load_benchmark_json",
    "benchmark_samples_ms",
    "hardware_of",
    "REQUIRED_TOP",
    "REQUIRED_STATS",
    "REQUIRED_EXTRA",
]

REQUIRED_TOP = ("machine_info", "commit_info", "benchmarks", "datetime", "version")  # pytest-benchmark's own keys
REQUIRED_STATS = ("median", "mean", "stddev", "iqr", "rounds")
# What benchmarks/test_latency.py stores in extra_info (target_* is describe(target)).
REQUIRED_EXTRA = (
    "model",
    "batch",
    "flops",
    "mac_bytes",
    "target_target",
    "target_machine",
    "target_host",
    "target_device_name",
    "target_torch",
    "target_commit",
)
HOW = "make one with `pytest benchmarks/test_latency.py --benchmark-only --benchmark-json FILE`"


def load_benchmark_json(path: Path) -> dict[str, Any]:
    """The parsed file, checked to have pytest-benchmark's top-level shape (one-line :class:`CnnbenchError` if not)."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise CnnbenchError(f"--from-benchmark {path}: no such file ({HOW})") from None
    except (OSError, UnicodeDecodeError) as err:
        raise CnnbenchError(f"cannot read benchmark JSON {path}: {err}") from None
    except json.JSONDecodeError as err:
        raise CnnbenchError(f"{path} is not JSON ({err}); {HOW}") from None
    if not isinstance(data, dict):
        raise CnnbenchError(f"{path} is not a pytest-benchmark JSON file (a JSON object); {HOW}")
    missing = [k for k in REQUIRED_TOP if k not in data]
    if missing:
        raise CnnbenchError(f"{path} is not a pytest-benchmark JSON file: it lacks {', '.join(missing)}; {HOW}")
    if not isinstance(data["benchmarks"], list):
        raise CnnbenchError(f"{path} is not a pytest-benchmark JSON file: 'benchmarks' is not a list; {HOW}")
    return data


def benchmark_samples_ms(entry: dict[str, Any]) -> tuple[float, ...] | None:
    """A benchmark's per-round times in ms, or None where the file holds none.

    pytest-benchmark keeps them in ``stats.data`` in seconds, each already divided by the round's iterations
    (``Metadata.update``): per-iteration times. ``--benchmark-json`` always writes them; ``--benchmark-save`` only
    with ``--benchmark-save-data``.
    """
    stats = entry.get("stats")
    data = stats.get("data") if isinstance(stats, dict) else None
    if not isinstance(data, list) or not data or not all(isinstance(x, int | float) for x in data):
        return None
    return tuple(1e3 * float(x) for x in data)


def _machine_info_hardware(data: dict[str, Any]) -> str:
    """What pytest-benchmark's own ``machine_info`` says of the CPU, for files made before rows named their
    hardware: its brand, architecture and logical CPUs (py-cpuinfo's figures where it is installed)."""
    info = data.get("machine_info") if isinstance(data.get("machine_info"), dict) else {}
    cpu = info.get("cpu") if isinstance(info.get("cpu"), dict) else {}
    parts = [str(cpu.get("brand_raw") or info.get("processor") or "unknown CPU"), str(info.get("machine") or "")]
    flags = cpu.get("flags") if isinstance(cpu.get("flags"), list) else []
    if flags:
        parts.append(" ".join(f for f in KERNEL_FLAGS if f in flags) or "no kernel flags")
    if cpu.get("count"):
        parts.append(f"{cpu['count']} cpus")
    return "; ".join(p for p in parts if p) + " (from pytest-benchmark's machine_info)"


def hardware_of(path: Path) -> str:
    """The hardware a pytest-benchmark JSON file was measured on: its tests' ``target_hardware``, else what its
    ``machine_info`` says."""
    data = load_benchmark_json(path)
    named = set()
    for entry in data["benchmarks"]:
        extra = entry.get("extra_info") if isinstance(entry, dict) else None
        if isinstance(extra, dict) and extra.get("target_hardware"):
            named.add(str(extra["target_hardware"]))
    return " | ".join(sorted(named)) if named else _machine_info_hardware(data)


def read_benchmark_json(path: Path) -> pd.DataFrame:
    """Latency rows, one per test of benchmarks/test_latency.py in ``path``, with the provenance the file records.

    Raises :class:`CnnbenchError` (one line) for a missing, unreadable or misshapen file.
    """
    data = load_benchmark_json(path)
    ours = [e for e in data["benchmarks"] if isinstance(e, dict) and {"model", "flops"} <= set(e.get("extra_info", {}))]
    if not ours:
        raise CnnbenchError(
            f"{path} holds no latency test of benchmarks/test_latency.py (no benchmark with extra_info 'model' and "
            f"'flops'); {HOW}"
        )
    rows = []
    for entry in ours:
        name = entry.get("name", "?")
        stats, extra = entry.get("stats", {}), entry["extra_info"]
        lacking = [f"stats.{k}" for k in REQUIRED_STATS if k not in stats]
        lacking += [f"extra_info.{k}" for k in REQUIRED_EXTRA if k not in extra]
        if lacking:
            raise CnnbenchError(
                f"{path}: {name} lacks {', '.join(lacking)} (made by an older benchmarks/?); {HOW} with this version"
            )
        batch = int(extra["batch"])
        rows.append(
            {
                "model": extra["model"],
                "family": extra.get("family", ""),
                "batch": batch,
                "resolution": extra.get("resolution"),
                "status": "ok",
                "latency_ms_median": stats["median"] * 1e3,
                "latency_ms_mean": stats["mean"] * 1e3,
                "latency_ms_std": stats["stddev"] * 1e3,
                "latency_ms_iqr": stats["iqr"] * 1e3,
                "cv": stats["stddev"] / stats["mean"] if stats["mean"] else 0.0,
                "throughput_img_s": batch / stats["median"] if stats["median"] else 0.0,
                "iters": stats["rounds"],
                "samples_ms": samples_text(benchmark_samples_ms(entry) or ()),
                "params": extra.get("params"),
                "flops": extra["flops"],
                "mac": extra.get("mac"),
                "mac_bytes": extra["mac_bytes"],
                "machine": extra["target_machine"],
                "torch": extra["target_torch"],
                "target": extra["target_target"],
                "settings": fingerprint({"harness": "pytest-benchmark", "rounds": stats["rounds"]}),
                "code": "",
                "quick": False,
                "commit": extra["target_commit"],
                "host": extra["target_host"],
                "device_name": extra["target_device_name"],
                "hardware": extra.get("target_hardware") or _machine_info_hardware(data),
                "probe_ms": extra.get("probe_ms"),
                "disturbed": extra.get("disturbed", False),
                "cpu_share": extra.get("cpu_share"),
                "disturbance": extra.get("disturbance", ""),
                "measured_at": data["datetime"],
                "source": str(path),
            }
        )
    return pd.DataFrame(rows)
