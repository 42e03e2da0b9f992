"""Accuracy where models are deployed: a model trained on the digits, exported for a deployment runtime (and for
INT8 quantized), scored on the same held-out images as in eager PyTorch.

For each model, :func:`deployed_accuracy` trains once (``cnnbench train``'s recipe, the budget's first seed), then
scores the held-out split (360 images) on each target, a runtime of :data:`cnnbench.target.RUNTIMES` and a dtype
it takes (by default :data:`DEPLOYED_TARGETS`): fp32 on a runtime must agree with eager, and INT8 (static,
per-channel: ONNX Runtime's QDQ or ExecuTorch's PT2E, calibrated on :data:`cnnbench.runtimes.int8.CALIBRATION_IMAGES`
training images, never held-out ones) loses what quantization costs. ``agree_<backend>_<dtype>`` is the share (%)
of held-out images whose top-1 class on that target equals eager fp32's.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import pandas as pd
import torch
from torch import Tensor, nn

from cnnbench import images as images_module
from cnnbench import models
from cnnbench.accuracy import metrics
from cnnbench.accuracy import train as train_module
from cnnbench.accuracy.train import TrainingBudget, fit, prepare_digits, training_resolution
from cnnbench.catalog import resolve_patterns
from cnnbench.errors import CnnbenchError
from cnnbench.images import digits_split
from cnnbench.provenance import Stamp
from cnnbench.runtimes import executorch, export, int8, ncnn, session
from cnnbench.runtimes.int8 import CALIBRATION_IMAGES, Calibration
from cnnbench.store import ResultTable, code_fingerprint
from cnnbench.target import INT8, INT8_RUNTIMES, RUNTIMES, Target, resolve_target

__all__ = ["DEPLOYED_TARGETS", "check_targets", "deployed_accuracy", "runtime_logits", "target_label"]

# What each trained model is scored on besides eager fp32, by default: (backend, dtype) pairs.
DEPLOYED_TARGETS: tuple[tuple[str, str], ...] = (("onnxruntime", "fp32"), ("onnxruntime", "int8"), ("openvino", "int8"))


def check_targets(targets: Iterable[tuple[str, str]], threads: int | None = None) -> tuple[tuple[str, str], ...]:
    """``targets`` as a tuple of (backend, dtype) pairs, each a runtime of :data:`~cnnbench.target.RUNTIMES` with a
    dtype it takes, installed here (:func:`~cnnbench.target.resolve_target`); raises :class:`CnnbenchError` naming
    what is allowed otherwise. Called before any model trains."""
    checked = tuple((str(backend), str(dtype)) for backend, dtype in targets)
    if not checked:
        raise CnnbenchError("no deployment target to score on; name at least one, e.g. executorch:int8")
    for backend, dtype in checked:
        runtime = RUNTIMES.get(backend)
        if runtime is None:
            raise CnnbenchError(f"unknown runtime {backend!r} in {backend}:{dtype}; use one of {', '.join(RUNTIMES)}")
        if dtype not in runtime.dtypes:
            why = f" ({runtime.no_int8})" if dtype == INT8 and runtime.no_int8 else ""
            also = f"; int8 runs on {', '.join(INT8_RUNTIMES)}" if dtype == INT8 else ""
            takes = " or ".join(runtime.dtypes) + (" only" if len(runtime.dtypes) == 1 else "")
            raise CnnbenchError(f"{backend} takes {takes}, not {dtype}{why}{also}")
        resolve_target(Target(threads=threads, backend=backend, dtype=dtype))  # installed, threads valid
    repeated = sorted({":".join(t) for t in checked if checked.count(t) > 1})
    if repeated:
        raise CnnbenchError(f"name each deployment target once; {', '.join(repeated)} is named twice")
    return checked


def target_label(backend: str, dtype: str) -> str:
    return f"{backend}_{dtype}"


def runtime_logits(
    model: nn.Module, images: Tensor, target: Target, calibration: Calibration | None = None, batch: int = 1
) -> Tensor:
    """Logits of ``model`` on ``images`` (N×3×R×R) run on ``target``'s runtime (exported with its own weights,
    quantized for int8 on ``calibration``). The file takes a fixed ``batch``: the last group is padded, then cut."""
    forward = session.runtime_forward(
        model, target, batch, images.shape[-1], channels=images.shape[1], calibration=calibration
    )
    return forward.predict(images)


def _stamp(name: str, budget: TrainingBudget, threads: int | None, targets: tuple[tuple[str, str], ...]) -> Stamp:
    runtimes = [export, int8, executorch, ncnn, session]
    code = code_fingerprint(name, [sys.modules[__name__], train_module, metrics, images_module, *runtimes, models])
    settings = {"budget": budget, "targets": targets, "calibration": CALIBRATION_IMAGES}
    return Stamp.here(f"cpu-t{threads or torch.get_num_threads()}-deployed", settings, code, device=torch.device("cpu"))


def _row(
    name: str, budget: TrainingBudget, threads: int | None, targets: tuple[tuple[str, str], ...]
) -> dict[str, object]:
    seed = budget.seeds[0]
    resolution = training_resolution(name, budget.resolution, budget.recipe)
    data = digits_split(budget.recipe.test_size, budget.recipe.split_seed)
    trained = fit(name, resolution=resolution, epochs=budget.epochs, seed=seed, recipe=budget.recipe, data=data)
    test = prepare_digits(data.test_images, resolution, budget.recipe)
    calibration = Calibration(
        prepare_digits(data.train_images[:CALIBRATION_IMAGES], resolution, budget.recipe).numpy(),
        f"digits (scikit-learn), {CALIBRATION_IMAGES} training images",
    )
    eager = trained.test_predictions
    labels = data.test_labels
    row: dict[str, object] = {
        "model": name,
        "epochs": budget.epochs,
        "seed": seed,
        "recipe": budget.recipe.id,
        "resolution": resolution,
        "test_images": len(labels),
        "calibration": calibration.source,
        "top1_eager_fp32": round(trained.top1, 2),
    }
    for backend, dtype in targets:
        label = target_label(backend, dtype)
        target, _ = resolve_target(Target(threads=threads, backend=backend, dtype=dtype))
        logits = runtime_logits(trained.model, test, target, calibration)
        row[f"top1_{label}"] = round(100.0 * metrics.topk_hits(logits, labels, ks=(1,))[0] / len(labels), 2)
        row[f"agree_{label}"] = round(100.0 * float((logits.argmax(1) == eager.argmax(1)).float().mean()), 2)
        if dtype == "fp32":  # fp32 on a runtime equals eager up to rounding, on logits of order one (trained)
            row[f"max_rel_diff_{label}"] = float((logits - eager).abs().max() / eager.abs().max())
    return row


def deployed_accuracy(
    model_names: str | Iterable[str],
    budget: TrainingBudget = TrainingBudget(),  # noqa: B008 - frozen, so one shared default is safe
    threads: int | None = None,
    *,
    targets: Iterable[tuple[str, str]] = DEPLOYED_TARGETS,
    out: Path | None = None,
    force: bool = False,
    each: Callable[[Sequence[str]], Iterable[str]] = lambda names: names,
) -> pd.DataFrame:
    """One row per model: held-out top-1 (%) in eager fp32 and on each of ``targets`` ((backend, dtype) pairs,
    checked by :func:`check_targets` before anything trains; by default ONNX Runtime fp32 and INT8 and OpenVINO
    INT8): ``top1_<backend>_<dtype>``, its top-1 agreement with eager (``agree_…``) and, for fp32, the largest logit
    difference relative to the logits' scale (``max_rel_diff_…``).

    With ``out`` the rows go to that results table as each model finishes; a stored row is reused when its stamp
    (machine, torch, settings with the targets, code) matches, unless ``force``. A model that fails keeps its
    reason in ``error``.
    """
    names = resolve_patterns(model_names)
    chosen = check_targets(targets, threads)
    table = ResultTable(out, key=["model", "epochs", "seed", "recipe"]) if out is not None else None
    rows = []
    for name in each(names):
        stamp = _stamp(name, budget, threads, chosen)
        key = {"model": name, "epochs": budget.epochs, "seed": budget.seeds[0], "recipe": budget.recipe.id}
        previous = table.reusable(stamp, **key) if table is not None and not force else None
        if previous is not None and not previous.get("error"):
            rows.append(previous)
            continue
        try:
            row = {**_row(name, budget, threads, chosen), "error": ""}
        except Exception as err:  # noqa: BLE001 - one model's failure is its row's reason; the sweep goes on
            row = {**key, "error": f"{type(err).__name__}: {' '.join(str(err).split())[:200]}"}
        row.update(stamp.columns(torch.device("cpu")))
        if table is not None:
            table.put(row)
        rows.append(row)
    return pd.DataFrame(rows)
