"""The model registry: one decorator, one dict, shell-style wildcards, natural sort.

Every family file registers its models at import time, a single model with :func:`register_model`, a table of
variants with :func:`register_variant` (one call per row); ``zoo/__init__.py`` imports each family explicitly, one line
each, so the registry is complete as soon as ``zoo`` is imported.
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from torch import nn

from ._errors import BadOverrideError, CnnbenchError, UnknownModelError

__all__ = [
    "Paper",
    "Published",
    "ModelInfo",
    "register_model",
    "register_variant",
    "natural_key",
    "create_model",
    "list_models",
    "model_info",
    "model_builder",
    "accepted_overrides",
]


@dataclass(frozen=True)
class Paper:
    """The paper that introduced a family."""

    title: str
    arxiv: str  # arXiv identifier, e.g. "1905.11946"
    year: int


@dataclass(frozen=True)
class Published:
    """Figures as the paper prints them, with the table they were read from.

    ``flops`` are multiply-adds (one fused multiply-add = 1), the convention of every paper in the zoo, in units
    (not millions). ``None`` means the paper gives no figure for this exact model.
    """

    source: str  # e.g. "EfficientNet v5, Table 2"
    top1: float | None = None  # ImageNet top-1 accuracy, %, single crop
    top5: float | None = None
    params: float | None = None  # number of parameters, as printed (rounded by the paper)
    flops: float | None = None  # multiply-adds, as printed
    resolution: int | None = None  # input side the figures were measured at, when it is not the model's default


@dataclass(frozen=True)
class ModelInfo:
    """Everything the registry knows about a model besides how to build it."""

    name: str
    family: str
    paper: Paper
    resolution: int  # default (square) input resolution, pixels
    published: Published
    reference: str | None = None  # the reference implementation, "torchvision:NAME" or "timm:NAME"
    # The reference implementation's own figures (its weights' table), kept apart from the paper's: never mix them.
    reference_figures: Published | None = None
    variant: dict[str, Any] = field(default_factory=dict)  # the scaling knobs that set this member apart


ModelBuilder = Callable[..., nn.Module]
_B = TypeVar("_B", bound=ModelBuilder)


@dataclass(frozen=True)
class _Entry:
    info: ModelInfo
    builder: ModelBuilder


_REGISTRY: dict[str, _Entry] = {}


def register_model(info: ModelInfo) -> Callable[[_B], _B]:
    """Decorator: register ``builder`` under ``info.name``. A name registered twice is a programming error."""

    def decorate(builder: _B) -> _B:
        if info.name in _REGISTRY:
            raise ValueError(f"model {info.name!r} is registered twice")
        _REGISTRY[info.name] = _Entry(info, builder)
        return builder

    return decorate


def register_variant(
    name: str,
    build: Callable[..., nn.Module],
    spec: Any,
    *,
    family: str,
    paper: Paper,
    published: Published,
    resolution: int = 224,
    reference: str | None = None,
    reference_figures: Published | None = None,
    variant: Mapping[str, Any] | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> ModelBuilder:
    """Register one member of a family: ``build`` applied to its ``spec``, under ``name``, with its metadata.

    ``build`` is a plain function of the family's file whose first parameter takes ``spec`` (the member's row of
    the family's table: a width, a depth, a spec object) and whose other parameters, each with a default, are the
    overrides that ``create_model`` accepts. ``defaults`` replaces the defaults of the parameters it names, for
    members whose defaults differ (EfficientNet's dropout, say). The registered builder is named ``name``; its
    signature is ``build``'s without the first parameter and with those defaults, and ``__wrapped__`` points at
    ``build``, so ``inspect.unwrap`` finds the family's file (``cnnbench.store.code_fingerprint`` keys a model's
    results by it). The other keywords are :class:`ModelInfo`'s fields. Returns the builder.
    """
    params = list(inspect.signature(build).parameters.values())
    if not params or params[0].kind not in (params[0].POSITIONAL_ONLY, params[0].POSITIONAL_OR_KEYWORD):
        raise TypeError(f"{name}: the first parameter of {build.__qualname__} must be positional; it takes the spec")
    overrides = params[1:]
    bad = [p.name for p in overrides if p.default is p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if bad:
        raise TypeError(f"{name}: every override of {build.__qualname__} needs a default; {', '.join(bad)} has none")
    defaults = dict(defaults or {})
    unknown = sorted(set(defaults) - {p.name for p in overrides})
    if unknown:
        raise TypeError(f"{name}: {build.__qualname__} has no override named {', '.join(unknown)}")

    def builder(**kwargs: Any) -> nn.Module:
        return build(spec, **{**defaults, **kwargs})

    builder.__name__ = builder.__qualname__ = name
    builder.__module__ = build.__module__
    builder.__doc__ = build.__doc__
    builder.__wrapped__ = build  # type: ignore[attr-defined]
    builder.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [p.replace(kind=p.KEYWORD_ONLY, default=defaults.get(p.name, p.default)) for p in overrides],
        return_annotation=inspect.signature(build).return_annotation,
    )
    info = ModelInfo(
        name=name,
        family=family,
        paper=paper,
        resolution=resolution,
        published=published,
        reference=reference,
        reference_figures=reference_figures,
        variant=dict(variant or {}),
    )
    register_model(info)(builder)
    return builder


def natural_key(name: str) -> list[Any]:
    """Sort key that puts b2 before b10, and reads width suffixes as decimals: x0_25 < x0_5 < x1_0."""
    parts = re.split(r"(\d+(?:_\d+)?)", name)
    return [(0, float(p.replace("_", "."))) if p[:1].isdigit() else (1, p) for p in parts]


def list_models(pattern: str | Iterable[str] = "*") -> list[str]:
    """Names matching one or more shell-style wildcards (``"efficientnet_b*"``), in natural order.

    Returns an empty list when nothing matches; the CLI turns that into an error, the API leaves the choice to you.
    """
    patterns = [pattern] if isinstance(pattern, str) else list(pattern)
    names = [n for n in _REGISTRY if any(fnmatch.fnmatchcase(n, p) for p in patterns)]
    return sorted(names, key=natural_key)


def _closest(name: str, n: int = 3) -> list[str]:
    names = list(_REGISTRY)
    close = difflib.get_close_matches(name, names, n=n, cutoff=0.6)
    if not close:  # fall back on a shared prefix ("efficientnet" alone, a typo late in the name)
        stem = name.split("_")[0]
        close = [m for m in sorted(names, key=natural_key) if m.startswith(stem)][:n]
    return close


def _entry(name: str) -> _Entry:
    try:
        return _REGISTRY[name]
    except KeyError:
        close = _closest(name)
        hint = f"; closest: {', '.join(close)}" if close else ""
        raise UnknownModelError(f"unknown model {name!r}{hint} (see `cnnbench list` for every name)") from None


def model_info(name: str) -> ModelInfo:
    """The metadata of a registered model."""
    return _entry(name).info


def model_builder(name: str) -> ModelBuilder:
    """The builder function registered under ``name`` (its signature lists the accepted overrides)."""
    return _entry(name).builder


def accepted_overrides(name: str) -> list[str]:
    """Keyword arguments that ``create_model(name, ...)`` accepts."""
    params = inspect.signature(_entry(name).builder).parameters.values()
    return [p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]


def create_model(name: str, **overrides: Any) -> nn.Module:
    """Build a registered model with freshly initialised weights.

    ``overrides`` go to the family's builder (``num_classes``, ``dropout``, ...); one it does not take is refused
    with the list of those it does. Build under ``with torch.device("meta"):`` to count without allocating.
    """
    entry = _entry(name)
    accepted = accepted_overrides(name)
    unknown = sorted(set(overrides) - set(accepted))
    if unknown:
        raise BadOverrideError(
            f"{name} does not take {', '.join(unknown)}; it accepts: {', '.join(accepted) or 'no overrides'}"
        )
    model = entry.builder(**overrides)
    if not isinstance(model, nn.Module):  # a family bug, not a user's
        raise CnnbenchError(f"builder of {name} returned {type(model).__name__}, not an nn.Module")
    return model
