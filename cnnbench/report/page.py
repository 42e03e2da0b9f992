"""The report's charts and its results/README.md, made from the tables :mod:`cnnbench.report` wrote."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from cnnbench import compare
from cnnbench.fronts import disturbed
from cnnbench.measure.disturbance import MIN_CPU_SHARE
from cnnbench.measure.latency import Timing
from cnnbench.measure.roofline import Roofline
from cnnbench.provenance import PROBE_TOLERANCE
from cnnbench.report import charts, deployment
from cnnbench.report.config import ReportConfig
from cnnbench.report.prediction import prediction_summary
from cnnbench.report.recheck import RECHECK_FACTOR
from cnnbench.runtimes.int8 import LATENCY_CALIBRATION_IMAGES
from cnnbench.store import atomic_write_text
from cnnbench.target import Target

__all__ = [
    "Page",
    "write_charts",
    "write_front_charts",
    "write_prediction_chart",
    "write_readme",
    "front_stem",
    "accuracy_points",
    "provenance_line",
]


@dataclass(frozen=True)
class Page:
    """What the README says beyond the tables: where the rows shown came from, and what was left out."""

    provenance: dict[str, object]  # store.provenance_summary of every row shown
    left_out: list[str] = field(default_factory=list)  # files measured on other machines, not shown
    digits: pd.DataFrame = field(default_factory=pd.DataFrame)  # accuracy-digits rows measured here
    digits_elsewhere: str = ""  # accuracy-digits rows another machine measured, in words ("" for none)
    elapsed_s: float = 0.0
    deployments: tuple[str, ...] = ()  # target keys of the deployment runtimes' latency tables
    not_deployed: tuple[str, ...] = ()  # models left out of those tables by the report's size limit
    deploy_max_flops: float | None = None
    # --baseline: the folder, the comparison (cnnbench.compare), or why none could be made
    baseline: tuple[str, pd.DataFrame, str] = ("", pd.DataFrame(), "")
    deployed_digits: pd.DataFrame = field(default_factory=pd.DataFrame)  # accuracy-digits-int8 rows measured here
    sweep_batch: pd.DataFrame = field(default_factory=pd.DataFrame)  # sweep-batch-<target> rows measured here
    sweep_threads: pd.DataFrame = field(default_factory=pd.DataFrame)  # sweep-threads-<target> rows measured here
    sweep_timing: Timing | None = None  # the sweeps' timing
    sweep_stop_ms: float | None = None  # a model's batch sweep stops after the first batch whose median passes this
    # per target shown: its front with the published top-1, and with the digits top-1 (empty without digits rows)
    fronts: dict[str, tuple[pd.DataFrame, pd.DataFrame]] = field(default_factory=dict)
    prediction: pd.DataFrame = field(default_factory=pd.DataFrame)  # prediction-<target> rows of this run
    prediction_note: str = ""  # why the target has no prediction table, when it has none


def provenance_line(summary: dict[str, object]) -> str:
    """“Measured at commit(s) … on … between … and …”, from :func:`cnnbench.store.provenance_summary`."""
    if not summary.get("machines"):
        return "No row shown here was measured on this machine yet."
    machines = "; ".join(
        f"{m.get('host', '?')} ({m.get('device_name', '?')}, machine id {m['machine']})"
        for m in summary["machines"]  # type: ignore[union-attr]
    )
    commits = ", ".join(str(c) for c in summary.get("commits", []))  # type: ignore[union-attr]
    times = summary.get("measured") or {}
    when = f" between {times['first']} and {times['last']} (UTC)" if times else ""  # type: ignore[index]
    torch = ", ".join(str(t) for t in summary.get("torch", []))  # type: ignore[union-attr]
    quick = summary.get("quick_rows") or 0
    quick_text = f" {quick} of its rows come from `--quick` (short timing)." if quick else ""
    return f"Every row shown was measured on {machines}, with torch {torch}, at commit(s) {commits}{when}.{quick_text}"


def accuracy_points(zoo_frame: pd.DataFrame, accuracy: pd.DataFrame) -> pd.DataFrame:
    """One point per model: the paper's top-1 where it has one, else the reference implementation's (marked so).
    fp32 figures only: torchvision's INT8 rows (``reference-int8``) are never plotted as the model's accuracy.

    ShuffleNetV1 keeps its g=3 members only (the paper's main line), so the chart stays readable.
    """
    accuracy = accuracy[accuracy["origin"].isin(["paper", "reference"])]
    chosen = (
        accuracy.assign(rank=accuracy["origin"].map({"paper": 0, "reference": 1}))
        .sort_values("rank")
        .drop_duplicates("model")
    )
    # Parameters the inference network uses: GoogLeNet's auxiliary heads exist only for training.
    points = chosen.merge(zoo_frame[["model", "params_used", "flops"]], on="model").rename(
        columns={"params_used": "params"}
    )
    return points[charts.main_line(points["model"])]


def write_charts(
    out: Path,
    zoo_frame: pd.DataFrame,
    accuracy: pd.DataFrame,
    everything: pd.DataFrame,
    breakdown: pd.DataFrame,
    latency_frame: pd.DataFrame,
    roof: Roofline,
    target: Target,
    deployments: tuple[str, ...] = (),
    sweep_batch: pd.DataFrame | None = None,
    sweep_threads: pd.DataFrame | None = None,
) -> dict[str, Path]:
    """Every chart as PNG and SVG; returns the PNG paths by name. ``deployments`` are the target keys of the
    deployment runtimes' tables (the speed-up chart compares them with ``target``); ``sweep_batch`` and
    ``sweep_threads`` the rows of :func:`cnnbench.report.tables.sweep_tables`."""
    written: dict[str, Path] = {}
    points = accuracy_points(zoo_frame, accuracy)
    if not points.empty:
        for x, label in (("params", "parameters"), ("flops", "FLOPs (multiply-adds)")):
            stem = out / f"accuracy_vs_{x}"
            charts.accuracy_chart(points, x, stem, f"ImageNet top-1 vs {label} (published figures)")
            written[stem.name] = stem.with_suffix(".png")
    if not everything.empty and (everything["status"] == "ok").any():
        for x, label in (("flops", "FLOPs"), ("mac_bytes", "memory access cost")):
            stem = out / f"latency_vs_{'flops' if x == 'flops' else 'mac'}"
            charts.latency_chart(everything, x, stem, f"Latency vs {label}, batch {int(everything['batch'].iloc[0])}")
            written[stem.name] = stem.with_suffix(".png")
    deployed = [t for t in dict.fromkeys(everything.get("target", pd.Series(dtype=str))) if t in deployments]
    ups = deployment.speedups(everything, target.key, deployed) if deployed else pd.DataFrame()
    if not ups.empty:
        stem = out / "speedup_vs_eager"
        charts.speedup_chart(
            ups, target.key, stem, f"Deployment runtimes against {target.key}, batch {int(everything['batch'].iloc[0])}"
        )
        written[stem.name] = stem.with_suffix(".png")
    if not breakdown.empty:
        stem = out / f"breakdown-{target.key}"
        charts.breakdown_chart(breakdown, stem, f"Where FLOPs, memory traffic and time go ({target.key})")
        written[stem.name] = stem.with_suffix(".png")
    if not latency_frame.empty and (latency_frame["status"] == "ok").any():
        stem = out / f"roofline-{target.key}"
        data = latency_frame.merge(zoo_frame[["model", "family"]], on="model", how="left", suffixes=("_x", ""))
        title = (
            f"Roofline of {target.key}: {roof.peak_flops_per_s / 1e9:.0f} GFLOP/s peak, "
            f"{roof.bandwidth_bytes_per_s / 1e9:.1f} GB/s copy"
        )
        charts.roofline_chart(data, roof.peak_flops_per_s, roof.bandwidth_bytes_per_s, stem, title)
        written[stem.name] = stem.with_suffix(".png")
    for kind, frame, draw in (
        ("batch", sweep_batch, charts.batch_chart),
        ("threads", sweep_threads, charts.threads_chart),
    ):
        if frame is not None and not frame.empty and (frame["status"] == "ok").any():
            stem = out / f"sweep_{kind}-{target.key}"
            draw(frame, stem, f"{kind.capitalize()} sweep on {target.key}, one model per family")
            written[stem.name] = stem.with_suffix(".png")
    return written


def front_stem(target: str) -> str:
    """The file stem of a target's accuracy–latency chart (an imported target's ``KEY @ HOST`` becomes ``KEY@HOST``)."""
    return f"accuracy_vs_latency-{target.replace(' @ ', '@')}"


def write_front_charts(out: Path, fronts: dict[str, tuple[pd.DataFrame, pd.DataFrame]]) -> dict[str, Path]:
    """Top-1 against measured latency with its Pareto front, one chart per target
    (:func:`~cnnbench.report.charts.accuracy_latency_chart`); returns the PNG paths by stem."""
    written: dict[str, Path] = {}
    for target, (published, digits) in fronts.items():
        stem = out / front_stem(target)
        charts.accuracy_latency_chart(published, stem, f"Top-1 against median latency on {target}", digits)
        written[stem.name] = stem.with_suffix(".png")
    return written


FRONT_COLUMNS = {
    "model": "model",
    "latency_ms": "median (ms)",
    "top1": "top-1 (%)",
    "top1_from": "top-1 from",
    "params_m": "params (M)",
    "memory_mb": "peak mem (MB)",
}


def write_prediction_chart(out: Path, prediction: pd.DataFrame, key: str) -> dict[str, Path]:
    """prediction-<target>.png/.svg: predicted against measured latency, per predictor (none without rows)."""
    if prediction.empty:
        return {}
    stem = out / f"prediction-{key}"
    charts.prediction_chart(
        prediction, stem, f"Predicted against measured latency, {key}: no zoo model was used in fitting"
    )
    return {stem.name: stem.with_suffix(".png")}


def _front_section(page: Page, chart_paths: dict[str, Path]) -> list[str]:
    """“Best models on this target”: per target, the accuracy–latency chart, the models no other beats on both
    latency and published top-1, and what beats each of the others."""
    if not page.fronts:
        return []
    lines = [
        "## Best models on this target",
        "",
        "Published ImageNet top-1 (the paper's; the reference weights' where the paper gives none) against the "
        "median latency measured here. A model is on the Pareto front when no other model is both at least as fast "
        "and at least as accurate (and better in one); the step line is the best top-1 reachable within a latency. "
        "`peak mem` is the measured peak of inference (CPU: resident memory above the loaded model). "
        "`cnnbench pick --latency-ms N` chooses within a budget on your own target; `pareto-TARGET.csv` holds "
        "every model with what dominates it.",
        "",
    ]
    for target, (front, _digits) in page.fronts.items():
        stem = front_stem(target)
        lines += [f"### {target}", ""]
        if stem in chart_paths:
            lines += [f"![{stem}]({stem}.png)", "", f"*Top-1 against latency on {target}.* ([svg]({stem}.svg))", ""]
        best = front[front["pareto"]][list(FRONT_COLUMNS)].rename(columns=FRONT_COLUMNS)
        lines += [_md(best.round({"median (ms)": 2, "top-1 (%)": 2, "params (M)": 2, "peak mem (MB)": 1})), ""]
        beaten = front[~front["pareto"] & (front["dominated_by"] != "")].sort_values("latency_ms")
        if not beaten.empty:
            pairs = ", ".join(f"{m} (by {d})" for m, d in zip(beaten["model"], beaten["dominated_by"], strict=True))
            lines += [f"Dominated ({len(beaten)}), each by the fastest front model that beats it: {pairs}.", ""]
        left = front[front["disturbed"].astype(bool)] if "disturbed" in front else front.iloc[0:0]
        if not left.empty:
            lines += [
                f"Left out of the front because another process slowed their rows (disturbed): "
                f"{', '.join(left['model'])}.",
                "",
            ]
    return lines


def _baseline_section(page: Page) -> list[str]:
    """“Against the baseline”: what `cnnbench compare BASELINE OUT` says, the rows that changed in a table."""
    folder, frame, problem = page.baseline
    if not folder:
        return []
    lines = [f"## Against the baseline `{folder}`", ""]
    if problem:
        return [*lines, f"No comparison: {problem}.", ""]
    lines += [
        f"`cnnbench compare {folder} <this folder>` per target, model and batch: the ratio of median latencies "
        "(new / old, above 1 is slower) with its 95% bootstrap interval from the kept per-iteration samples. A row "
        f"is slower when the ratio exceeds {1 + compare.DEFAULT_THRESHOLD:g} and the interval lies above 1 (faster, "
        "mirrored): "
        f"{compare.summary_line(frame, compare.DEFAULT_THRESHOLD)}.",
        "",
    ]
    changed = frame[frame["verdict"].isin(["slower", "faster"])]
    if not changed.empty:
        shown = changed.assign(
            ci=[f"[{lo:.3f}, {hi:.3f}]" for lo, hi in zip(changed["ci_low"], changed["ci_high"], strict=True)]
        )
        shown = shown[["target", "model", "batch", "old_ms", "new_ms", "ratio", "ci", "verdict"]].round(3)
        lines += [
            _md(shown.rename(columns={"old_ms": "old (ms)", "new_ms": "new (ms)", "ratio": "new/old", "ci": "95% CI"})),
            "",
        ]
    return lines


def _status_text(frame: pd.DataFrame) -> pd.Series:
    """The status column as the page shows it: ``disturbed (cpu_share 0.50)`` for a row another process slowed."""
    status = frame["status"].astype(str).copy() if "status" in frame else pd.Series("ok", index=frame.index)
    flagged = disturbed(frame)
    shares = pd.to_numeric(frame["cpu_share"], errors="coerce") if "cpu_share" in frame else None
    for index in frame.index[flagged.to_numpy()]:
        share = shares[index] if shares is not None else float("nan")
        status[index] = f"disturbed (cpu_share {share:.2f})" if pd.notna(share) else "disturbed"
    return status


def _disturbance_section(everything: pd.DataFrame) -> list[str]:
    """What the machine did to this run: the rows another process slowed, and those measured again because they
    were far slower than expected."""
    if everything.empty:
        return []
    flagged = everything[disturbed(everything)]
    rechecked = (
        everything[everything["rechecked"].fillna("").astype(str) != ""]
        if "rechecked" in everything
        else everything.iloc[0:0]
    )
    attempts = pd.to_numeric(everything.get("attempts"), errors="coerce") if "attempts" in everything else None
    again = int((attempts > 1).sum()) if attempts is not None else 0
    lines = ["## Disturbance", ""]
    lines.append(
        f"Every timed row records what share of the CPU time its threads asked for they had (`cpu_share`; below "
        f"{MIN_CPU_SHARE} another process slowed it, and it is `disturbed`), the other processes' share of the CPUs "
        "(`cpu_others`), the hypervisor's steal (`cpu_steal`), the machine's `hardware` and a speed probe "
        f"(`probe_ms`). {again} row{'s were' if again != 1 else ' was'} measured again after a disturbance "
        f"(`attempts` > 1); {len(flagged)} stayed disturbed."
    )
    if not flagged.empty:
        named = ", ".join(f"{m} on {t}" for m, t in zip(flagged["model"], flagged["target"], strict=True))
        lines.append(
            f"Disturbed rows are shown as such, left out of the Pareto fronts, of `pick`'s ranking, of the "
            f"cost model's check and of `compare`'s verdicts, and measured again by the next run: {named}."
        )
    if not rechecked.empty:
        notes = "; ".join(
            f"{m} on {t}: {n}"
            for m, t, n in zip(rechecked["model"], rechecked["target"], rechecked["rechecked"], strict=True)
        )
        lines.append(f"Measured again because they were over {RECHECK_FACTOR:g}× what was expected of them: {notes}.")
    return [*lines[:2], " ".join(lines[2:]), ""]


def _md(frame: pd.DataFrame) -> str:
    return frame.astype(object).where(frame.notna(), "–").to_markdown(index=False)


DEPLOYED_COLUMNS = {
    "model": "model",
    "latency_ms_median": "median (ms)",
    "cv": "CV",
    "speedup": "vs eager",
    "export_s": "export (s)",
    "quantize_s": "quantize (s)",
    "load_s": "load (s)",
    "first_inference_ms": "first (ms)",
    "peak_rss_mb": "peak RSS (MB)",
    "activation_mb": "activations (MB)",
    "cpu_share": "CPU share",
    "status": "status",
}


def _deployment_section(everything: pd.DataFrame, baseline: str, page: Page, chart_paths: dict[str, Path]) -> list[str]:
    """The README's part on deployment runtimes: what changed, in words from the figures, then the tables."""
    deployed = [t for t in page.deployments if "target" in everything and t in set(everything["target"])]
    if not deployed:
        return []
    lines = ["## Deployment runtimes: ONNX Runtime and OpenVINO, fp32 and INT8", ""]
    lines += [
        "Each model is exported once with `torch.onnx.export` (opset 17, cached), run on ONNX Runtime's CPU provider "
        "and OpenVINO's CPU plugin with the same threads, and for INT8 statically quantized (QDQ, per-channel int8 "
        f"weights, uint8 activations, MinMax calibration on {LATENCY_CALIBRATION_IMAGES} real images: the digits "
        "unless `--calibration DIR`; the ranges set the file's scales, not its graph or kernels, so latency needs no "
        "more). "
        "Every measurement runs in a process of its own. `vs eager` = eager latency / this latency (above 1 is "
        "faster). Cold start: `export` (torch.onnx.export), `quantize` (pre-processing, calibration, quantization), "
        "`load` (session creation or compilation; building the model for eager), `first` (first inference). "
        "`peak RSS` is the resident-memory high-water mark during inference above what was resident after the load; "
        "`activations` is the counted peak of live activations, for comparison (int8 at one byte per element).",
        "",
    ]
    if page.not_deployed:
        limit = f"{page.deploy_max_flops / 1e9:g} G" if page.deploy_max_flops else "the limit"
        lines += [
            f"Not deployed ({len(page.not_deployed)} models above {limit} multiply-adds, left out by "
            f"`--deploy-max-gflops`): {', '.join(page.not_deployed)}. Without the option the report deploys "
            "them too.",
            "",
        ]
    lines += [f"- {line}" for line in deployment.summary_lines(everything, baseline, deployed)] + [""]
    if "speedup_vs_eager" in chart_paths:
        lines += [
            "![speedup_vs_eager](speedup_vs_eager.png)",
            "",
            f"*Speed-up of each runtime and dtype against {baseline}, per model.* ([svg](speedup_vs_eager.svg))",
            "",
        ]
    ranks = deployment.ranking(everything, [baseline, *deployed])
    if not ranks.empty:
        lines += [
            "### How the ranking changes",
            "",
            "Latency rank of each model (1 = fastest) on each target; the 15 models whose rank moves most.",
            "",
            _md(ranks.head(15)),
            "",
        ]
    ups = deployment.speedups(everything, baseline, deployed).set_index(["model", "target"])["speedup"]
    for key in deployed:
        part = everything[everything["target"] == key].copy()
        part["speedup"] = [ups.get((m, key)) for m in part["model"]]
        part["peak_rss_mb"] = pd.to_numeric(part.get("peak_rss_bytes"), errors="coerce") / 1e6
        part["activation_mb"] = pd.to_numeric(part.get("activation_peak_bytes"), errors="coerce") / 1e6
        part["status"] = _status_text(part)
        shown = [c for c in DEPLOYED_COLUMNS if c in part and part[c].notna().any()]
        table = part[shown].rename(columns=DEPLOYED_COLUMNS)
        version = (
            part["runtime_version"].dropna().iloc[0]
            if "runtime_version" in part and part["runtime_version"].notna().any()
            else "?"
        )
        lines += [f"### {key} ({part['backend'].iloc[0]} {version})", "", _md(_round(table)), ""]
    if not page.deployed_digits.empty:
        keep = [c for c in page.deployed_digits.columns if c.startswith(("top1", "agree"))]
        digits = page.deployed_digits[["model", "epochs", "resolution", *keep]]
        lines += [
            "### Accuracy on the deployed models (digits, held-out 360 images)",
            "",
            "`cnnbench train --deployed` trains each model once, exports it, quantizes it on 32 training images "
            "and scores the held-out split on each target; `agree` is the share of images whose top-1 class "
            "equals eager fp32's.",
            "",
            _md(digits),
            "",
        ]
    return lines


