"""``cnnbench pick``: the most accurate models within a latency, accuracy, size and memory budget on one target.

:func:`pick` gathers one target's latency rows from a results folder (measuring the ones it lacks, by the report's
rules) and one top-1 per model; :func:`rank` ranks them under a :class:`Budget`, pure, frames in and frames out,
with the Pareto front among the models that fit (:mod:`cnnbench.fronts`). :func:`pick_fleet` asks the same of
several machines' folders at once (``pick --fleet``): the models within the latency budget on every device, or on
``on`` of them, measuring nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from fnmatch import fnmatchcase
from pathlib import Path

import pandas as pd

from cnnbench.errors import CnnbenchError
from cnnbench.fleet.merge import Fleet, merge_folders
from cnnbench.fronts import MODEL_FIGURES, accuracy_for, candidates, pareto
from cnnbench.provenance import machine_identity
from cnnbench.results import DEFAULT_FOLDER
from cnnbench.target import Target

__all__ = [
    "Budget",
    "FLEET_COLUMNS",
    "fleet_no_fit_message",
    "interval_overlaps",
    "no_fit_message",
    "pick",
    "pick_fleet",
    "rank",
    "target_pattern",
]


@dataclass(frozen=True)
class Budget:
    """What a model must meet to be picked; ``None`` leaves that budget open."""

    latency_ms: float | None = None  # median latency on the target, at most
    min_top1: float | None = None  # top-1 (%), at least
    max_params_m: float | None = None  # parameters, at most, in millions
    max_memory_mb: float | None = None  # measured peak memory of inference, at most, in MB (10^6 bytes)

    def describe(self) -> str:
        parts = [
            f"latency ≤ {self.latency_ms:g} ms" if self.latency_ms is not None else "",
            f"top-1 ≥ {self.min_top1:g}%" if self.min_top1 is not None else "",
            f"params ≤ {self.max_params_m:g} M" if self.max_params_m is not None else "",
            f"memory ≤ {self.max_memory_mb:g} MB" if self.max_memory_mb is not None else "",
        ]
        return ", ".join(p for p in parts if p) or "no budget"


def _ms(value: float) -> str:
    """Three significant digits, without an exponent: 0.771, 15.5, 1047."""
    return f"{value:.3g}" if value < 1000 else f"{value:.0f}"


def _reasons(row: pd.Series, budget: Budget, accuracy: str) -> str:
    reasons = []
    if pd.isna(row["latency_ms"]):
        error = str(row.get("error") or "").strip()
        reasons.append(f"no latency ({error})" if error else "no latency measured")
    elif bool(row.get("disturbed", False)):
        share = row.get("cpu_share")
        had = f", cpu_share {share:.2f}" if pd.notna(share) else ""
        reasons.append(
            f"latency disturbed ({_ms(row['latency_ms'])} ms{had}: another process held the CPUs; measure it again)"
        )
    elif budget.latency_ms is not None and row["latency_ms"] > budget.latency_ms:
        reasons.append(f"latency {_ms(row['latency_ms'])} ms > {budget.latency_ms:g} ms")
    if pd.isna(row["top1"]):
        reasons.append(f"no {accuracy} top-1")
    elif budget.min_top1 is not None and row["top1"] < budget.min_top1:
        reasons.append(f"top-1 {row['top1']:.4g}% < {budget.min_top1:g}%")
    if budget.max_params_m is not None and not row["params_m"] <= budget.max_params_m:
        reasons.append(f"params {row['params_m']:.3g} M > {budget.max_params_m:g} M")
    if budget.max_memory_mb is not None and not row["memory_mb"] <= budget.max_memory_mb:
        memory = "no memory measured" if pd.isna(row["memory_mb"]) else f"memory {row['memory_mb']:.3g} MB"
        reasons.append(f"{memory} > {budget.max_memory_mb:g} MB")
    return "; ".join(reasons)


def rank(frame: pd.DataFrame, budget: Budget, accuracy: str = "paper") -> pd.DataFrame:
    """The models of ``frame`` (:func:`candidates`) that meet every budget, most accurate first (then fastest),
    numbered in ``rank``, with the Pareto front among them (``pareto``, ``dominated_by``: a model beaten on both
    latency and top-1 by another that also fits); then every other model, with ``excluded_by`` naming each budget
    (or missing figure) that excluded it."""
    frame = frame.copy()
    frame["excluded_by"] = [_reasons(row, budget, accuracy) for _, row in frame.iterrows()]
    fits = frame[frame["excluded_by"] == ""].sort_values(["top1", "latency_ms"], ascending=[False, True])
    fits = pareto(fits.reset_index(drop=True))
    fits.insert(0, "rank", pd.array(range(1, len(fits) + 1), dtype="Int64"))
    rest = frame[frame["excluded_by"] != ""].sort_values(["latency_ms", "model"])
    rest = rest.assign(rank=pd.array([pd.NA] * len(rest), dtype="Int64"), pareto=False, dominated_by="")
    columns = ["rank", *MODEL_FIGURES, "pareto", "dominated_by", "excluded_by"]
    return pd.concat([fits[columns], rest[columns]], ignore_index=True)


def no_fit_message(ranked: pd.DataFrame, budget: Budget) -> str:
    """The one line for a budget no model meets: it names the fastest model measured and its latency, or the models
    that would meet it but for a disturbed row (``ranked`` keeps no ``disturbed`` column: :func:`_reasons` then
    gives every other reason)."""
    measured = ranked[ranked["latency_ms"].notna()].sort_values("latency_ms")
    if measured.empty:
        return f"no model meets {budget.describe()}, and no latency was measured on this target"
    fastest = measured.iloc[0]
    spoiled = [row["model"] for _, row in measured.iterrows() if not _reasons(row, budget, "")]  # but for disturbance
    if spoiled:  # the budget is not to blame
        return (
            f"no model meets {budget.describe()}: the rows that would ({', '.join(spoiled)}) were disturbed (another "
            "process held the CPUs); run pick again when the machine is quiet, and it measures them again"
        )
    return (
        f"no model meets {budget.describe()}; the fastest measured is {fastest['model']} at "
        f"{_ms(fastest['latency_ms'])} ms (top-1 {fastest['top1']:.4g}%): loosen a budget"
    )


Progress = Callable[[Sequence[str], str], Iterable[str]]


def pick(
    latency_ms: float | None = None,
    *,
    target: Target | None = None,
    batch: int = 1,
    min_top1: float | None = None,
    max_params_m: float | None = None,
    max_memory_mb: float | None = None,
    accuracy: str = "paper",
    results: Path | str = DEFAULT_FOLDER,
    models: Sequence[str] = ("*",),
    calibration: Path | None = None,
    progress: Progress | None = None,
    predicted: Path | str | bool | None = None,
) -> pd.DataFrame:
    """The models that meet every budget on ``target`` (default: this CPU, eager fp32), ranked by top-1, with their
    Pareto front, then the excluded models and why (:func:`cnnbench.choose.rank`).

    Latency is the median that ``results`` holds for this machine, target, batch, timing and code
    (``latency-<target>.csv``, as ``cnnbench report`` writes it); a model without such a row is measured now, with
    the report's timing, and its row saved there, so the next pick or report reuses it. ``calibration``: an
    image folder for an int8 target (default: the digits). ``predicted`` ranks by the cost model's predicted latency
    instead, measuring nothing: ``True`` for this machine's cost model of ``target`` (``cnnbench calibrate``), or
    the path of one measured on another device; those rows have no measured memory. Raises
    :class:`CnnbenchError` for a bad budget, accuracy source, target or folder, before anything is measured.
    """
    for label, value in (("--latency-ms", latency_ms), ("--max-params", max_params_m), ("--max-memory", max_memory_mb)):
        if value is not None and not value > 0:
            raise CnnbenchError(f"{label} must be greater than 0, got {value:g}")
    if min_top1 is not None and not 0 <= min_top1 <= 100:
        raise CnnbenchError(f"--min-top1 is a percentage between 0 and 100, got {min_top1:g}")
    budget = Budget(latency_ms, min_top1, max_params_m, max_memory_mb)
    from cnnbench.report.config import ReportConfig, check_config  # the report's tables (and matplotlib) load here
    from cnnbench.report.latency_tables import latency_table
    from cnnbench.report.readers import digits_here

    config = ReportConfig(
        out=Path(results),
        target=target or Target(),
        models=tuple(models),
        batch=batch,
        deployments=(),
        calibration=calibration,
    )
    config, names, _ = check_config(config)
    machine = machine_identity(config.target.torch_device)
    digits = digits_here(config.out, machine)[0] if accuracy == "digits" else None
    top1 = accuracy_for(accuracy, digits)  # a missing digits table fails before the measurements
    if predicted not in (None, False):
        rows = _predicted_latency(predicted, config.target, names, batch, progress)
        ranked = rank(candidates(rows, top1), budget, accuracy)
        ranked = ranked.merge(rows[["model", "low_ms", "high_ms"]], on="model", how="left")
        return ranked.assign(overlaps=interval_overlaps(ranked))
    # No roofline: the bound is derived from the latency, not needed to choose.
    latency = latency_table(config, names, None, progress or (lambda items, _desc: items), config.target)
    latency = latency[latency["model"].isin(names) & (pd.to_numeric(latency["batch"]) == batch)]
    return rank(candidates(latency, top1), budget, accuracy)


def _predicted_latency(
    predicted: Path | str | bool, target: Target, names: list[str], batch: int, progress: Progress | None
) -> pd.DataFrame:
    """Latency rows made of the cost model's predictions (``status`` ok, no memory figures)."""
    from cnnbench import costmodel

    fitted = costmodel.load_for(target, None if predicted is True else Path(str(predicted)), "--predicted")
    bar = progress or (lambda items, _desc: items)
    rows = [costmodel.predict_latency(name, fitted, batch=batch).row() for name in bar(names, "predict")]
    return pd.DataFrame(rows).rename(columns={"latency_ms": "latency_ms_median"}).assign(status="ok")


