"""``cnnbench calibrate`` (fit a target's cost model on ops timed inside synthetic networks) and ``cnnbench predict``
(latency of any model from its counts, with the time attributed to compute, memory traffic and per-op overhead)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pandas as pd
from torch import nn

from cnnbench.cli.common import (
    add_quiet_arguments,
    add_target_arguments,
    check_quiet,
    model_names,
    positive_int,
    printed_by,
    quieting_for,
    target_from,
)
from cnnbench.costmodel import networks
from cnnbench.costmodel.model import INTERVAL_PERCENT
from cnnbench.errors import CnnbenchError
from cnnbench.output import emit, interval_text, progress

__all__ = ["add_commands"]

PREDICT_COLUMNS = {
    "model": "model",
    "resolution": "res",
    "latency_ms": "predicted (ms)",
    "interval": f"{INTERVAL_PERCENT}% interval (ms)",
    "overhead_ms": "overhead (ms)",
    "compute_ms": "compute (ms)",
    "memory_ms": "memory (ms)",
    "flops_only_ms": "FLOPs-only (ms)",
    "mac_only_ms": "MAC-only (ms)",
    "gflops": "GFLOPs (mult-adds)",
    "mac_mb": "MAC (MB)",
    "ops": "ops",
}
HELD_OUT_COLUMNS = {
    "model": "model",
    "design": "design",
    "measured_ms": "measured (ms)",
    "spread_pct": "rounds' spread (%)",
    "predicted_ms": "predicted (ms)",
    "interval": f"{INTERVAL_PERCENT}% interval (ms)",
    "error_pct": "error (%)",
    "mac_only_error_pct": "MAC-only error (%)",
    "flops_only_error_pct": "FLOPs-only error (%)",
}
KIND_COLUMNS = {
    "kind": "kind",
    "ops": "ops",
    "overhead_ms": "overhead (ms)",
    "compute_ms": "compute (ms)",
    "memory_ms": "memory (ms)",
    "time_ms": "time (ms)",
    "time_share": "share",
}


def _cmd_calibrate(args: argparse.Namespace) -> str:
    from cnnbench import costmodel

    target = costmodel.check_modelled(target_from(args))
    out = Path(args.out) if args.out else costmodel.default_path(target)
    if out.exists() and out.is_dir():
        raise CnnbenchError(f"--out {out} is a folder; give the JSON file to write")
    bar = lambda items, desc: progress(items, desc, unit="network")  # noqa: E731 - draw, then time
    check_quiet("calibrate", args)
    count = networks.default_count(target) if args.networks is None else args.networks
    held_out = None
    if args.held_out:
        from cnnbench.costmodel.held_out import calibrate_and_check, held_out_models, summary

        chosen = held_out_models(args.held_out)
        fitted, held_out, _, timed = calibrate_and_check(
            chosen, target, count, args.seed, bar, quieting=quieting_for("calibrate", args)
        )
    elif target.runtime:
        from cnnbench.costmodel.runtime import calibrate_runtime

        fitted, timed = calibrate_runtime(target, count, args.seed, bar, quieting=quieting_for("calibrate", args))
    else:
        fitted, _, timed = costmodel.calibrate(
            target, network_count=count, seed=args.seed, progress=bar, quieting=quieting_for("calibrate", args)
        )
    costmodel.check_publishable(fitted)
    costmodel.save(fitted, out)
    if isinstance(fitted, costmodel.RuntimeCostModel):
        text = _runtime_summary(fitted, out, timed, args.format)
    else:
        text = _eager_summary(fitted, out, timed, args.format)
    if held_out is None:
        return text
    if args.format in ("csv", "json"):
        return emit(held_out, args.format)
    shown = held_out.assign(interval=interval_text(held_out["low_ms"], held_out["high_ms"])).round(2)
    scores = summary(held_out)
    return (
        f"{text}\n# held-out models, measured between the networks (none of them in the fit)\n"
        f"{emit(shown, args.format, HELD_OUT_COLUMNS)}"
        f"# median |error| {scores['mape']:.1f}% (MAC-only {scores['mac_only_mape']:.1f}%), "
        f"{scores['within_20']:.0f}% within ±20% (MAC-only {scores['mac_only_within_20']:.0f}%), "
        f"{scores['inside_interval']:.0f}% inside the interval, over {scores['models']} models\n"
    )


def _runtime_summary(fitted: Any, out: Path, timed: pd.DataFrame, output: str) -> str:
    """``calibrate --backend RUNTIME``'s answer: per counting kind, the share of ops that keep a node, the
    runtime's own nodes per op and the rates; the fusion rules that fold an op away; the fit's figures."""
    kinds = sorted(set(fitted.made_per_op) | {k for k in fitted.kept if "<-" not in k})
    frame = pd.DataFrame(
        {
            "kind": kinds,
            "kept": [fitted.kept.get(k) for k in kinds],
            "made_per_op": [fitted.made_per_op.get(k, 0.0) for k in kinds],
            "compute_gops": [fitted.compute_gops.get(k) for k in kinds],
            "memory_gbs": [fitted.memory_gbs.get(k) for k in kinds],
        }
    )
    if output in ("csv", "json"):
        return emit(frame, output)
    folded = sorted((share, rule) for rule, share in fitted.kept.items() if "<-" in rule and share < 0.5)
    columns = {
        "kind": "kind",
        "kept": "keeps a node (share)",
        "made_per_op": "runtime's own nodes per op",
        "compute_gops": "compute (G/s)",
        "memory_gbs": "memory (GB/s)",
    }
    fitted_networks = len(timed) - int(timed["disturbed"].astype(bool).sum())
    return (
        f"# cost model of {fitted.key} on {fitted.environment.get('cpu', '')}: {fitted_networks} of {len(timed)} "
        f"synthetic networks fitted, each profiled by the runtime (fusion rules read from {fitted.kept_examples} "
        f"ops); written to {out}\n"
        f"# a network: {fitted.node_ms * 1e3:.1f} µs per node the runtime runs + per kind arithmetic / compute + "
        f"MAC bytes / memory + {fitted.base_ms * 1e3:.0f} µs per call; median error {fitted.network_error * 100:.1f}% "
        f"(each network left out of its own fit), node count {fitted.node_error * 100:.1f}%; {INTERVAL_PERCENT}% "
        f"interval × {fitted.interval[0]:.2f} to × {fitted.interval[1]:.2f}\n"
        f"# folded away (an op of this kind after that one keeps a node less than half the time): "
        f"{', '.join(f'{rule} {share:.2f}' for share, rule in folded) or 'none'}\n"
        + emit(frame.round(3), output, columns)
    )


def _eager_summary(fitted: Any, out: Path, timed: pd.DataFrame, output: str) -> str:
    """``calibrate``'s answer for eager: the fitted numbers per cost key and the fit's figures."""
    from cnnbench.costmodel.fit import MIN_OPS

    rows = [
        {
            "key": key,
            "ops": c.ops,
            "overhead_us": c.overhead_ms * 1e3,
            "parallel_us": c.parallel_ms * 1e3,
            "parallel_above": c.parallel_above,
            "compute_gops": c.compute_gops,
            "memory_gbs": c.memory_gbs,
            "misaligned_factor": c.misaligned_factor,
            "error_pct": c.error * 100,
        }
        for key, c in fitted.costs.items()
    ]
    frame = pd.DataFrame(rows)
    if output in ("csv", "json"):
        return emit(frame, output)
    frame["parallel_above"] = frame["parallel_above"].map(lambda n: "never" if pd.isna(n) else f"{n:,.0f}")
    columns = {
        "key": "cost key",
        "ops": "ops",
        "overhead_us": "overhead (µs)",
        "parallel_us": "parallel (µs)",
        "parallel_above": "above (elements)",
        "compute_gops": "compute (G/s)",
        "memory_gbs": "memory (GB/s)",
        "misaligned_factor": f"off {fitted.lanes} lanes (×)",
        "error_pct": "fit error (%)",
    }
    faults = f"{fitted.page_fault_gbs:.2f} GB/s" if fitted.page_fault_gbs else "none passed the threshold"
    header = (
        f"# cost model of {fitted.key} on {fitted.environment.get('cpu', '')}: {fitted.ops} ops timed in place "
        f"in {fitted.networks} synthetic networks, no zoo model; written to {out}\n"
        "# per op: overhead + parallel above a size + (arithmetic / compute + MAC bytes / memory) × the factor "
        f"when its channels are not multiples of {fitted.lanes}, + fresh pages (mapped afresh: {faults})\n"
        f"# a network: {fitted.network_scale:.3f} × the sum of its ops (median error on the networks, timed "
        f"whole: {fitted.network_error * 100:.1f}%); keys with fewer than {MIN_OPS} ops use "
        "their kind's pooled fit (kind:...), then every op's (any)\n"
        f"# {_left_out(timed, fitted.ops)}; each prediction's {INTERVAL_PERCENT}% interval: "
        f"× {fitted.interval[0]:.2f} to × {fitted.interval[1]:.2f} (the networks' own errors)\n"
    )
    return header + emit(frame.round(2), output, columns)


def _left_out(timed: pd.DataFrame, ops: int) -> str:
    """How many networks and ops the fit kept: those timed while another process held the CPUs are left out."""
    flagged = int(timed["disturbed"].astype(bool).sum()) if "disturbed" in timed else 0
    again = int((pd.to_numeric(timed.get("attempts"), errors="coerce") > 1).sum()) if "attempts" in timed else 0
    return (
        f"{len(timed) - flagged} of {len(timed)} networks fitted ({ops} ops); {again} timed again after a disturbance, "
        f"{flagged} left out as disturbed"
    )


def _models(args: argparse.Namespace) -> list[tuple[str, nn.Module | str]]:
    """The models to predict: names and patterns, then each ``--phi`` and ``--width`` (built on the meta device)."""
    import torch

    chosen: list[tuple[str, nn.Module | str]] = [(n, n) for n in model_names(args.models, required=False)]
    with torch.device("meta"):
        from zoo.efficientnet import efficientnet_scaled
        from zoo.mobilenetv1 import build_mobilenet_v1
        from zoo.mobilenetv2 import build_mobilenet_v2

        for phi in args.phi or []:
            if not phi >= 0:
                raise CnnbenchError(f"--phi {phi:g}: the compound coefficient φ must be at least 0")
            chosen.append((f"efficientnet φ={phi:g}", efficientnet_scaled(phi)))
        builders = {"mobilenet_v1": build_mobilenet_v1, "mobilenet_v2": build_mobilenet_v2}
        for spec in args.width or []:
            family, _, value = spec.partition("=")
            if family not in builders:
                raise CnnbenchError(
                    f"--width takes FAMILY=ALPHA with FAMILY one of {', '.join(builders)}, got {spec!r}"
                )
            try:
                alpha = float(value)
            except ValueError:
                raise CnnbenchError(f"--width {spec}: {value!r} is not a number") from None
            if not alpha > 0:
                raise CnnbenchError(f"--width {spec}: the width multiplier must be above 0")
            chosen.append((f"{family} α={alpha:g}", builders[family](width=alpha)))
    if not chosen:
        raise CnnbenchError(
            "name at least one model (zoo names, wildcards, timm:NAME, torchvision:NAME), --phi or --width"
        )
    return chosen


def _cmd_predict(args: argparse.Namespace) -> str:
    from cnnbench import costmodel
    from cnnbench.costmodel.fit import MIN_OPS
    from cnnbench.costmodel.predict import fallback_text

    target = costmodel.check_modelled(target_from(args))
    models = _models(args)
    fitted = costmodel.load_for(target, args.cost_model or None)
    predictions = [
        costmodel.predict_latency(model, fitted, batch=args.batch, resolution=args.res, name=label)
        for label, model in progress(models, "predict")
    ]
    frame = pd.DataFrame([p.row() for p in predictions])
    frame["gflops"] = frame["flops"] / 1e9
    frame["mac_mb"] = frame["mac_bytes"] / 1e6
    if args.layers:
        layers = pd.concat([p.layers.assign(model=p.model) for p in predictions], ignore_index=True)
        return emit(layers[["model", *predictions[0].layers.columns]], args.format if args.format != "table" else "csv")
    if args.format in ("csv", "json"):
        return emit(frame, args.format)
    frame["interval"] = interval_text(frame["low_ms"], frame["high_ms"])
    where = fitted.environment
    lines = [
        f"# predicted on the cost model of {fitted.key} ({where.get('cpu', '?')}, machine "
        f"{where.get('machine', '?')}, calibrated {where.get('measured_at', '?')}), batch {args.batch}",
        "# overhead + compute + memory = predicted; FLOPs-only and MAC-only: latency proportional to "
        "multiply-adds or to MAC bytes, fitted on the same synthetic networks",
        emit(
            frame.round(
                {
                    "latency_ms": 2,
                    "overhead_ms": 2,
                    "compute_ms": 2,
                    "memory_ms": 2,
                    "flops_only_ms": 2,
                    "mac_only_ms": 2,
                    "gflops": 3,
                    "mac_mb": 1,
                }
            ),
            args.format,
            PREDICT_COLUMNS,
        ).rstrip("\n"),
    ]
    pooled = [f"#   {p.model}: {fallback_text(p.fallbacks)}" for p in predictions if p.fallbacks]
    if pooled:
        lines += [
            "",
            f"# ops of a key calibrated on fewer than {MIN_OPS} ops, costed by a pooled fit (their kind's, kind:..., "
            "else every op's, any):",
            *pooled,
        ]
    if len(predictions) == 1 or args.by_kind:
        for p in predictions:
            lines += [
                "",
                f"# {p.model}: time per op kind",
                emit(p.by_kind.round(3), args.format, KIND_COLUMNS).rstrip("\n"),
            ]
    return "\n".join(lines) + "\n"


def add_commands(sub: Any) -> None:
    """``calibrate`` and ``predict``."""
    p_cal = sub.add_parser(
        "calibrate",
        help="time ops inside synthetic networks on the target and fit its latency cost model",
        description="Draws seeded synthetic networks from the layers the zoo is made of (dense, 1×1, depthwise and "
        "group convs, linear, BatchNorm, activations, add and mul, pools, concat, channel shuffle; never a zoo "
        "model), times each whole and op by op in its place, each in a process of its own, and fits per op key "
        "overhead + a parallel step + arithmetic / compute rate + memory traffic / memory rate, with a factor for "
        "channels off the vector lanes and a rate for fresh pages. Writes the JSON under the cache, keyed by this "
        "machine and the target (or --out), for `cnnbench predict`.",
    )
    p_cal.add_argument(
        "--networks",
        type=positive_int,
        help=f"synthetic networks to time (default {networks.NETWORKS}, under two minutes on 2 cores; "
        f"{networks.RUNTIME_NETWORKS} on a deployment runtime)",
    )
    p_cal.add_argument("--seed", type=int, default=0, help="the seed the networks are drawn with")
    p_cal.add_argument("--out", default=None, metavar="FILE", help="write the cost model here (default: the cache)")
    p_cal.add_argument(
        "--held-out",
        nargs="+",
        default=None,
        metavar="SET_OR_MODEL",
        help="also measure models outside the zoo between the networks and set the fit's predictions against them: "
        "validation or test (docs/costmodel.md lists them), or timm:NAME / torchvision:NAME",
    )
    add_quiet_arguments(p_cal)
    add_target_arguments(p_cal)
    printed_by(p_cal, _cmd_calibrate)

    p_pred = sub.add_parser(
        "predict",
        help="predict latency from the counts, with compute / memory / overhead attribution",
        description="Counts each model on the meta device and applies the target's cost model (from `cnnbench "
        "calibrate` on this machine, or --cost-model FILE from another device). Nothing is timed.",
    )
    p_pred.add_argument(
        "models", nargs="*", metavar="MODEL", help="zoo names or wildcards, timm:NAME, torchvision:NAME"
    )
    p_pred.add_argument(
        "--phi",
        type=float,
        action="append",
        metavar="PHI",
        help="also an EfficientNet compound-scaled to φ (any real ≥ 0; repeatable)",
    )
    p_pred.add_argument(
        "--width",
        action="append",
        metavar="FAMILY=ALPHA",
        help="also mobilenet_v1 or mobilenet_v2 at width multiplier ALPHA (repeatable)",
    )
    p_pred.add_argument(
        "--cost-model",
        default=None,
        metavar="FILE",
        help="a cost model's JSON (another device's); default: this machine's for the target",
    )
    p_pred.add_argument("--batch", type=positive_int, default=1)
    p_pred.add_argument("--res", type=positive_int, default=None, help="input side (default: each model's own)")
    p_pred.add_argument("--by-kind", action="store_true", help="the per-kind attribution of every model")
    p_pred.add_argument("--layers", action="store_true", help="the per-op table (CSV unless --format json)")
    add_target_arguments(p_pred)
    printed_by(p_pred, _cmd_predict)
