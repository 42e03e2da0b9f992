"""Accuracy printed elsewhere: ImageNet top-1/top-5 as each paper prints it, as the reference implementation's
weights score, and as torchvision's INT8 (quantized) weights of that reference score, one row each, never merged."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

import pandas as pd

import zoo
from cnnbench.catalog import resolve_patterns

__all__ = ["PUBLISHED_COLUMNS", "published_accuracy"]

PUBLISHED_COLUMNS = [
    "model",
    "origin",
    "top1",
    "top5",
    "resolution",
    "source",
    "reference",
    "dtype",
    "quantization",
]

_TORCHVISION = "torchvision:"


def published_accuracy(patterns: str | Iterable[str] = "*", *, int8: bool = True) -> pd.DataFrame:
    """ImageNet top-1/top-5 (%) per model and origin: ``"paper"`` (``ModelInfo.published``), where the model has
    a reference implementation ``"reference"`` (its own weights' figures, ``ModelInfo.reference_figures``), and,
    with ``int8`` and where the reference is ``torchvision:X`` and torchvision has ``quantized_X`` weights,
    ``"reference-int8"`` (the DEFAULT quantized weights' figures, read from torchvision's metadata: no download).

    The origins are rows apart, with their source, so a chart has to pick one; ``dtype`` says which arithmetic the
    figure was scored in (``"fp32"`` or ``"int8"``) and ``quantization`` how the int8 weights were made (empty for
    fp32 rows). An int8 row's float baseline is the weights its ``source`` names, which need not be those of the
    ``"reference"`` row (torchvision's quantized ResNet-50 starts from ``IMAGENET1K_V2``). ``resolution`` is the
    input side the figure was measured at (the model's default unless the source says otherwise; the int8 weights'
    crop). Empty where no figure exists.
    """
    rows: list[dict[str, Any]] = []
    for name in resolve_patterns(patterns):
        info = zoo.model_info(name)
        origins = [("paper", info.published, None), ("reference", info.reference_figures, info.reference)]
        for origin, figures, reference in origins:
            if figures is None:
                continue
            rows.append(
                {
                    "model": name,
                    "origin": origin,
                    "top1": figures.top1,
                    "top5": figures.top5,
                    "resolution": figures.resolution or info.resolution,
                    "source": figures.source,
                    "reference": reference,
                    "dtype": "fp32",
                    "quantization": None,
                }
            )
        if int8 and info.reference and info.reference.startswith(_TORCHVISION):
            row = _torchvision_int8().get(info.reference.removeprefix(_TORCHVISION))
            if row is not None:
                rows.append({"model": name, **row})
    return pd.DataFrame(rows, columns=PUBLISHED_COLUMNS)


@functools.cache
def _torchvision_int8() -> dict[str, dict[str, Any]]:
    """torchvision's quantized classification weights (their DEFAULT member), by float builder name, as rows less
    ``model``. Reads the weight enums' metadata only: nothing is downloaded."""
    import torchvision
    from torchvision.models import get_model_weights, list_models, quantization

    version = torchvision.__version__.split("+")[0]
    rows: dict[str, dict[str, Any]] = {}
    for builder in list_models(module=quantization):
        weights = get_model_weights(builder).DEFAULT
        meta = weights.meta
        metrics = meta["_metrics"]["ImageNet-1K"]
        unquantized = meta["unquantized"]
        baseline = unquantized.meta["_metrics"]["ImageNet-1K"]["acc@1"]
        rows[builder.removeprefix("quantized_")] = {
            "origin": "reference-int8",
            "top1": metrics["acc@1"],
            "top5": metrics["acc@5"],
            "resolution": int(weights.transforms().crop_size[0]),
            "source": f"torchvision {version} {type(weights).__name__}.{weights.name} meta (quantized from "
            f"{type(unquantized).__name__}.{unquantized.name}, fp32 top-1 {baseline:.3f})",
            "reference": f"{_TORCHVISION}{builder}",
            "dtype": "int8",
            "quantization": _quantization(str(meta.get("recipe", "")), str(meta["backend"])),
        }
    return rows


def _quantization(recipe: str, backend: str) -> str:
    """Short description of how the int8 weights were made: the method where the recipe's link names it, and the
    backend (``fbgemm``: x86, ``qnnpack``: ARM) they were quantized for."""
    anchor = recipe.lower()
    method = "QAT" if "#qat" in anchor else "post-training" if "#post-training" in anchor else None
    return f"torchvision quantized weights{f' ({method})' if method else ''}, {backend} backend"
