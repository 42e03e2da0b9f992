"""Resolve what a user names into a model: a zoo name, ``timm:NAME`` or ``torchvision:NAME``, or a module as it is.

Every function that takes ``model: nn.Module | str`` resolves it here (:func:`resolve`), so a name is built, and a
module's default input side read, one way everywhere.

Third-party models are built without weights (nothing is downloaded), so a user can measure a candidate from timm or
torchvision beside the zoo.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import nn

import zoo
from cnnbench.errors import CnnbenchError

__all__ = ["DEFAULT_RESOLUTION", "ResolvedModel", "build_model", "resolve"]


DEFAULT_RESOLUTION = 224  # the input side of a module that has no ``resolution`` attribute (ImageNet's usual crop)


@dataclass(frozen=True)
class ResolvedModel:
    name: str  # how results name it: as the user wrote it, or the module's class name
    model: nn.Module
    resolution: int  # input side, pixels: the one asked for, else the model's default
    spec: str | None = None  # the name it was built from; None for a module the caller passed

    @property
    def built(self) -> bool:
        """Built here from :attr:`spec`: no caller holds it, so it may be changed in place instead of copied."""
        return self.spec is not None


def _timm(name: str) -> tuple[nn.Module, int]:
    import timm

    if not timm.is_model(name):
        close = timm.list_models(f"*{name.split('_')[0]}*")[:3]
        hint = f"; close: {', '.join('timm:' + c for c in close)}" if close else ""
        raise CnnbenchError(f"timm has no model {name!r}{hint}")
    model = timm.create_model(name, pretrained=False)
    size = model.pretrained_cfg.get("input_size", (3, 224, 224)) if hasattr(model, "pretrained_cfg") else (3, 224, 224)
    return model, int(size[-1])


def _torchvision(name: str) -> tuple[nn.Module, int]:
    import torchvision

    if name not in torchvision.models.list_models():
        raise CnnbenchError(f"torchvision has no model {name!r}; see torchvision.models.list_models()")
    kwargs = {"init_weights": True} if name in ("googlenet", "inception_v3") else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = torchvision.models.get_model(name, weights=None, **kwargs)
    resolution = 224
    try:  # the crop of its default weights, read from the enum (no download)
        weights = torchvision.models.get_model_weights(name).DEFAULT
        resolution = int(weights.transforms().crop_size[0])
    except Exception:  # noqa: BLE001 - a model without weights keeps 224
        pass
    return model, resolution


def build_model(spec: str, device: torch.device | str = "meta", **overrides: object) -> ResolvedModel:
    """Build ``spec`` on ``device`` (meta by default: shapes only, no memory) in eval mode."""
    with torch.device(device):
        if spec.startswith("timm:"):
            model, resolution = _timm(spec.removeprefix("timm:"))
        elif spec.startswith("torchvision:"):
            model, resolution = _torchvision(spec.removeprefix("torchvision:"))
        else:
            model = zoo.create_model(spec, **overrides)
            resolution = zoo.model_info(spec).resolution
    return ResolvedModel(spec, model.eval(), resolution, spec)


def resolve(
    model: nn.Module | str,
    resolution: int | None = None,
    *,
    name: str | None = None,
    device: torch.device | str = "meta",
) -> ResolvedModel:
    """A module or a name (zoo, ``timm:NAME``, ``torchvision:NAME``) → the network, its name and its input side.

    A name is built on ``device`` (meta by default: shapes only), at its own default resolution. A module is
    taken as it is, neither copied nor moved (the caller decides, :attr:`ResolvedModel.built` tells it whose the
    module is), at its ``resolution`` attribute or :data:`DEFAULT_RESOLUTION`. ``resolution`` and ``name``, when
    given, win."""
    if isinstance(model, str):
        built = build_model(model, device)
        side = built.resolution if resolution is None else resolution
        return ResolvedModel(name or model, built.model, side, model)
    side = int(getattr(model, "resolution", DEFAULT_RESOLUTION)) if resolution is None else resolution
    return ResolvedModel(name or type(model).__name__, model, side)
