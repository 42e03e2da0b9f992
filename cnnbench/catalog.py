"""The zoo as a table: one row per registered model, with its metadata and its counted parameters."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd
import torch

import zoo
from cnnbench.errors import NoMatchError

__all__ = ["catalog", "count_params", "resolve_patterns", "resolve_specs", "versus_published"]


def count_params(model: torch.nn.Module) -> int:
    """Number of parameters (every tensor in ``model.parameters()``; buffers such as BN statistics excluded)."""
    return sum(p.numel() for p in model.parameters())


def resolve_patterns(patterns: str | Iterable[str]) -> list[str]:
    """Registered names matching ``patterns`` (one shell wildcard or several), in natural order, without duplicates.

    A pattern that matches nothing raises: an exact name gets the closest names, a wildcard says so.
    """
    names: list[str] = []
    for pattern in [patterns] if isinstance(patterns, str) else patterns:
        matched = zoo.list_models(pattern)
        if not matched:
            if not any(ch in pattern for ch in "*?["):
                zoo.model_info(pattern)  # raises UnknownModelError naming the closest names
            raise NoMatchError(f"no model matches {pattern!r}; `cnnbench list` shows every name")
        names.extend(n for n in matched if n not in names)
    return names


def resolve_specs(specs: Iterable[str]) -> list[str]:
    """Model specs as the harness takes them: zoo names and wildcards resolve against the registry (see
    :func:`resolve_patterns`); ``timm:NAME`` and ``torchvision:NAME`` pass through as they are."""
    names: list[str] = []
    for spec in specs:
        names.extend([spec] if spec.startswith(("timm:", "torchvision:")) else resolve_patterns(spec))
    return names


def catalog(patterns: str | Iterable[str] = "*") -> pd.DataFrame:
    """One row per matching model: name, family, default resolution, counted params, published figures.

    Parameters are counted on a model built on the meta device (no memory is allocated, no weights initialised
    for real). ``published_flops`` are multiply-adds as the paper prints them.
    """
    names = resolve_patterns(patterns)
    rows = []
    for name in names:
        info = zoo.model_info(name)
        with torch.device("meta"):
            params = count_params(zoo.create_model(name))
        rows.append(
            {
                "name": name,
                "family": info.family,
                "resolution": info.resolution,
                "params": params,
                "published_params": info.published.params,
                "published_flops": info.published.flops,
                "published_top1": info.published.top1,
                "published_source": info.published.source,
                "reference": info.reference,
            }
        )
    return pd.DataFrame(rows)


def versus_published(patterns: str | Iterable[str] = "*") -> pd.DataFrame:
    """Counted params and FLOPs (multiply-adds, at the paper's resolution) beside the paper's printed figures.

    ``*_dev_pct`` is (counted − published) / published in percent; empty where the paper prints nothing.
    """
    # the counting engine imports the registry; keep catalog importable alone
    from cnnbench.measure.profiling import profile

    names = resolve_patterns(patterns)
    rows = []
    for name in names:
        info = zoo.model_info(name)
        totals = profile(name, training_memory=False).totals
        published = info.published
        rows.append(
            {
                "name": name,
                "resolution": info.resolution,
                "params": totals.params,
                "published_params": published.params,
                "params_dev_pct": _deviation(totals.params, published.params),
                "flops": totals.flops,
                "published_flops": published.flops,
                "flops_dev_pct": _deviation(totals.flops, published.flops),
                "published_source": published.source,
            }
        )
    return pd.DataFrame(rows)


def _deviation(counted: float, published: float | None) -> float | None:
    return None if not published else round(100.0 * (counted - published) / published, 1)
