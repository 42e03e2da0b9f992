"""Checking a cost model on architectures it has never seen: models outside the zoo, measured whole in the same run
as the calibration and set against what the fit predicts (``cnnbench calibrate --held-out``).

The protocol that keeps the check honest:

- the fit sees the synthetic networks alone (:mod:`cnnbench.costmodel.networks`), never a model of these sets nor
  of the zoo;
- :data:`VALIDATION` is what design choices (the networks' blocks, the features) are judged on;
- :data:`TEST` is measured with the same code and looked at once, at the end, to report; so is the zoo;
- the two sets are split by family (no family has a member on both sides), each holding NAS-designed,
  re-parameterised, densely connected and recent architectures; all are built from timm or torchvision, with no
  weights (nothing is downloaded).

The held-out models are measured between the calibration's networks, a model, then its share of the networks, as
the report interleaves them with its eager rows, and each model :data:`ROUNDS` times, one round after the other: a
machine whose speed drifts (a shared VM's moves by 10-50% for seconds to minutes) then moves both alike, and the
error is the model's, not the hour's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cnnbench.costmodel import networks
from cnnbench.costmodel.fit import fit_cost_model, fitted_times
from cnnbench.costmodel.model import CostModel, RuntimeCostModel, check_modelled
from cnnbench.costmodel.predict import accuracy_summary, predict_latency
from cnnbench.costmodel.runtime import calibrate_runtime
from cnnbench.errors import CnnbenchError
from cnnbench.measure.disturbance import Quieting
from cnnbench.measure.isolated import run_isolated
from cnnbench.measure.latency import REPORT_TIMING, LatencyResult, Timing, measure
from cnnbench.target import Target

__all__ = ["ROUNDS", "HeldOut", "SETS", "TEST", "VALIDATION", "held_out_models", "calibrate_and_check", "check_table"]


# Each held-out model is measured this many times, spread over the calibration, and its median kept: a shared VM's
# speed moves by 1.5× for seconds at a time, and one measurement of a model can land in such a stretch.
ROUNDS = 3


@dataclass(frozen=True)
class HeldOut:
    """One architecture outside the zoo: its model spec, its family, and the design it stands for."""

    spec: str  # timm:NAME or torchvision:NAME
    family: str
    design: str  # "NAS", "re-parameterised", "densely connected", "recent"
    paper: str  # arXiv id


# Design choices are judged on these.
VALIDATION = (
    HeldOut("timm:mixnet_s", "MixNet", "NAS", "1907.09595"),
    HeldOut("timm:mixnet_m", "MixNet", "NAS", "1907.09595"),
    HeldOut("timm:fbnetc_100", "FBNet", "NAS", "1812.03443"),
    HeldOut("timm:spnasnet_100", "Single-Path NAS", "NAS", "1904.02877"),
    HeldOut("timm:tinynet_a", "TinyNet", "NAS", "2010.14819"),
    HeldOut("timm:tinynet_d", "TinyNet", "NAS", "2010.14819"),
    HeldOut("timm:repvgg_a0", "RepVGG", "re-parameterised", "2101.03697"),
    HeldOut("timm:ghostnet_100", "GhostNet", "re-parameterised", "1911.11907"),
    HeldOut("torchvision:densenet121", "DenseNet", "densely connected", "1608.06993"),
    HeldOut("timm:ese_vovnet19b_slim", "VoVNet", "densely connected", "1904.09730"),
    HeldOut("timm:convnext_atto", "ConvNeXt", "recent", "2201.03545"),
    HeldOut("timm:rexnet_100", "ReXNet", "recent", "2007.00992"),
    HeldOut("timm:lcnet_050", "PP-LCNet", "recent", "2109.15099"),
    HeldOut("timm:lcnet_100", "PP-LCNet", "recent", "2109.15099"),
    HeldOut("timm:regnetx_002", "RegNet", "recent", "2003.13678"),
)
# Measured by the same code, looked at once to report.
TEST = (
    HeldOut("timm:hardcorenas_a", "HardCoRe-NAS", "NAS", "2102.11646"),
    HeldOut("timm:semnasnet_100", "MnasNet", "NAS", "1807.11626"),
    HeldOut("torchvision:mnasnet0_5", "MnasNet", "NAS", "1807.11626"),
    HeldOut("timm:fbnetv3_b", "FBNetV3", "NAS", "2006.02049"),
    HeldOut("timm:efficientnet_lite0", "EfficientNet-Lite", "NAS", "1905.11946"),
    HeldOut("timm:mobileone_s0", "MobileOne", "re-parameterised", "2206.04040"),
    HeldOut("timm:repghostnet_100", "RepGhost", "re-parameterised", "2211.06088"),
    HeldOut("timm:dla46_c", "DLA", "densely connected", "1707.06484"),
    HeldOut("timm:selecsls42b", "SelecSLS", "densely connected", "1907.00837"),
    HeldOut("timm:mobilenetv4_conv_small", "MobileNetV4", "recent", "2404.10518"),
    HeldOut("timm:hgnetv2_b0", "PP-HGNetV2", "recent", "2206.06780"),
)
SETS = {"validation": VALIDATION, "test": TEST}


def held_out_models(names: Sequence[str]) -> list[HeldOut]:
    """The models of ``names``: a set's name (``validation``, ``test``) or model specs (``timm:NAME``...), in order,
    each once."""
    known = {model.spec: model for models in SETS.values() for model in models}
    chosen: dict[str, HeldOut] = {}
    for name in names:
        for model in SETS.get(name, (known.get(name) or HeldOut(name, "", "", ""),)):
            chosen.setdefault(model.spec, model)
    if not chosen:
        raise CnnbenchError(f"--held-out takes {' or '.join(SETS)}, or model names (timm:NAME, torchvision:NAME)")
    return list(chosen.values())


def _measured(spec: str, target: Target, timing: Timing, quieting: Quieting) -> tuple[LatencyResult, int]:
    """One model measured as the report's eager rows are, in a process of its own, again if it was disturbed."""
    return quieting.measure(
        spec, lambda: run_isolated(measure, spec, target, timing=timing), lambda result: result.disturbance
    )


