"""Load a checkpoint from a local file into a zoo model, treating the file as untrusted input.

A ``.pt``/``.pth`` file is read with ``torch.load(weights_only=True)``, which only rebuilds tensors and plain
containers and refuses any pickle that would call other code; a ``.safetensors`` file holds tensors alone. Three
layouts are accepted: ours (a state_dict, bare or under ``"state_dict"``/``"model"``), torchvision's (the same keys
as ours for every torchvision-referenced model) and timm's for ``mobilenet_v1_x1_0`` (mapped by
:func:`zoo.mobilenetv1.convert_timm_state_dict`).
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

import zoo
from cnnbench.errors import CnnbenchError, first_line
from zoo.mobilenetv1 import convert_timm_state_dict

__all__ = ["LoadedModel", "read_state_dict", "load_model", "fit_report"]

# The containers training scripts wrap a state_dict in: ours and torchvision's references save {"model": ...},
# Lightning and many others {"state_dict": ...}.
_WRAPPERS = ("state_dict", "model")

# Models whose reference weights need a build option: torchvision's GoogLeNet weights were ported from TF and expect
# inputs in [-1, 1]; torchvision sets transform_input=True when it loads them (models/googlenet.py).
_REFERENCE_BUILD: dict[str, dict[str, Any]] = {"googlenet": {"transform_input": True}}


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """The tensors of a checkpoint file, unwrapped; never runs code from the file."""
    path = Path(path)
    if not path.is_file():
        raise CnnbenchError(f"weights file {str(path)!r} does not exist")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as err:
            raise CnnbenchError(f"{path.name} is not a readable safetensors file ({first_line(err)})") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # weights_only refuses every global outside its allow-list, i.e. anything unpickling would call; torch
        # names it as "GLOBAL module.name". Other refusals are opcodes a torch.save file never holds.
        called = re.search(r"GLOBAL (\S+)", str(err))
        if called:
            raise CnnbenchError(
                f"refused to load {path.name}: its pickle would run code (it calls {called.group(1)}); "
                "load only weights saved as torch.save(model.state_dict()) or .safetensors"
            ) from None
        raise CnnbenchError(f"{path.name} is not a PyTorch checkpoint that weights_only=True can read") from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise CnnbenchError(f"{path.name} is not a readable PyTorch checkpoint ({first_line(err)})") from None
    return _unwrap(obj, path.name)


def _unwrap(obj: object, name: str) -> dict[str, Tensor]:
    for key in _WRAPPERS:
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, Tensor) for v in obj.values()):
        raise CnnbenchError(
            f"{name} holds no state_dict (a dict of tensors, bare or under {' or '.join(map(repr, _WRAPPERS))})"
        )
    state = {str(k): v for k, v in obj.items()}
    if all(k.startswith("module.") for k in state):  # saved from a DistributedDataParallel wrapper
        state = {k.removeprefix("module."): v for k, v in state.items()}
    return state


@dataclass(frozen=True)
class LoadedModel:
    model: nn.Module  # on the CPU, in eval mode, weights loaded
    layout: str  # "state_dict" (ours or torchvision's: the same keys) or "timm"
    num_classes: int
    build: dict[str, Any] = field(default_factory=dict)  # the options the model was built with


def _head_key(name: str) -> str | None:
    """The weight of the classifier: the last tensor whose first dimension is the default 1,000 classes."""
    with torch.device("meta"):
        state = zoo.create_model(name).state_dict()
    heads = [k for k, v in state.items() if v.ndim >= 2 and v.shape[0] == 1000]
    return heads[-1] if heads else None


def fit_report(model: nn.Module, state: Mapping[str, Tensor], shown: int = 3) -> str:
    """One line naming the keys missing from / unexpected in ``state`` and the shapes that differ; "" if it fits."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    given = {k: tuple(v.shape) for k, v in state.items()}
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    shapes = [
        f"{k}: file {_dims(given[k])} vs model {_dims(expected[k])}"
        for k in expected
        if k in given and given[k] != expected[k]
    ]
    parts = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape differs", shapes)):
        if keys:
            more = f" and {len(keys) - shown} more" if len(keys) > shown else ""
            parts.append(f"{len(keys)} {label} ({', '.join(keys[:shown])}{more})")
    return "; ".join(parts)


def _dims(shape: tuple[int, ...]) -> str:
    return "×".join(map(str, shape)) or "scalar"


def load_model(name: str, weights: str | os.PathLike[str]) -> LoadedModel:
    """Build zoo model ``name`` and load ``weights`` into it strictly; the head's size is read from the file.

    A file that does not fit raises one line with the key and shape differences (a checkpoint for another model,
    another timm layout). The file's layout is told by its keys: timm's MobileNetV1 names its stem ``conv_stem``.
    """
    info = zoo.model_info(name)  # raises UnknownModelError with the closest names
    state = read_state_dict(weights)
    build: dict[str, Any] = dict(_REFERENCE_BUILD.get(name, {}))
    layout = "state_dict"
    if "conv_stem.weight" in state:  # timm's layout (EfficientNet/MobileNet families)
        if name != "mobilenet_v1_x1_0":
            with torch.device("meta"):
                report = fit_report(zoo.create_model(name), state)
            raise CnnbenchError(
                f"{Path(weights).name} is in timm's layout, which maps onto mobilenet_v1_x1_0 only; against {name}: "
                f"{report}"
            )
        state = convert_timm_state_dict(state)
        build["act"] = "relu6"  # timm's mobilenetv1_100 uses ReLU6 (zoo/mobilenetv1.py)
        layout = "timm"
    if info.family == "googlenet":
        build["aux_logits"] = any(k.startswith(("aux1.", "aux2.")) for k in state)  # torchvision's files keep them
    head = _head_key(name)
    num_classes = int(state[head].shape[0]) if head and head in state else 1000
    model = zoo.create_model(name, num_classes=num_classes, **build)
    report = fit_report(model, state)
    if report:
        raise CnnbenchError(
            f"{Path(weights).name} does not fit {name}: {report}; is it a checkpoint for another model?"
        )
    model.load_state_dict(state, strict=True)
    return LoadedModel(model.eval(), layout, num_classes, build)
