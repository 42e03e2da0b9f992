"""Accuracy where models are deployed: a model trained on the digits, exported to ONNX and quantized to INT8, scored
on the same held-out images as in eager PyTorch.

For each model, :func:`deployed_accuracy` trains once (``cnnbench train``'s recipe, the budget's first seed), then
scores the held-out split (360 images) on each deployment target: fp32 ONNX Runtime must agree with eager, and
INT8 (static, per-channel QDQ, calibrated on :data:`cnnbench.runtimes.int8.CALIBRATION_IMAGES` training images,
never held-out ones) loses what quantization costs. ``agree_<target>`` is the share (%) of held-out images whose
top-1 class on that target equals eager fp32's.
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
from cnnbench.images import digits_split
from cnnbench.provenance import Stamp
from cnnbench.runtimes import export, int8, session
from cnnbench.runtimes.int8 import CALIBRATION_IMAGES, Calibration
from cnnbench.store import ResultTable, code_fingerprint
from cnnbench.target import Target, resolve_target

__all__ = ["DEPLOYED_TARGETS", "deployed_accuracy", "runtime_logits", "target_label"]

# What each trained model is scored on besides eager fp32.
DEPLOYED_TARGETS = (("onnxruntime", "fp32"), ("onnxruntime", "int8"), ("openvino", "int8"))


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


def _stamp(name: str, budget: TrainingBudget, threads: int | None) -> Stamp:
    modules = [sys.modules[__name__], train_module, metrics, images_module, export, int8, session, models]
    code = code_fingerprint(name, modules)
    settings = {"budget": budget, "targets": DEPLOYED_TARGETS, "calibration": CALIBRATION_IMAGES}
    return Stamp.here(f"cpu-t{threads or torch.get_num_threads()}-deployed", settings, code, device=torch.device("cpu"))


def _row(name: str, budget: TrainingBudget, threads: int | None) -> dict[str, object]:
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
    for backend, dtype in DEPLOYED_TARGETS:
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
    out: Path | None = None,
    force: bool = False,
    each: Callable[[Sequence[str]], Iterable[str]] = lambda names: names,
) -> pd.DataFrame:
    """One row per model: held-out top-1 (%) in eager fp32, on ONNX Runtime fp32 and INT8 and on OpenVINO INT8,
    each target's top-1 agreement with eager, and fp32's largest logit difference relative to the logits' scale.

    With ``out`` the rows go to that results table as each model finishes; a stored row is reused when its stamp
    (machine, torch, settings, code) matches, unless ``force``. A model that fails keeps its reason in ``error``.
    """
    names = resolve_patterns(model_names)
    table = ResultTable(out, key=["model", "epochs", "seed", "recipe"]) if out is not None else None
    rows = []
    for name in each(names):
        stamp = _stamp(name, budget, threads)
        key = {"model": name, "epochs": budget.epochs, "seed": budget.seeds[0], "recipe": budget.recipe.id}
        previous = table.reusable(stamp, **key) if table is not None and not force else None
        if previous is not None and not previous.get("error"):
            rows.append(previous)
            continue
        try:
            row = {**_row(name, budget, threads), "error": ""}
        except Exception as err:  # noqa: BLE001 - one model's failure is its row's reason; the sweep goes on
            row = {**key, "error": f"{type(err).__name__}: {' '.join(str(err).split())[:200]}"}
        row.update(stamp.columns(torch.device("cpu")))
        if table is not None:
            table.put(row)
        rows.append(row)
    return pd.DataFrame(rows)
