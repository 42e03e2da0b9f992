"""``cnnbench pick``'s Python side: gather one target's latency rows from a results folder (measuring the ones it
lacks, by the report's rules) and one top-1 per model, then rank them under the budgets (:mod:`cnnbench.choose`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import pandas as pd

from cnnbench.choose import Budget, accuracy_for, candidates, rank
from cnnbench.errors import CnnbenchError
from cnnbench.provenance import machine_identity
from cnnbench.report.config import ReportConfig, check_config
from cnnbench.report.tables import digits_here, latency_table
from cnnbench.target import Target

__all__ = ["pick"]

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
    results: Path | str = Path("results"),
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
        return rank(
            candidates(_predicted_latency(predicted, config.target, names, batch, progress), top1), budget, accuracy
        )
    # No roofline: the bound is derived from the latency, not needed to choose.
    latency = latency_table(config, names, None, progress or (lambda items, _desc: items), config.target)
    latency = latency[latency["model"].isin(names) & (pd.to_numeric(latency["batch"]) == batch)]
    return rank(candidates(latency, top1), budget, accuracy)


def _predicted_latency(
    predicted: Path | str | bool, target: Target, names: list[str], batch: int, progress: Progress | None
) -> pd.DataFrame:
    """Latency rows made of the cost model's predictions (``status`` ok, no memory figures)."""
    from cnnbench.costmodel import model as costmodel

    if predicted is True:
        path = costmodel.default_path(costmodel.check_modelled(target))
        if not path.exists():
            raise CnnbenchError(
                f"no cost model for {target.key} on this machine; run `cnnbench calibrate` with the "
                "same target options, or give --predicted FILE"
            )
    else:
        path = Path(str(predicted))
    fitted = costmodel.load(path)
    bar = progress or (lambda items, _desc: items)
    rows = [costmodel.predict(name, fitted, batch=batch).row() for name in bar(names, "predict")]
    return pd.DataFrame(rows).rename(columns={"latency_ms": "latency_ms_median"}).assign(status="ok")