def _sweep_section(key: str, page: Page, chart_paths: dict[str, Path]) -> list[str]:
    """The README's part on the batch and threads sweeps: how they were timed, the charts, and per model its best
    throughput (at which batch) and its speed-up at the most threads."""
    by_batch, by_threads = page.sweep_batch, page.sweep_threads
    if by_batch.empty and by_threads.empty:
        return []
    timing = page.sweep_timing
    timed = (
        (
            f"at least {timing.min_iters} iterations and {timing.min_time_s:g} s after at most "
            f"{timing.max_warmup_s:g} s of warm-up"
        )
        if timing
        else "briefly"
    )
    stop = (
        (
            f"; each model's sweep stops after the first batch whose median passes {page.sweep_stop_ms / 1e3:g} s "
            "(a larger batch would only take longer)"
        )
        if page.sweep_stop_ms
        else ""
    )
    lines = [
        "## Batch and threads sweeps",
        "",
        (
            f"One model per family on {key}, timed briefly ({timed}) in the report's own process. "
            f"Batch sweep (`sweep-batch-{key}.csv`): batches {_values(by_batch, 'batch')} at the target's threads"
            f"{stop}; throughput = 1000 · batch / median latency (ms). Threads sweep (`sweep-threads-{key}.csv`): "
            f"threads {_values(by_threads, 'threads')} at batch {_values(by_threads, 'batch')}; speed-up = median "
            "latency at the fewest threads / median at this count, efficiency = speed-up / (threads / fewest)."
        ),
        "",
    ]
    for name, caption in (
        (
            f"sweep_batch-{key}",
            "Throughput against batch, and latency against throughput: each point a batch, labelled with it.",
        ),
        (f"sweep_threads-{key}", "Speed-up against threads; the dashed line is linear scaling."),
    ):
        if name in chart_paths:
            lines += [f"![{name}]({name}.png)", "", f"*{caption}* ([svg]({name}.svg))", ""]
    rows = []
    ok_batch = _numeric(by_batch[by_batch["status"] == "ok"]) if not by_batch.empty else by_batch
    ok_threads = _numeric(by_threads[by_threads["status"] == "ok"]) if not by_threads.empty else by_threads
    for model in dict.fromkeys([*by_batch.get("model", []), *by_threads.get("model", [])]):
        row: dict[str, object] = {"model": model}
        mine = ok_batch[ok_batch["model"] == model] if not ok_batch.empty else ok_batch
        if not mine.empty:
            best = mine.loc[mine["throughput_img_s"].idxmax()]
            one = mine[mine["batch"] == 1]["throughput_img_s"]
            row.update(
                {
                    "img/s at batch 1": one.iloc[0] if not one.empty else None,
                    "best img/s": best["throughput_img_s"],
                    "at batch": int(best["batch"]),
                    "its latency (ms)": best["latency_ms_median"],
                }
            )
        mine = ok_threads[ok_threads["model"] == model] if not ok_threads.empty else ok_threads
        if not mine.empty:
            most = mine.loc[mine["threads"].idxmax()]
            row.update(
                {
                    "most threads": int(most["threads"]),
                    "speed-up there": most["speedup"],
                    "efficiency": most["efficiency"],
                }
            )
        rows.append(row)
    failed = sum(int((f["status"] != "ok").sum()) for f in (by_batch, by_threads) if not f.empty)
    lines += [_md(_round(pd.DataFrame(rows))), ""]
    if failed:
        lines += [f"{failed} sweep rows failed; their `error` column says why.", ""]
    return lines


