"""The report's latency tables: one per target, the report's own and each deployment runtime's
(``results/latency-<target>.csv``), their exports prepared ahead, and the rows far slower than expected measured
once more (:mod:`.recheck`).

``pick`` reads and completes the same tables through :func:`latency_table`, by the same reuse rule.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import pandas as pd

import zoo
from cnnbench import allocator
from cnnbench.errors import CnnbenchError
from cnnbench.measure import isolated
from cnnbench.measure.bench import BENCH_TEXT_COLUMNS, as_frame, iter_bench
from cnnbench.measure.roofline import Roofline, roofline_bound_ms
from cnnbench.provenance import Stamp
from cnnbench.report import recheck
from cnnbench.report.config import ReportConfig, deployment_targets
from cnnbench.report.tables import Guard, Progress, measured_by, stamp_now, this_machine
from cnnbench.results import table_code
from cnnbench.runtimes import DEPLOY_MAX_FLOPS, int8, session
from cnnbench.store import ResultTable, refresh_sidecar, write_sidecar
from cnnbench.target import INT8, RUNTIMES, Target, runtime_version

__all__ = [
    "ChildBytes",
    "HEAVY_PARAMS",
    "PREPARATION_BYTES",
    "PREPARATION_BUDGET_BYTES",
    "preparation_bytes",
    "latency_table",
    "recheck_latency",
    "deployed_models",
    "heavy_models",
    "prepare_deployments",
]


def _latency_rows(
    config: ReportConfig, names: list[str], target: Target, probe_ms: float | None
) -> tuple[ResultTable, dict[str, Stamp]]:
    """``target``'s latency table and the stamp each model's row must carry to be reused (at today's speed
    ``probe_ms``)."""
    table = ResultTable(config.results.latency(target.key), key=["model", "batch"], text_columns=BENCH_TEXT_COLUMNS)
    settings: dict[str, object] = {
        "timing": asdict(config.timing),
        "batch": config.batch,
        "resolution": config.resolution,
    }
    if target.dtype == INT8:
        settings.update({"calibration": str(config.calibration), "calibration_images": int8.LATENCY_CALIBRATION_IMAGES})
    code = "runtime latency" if target.runtime else "latency"
    return table, {name: stamp_now(config, target.key, settings, table_code(code, name), probe_ms) for name in names}


def _measure_row(
    config: ReportConfig, name: str, target: Target, roof: Roofline | None, guard: Guard
) -> dict[str, object]:
    """``name``'s latency row on ``target`` at ``config.batch``, measured now (again, while ``guard`` finds it
    disturbed)."""
    (result,) = iter_bench(
        [name],
        target,
        [config.batch],
        config.resolution,
        config.timing,
        roof,
        calibration=config.calibration,
        quieting=guard.quieting,
        probe=guard.probe,
    )
    return result


def latency_table(
    config: ReportConfig,
    names: list[str],
    roof: Roofline | None,
    progress: Progress[str],
    target: Target | None = None,
    between: Callable[[], None] | None = None,
    guard: Guard | None = None,
) -> pd.DataFrame:
    """results/latency-<target>.csv: one row per model at ``config.batch``; failed models keep their reason.

    ``target`` defaults to the report's own; a deployment target (``config.deployments``) gets a table of its own.
    ``between`` runs after each row measured (the cost model's calibration interleaves its networks there).
    ``guard`` probes the machine's speed and measures a disturbed row again (default: a new one). A stored row is
    reused when its stamp matches, its probe agrees with today's and it is not disturbed.
    Returns this machine's rows, each bounded with this machine's roofline (the bound is derived, not measured; no
    bound without a roofline, as for int8).
    """
    target = target or config.target
    guard = guard or Guard.of(config)
    table, stamps = _latency_rows(config, names, target, None)
    rows_before, measured = len(table.find()), 0
    for name in progress(names, f"latency {target.backend} {target.dtype}"):
        stamp = replace(stamps[name], probe_ms=guard.probe.ms())
        row = table.reusable(stamp, model=name, batch=config.batch)
        if not config.force and row is not None and row.get("status") == "ok":
            continue
        result = _measure_row(config, name, target, roof, guard)
        table.put({**result, "family": zoo.model_info(name).family, **stamp.columns(target.torch_device)})
        measured += 1
        if between is not None:
            between()
    if config.whole_zoo and not config.quick:  # a model no longer in the zoo, or beyond the deployment limit
        batches = {str(row["batch"]) for row in table.find()}  # every batch measured stays
        table.keep_only([{"model": n, "batch": b} for n in names for b in batches])
    sidecar = config.results.sidecar(table.path)
    if measured or len(table.find()) != rows_before or not sidecar.exists():  # `pick` reads without a roofline
        write_sidecar(
            table.path,
            table.frame(),
            {
                "target": target.key,
                "target_settings": asdict(target),
                "runtime_version": runtime_version(target.backend),
                "timing": asdict(config.timing),
                "roofline": asdict(roof) if roof else None,
            },
        )
    frame = as_frame(table.frame(measured_by(this_machine(config))).to_dict("records"))
    ok = frame["status"] == "ok"
    if ok.any() and roof is not None:
        pairs = zip(frame.loc[ok, "flops"], frame.loc[ok, "mac_bytes"], strict=True)
        frame.loc[ok, "roofline_bound_ms"] = [roofline_bound_ms(int(f), int(b), roof) for f, b in pairs]
        frame.loc[ok, "roofline_fraction"] = frame.loc[ok, "roofline_bound_ms"] / pd.to_numeric(
            frame.loc[ok, "latency_ms_median"]
        )
    return frame


def recheck_latency(
    config: ReportConfig,
    frame: pd.DataFrame,
    roof: Roofline | None,
    target: Target,
    guard: Guard,
    predicted: pd.Series | None = None,
) -> int:
    """Measure once more every row of ``frame`` (this machine's rows of ``target``'s latency table) that is far
    slower than expected (:func:`cnnbench.report.recheck.implausible`), and record it in ``rechecked``. Returns the
    number of rows measured again."""
    found = (
        recheck.implausible(frame[pd.to_numeric(frame["batch"]) == config.batch], predicted) if not frame.empty else []
    )
    if not found:
        return 0
    table, stamps = _latency_rows(config, [f.model for f in found], target, None)
    for first in found:
        guard.quieting.say(
            f"{first.model} on {target.key}: {first.measured_ms:.4g} ms is {first.factor:.1f}× "
            f"{first.source}'s {first.expected_ms:.4g} ms; measuring it again"
        )
        stamp = replace(stamps[first.model], probe_ms=guard.probe.ms())
        result = _measure_row(config, first.model, target, roof, guard)
        again = float(result["latency_ms_median"]) if result.get("status") == "ok" else float("nan")
        table.put(
            {
                **result,
                "family": zoo.model_info(first.model).family,
                **stamp.columns(target.torch_device),
                "rechecked": recheck.recheck_note(first, again),
            }
        )
    refresh_sidecar(table.path, table.frame())
    return len(found)


# --- the deployment runtimes' tables ---------------------------------------------------------------------------


def deployed_models(config: ReportConfig, names: list[str], zoo_frame: pd.DataFrame) -> list[str]:
    """The models of the deployment tables: every one of ``names`` within ``config.deploy_max_flops``
    (multiply-adds at the model's own resolution, from the zoo table), or all of them without a limit."""
    if config.deploy_max_flops is None or zoo_frame.empty:
        return list(names)
    flops = zoo_frame.set_index("model")["flops"]
    return [n for n in names if n not in flops or float(flops[n]) <= config.deploy_max_flops]


# Above this many parameters a model's export holds over 1.5 GB (torch's exporter keeps its weights four times):
# AlexNet (61 M) is light in multiply-adds but not here.
HEAVY_PARAMS = 40_000_000


def heavy_models(zoo_frame: pd.DataFrame) -> frozenset[str]:
    """The models of the zoo table whose exports are the largest: above
    :data:`~cnnbench.runtimes.DEPLOY_MAX_FLOPS` multiply-adds or :data:`HEAVY_PARAMS` parameters."""
    if zoo_frame.empty:
        return frozenset()
    heavy = (pd.to_numeric(zoo_frame["flops"]) > DEPLOY_MAX_FLOPS) | (pd.to_numeric(zoo_frame["params"]) > HEAVY_PARAMS)
    return frozenset(zoo_frame.loc[heavy, "model"])


# The preparation (exports and INT8 quantization, before any timing) keeps the whole job within this much memory:
# this process, the forkserver and the children, their proportional set sizes summed.
PREPARATION_BUDGET_BYTES = 4 * 10**9


@dataclass(frozen=True)
class ChildBytes:
    """What one preparation child adds to the budget's sum, for a light model and for a heavy one
    (:func:`heavy_models`)."""

    light: int
    heavy: int


# What one preparation child adds to that sum, by the file it makes and its dtype (the file kinds of
# cnnbench.target.RUNTIMES): the increase of the process tree's summed proportional set size while the child ran,
# beside a parent and forkserver of 1.0-1.2 GB, measured on 2 cores:
# - ONNX, export: VGG-19-BN 2.32 GB (torch's exporter holds its 575 MB of weights four times: the model's, its
#   ModelProto's, the serialized bytes and Python's copy), EfficientNet-B7 1.44, ResNet-152 1.22; light models
#   0.54 at most (ResNet-50);
# - ONNX, INT8 quantization: VGG-19-BN 1.47 GB, EfficientNet-B7 1.21, ResNet-152 0.77; light models 0.52 at most
#   (EfficientNet-B4), MobileNetV2 0.11;
# - ExecuTorch, lowering (its import included: the forkserver does not preload it): fp32 AlexNet 0.99 GB, ResNet-50
#   0.92, EfficientNet-B4 at 380 px 0.61, MobileNetV2 0.34; int8 (PT2E and lowering) AlexNet 1.25, ResNet-50 0.57,
#   EfficientNet-B4 0.78, MobileNetV2 0.42;
# - ncnn, tracing and pnnx's conversion (pnnx a process of its own): AlexNet 0.92 GB, EfficientNet-B4 at 380 px
#   1.18, ResNet-50 0.55, MobileNetV2 0.36.
# The phone runtimes' heavy figures beyond AlexNet (the VGGs, 2.3 times its weights, deployed only with
# --deploy-max-gflops all) were not measured: they count as the heaviest ONNX export, so that one runs with at most a
# light child beside it.
PREPARATION_BYTES: dict[tuple[str, str], ChildBytes] = {
    ("onnx", "fp32"): ChildBytes(light=600_000_000, heavy=2_400_000_000),
    ("onnx", INT8): ChildBytes(light=600_000_000, heavy=1_550_000_000),
    ("pte", "fp32"): ChildBytes(light=1_000_000_000, heavy=2_400_000_000),
    ("pte", INT8): ChildBytes(light=1_000_000_000, heavy=2_400_000_000),
    ("ncnn", "fp32"): ChildBytes(light=1_250_000_000, heavy=2_400_000_000),
}


def preparation_bytes(file: str, dtype: str, heavy: bool) -> int:
    """What the child making a ``file`` (``"onnx"``, ``"pte"``, ``"ncnn"``) of ``dtype`` adds to the preparation's
    memory (:data:`PREPARATION_BYTES`); a kind not measured counts as the largest heavy one, so it runs alone."""
    sizes = PREPARATION_BYTES.get((file, dtype))
    if sizes is None:
        return max(size.heavy for size in PREPARATION_BYTES.values())
    return sizes.heavy if heavy else sizes.light


def prepare_deployments(
    config: ReportConfig,
    names: list[str],
    progress: Progress[str],
    guard: Guard | None = None,
    heavy: frozenset[str] = frozenset(),
) -> int:
    """Make every file the deployment rows will load (ONNX exports and their INT8 quantizations, ExecuTorch
    lowerings, ncnn conversions), several children at once, before any row is timed: the files land in the cache,
    and each row then loads its file instead of making it on one core. Returns the number of files made or found; a
    file that fails here is left to its row, which records the reason.

    A child starts while the cores and :data:`PREPARATION_BUDGET_BYTES` allow
    (:func:`~cnnbench.measure.isolated.map_isolated`, each child sized by :func:`preparation_bytes`), in this order:
    the ``heavy`` models' fp32 files (:func:`heavy_models`), their INT8 files, then the light models' the same, the
    largest child first within each group, and an ONNX quantization never before its model's export (ExecuTorch's
    INT8 lowers from the model). So a heavy export runs alone, and a heavy quantization, which spends most of its
    time in one Python thread, runs beside the light models' work: on 2 cores two heavy ones would not fit, and the
    second core would otherwise idle.

    This process first gives the kernel back what its own stages freed (counting, drawing the cost model's
    networks: 0.4 GB on the zoo), so that it is not held beside the largest export."""
    allocator.give_back_freed_memory()
    jobs: dict[tuple[str, str, str], tuple[object, ...]] = {}  # (model, file, dtype): runtimes of one file share
    probe_ms = (guard or Guard.of(config)).probe.ms()
    for target in deployment_targets(config):
        table, stamps = _latency_rows(config, names, target, probe_ms)
        for name in names:
            row = table.reusable(stamps[name], model=name, batch=config.batch)
            if config.force or row is None or row.get("status") != "ok":
                side = config.resolution or zoo.model_info(name).resolution
                job = (name, RUNTIMES[target.backend].file, target.dtype)
                jobs.setdefault(job, (name, target, config.batch, side, config.calibration))

    def rank(job: tuple[str, str, str]) -> tuple[bool, bool, int]:  # heavy fp32, heavy INT8, light fp32, light INT8
        name, file, dtype = job
        return name not in heavy, dtype == INT8, -preparation_bytes(file, dtype, name in heavy)

    order = sorted(jobs, key=rank)  # stable: the zoo's order among children of one size
    index = {job: i for i, job in enumerate(order)}
    sizes = [preparation_bytes(file, dtype, name in heavy) for name, file, dtype in order]
    # ONNX INT8 quantizes the fp32 ONNX file; the other runtimes' INT8 starts from the model
    after = [
        index.get((name, file, "fp32")) if dtype == INT8 and file == "onnx" else None for name, file, dtype in order
    ]
    plan = isolated.CallPlan(tuple(sizes), PREPARATION_BUDGET_BYTES - isolated.held_bytes(), tuple(after))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    argsets = [jobs[job] for job in order]
    labels = [f"{name} {file} {dtype}" for name, file, dtype in order]
    results = isolated.map_isolated(session.deployable, argsets, min(4, cores), progress, "prepare", plan, labels)
    return sum(not isinstance(r, CnnbenchError) for r in results)