def check_table(
    fitted: CostModel | RuntimeCostModel, models: Sequence[HeldOut], measured: pd.DataFrame
) -> pd.DataFrame:
    """Each model's prediction beside its measurement (``measured``: ``model``, ``measured_ms``, ``disturbed``): the
    predicted latency, its interval, the two baselines, and each predictor's error in percent (``spread_pct``, the
    rounds' largest over their smallest, is kept where ``measured`` has it)."""
    rows = []
    for model, timed in zip(models, measured.itertuples(index=False), strict=True):
        predicted = predict_latency(model.spec, fitted)
        rows.append(
            {
                "model": model.spec,
                "family": model.family,
                "design": model.design,
                "measured_ms": timed.measured_ms,
                "predicted_ms": predicted.latency_ms,
                "low_ms": predicted.low_ms,
                "high_ms": predicted.high_ms,
                "mac_only_ms": predicted.mac_only_ms,
                "error_pct": (predicted.latency_ms / timed.measured_ms - 1) * 100,
                "flops_only_error_pct": (predicted.flops_only_ms / timed.measured_ms - 1) * 100,
                "mac_only_error_pct": (predicted.mac_only_ms / timed.measured_ms - 1) * 100,
                "inside": predicted.low_ms <= timed.measured_ms <= predicted.high_ms,
                "spread_pct": getattr(timed, "spread_pct", math.nan),
                "disturbed": timed.disturbed,
            }
        )
    return pd.DataFrame(rows)


def summary(table: pd.DataFrame) -> dict[str, float]:
    """The cost model's accuracy on the held-out table (median |error|, shares within ±10% and ±20%), the same for
    MAC-only, and how often the measurement fell inside the interval (percent)."""
    measured = table["measured_ms"]
    cost_model = accuracy_summary(table["predicted_ms"], measured)
    mac_only = accuracy_summary(table["mac_only_ms"], measured)
    return {
        **cost_model,
        "mac_only_mape": mac_only["mape"],
        "mac_only_within_20": mac_only["within_20"],
        "inside_interval": float(table["inside"].mean() * 100) if len(table) else math.nan,
    }


def calibrate_and_check(
    models: Sequence[HeldOut],
    target: Target | None = None,
    network_count: int | None = None,
    seed: int = 0,
    progress: Callable[[Sequence[object], str], Iterable[object]] = lambda items, desc: items,
    timing: Timing = REPORT_TIMING,
    quieting: Quieting | None = None,
    rounds: int = ROUNDS,
) -> tuple[CostModel | RuntimeCostModel, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Calibrate on ``network_count`` synthetic networks with the held-out ``models`` measured between them (a
    model, then its share of the networks; every model ``rounds`` times, one round after the other), fit, and set
    each model's prediction against its measurement (the median of its rounds). Returns
    the cost model, the check (:func:`check_table`) and the calibration's op and network tables
    (:func:`~cnnbench.costmodel.fit.fitted_times`; a runtime's has no op table: its networks are profiled, not
    timed op by op). On a deployment runtime the networks are :func:`~cnnbench.costmodel.runtime.calibrate_runtime`'s
    and the models are measured on the runtime."""
    target = check_modelled(target or Target())
    network_count = networks.default_count(target) if network_count is None else network_count
    quieting = quieting or Quieting()
    times: dict[str, list[float]] = {model.spec: [] for model in models}
    flagged: dict[str, bool] = {model.spec: False for model in models}
    waiting = [model for _ in range(rounds) for model in models]
    share = math.ceil(network_count / max(1, len(waiting)))

    def measure_next(count: int = 1) -> None:  # the next held-out models, each in a process of its own
        for model in waiting[:count]:
            result, _ = _measured(model.spec, target, timing, quieting)
            times[model.spec].append(result.median_ms)
            flagged[model.spec] |= bool(result.disturbance and result.disturbance.disturbed)
        del waiting[:count]

    if target.runtime:  # a deployment runtime: its networks, with the next models measured after each
        per_network = math.ceil(len(waiting) / max(1, network_count))
        fitted, timed = calibrate_runtime(
            target, network_count, seed, progress, timing, quieting, between=lambda: measure_next(per_network)
        )
        measure_next(len(waiting))
        ops = pd.DataFrame()
    else:
        drawn = networks.network_suite(network_count, seed, progress)
        timer = networks.NetworkTimer(drawn, target, timing, quieting=quieting)
        for _ in progress(range(len(waiting)), "held-out models"):
            measure_next(1)
            timer.step(share)
        ops, timed = timer.finish(progress)
        fitted = fit_cost_model(ops, timed, target)
        ops, timed = fitted_times(fitted, ops, timed)
    rows = [
        {
            "measured_ms": float(np.median(times[model.spec])),
            "spread_pct": (max(times[model.spec]) / min(times[model.spec]) - 1) * 100,
            "disturbed": flagged[model.spec],
        }
        for model in models
    ]
    table = check_table(fitted, models, pd.DataFrame(rows))
    return fitted, table, ops, timed