def interval_overlaps(ranked: pd.DataFrame, shown: int = 3) -> list[str]:
    """For each model that fits (``rank`` set), the other fitting models whose predicted intervals (``low_ms`` to
    ``high_ms``) overlap its own, nearest prediction first: which of them is faster the cost model cannot say
    (``shown`` names, then ``+N``). Blank for the models that do not fit."""
    fits = ranked["rank"].notna().to_numpy()
    low, high = ranked["low_ms"].to_numpy(dtype=float), ranked["high_ms"].to_numpy(dtype=float)
    latency, names = ranked["latency_ms"].to_numpy(dtype=float), ranked["model"].astype(str).to_numpy()
    texts = []
    for i in range(len(ranked)):
        others = [j for j in range(len(ranked)) if j != i and fits[i] and fits[j]]
        near = [j for j in others if low[i] <= high[j] and low[j] <= high[i]]
        near.sort(key=lambda j: abs(latency[j] - latency[i]))
        more = f" +{len(near) - shown}" if len(near) > shown else ""
        texts.append(", ".join(names[j] for j in near[:shown]) + more)
    return texts


# --- pick --fleet ------------------------------------------------------------------------------------------------

# pick_fleet's columns before one column per device (its median latency there, ms).
FLEET_COLUMNS = ["rank", "model", "top1", "top1_from", "meets", "binding", "binding_ms", "excluded_by"]