def _prediction_section(key: str, page: Page, chart_paths: dict[str, Path]) -> list[str]:
    """The README's part on the cost model: the held-out errors of it and its two baselines, the chart, and the
    per-model predictions with their attribution."""
    frame = page.prediction
    if frame.empty:
        return (
            ["## Predicted latency", "", f"No prediction on {key}: {page.prediction_note}", ""]
            if page.prediction_note
            else []
        )
    summary = prediction_summary(frame)
    ours = summary.iloc[0]
    first = frame.iloc[0]
    faults = float(first.get("page_fault_gbs") or 0)
    lines = [
        "## Predicted latency: the cost model on models it never saw",
        "",
        (
            f"`cnnbench calibrate` drew {int(first['networks'])} synthetic networks from the layers the zoo is "
            f"made of (no zoo model among them), timed each whole and each of its {int(first['timed_ops'])} ops "
            f"in its place on {key} (calibrated {first['calibrated_at']}), and fitted per op key (a convolution "
            "kind, linear, or the aten op: `native_batch_norm`, `relu_` apart from `relu`...): time = overhead "
            "+ a parallel step above a size + arithmetic / compute rate + memory traffic / memory rate, the rate "
            "terms times a factor when the op's channels are not multiples of "
            f"{int(first.get('lanes', 1) or 1)}"
            + (
                f", and fresh pages at {faults:.2f} GB/s for outputs past the allocator's mmap threshold"
                if faults
                else ""
            )
            + f". A network is {float(first['network_scale']):.3f} × the sum of its ops (median error on the networks "
            f"{float(first['network_error_pct']):.1f}%; `costmodel-{key}.json`). Each model here is predicted from its "
            "meta-device counts alone (`cnnbench predict`) and set against its median measured in this run: latency "
            "proportional to multiply-adds (FLOPs-only) and to MAC bytes (MAC-only), fitted on the same networks, are "
            "the baselines. Error = predicted / measured − 1."
        ),
        "",
    ]
    shown = summary.rename(
        columns={
            "predictor": "predictor",
            "mape": "median |error| (%)",
            "within_10": "within ±10% (% of models)",
            "within_20": "within ±20% (% of models)",
            "models": "models",
        }
    )
    lines += [_md(shown.round(1)), ""]
    others = summary.iloc[1:]
    verdicts = [f"{row['predictor']} {row['mape']:.1f}%" for _, row in others.iterrows()]
    beats = all(ours["mape"] < row["mape"] for _, row in others.iterrows())
    lines += [
        (
            f"The cost model's median error is {ours['mape']:.1f}% against "
            + " and ".join(verdicts)
            + ": it "
            + ("beats both baselines" if beats else "does not beat every baseline")
            + " on this machine. What the "
            "baselines miss is what ShuffleNetV2's guidelines name: per-op overhead (G3, fragmentation; G4, "
            "element-wise ops) and memory traffic (G1, G2) that multiply-adds do not count."
        ),
        "",
    ]
    name = f"prediction-{key}"
    if name in chart_paths:
        lines += [
            f"![{name}]({name}.png)",
            "",
            f"*Predicted against measured latency on {key}; the band is ±20%.* ([svg]({name}.svg))",
            "",
        ]
    table = (
        frame.assign(error=frame["latency_error_pct"])
        .sort_values("measured_ms")[
            [
                "model",
                "measured_ms",
                "latency_ms",
                "error",
                "overhead_ms",
                "compute_ms",
                "memory_ms",
                "flops_only_ms",
                "mac_only_ms",
            ]
        ]
        .rename(
            columns={
                "measured_ms": "measured (ms)",
                "latency_ms": "predicted (ms)",
                "error": "error (%)",
                "overhead_ms": "overhead (ms)",
                "compute_ms": "compute (ms)",
                "memory_ms": "memory (ms)",
                "flops_only_ms": "FLOPs-only (ms)",
                "mac_only_ms": "MAC-only (ms)",
            }
        )
    )
    lines += [
        "Overhead + compute + memory = predicted: per-op overhead (parallel steps included), arithmetic at the "
        "compute rates, traffic at the memory rates (fresh pages included).",
        "",
        _md(_numeric(table).round(2)),
        "",
    ]
    return lines


