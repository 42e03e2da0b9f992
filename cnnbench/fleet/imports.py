"""A device's own benchmark log as latency rows of a results folder: ``cnnbench fleet import``.

A phone or a board that ran the files of ``cnnbench export`` with the command each manifest gives prints its own
timing; each model becomes one row of ``latency-<target>.csv``, the target being
:attr:`cnnbench.target.Target.key` on the CPU with the run's threads (``cpu-t4-fp32-nchw-ncnn``), so the report,
``pick`` and the fleet page read an imported table as they read a measured one. Rows say ``source = "device log"``
and ``commit = code = "imported"``; ``machine`` hashes the host and hardware the user gave.

- ncnn's ``benchncnn 100 4 0 -1 0 param=<model>.param shape=[224,224,3]`` prints a line per model in the format
  :mod:`cnnbench.fleet.published` reads. ``latency_ms_median`` holds its ``avg``, which is a **mean** (so does
  ``latency_ms_mean``); min and max are kept. Names are the exported file stems (``<zoo name>.param``) or ncnn's
  built-in names, mapped by :data:`~cnnbench.fleet.published.NCNN_TO_ZOO`; other models, and runs on a Vulkan GPU
  (cnnbench has no target for them), are left out and named in ``frame.attrs["left_out"]``.
- ExecuTorch's ``executor_runner --model_path <model>.pte --num_executions 100 --cpu_threads 4`` logs "Model file
  X is loaded.", "Resetting threadpool with num threads = N" (builds with a threadpool), one "Iteration i of n: t
  ms" per execution (since April 2026) and "Model executed successfully n time(s) in t ms." (since March 2025). The
  iterations give a true median, min and max; a log with the total only gives the mean (median = mean, min and
  max empty); older ones print no time and are refused. The log does not say the dtype (``cnnbench export``
  names fp32 and int8 files alike): the caller does.
"""

from __future__ import annotations

import hashlib
import re
import statistics
from pathlib import Path

import pandas as pd

import zoo
from cnnbench.errors import CnnbenchError
from cnnbench.fleet.published import NCNN_TO_ZOO, ncnn_model_name, read_benchncnn, split_int8
from cnnbench.provenance import now
from cnnbench.results import ResultsFolder
from cnnbench.store import atomic_folder, atomic_write_text, write_sidecar
from cnnbench.target import INT8, Target

__all__ = ["SOURCE", "import_benchncnn", "import_executor_runner", "imported_machine", "write_imported"]

SOURCE = "device log"  # the ``source`` of an imported row (published ones say "published")

_ET_MODEL = re.compile(r"Model file (?P<path>\S+) is loaded\.")
_ET_THREADS = re.compile(r"Resetting threadpool with num threads = (?P<threads>\d+)")
_ET_ITERATION = re.compile(r"Iteration \d+ of \d+: (?P<ms>\d+(?:\.\d+)?) ms")
_ET_TOTAL = re.compile(r"Model executed successfully (?P<n>\d+) time\(s\) in (?P<ms>\d+(?:\.\d+)?) ms\.")


def imported_machine(host: str, hardware: str) -> str:
    """12 hex digits naming an imported device: a hash of its host name and hardware, as the user gave them."""
    return hashlib.sha256(f"{host}|{hardware}".encode()).hexdigest()[:12]


def _device_columns(hardware: str, host: str) -> dict[str, str]:
    if not hardware.strip():
        raise CnnbenchError('say what the device is with --hardware ("Raspberry Pi 5, Cortex-A76 2.4 GHz x 4")')
    machine = imported_machine(host, hardware)
    return {"machine": machine, "host": host, "device_name": hardware, "hardware": hardware, "measured_at": now()}


def _zoo_name(name: str) -> str | None:
    """The zoo model a file stem or one of ncnn's built-in names stands for; None for any other model."""
    if zoo.list_models(name) == [name]:
        return name
    return NCNN_TO_ZOO.get(split_int8(name)[0])


def _latency_row(
    model: str, target: Target, times: dict[str, float], iters: int | None, notes: str, device: dict[str, str]
) -> dict[str, object]:
    """One row of a latency table from a device's own timing; ``times`` holds median, mean, min and max in ms."""
    return {
        "model": model,
        "batch": 1,
        "status": "ok",
        "error": "",
        **{f"latency_ms_{stat}": times.get(stat, float("nan")) for stat in ("median", "mean", "min", "max")},
        "iters": iters,
        "disturbed": False,
        "cpu_share": float("nan"),  # not measured on the device
        "notes": notes,
        "device": target.device,
        "threads": target.threads,
        "dtype": target.dtype,
        "channels_last": False,
        "backend": target.backend,
        "fuse_bn": False,
        "target": target.key,
        **device,
        "commit": "imported",
        "code": "imported",
        "quick": False,
        "source": SOURCE,
    }