def target_pattern(target: Target) -> str:
    """The target keys ``target`` stands for on any device: its key, with any thread count (``cpu-t*-fp32-...``)
    when ``threads`` is not given, since each machine measured with its own."""
    if target.threads is not None or target.device != "cpu":
        return replace(target, threads=target.threads or 1).key
    return replace(target, threads=1).key.replace("-t1-", "-t*-", 1)


def _fleet_latency(fleet: Fleet, pattern: str) -> tuple[pd.DataFrame, dict[tuple[str, str], str]]:
    """Model × device median latency of the ranked rows whose target matches ``pattern``, and why each left-out row
    of those targets was left out, by (model, device). One line when a device measured two matching targets."""
    rows = fleet.rows[fleet.rows["target"].map(lambda t: fnmatchcase(str(t), pattern))]
    for device, group in rows.groupby("device"):
        keys = sorted(set(group["target"]))
        if len(keys) > 1:
            raise CnnbenchError(f"{device} measured {' and '.join(keys)}; choose one with --threads")
    ranked = rows[rows["left_out"] == ""]
    wide = ranked.pivot(index="model", columns="device", values="latency_ms_median")
    wide = wide.reindex(columns=fleet.device_order())
    left = rows[rows["left_out"] != ""]
    reasons = {(m, d): str(w) for m, d, w in zip(left["model"], left["device"], left["left_out"], strict=True)}
    return wide.reindex(sorted(set(rows["model"]))), reasons


