"""The sections of the report's README beyond its main tables (:mod:`.page` puts them in order): the best models
per target, the comparison with a baseline, what disturbed the run, the deployment runtimes, the sweeps and the
cost model's predictions; and :class:`Page`, what the run hands the README besides its tables.

Each section is a list of Markdown lines, empty when the run has nothing to say there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from cnnbench import compare
from cnnbench.costmodel.model import INTERVAL_PERCENT
from cnnbench.fronts import disturbed
from cnnbench.measure.disturbance import MIN_CPU_SHARE
from cnnbench.measure.latency import Timing
from cnnbench.output import COLD_START_HEADINGS, FRONT_HEADINGS, interval_text, markdown, with_megabytes
from cnnbench.report import deployment
from cnnbench.report.prediction import RUNTIME_MAX_ERROR_PCT, prediction_summary
from cnnbench.report.recheck import RECHECK_FACTOR
from cnnbench.results import ResultsFolder
from cnnbench.runtimes.int8 import LATENCY_CALIBRATION_IMAGES

__all__ = [
    "Page",
    "front_section",
    "baseline_section",
    "disturbance_section",
    "deployment_section",
    "sweep_section",
    "prediction_section",
    "runtime_prediction_section",
    "status_text",
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
    # per deployment target a cost model covers: its prediction rows of this run, or why there are none
    runtime_predictions: dict[str, tuple[pd.DataFrame, str]] = field(default_factory=dict)


def front_section(page: Page, chart_paths: dict[str, Path]) -> list[str]:
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
        stem = ResultsFolder().front_chart(target).name
        lines += [f"### {target}", ""]
        if stem in chart_paths:
            lines += [f"![{stem}]({stem}.png)", "", f"*Top-1 against latency on {target}.* ([svg]({stem}.svg))", ""]
        best = front[front["pareto"]][list(FRONT_HEADINGS)].rename(columns=FRONT_HEADINGS)
        lines += [markdown(best.round({"median (ms)": 2, "top-1 (%)": 2, "params (M)": 2, "peak mem (MB)": 1})), ""]
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


def baseline_section(page: Page) -> list[str]:
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
        headings = {"old_ms": "old (ms)", "new_ms": "new (ms)", "ratio": "new/old", "ci": "95% CI"}
        lines += [markdown(shown.rename(columns=headings)), ""]
    return lines


def status_text(frame: pd.DataFrame) -> pd.Series:
    """The status column as the page shows it: ``disturbed (cpu_share 0.50)`` for a row another process slowed."""
    status = frame["status"].astype(str).copy() if "status" in frame else pd.Series("ok", index=frame.index)
    flagged = disturbed(frame)
    shares = pd.to_numeric(frame["cpu_share"], errors="coerce") if "cpu_share" in frame else None
    for index in frame.index[flagged.to_numpy()]:
        share = shares[index] if shares is not None else float("nan")
        status[index] = f"disturbed (cpu_share {share:.2f})" if pd.notna(share) else "disturbed"
    return status


def disturbance_section(everything: pd.DataFrame) -> list[str]:
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


DEPLOYED_COLUMNS = {
    "model": "model",
    "latency_ms_median": "median (ms)",
    "cv": "CV",
    "speedup": "vs eager",
    **COLD_START_HEADINGS,
    "cpu_share": "CPU share",
    "status": "status",
}


def deployment_section(everything: pd.DataFrame, baseline: str, page: Page, chart_paths: dict[str, Path]) -> list[str]:
    """The README's part on deployment runtimes: what changed, in words from the figures, then the tables."""
    deployed = [t for t in page.deployments if "target" in everything and t in set(everything["target"])]
    if not deployed:
        return []
    firsts = everything[everything["target"].isin(deployed)].drop_duplicates("target").set_index("target")
    pairs = [(str(firsts.at[t, "backend"]), str(firsts.at[t, "dtype"])) for t in deployed]
    lines = [f"## Deployment runtimes: {deployment.runtimes_title(pairs)}", ""]
    lines += [
        deployment.method_text(pairs, LATENCY_CALIBRATION_IMAGES) + " "
        "`peak RSS` is the resident-memory high-water mark during inference above what was resident after the load; "
        "`activations` is the counted peak of live activations, for comparison (int8 at one byte per element).",
        "",
    ]
    if page.not_deployed:
        limit = f"{page.deploy_max_flops / 1e9:g} G" if page.deploy_max_flops else "the limit"
        lines += [
            f"Not deployed ({len(page.not_deployed)} models above {limit} multiply-adds, left out by "
            f"`--deploy-max-gflops`): {', '.join(page.not_deployed)}. `--deploy-max-gflops all` deploys them "
            "too.",
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
            markdown(ranks.head(15)),
            "",
        ]
    ups = deployment.speedups(everything, baseline, deployed).set_index(["model", "target"])["speedup"]
    for key in deployed:
        part = with_megabytes(everything[everything["target"] == key])
        part["speedup"] = [ups.get((m, key)) for m in part["model"]]
        part["status"] = status_text(part)
        shown = [c for c in DEPLOYED_COLUMNS if c in part and part[c].notna().any()]
        table = part[shown].rename(columns=DEPLOYED_COLUMNS)
        version = (
            part["runtime_version"].dropna().iloc[0]
            if "runtime_version" in part and part["runtime_version"].notna().any()
            else "?"
        )
        runtime = deployment.RUNTIME_NAMES.get(str(part["backend"].iloc[0]), part["backend"].iloc[0])
        lines += [f"### {key} ({runtime} {version})", "", markdown(_rounded(table)), ""]
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
            markdown(digits),
            "",
        ]
    return lines


