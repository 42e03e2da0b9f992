"""The report's held-out check of the cost models: every model predicted from its counts, beside the latency the
same run measured (``results/prediction-<target>.csv``, ``costmodel-<target>.json``), on the report's target and on
each deployment target a cost model covers (ONNX Runtime at fp32: :mod:`cnnbench.costmodel.runtime`).

A cost model is fitted on synthetic networks alone (:mod:`cnnbench.costmodel.networks`), so every zoo model is held
out. It is this machine's cached one when its machine, torch, code, target and network count all match, else it is
calibrated in this run and cached: its networks are timed between the latency rows of its target, a few after each
model (:class:`ReportCalibration`), so that a machine whose speed drifts over minutes slows the calibration and the
measurements it is checked against alike. A quick report calibrates on a few networks and caches nothing."""

from __future__ import annotations

import math
import platform
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict

import pandas as pd
import torch

from cnnbench import costmodel
from cnnbench.costmodel import networks
from cnnbench.costmodel.fit import CODE_MODULES
from cnnbench.costmodel.runtime import CODE_MODULES as RUNTIME_CODE_MODULES
from cnnbench.costmodel.runtime import RuntimeNetworkTimer
from cnnbench.errors import CnnbenchError
from cnnbench.fronts import disturbed
from cnnbench.measure.disturbance import Quieting
from cnnbench.provenance import device_name, fingerprint, git_commit, machine_identity, probe_agrees
from cnnbench.report.config import ReportConfig
from cnnbench.store import atomic_write_text, code_fingerprint, write_sidecar
from cnnbench.target import Target

__all__ = [
    "PREDICTORS",
    "QUICK_NETWORKS",
    "REPORT_RUNTIMES",
    "RUNTIME_MAX_ERROR_PCT",
    "ReportCalibration",
    "start_calibration",
    "prediction_table",
    "prediction_summary",
]

QUICK_NETWORKS = 4
# A deployment runtime's cost model is shown model by model only when its median error on the zoo is within this.
RUNTIME_MAX_ERROR_PCT = 20.0
# The deployment runtimes the report calibrates a cost model for, between their rows: each adds about 1.5 min to a
# report (50 networks exported and run), and the main job must fit 15 min on a 2-core machine.
REPORT_RUNTIMES = ("onnxruntime",)
# The predictors set against the measurements: the cost model and its two baselines, fitted on the same networks.
PREDICTORS = {"latency_ms": "cost model", "flops_only_ms": "FLOPs-only", "mac_only_ms": "MAC-only"}


