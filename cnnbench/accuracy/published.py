"""Accuracy printed elsewhere: ImageNet top-1/top-5 as each paper prints it and as the reference implementation's
weights score, one row each, never merged."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

import zoo
from cnnbench.catalog import resolve_patterns

__all__ = ["PUBLISHED_COLUMNS", "published_accuracy"]

PUBLISHED_COLUMNS = ["model", "origin", "top1", "top5", "resolution", "source", "reference"]


def published_accuracy(patterns: str | Iterable[str] = "*") -> pd.DataFrame:
    """ImageNet top-1/top-5 (%) per model and origin: ``"paper"`` (``ModelInfo.published``) and, where the model has
    a reference implementation, ``"reference"`` (its own weights' figures, ``ModelInfo.reference_figures``).

    The two are rows apart, with their source, so a chart has to pick one. ``resolution`` is the input side the
    figure was measured at (the model's default unless the source says otherwise). Empty where no figure exists.
    """
    rows = []
    for name in resolve_patterns([patterns] if isinstance(patterns, str) else patterns):
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
                }
            )
    return pd.DataFrame(rows, columns=PUBLISHED_COLUMNS)