def sweep_section(key: str, page: Page, chart_paths: dict[str, Path]) -> list[str]:
    """The README's part on the batch and threads sweeps: how they were timed, the charts, and per model its best
    throughput (at which batch) and its speed-up at the most threads."""
    by_batch, by_threads = page.sweep_batch, page.sweep_threads
    if by_batch.empty and by_threads.empty:
        return []
    names = ResultsFolder()  # file names, relative to the folder
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
            f"Batch sweep (`{names.sweep('batch', key)}`): batches {_listed(by_batch, 'batch')} at the target's "
            f"threads{stop}; throughput = 1000 · batch / median latency (ms). Threads sweep "
            f"(`{names.sweep('threads', key)}`): "
            f"threads {_listed(by_threads, 'threads')} at batch {_listed(by_threads, 'batch')}; speed-up = median "
            "latency at the fewest threads / median at this count, efficiency = speed-up / (threads / fewest)."
        ),
        "",
    ]
    for name, caption in (
        (
            names.sweep_chart("batch", key).name,
            "Throughput against batch, and latency against throughput: each point a batch, labelled with it.",
        ),
        (names.sweep_chart("threads", key).name, "Speed-up against threads; the dashed line is linear scaling."),
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
    lines += [markdown(_rounded(pd.DataFrame(rows))), ""]
    if failed:
        lines += [f"{failed} sweep rows failed; their `error` column says why.", ""]
    return lines


def prediction_section(key: str, page: Page, chart_paths: dict[str, Path]) -> list[str]:
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
            f"{float(first['network_error_pct']):.1f}%; `{ResultsFolder().cost_model(key)}`). Each model here is "
            "predicted from its meta-device counts alone (`cnnbench predict`) and set against its median measured in "
            "this run: latency proportional to multiply-adds (FLOPs-only) and to MAC bytes (MAC-only), fitted on the "
            "same networks, are the baselines. Error = predicted / measured − 1."
        ),
        "",
    ]
    lines += _summary_lines(summary)
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
    lines += _chart_lines(key, chart_paths)
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
        markdown(_numeric(table).round(2)),
        "",
    ]
    return lines