def _values(frame: pd.DataFrame, column: str) -> str:
    values = sorted({int(v) for v in pd.to_numeric(frame.get(column, pd.Series(dtype=float))).dropna()})
    return ", ".join(map(str, values)) or "none"


def _numeric(frame: pd.DataFrame) -> pd.DataFrame:
    columns = ["batch", "threads", "latency_ms_median", "throughput_img_s", "speedup", "efficiency"]
    return frame.assign(**{c: pd.to_numeric(frame[c]) for c in columns if c in frame})


def _round(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for column in out.columns:
        numeric = pd.to_numeric(out[column], errors="coerce")
        if numeric.notna().any() and column not in ("model", "status"):
            out[column] = numeric.round(3 if column in ("CV", "load (s)") else 2)
    return out


def write_readme(
    out: Path,
    config: ReportConfig,
    zoo_frame: pd.DataFrame,
    accuracy: pd.DataFrame,
    latency_frame: pd.DataFrame,
    everything: pd.DataFrame,
    breakdown: pd.DataFrame,
    roof: Roofline,
    chart_paths: dict[str, Path],
    page: Page,
) -> Path:

    target = config.target
    sections = [
        "# Results",
        "",
        f"Written by `cnnbench report{' --quick' if config.quick else ''}` on {dt.date.today().isoformat()} in "
        f"{page.elapsed_s / 60:.1f} min for target **{target.key}**. {provenance_line(page.provenance)} Each row "
        "of each table names its own commit, machine and time (`commit`, `machine`, `host`, `measured_at`), and "
        "each table's `.env.json` lists the commits and machines of its rows. FLOPs are multiply-adds (one fused "
        "multiply-add = 1); MAC is memory access cost (bytes read + written, weights included).",
        "",
    ]
    if page.left_out:
        sections += ["Not shown, because another machine measured them: " + ", ".join(page.left_out) + ".", ""]
    sections += _disturbance_section(everything)
    sections += _front_section(page, chart_paths)
    sections += _baseline_section(page)
    for name, caption in (
        (
            "accuracy_vs_params",
            "ImageNet top-1 vs parameters. Filled: the paper's figure; hollow: torchvision's "
            "weights, only where the paper's figure is not transcribed. ShuffleNetV1: g=3 only.",
        ),
        ("accuracy_vs_flops", "ImageNet top-1 vs FLOPs (multiply-adds), same points."),
        ("latency_vs_flops", "Median latency vs FLOPs on every target measured, with Spearman's rank correlation."),
        (
            "latency_vs_mac",
            "Median latency vs memory access cost (MB): ShuffleNetV2's point that MAC, not FLOPs, tracks speed.",
        ),
        (f"breakdown-{target.key}", "Share of FLOPs, MAC and time by op kind, one model per family."),
        (f"roofline-{target.key}", "Attained throughput vs arithmetic intensity under the target's roofline."),
    ):
        if name in chart_paths:
            sections += [f"![{name}]({name}.png)", "", f"*{caption}* ([svg]({name}.svg))", ""]
    if not latency_frame.empty:
        lat = latency_frame
        lat_md = pd.DataFrame(
            {
                "model": lat["model"],
                "batch": lat["batch"],
                "median (ms)": pd.to_numeric(lat["latency_ms_median"]).round(2),
                "p95 (ms)": pd.to_numeric(lat["latency_ms_p95"]).round(2),
                "CV": pd.to_numeric(lat["cv"]).round(3),
                "img/s": pd.to_numeric(lat["throughput_img_s"]).round(1),
                "roofline bound (ms)": pd.to_numeric(lat["roofline_bound_ms"]).round(2),
                "of roofline": pd.to_numeric(lat["roofline_fraction"]).round(3),
                "CPU share": pd.to_numeric(lat.get("cpu_share"), errors="coerce").round(2),
                "status": _status_text(lat),
                "commit": lat["commit"],
            }
        )
        sections += [
            f"## Latency on {target.key}",
            "",
            f"Roofline of this machine (measured {roof.measured_at or 'earlier'}, commit {roof.commit or '?'}): peak "
            f"{roof.peak_flops_per_s / 1e9:.1f} GFLOP/s (the faster of a {roof.matmul_size}² matmul and a "
            f"256-channel 3×3 conv), bandwidth {roof.bandwidth_bytes_per_s / 1e9:.1f} GB/s (copy). `roofline bound` "
            "= max(2·multiply-adds / peak, MAC bytes / bandwidth), derived from each row's counts and this roofline; "
            "`of roofline` = bound / median: 1.0 is at the roof; above 1 means a kernel beat the peak or reused "
            "caches that the MAC count charges to memory.",
            "",
            _md(lat_md),
            "",
        ]
    sections += _deployment_section(everything, target.key, page, chart_paths)
    sections += _sweep_section(target.key, page, chart_paths)
    sections += _prediction_section(target.key, page, chart_paths)
    others = sorted(set(everything["target"]) - {target.key} - set(page.deployments)) if "target" in everything else []
    for other in others:
        part = everything[everything["target"] == other]
        origin = "imported from pytest-benchmark JSON" if " @ " in other else "measured on this machine"
        sections += [
            f"## Latency on {other} ({origin})",
            "",
            _md(part[["model", "batch", "latency_ms_median", "cv", "throughput_img_s", "commit"]].round(3)),
            "",
        ]
    if not page.digits.empty or page.digits_elsewhere:
        sections += ["## Accuracy measured here: scikit-learn's digits", ""]
        if not page.digits.empty:
            digits = page.digits[
                [
                    c
                    for c in page.digits.columns
                    if c not in ("machine", "settings", "code", "quick", "host", "device_name")
                ]
            ]
            sections += [_md(digits), ""]
        if page.digits_elsewhere:
            sections += [
                f"`accuracy-digits.csv` holds {page.digits_elsewhere}: another machine's, not shown; "
                "`cnnbench train --all` measures them here.",
                "",
            ]
    guidelines = out / f"guidelines-{target.key}.md"
    if guidelines.exists():
        sections += [guidelines.read_text().strip(), ""]
    if not zoo_frame.empty:
        zoo_md = zoo_frame.assign(
            params_m=(zoo_frame["params"] / 1e6).round(2),
            flops_m=(zoo_frame["flops"] / 1e6).round(1),
            mac_mb=(zoo_frame["mac_bytes"] / 1e6).round(1),
            act_mb=(zoo_frame["activation_peak_bytes"] / 1e6).round(1),
            train_mb=(zoo_frame["training_saved_bytes"] / 1e6).round(1),
        )[["model", "family", "resolution", "params_m", "flops_m", "mac_mb", "act_mb", "train_mb", "published_top1"]]
        zoo_md.columns = [
            "model",
            "family",
            "res",
            "params (M)",
            "FLOPs (M mult-adds)",
            "MAC (MB)",
            "act peak (MB)",
            "train saved (MB)",
            "paper top-1 (%)",
        ]
        sections += ["## The zoo: counts and published accuracy", "", _md(zoo_md), ""]
    sections += [
        "## Files",
        "",
        "| file | what |",
        "|---|---|",
        "| `zoo.csv` | every total of `cnnbench profile` per model, the paper's figures and the reference's |",
        "| `accuracy-imagenet.csv` | published top-1/top-5: origin `paper`, `reference` or `reference-int8` "
        "(torchvision's quantized weights), never mixed |",
        f"| `latency-{target.key}.csv` | every statistic of `cnnbench bench`, roofline bound, target description |",
        "| `latency-TARGET@HOST-ID.csv` | rows imported from pytest-benchmark JSON (`--from-benchmark`) |",
        f"| `breakdown-{target.key}.csv` | FLOPs, MAC and time per op kind for one model per family |",
        f"| `guidelines-{target.key}.csv` | SN2 Tables 1–4 re-run here, with each round's median (`rounds_ms`) |",
        "| `guidelines-audit.csv` | every model audited against G1–G4 (counted) |",
        f"| `roofline-{target.key}.json` | the target's measured peak FLOP/s and copy bandwidth, with provenance |",
        f"| `prediction-{target.key}.csv` | each model's predicted latency (cost model, FLOPs-only, MAC-only), "
        "its attribution and the measured median |",
        f"| `costmodel-{target.key}.json` | the fitted cost model (`cnnbench predict --cost-model` reads it) |",
        "| `*.env.json` | per table: the commits, machines, torch versions and times its rows were measured with |",
        "",
        "Every row carries `machine` (a hash of the OS machine id, host name, device name and hardware), `hardware` "
        "(CPU model, family/model/stepping, the ISA flags that select kernels, CPUs, memory), `torch`, `target`, "
        "`settings` (a hash of timing, batch and resolution), `code` (a hash of the model's and the measuring "
        "code's source), `quick`, `commit` (`+dirty` for uncommitted code), `host`, `device_name`, `measured_at` "
        "and, for timed rows, `probe_ms` (a 0.2 s speed probe) and `disturbed`/`cpu_share`. A rerun reuses a row "
        f"only when the first six match, its probe is within {PROBE_TOLERANCE:.0%} of today's and it was not "
        "disturbed; it measures it again otherwise.",
        "",
    ]
    path = out / "README.md"
    atomic_write_text(path, "\n".join(sections))
    return path