def _table(rows: list[dict[str, object]], left_out: list[str], log: str) -> pd.DataFrame:
    """The rows as one frame; one line when there are none or when a model is timed twice on one target."""
    if not rows:
        why = f" (left out: {'; '.join(left_out)})" if left_out else ""
        raise CnnbenchError(f"the {log} log holds no CPU timing of a zoo model{why}")
    frame = pd.DataFrame(rows)
    twice = frame[frame.duplicated(["model", "target"], keep=False)]
    if not twice.empty:
        first = twice.iloc[0]
        raise CnnbenchError(
            f"the {log} log times {first['model']} twice on {first['target']}; import each run from its own log"
        )
    frame.attrs["left_out"] = left_out
    return frame


def import_benchncnn(log_text: str, hardware: str, host: str) -> pd.DataFrame:
    """The latency rows of a benchncnn log from the device ``hardware`` (free text) called ``host``. Raises
    :class:`CnnbenchError` when no CPU line of a zoo model can be read, when a run does not say its threads, or
    when two runs time one model on one target."""
    device = _device_columns(hardware, host)
    log = read_benchncnn(log_text)
    rows: list[dict[str, object]] = []
    left_out: list[str] = []
    for run in log.runs:
        if run.gpu:
            left_out.append(f"{len(run.timings)} lines run on Vulkan GPU {run.gpu_device} (no cnnbench target)")
            continue
        if run.threads is None:
            raise CnnbenchError("a run of the log does not say its threads; keep benchncnn's `num_threads = N` line")
        for timing in run.timings:
            name = ncnn_model_name(timing.name)
            model = _zoo_name(name)
            if model is None:
                left_out.append(f"{timing.name} (not a zoo model)")
                continue
            target = Target(threads=run.threads, dtype=split_int8(name)[1], backend="ncnn")
            times = {"median": timing.avg_ms, "mean": timing.avg_ms, "min": timing.min_ms, "max": timing.max_ms}
            notes = f"benchncnn {timing.name}: avg (a mean) of {run.loops} loops, powersave {run.powersave}"
            rows.append(_latency_row(model, target, times, run.loops, notes, device))
    return _table(rows, left_out, "benchncnn")


def import_executor_runner(
    log_text: str, hardware: str, host: str, dtype: str = "fp32", threads: int | None = None
) -> pd.DataFrame:
    """The latency rows of ExecuTorch ``executor_runner`` logs (several runs may follow one another), one per
    "Model file X is loaded."; ``threads`` stands where the log does not say them, ``dtype`` says what the files
    were (``cnnbench export --dtype``)."""
    if dtype not in ("fp32", INT8):
        raise CnnbenchError(f"--dtype takes fp32 or int8, not {dtype}")
    device = _device_columns(hardware, host)
    rows: list[dict[str, object]] = []
    left_out: list[str] = []
    model: str | None = None
    said_threads, iterations = threads, []

    for line in log_text.splitlines():
        if match := _ET_MODEL.search(line):
            stem = Path(match["path"].replace("\\", "/")).name.removesuffix(".pte")
            model, iterations = _zoo_name(stem), []
            if model is None:
                left_out.append(f"{stem} (not a zoo model)")
        elif match := _ET_THREADS.search(line):
            said_threads = int(match["threads"])
        elif match := _ET_ITERATION.search(line):
            iterations.append(float(match["ms"]))
        elif (match := _ET_TOTAL.search(line)) and model is not None:
            if said_threads is None:
                raise CnnbenchError(f"the log of {model} does not say its threads; give --threads N")
            runs, total = int(match["n"]), float(match["ms"])
            if iterations:
                times = {"median": statistics.median(iterations), "min": min(iterations), "max": max(iterations)}
                times["mean"] = statistics.fmean(iterations)
            else:  # an older executor_runner: the total only
                times = {"median": total / runs, "mean": total / runs}
            target = Target(threads=said_threads, dtype=dtype, backend="executorch")
            kind = "median of each execution" if iterations else "mean of the total (no per-execution times)"
            rows.append(_latency_row(model, target, times, runs, f"executor_runner: {kind}", device))
            model, said_threads = None, threads  # the threadpool line comes before each run's model line
    return _table(rows, left_out, "executor_runner")


def write_imported(rows: pd.DataFrame, out: Path) -> list[Path]:
    """Write ``rows`` (from an import above) as ``latency-<target>.csv`` tables with their sidecars into ``out``, a
    new or empty folder. All tables appear at once (written into a folder beside ``out``, renamed onto it) or none
    does. Returns the tables' paths."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise CnnbenchError(f"{out} is not a new folder (it holds other files); give --out a new or empty folder")
    written = []
    with atomic_folder(out) as staging:  # all tables appear at once, or none
        for target, table in rows.groupby("target", sort=True):
            path = ResultsFolder(staging).latency(str(target))
            atomic_write_text(path, table.to_csv(index=False))
            write_sidecar(path, table, {"source": SOURCE})
            written.append(ResultsFolder(out).latency(str(target)))
    return written