class ReportCalibration:
    """The report's cost model: this machine's cached one, or networks drawn now and timed between the eager rows
    (:meth:`between`, after each model measured), the rest and the fit in :meth:`cost_model`. A network timed while
    another process held the CPUs is timed again once the machine is quiet (``quieting``), or left out of the fit.
    ``probe_ms`` is today's speed probe: a cached cost model is reused only when its own agrees with it."""

    def __init__(
        self,
        config: ReportConfig,
        models: int,
        progress: object = None,
        quieting: Quieting | None = None,
        probe_ms: float | None = None,
        target: Target | None = None,
        drawn: Sequence[networks.Network] = (),
    ) -> None:
        self.config, self.probe_ms, self.target = config, probe_ms, target or config.target
        self.cached = _cached(config, self.target, probe_ms)
        self.bar: Callable[[Sequence[object], str], Iterable[object]] = (
            progress if callable(progress) else (lambda items, desc: items)
        )  # type: ignore[assignment]
        self.timer: networks.NetworkTimer | RuntimeNetworkTimer | None = None
        self.per_model = 0
        self.drawn: Sequence[networks.Network] = ()  # the networks drawn for it (none when the cache had it)
        if self.cached is None:
            count = QUICK_NETWORKS if config.quick else networks.default_count(self.target)
            # the suite is drawn the same on every call: a calibration's networks are the first of another's
            drawn = drawn[:count] if len(drawn) >= count else networks.network_suite(count, progress=self.bar)
            self.drawn = drawn
            if self.target.runtime:
                self.timer = RuntimeNetworkTimer(drawn, self.target, config.timing, quieting=quieting)
            else:
                self.timer = networks.NetworkTimer(drawn, self.target, config.timing, quieting=quieting)
            self.per_model = math.ceil(count / max(1, models))

    def between(self) -> None:
        """Time this calibration's share of networks (after a model's row was measured)."""
        if self.timer is not None:
            self.timer.step(self.per_model)

    def cost_model(self) -> tuple[costmodel.CostModel | costmodel.RuntimeCostModel, bool]:
        """(the cost model, whether it was reused from the cache): the networks left are timed, then fitted."""
        if self.cached is not None:
            return self.cached, True
        assert self.timer is not None
        fitted: costmodel.CostModel | costmodel.RuntimeCostModel
        if self.target.runtime:  # the runtime's timer fits as it finishes
            fitted, _ = self.timer.finish(self.bar)  # type: ignore[misc]
        else:
            fitted = costmodel.fit_cost_model(*self.timer.finish(self.bar), self.target)  # type: ignore[arg-type]
        if not self.config.quick:  # a quick report's few networks are a smoke test, not a fit to judge
            costmodel.check_publishable(fitted)
        if self.probe_ms is not None:
            fitted.environment["probe_ms"] = round(self.probe_ms, 4)
        if not self.config.quick:
            costmodel.save(fitted, costmodel.default_path(self.target))
        self.cached = fitted
        return fitted, False


def _cached(
    config: ReportConfig, target: Target, probe_ms: float | None = None
) -> costmodel.CostModel | costmodel.RuntimeCostModel | None:
    """This machine's stored cost model of ``target``, when its machine, torch, code and network count match, and
    its speed probe agrees with today's ``probe_ms`` (never for a quick or a forced report)."""
    path = costmodel.default_path(target)
    if config.quick or config.force or not path.exists():
        return None
    try:
        cached = costmodel.load(path)
    except CnnbenchError:
        return None
    env = cached.environment
    runtime = isinstance(cached, costmodel.RuntimeCostModel)
    matches = (
        cached.key == target.key
        and runtime == bool(target.runtime)
        and cached.networks == networks.default_count(target)
        and env.get("torch") == torch.__version__
        and env.get("machine") == machine_identity(target.torch_device)
        and env.get("code") == code_fingerprint(None, RUNTIME_CODE_MODULES if runtime else CODE_MODULES)
    )
    if probe_ms is not None and not probe_agrees(env.get("probe_ms"), probe_ms):
        return None
    return cached if matches else None


def _not_predicted(target: Target) -> str:
    """Why the report predicts no latency on ``target`` ("" when it does): a target no cost model covers, or a
    runtime the report does not calibrate (:data:`REPORT_RUNTIMES`)."""
    try:
        costmodel.check_modelled(target)
    except CnnbenchError as err:
        return str(err)
    if target.runtime and target.backend not in REPORT_RUNTIMES:
        calibrated, backend = ", ".join(REPORT_RUNTIMES), target.backend
        return f"the report calibrates {calibrated} only; `cnnbench calibrate --backend {backend}` fits {backend}"
    return ""


def start_calibration(
    config: ReportConfig,
    models: int,
    progress: object = None,
    quieting: Quieting | None = None,
    probe_ms: float | None = None,
    target: Target | None = None,
    drawn: Sequence[networks.Network] = (),
) -> ReportCalibration | None:
    """The calibration of ``target`` (the report's own by default), before its rows are measured; None when no
    cost model covers it (then :func:`prediction_table` says why). ``drawn``: networks another calibration drew,
    reused (the suite is the same on every draw)."""
    if _not_predicted(target or config.target):
        return None
    return ReportCalibration(config, models, progress, quieting, probe_ms, target, drawn)


