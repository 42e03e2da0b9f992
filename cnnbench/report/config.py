"""What a report measures, and the checks every input passes before the first model is measured."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from cnnbench.benchmark_json import read_benchmark_json
from cnnbench.catalog import resolve_patterns
from cnnbench.errors import CnnbenchError
from cnnbench.measure.latency import QUICK_TIMING, REPORT_TIMING, Timing
from cnnbench.measure.profiling import profile
from cnnbench.results import DEFAULT_FOLDER, ResultsFolder
from cnnbench.runtimes import DEPLOY_MAX_FLOPS, DEPLOYMENTS
from cnnbench.store import check_writable
from cnnbench.target import Target, resolve_target

__all__ = ["QUICK_MODELS", "BREAKDOWN_MODELS", "DEPLOYMENTS", "ReportConfig", "check_config", "deployment_targets"]

QUICK_MODELS = ("efficientnet_b0", "mobilenet_v3_small", "shufflenet_v2_x0_5", "resnet18")
# One representative per family for the per-kind breakdown chart.
BREAKDOWN_MODELS = (
    "efficientnet_b0",
    "mobilenet_v1_x1_0",
    "mobilenet_v2",
    "mobilenet_v3_large",
    "shufflenet_v1_g3_x1_0",
    "shufflenet_v2_x1_0",
    "resnet50",
    "googlenet",
    "squeezenet1_1",
    "alexnet",
    "vgg16",
)


@dataclass(frozen=True)
class ReportConfig:
    out: Path = DEFAULT_FOLDER
    target: Target = field(default_factory=Target)
    models: tuple[str, ...] = ("*",)  # zoo names or wildcards
    batch: int = 1
    resolution: int | None = None  # input side of latency and breakdown; None: each model's own
    timing: Timing = REPORT_TIMING
    quick: bool = False  # a few models, short timing (tests, a first look); never reused by a full run
    force: bool = False  # re-measure rows that could be reused
    benchmark_files: tuple[Path, ...] = ()  # pytest-benchmark JSON files from benchmarks/ (other targets)
    breakdown_repeats: int = 5
    guideline_rounds: int | None = None  # interleaved rounds per guideline table; None: the guidelines' default
    deployments: tuple[str, ...] = DEPLOYMENTS  # BACKEND:DTYPE latency tables besides the target's own
    calibration: Path | None = None  # int8: an image folder to calibrate on; None: the digits
    deploy_max_flops: float | None = DEPLOY_MAX_FLOPS  # deploy models of at most this many multiply-adds; None: all
    baseline: Path | None = None  # an earlier results folder: the README compares this run's latency with it
    sweeps: bool = True  # the batch and threads sweeps of one model per family
    predict: bool = True  # the cost model's predictions beside the measured latency (eager targets)
    retries: int = 2  # a disturbed row is measured again up to this many times, once the machine is quiet

    @classmethod
    def quick_config(cls, out: Path, **changes: object) -> ReportConfig:
        return replace(
            cls(out=out, models=QUICK_MODELS, timing=QUICK_TIMING, quick=True, breakdown_repeats=2), **changes
        )  # type: ignore[arg-type]

    @property
    def whole_zoo(self) -> bool:
        return tuple(self.models) == ("*",)

    @property
    def results(self) -> ResultsFolder:
        """The files of ``out``."""
        return ResultsFolder(self.out)


def deployment_targets(config: ReportConfig) -> list[Target]:
    """The targets of ``config.deployments``: the report's device and threads, with each BACKEND:DTYPE."""
    targets = []
    for spec in config.deployments:
        backend, sep, dtype = spec.partition(":")
        if not sep or not backend or not dtype:
            raise CnnbenchError(f"a deployment is BACKEND:DTYPE such as onnxruntime:int8, got {spec!r}")
        deployed = replace(config.target, backend=backend, dtype=dtype, channels_last=False, fuse_bn=False)
        if deployed != config.target:
            targets.append(resolve_target(deployed)[0])
    return list(dict.fromkeys(targets))


def check_config(config: ReportConfig) -> tuple[ReportConfig, list[str], list[pd.DataFrame]]:
    """Every input checked before the first model is measured: the target, the models, the numbers, the output
    folder and every ``--from-benchmark`` file. Returns the config with the target resolved, the model names and the
    parsed benchmark rows; raises :class:`CnnbenchError` with one line for the first bad input."""
    target, _ = resolve_target(config.target)
    if config.batch < 1:
        raise CnnbenchError(f"batch must be at least 1, got {config.batch}")
    if config.resolution is not None and config.resolution < 1:
        raise CnnbenchError(f"resolution must be a positive number of pixels, got {config.resolution}")
    timing = config.timing
    if timing.min_time_s < 0 or timing.min_iters < 1 or timing.window < 1 or timing.max_warmup_s < 0:
        raise CnnbenchError(f"timing must have min_time_s ≥ 0, min_iters ≥ 1, window ≥ 1; got {timing}")
    if config.breakdown_repeats < 1:
        raise CnnbenchError(f"breakdown_repeats must be at least 1, got {config.breakdown_repeats}")
    if config.deploy_max_flops is not None and not config.deploy_max_flops > 0:
        raise CnnbenchError(f"the deployment size limit must be above 0 multiply-adds, got {config.deploy_max_flops}")
    if config.retries < 0:
        raise CnnbenchError(f"retries must be at least 0, got {config.retries}")
    if config.guideline_rounds is not None and config.guideline_rounds < 1:
        raise CnnbenchError(f"guideline rounds must be at least 1, got {config.guideline_rounds}")
    config = replace(config, target=target)
    deployment_targets(config)  # a bad BACKEND:DTYPE or a runtime not installed fails here
    if config.calibration is not None:
        from cnnbench.images import scan_image_folder

        scan_image_folder(config.calibration)
    if config.baseline is not None and not ResultsFolder(Path(config.baseline)).latency_tables():
        raise CnnbenchError(
            f"--baseline {config.baseline} holds no latency-*.csv table; give a results folder that "
            "`cnnbench report --out` wrote"
        )
    names = resolve_patterns(config.models)
    benchmarks = [read_benchmark_json(p) for p in config.benchmark_files]
    check_writable(config.out, "--out")
    if config.resolution is not None:  # an impossible input side fails here, not after the zoo
        for name in names:
            profile(name, resolution=config.resolution, training_memory=False)
    return replace(config, target=target), names, benchmarks