def runtime_prediction_section(page: Page, chart_paths: dict[str, Path]) -> list[str]:
    """The README's part on each deployment runtime's cost model: how it was fitted, its held-out errors against
    the two baselines, and, where its median error is within :data:`RUNTIME_MAX_ERROR_PCT`, the chart and the
    per-model predictions (the CSV holds them either way)."""
    lines: list[str] = []
    for key, (frame, why) in page.runtime_predictions.items():
        lines += [f"## Predicted latency on {key}", ""]
        if frame.empty:
            lines += [f"No prediction on {key}: {why}", ""]
            continue
        summary = prediction_summary(frame)
        ours, first = summary.iloc[0], frame.iloc[0]
        lines += [
            (
                f"`cnnbench calibrate --backend {key.rsplit('-', 1)[-1]}` ran the same {int(first['networks'])} "
                f"synthetic networks on the runtime, between this run's rows (calibrated {first['calibrated_at']}), "
                "and read off the runtime's own profile which ops keep a node and which nodes it adds (its fusion "
                f"rules; node counts within {float(first['node_error_pct']):.0f}% median). A model's latency is "
                f"{float(first['node_ms']) * 1e3:.1f} µs per predicted node, plus per op kind its arithmetic and "
                "its MAC bytes at fitted rates, plus a call (median error on the networks, each left out of its "
                f"own fit, {float(first['network_error_pct']):.1f}%; `{ResultsFolder().cost_model(key)}`). No zoo "
                "model is in the fit; `docs/costmodel.md` says how it is built and where it misses."
            ),
            "",
            *_summary_lines(summary),
        ]
        if ours["mape"] > RUNTIME_MAX_ERROR_PCT:
            lines += [
                f"Its median error, {ours['mape']:.1f}%, is over the {RUNTIME_MAX_ERROR_PCT:.0f}% this page holds a "
                f"prediction to: the per-model rows are left to `{ResultsFolder().prediction(key)}`.",
                "",
            ]
            continue
        table = frame.assign(
            interval=interval_text(frame["low_ms"], frame["high_ms"]), error=frame["latency_error_pct"]
        ).sort_values("measured_ms")[
            ["model", "measured_ms", "latency_ms", "interval", "error", "flops_only_ms", "mac_only_ms"]
        ]
        lines += _chart_lines(key, chart_paths)
        lines += [
            markdown(
                _numeric(table)
                .round(2)
                .rename(
                    columns={
                        "measured_ms": "measured (ms)",
                        "latency_ms": "predicted (ms)",
                        "interval": f"{INTERVAL_PERCENT}% interval (ms)",
                        "error": "error (%)",
                        "flops_only_ms": "FLOPs-only (ms)",
                        "mac_only_ms": "MAC-only (ms)",
                    }
                )
            ),
            "",
        ]
    return lines


def _summary_lines(summary: pd.DataFrame) -> list[str]:
    """The held-out errors of the cost model and its two baselines, as a table."""
    shown = summary.rename(
        columns={
            "predictor": "predictor",
            "mape": "median |error| (%)",
            "within_10": "within ±10% (% of models)",
            "within_20": "within ±20% (% of models)",
            "models": "models",
        }
    )
    return [markdown(shown.round(1)), ""]


def _chart_lines(key: str, chart_paths: dict[str, Path]) -> list[str]:
    """The predicted-against-measured chart of ``key`` with its caption (none where it was not drawn)."""
    name = ResultsFolder().prediction_chart(key).name
    if name not in chart_paths:
        return []
    return [
        f"![{name}]({name}.png)",
        "",
        f"*Predicted against measured latency on {key}; the band is ±20%.* ([svg]({name}.svg))",
        "",
    ]


def _listed(frame: pd.DataFrame, column: str) -> str:
    """The whole numbers of ``frame[column]``, sorted and joined: ``1, 2, 4`` (``none`` for none)."""
    values = sorted({int(v) for v in pd.to_numeric(frame.get(column, pd.Series(dtype=float))).dropna()})
    return ", ".join(map(str, values)) or "none"


def _numeric(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its sweep columns (batch, threads, latency, throughput, speed-up) as numbers."""
    columns = ["batch", "threads", "latency_ms_median", "throughput_img_s", "speedup", "efficiency"]
    return frame.assign(**{c: pd.to_numeric(frame[c]) for c in columns if c in frame})


def _rounded(frame: pd.DataFrame) -> pd.DataFrame:
    """A table as the page shows it: every numeric column to 2 decimals (``CV`` and ``load (s)`` to 3)."""
    out = frame.copy()
    for column in out.columns:
        values = pd.to_numeric(out[column], errors="coerce")
        if values.notna().any() and column not in ("model", "status"):
            out[column] = values.round(3 if column in ("CV", "load (s)") else 2)
    return out