def prediction_table(
    config: ReportConfig,
    names: list[str],
    latency: pd.DataFrame,
    progress: object = None,
    calibration: ReportCalibration | None = None,
    target: Target | None = None,
) -> tuple[pd.DataFrame, str]:
    """results/prediction-<target>.csv: per model the predicted latency with its attribution, its interval, the
    pooled fits it fell back to (``fallbacks``) and the two baselines, the measured median of ``latency`` (this
    run's rows of ``target``, the report's own by default) and each predictor's error. ``calibration`` is the one
    :func:`start_calibration` began (a new one, timed now, without). Returns the table and, when the target is not
    modelled, why (the table is then empty)."""
    target = calibration.target if calibration else (target or config.target)
    why = _not_predicted(target)
    if why:
        return pd.DataFrame(), why
    try:
        fitted, _ = (calibration or ReportCalibration(config, len(names), progress, target=target)).cost_model()
    except CnnbenchError as err:  # every network disturbed, or a fit that misses its own networks
        return pd.DataFrame(), str(err)
    atomic_write_text(config.results.cost_model(target.key), fitted.to_json())
    ok = latency[latency["status"] == "ok"] if "status" in latency else latency
    flagged = set(ok.loc[disturbed(ok), "model"]) if not ok.empty else set()
    measured = ok.drop_duplicates("model", keep="last").set_index("model") if not ok.empty else ok
    bar = progress if callable(progress) else (lambda items, desc: items)
    rows = []
    calibrated = _calibrated(fitted)
    settings = fingerprint({"batch": config.batch, "resolution": config.resolution, "networks": fitted.networks})
    for name in bar([n for n in names if n in measured.index], "predict"):
        predicted = costmodel.predict_latency(name, fitted, batch=config.batch, resolution=config.resolution).row()
        timed = measured.loc[name]
        row: dict[str, object] = {**predicted, "measured_ms": float(timed["latency_ms_median"])}
        for column in PREDICTORS:
            row[column.replace("_ms", "_error_pct")] = (float(predicted[column]) / row["measured_ms"] - 1) * 100  # type: ignore[arg-type]
        row.update(
            {
                "target": target.key,
                "machine": machine_identity(target.torch_device),
                "torch": torch.__version__,
                "settings": settings,
                "code": fitted.environment.get("code", ""),
                "commit": git_commit(),
                "host": platform.node(),
                "device_name": device_name(target.torch_device),
                "measured_at": timed.get("measured_at", ""),
                "latency_commit": timed.get("commit", ""),
                "disturbed": name in flagged,
                **calibrated,
                "quick": config.quick,
            }
        )
        rows.append(row)
    frame = pd.DataFrame(rows)
    path = config.results.prediction(target.key)
    atomic_write_text(path, frame.to_csv(index=False))
    write_sidecar(
        path,
        frame,
        {
            "target": target.key,
            "target_settings": asdict(target),
            "cost_model": config.results.cost_model(target.key).name,
            **calibrated,
        },
    )
    return frame, ""


def _calibrated(fitted: costmodel.CostModel | costmodel.RuntimeCostModel) -> dict[str, object]:
    """What every prediction row records of the cost model it came from."""
    common = {
        "calibrated_at": fitted.environment.get("measured_at", ""),
        "networks": fitted.networks,
        "network_error_pct": fitted.network_error * 100,
    }
    if isinstance(fitted, costmodel.RuntimeCostModel):
        return {**common, "node_ms": fitted.node_ms, "node_error_pct": fitted.node_error * 100}
    return {
        **common,
        "timed_ops": fitted.ops,
        "lanes": fitted.lanes,
        "network_scale": fitted.network_scale,
        "page_fault_gbs": fitted.page_fault_gbs,
    }


def prediction_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per predictor: median absolute percentage error, shares within ±10% and ±20%, models; rows whose
    measured latency was disturbed are left out (their figure is not the model's)."""
    frame = frame[~disturbed(frame)] if not frame.empty else frame
    rows = [
        {"predictor": label, **costmodel.accuracy_summary(frame[column], frame["measured_ms"])}
        for column, label in PREDICTORS.items()
    ]
    return pd.DataFrame(rows)