def pick_fleet(
    folders: Sequence[Path | str],
    latency_ms: float,
    *,
    on: int | None = None,
    target: Target | None = None,
    batch: int = 1,
    min_top1: float | None = None,
    accuracy: str = "paper",
    models: Sequence[str] = ("*",),
    names: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """The models whose median latency is at most ``latency_ms`` on every device of ``folders`` (one results folder
    per machine, :func:`cnnbench.fleet.merge.merge_folders`), or on ``on`` of them, most accurate first, then every
    other model with ``excluded_by``. Columns :data:`FLEET_COLUMNS`, then one per device. ``binding`` is the device
    that decides: the ``on``-th fastest (the slowest, for every device); ``meets``: on how many devices it fits.

    ``target`` names the target (any thread count unless it sets ``threads``; default: CPU eager fp32). Rows that
    were disturbed, failed or from other code count as not measured. Measures nothing."""
    if not latency_ms > 0:
        raise CnnbenchError(f"--latency-ms must be greater than 0, got {latency_ms:g}")
    if min_top1 is not None and not 0 <= min_top1 <= 100:
        raise CnnbenchError(f"--min-top1 is a percentage between 0 and 100, got {min_top1:g}")
    if accuracy == "digits":
        raise CnnbenchError("--fleet ranks by published top-1: use --accuracy paper or reference")
    fleet = merge_folders(folders, names or {}, batch=batch)
    devices = fleet.device_order()
    need = len(devices) if on is None else on
    if not 1 <= need <= len(devices):
        raise CnnbenchError(f"--on takes 1 to {len(devices)} (the devices given), got {need}")
    pattern = target_pattern(target or Target())
    wide, reasons = _fleet_latency(fleet, pattern)
    wide = wide[[any(fnmatchcase(str(m), p) for p in models) for m in wide.index]]
    if wide.empty:
        raise CnnbenchError(
            f"no device of the fleet measured {pattern} (with the models named); see --threads, --dtype"
        )
    top1 = accuracy_for(accuracy).set_index("model")
    out = []
    for model, latency in wide.iterrows():
        order = latency.fillna(float("inf")).sort_values(kind="stable")
        binding = str(order.index[need - 1])
        meets = int((latency <= latency_ms).sum())
        why = []
        if meets < need:
            misses = [
                f"{_ms(ms)} ms on {d}" if pd.notna(ms) else f"{reasons.get((model, d), 'not measured')} on {d}"
                for d, ms in latency.items()
                if not ms <= latency_ms
            ]
            why.append(f"latency ≤ {latency_ms:g} ms on {meets} of {len(devices)} devices ({'; '.join(misses)})")
        score = top1["top1"].get(model, float("nan"))
        if pd.isna(score):
            why.append(f"no {accuracy} top-1")
        elif min_top1 is not None and score < min_top1:
            why.append(f"top-1 {score:.4g}% < {min_top1:g}%")
        out.append(
            {
                "model": model,
                "top1": score,
                "top1_from": top1["top1_from"].get(model, ""),
                "meets": f"{meets} of {len(devices)}",
                "binding": binding,
                "binding_ms": float(latency[binding]),
                "excluded_by": "; ".join(why),
                **latency.to_dict(),
            }
        )
    frame = pd.DataFrame(out)
    fits = frame[frame["excluded_by"] == ""].sort_values(["top1", "binding_ms"], ascending=[False, True])
    rest = frame[frame["excluded_by"] != ""].sort_values(["binding_ms", "model"])
    fits.insert(0, "rank", pd.array(range(1, len(fits) + 1), dtype="Int64"))
    rest.insert(0, "rank", pd.array([pd.NA] * len(rest), dtype="Int64"))
    return pd.concat([fits, rest], ignore_index=True)[[*FLEET_COLUMNS, *devices]]


def fleet_no_fit_message(ranked: pd.DataFrame, budget: Budget, where: str) -> str:
    """The one line for a fleet budget no model meets (``where``: "every device", "2 of 3 devices"): the model that
    comes closest (on the most devices, then the fastest on its binding device) and why it misses."""
    meets = ranked["meets"].str.split(" ").str[0].astype(int)
    order = ranked.assign(on=meets).sort_values(["on", "binding_ms"], ascending=[False, True])
    closest = order.iloc[0]
    return f"no model meets {budget.describe()} on {where}; {closest['model']} comes closest: {closest['excluded_by']}"
