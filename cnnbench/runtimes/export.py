"""A model exported to ONNX, the file every deployment runtime loads, cached so that each is exported once.

``torch.onnx.export`` runs its TorchScript exporter (``dynamo=False``) at opset :data:`OPSET`: on this 2-core CPU
it exports a zoo model in 1–2 s, where the dynamo exporter takes 5–14 s (measured on mobilenet_v3_small,
shufflenet_v2_x1_0, efficientnet_b0 and resnet18). A model the TorchScript exporter refuses is tried with dynamo.

A named model's file is cached under ``cache_root()/onnx``, keyed by the model, resolution, batch, opset, torch's
version and the fingerprint of the code that builds and exports it; a file whose key differs is never reused.
Its weights are the model's default initialisation, which is all a latency needs. A module given directly (a
trained checkpoint, a guideline's block stack) is exported afresh every time, with its own weights.
"""

from __future__ import annotations

import hashlib
import io
import sys
import time
import warnings
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnbench import models
from cnnbench.errors import CnnbenchError, reason
from cnnbench.store import atomic_path, cache_folder, cache_root, cached_file, code_fingerprint

__all__ = ["OPSET", "Exported", "export_onnx", "exported", "file_stem", "onnx_cache", "INPUT_NAME"]

OPSET = 17
INPUT_NAME = "input"


@dataclass(frozen=True)
class Exported:
    """An ONNX file and how it was made."""

    path: Path
    export_s: float  # seconds torch.onnx.export took when the file was made (from the cache's record on a hit)
    cached: bool  # True when this call found the file in the cache
    exporter: str  # "torchscript" or "dynamo"
    batch: int
    resolution: int


def onnx_cache() -> Path:
    return cache_root() / "onnx"


def export_onnx(model: nn.Module, path: Path, batch: int, resolution: int, channels: int = 3) -> tuple[float, str]:
    """Export ``model`` (a CPU copy in eval mode) to ``path`` for a fixed ``batch × channels × resolution²`` input.

    Returns (seconds, exporter). Raises :class:`CnnbenchError` with the exporter's reason when both exporters fail.
    """
    model = model.eval()
    x = torch.zeros(batch, channels, resolution, resolution)
    started = time.perf_counter()
    errors = []
    for exporter, dynamo in (("torchscript", False), ("dynamo", True)):
        try:
            # Without no_grad the exporter's forward records autograd history, keeping every activation for a
            # backward that never comes: EfficientNet-B7 at 600 px peaked at 5.8 GB, 1.9 GB with it (same graph).
            with (
                warnings.catch_warnings(),
                redirect_stdout(io.StringIO()),
                redirect_stderr(io.StringIO()),
                torch.no_grad(),
            ):
                warnings.simplefilter("ignore")
                kwargs: dict[str, object] = {"external_data": False} if dynamo else {}
                torch.onnx.export(
                    model,
                    (x,),
                    str(path),
                    opset_version=OPSET,
                    dynamo=dynamo,
                    input_names=[INPUT_NAME],
                    output_names=["output"],
                    **kwargs,
                )
            return time.perf_counter() - started, exporter
        except Exception as err:  # noqa: BLE001 - every exporter failure is a reason to record, not a crash
            errors.append(f"{exporter}: {reason(err, 200)}")
    raise CnnbenchError(f"ONNX export failed ({'; '.join(errors)})")


def _key(name: str, batch: int, resolution: int) -> str:
    code = code_fingerprint(name, [sys.modules[__name__], models])
    text = f"{name}|b{batch}|r{resolution}|opset{OPSET}|torch{torch.__version__}|{code}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def file_stem(name: str) -> str:
    """``name`` as a file name: anything but letters, digits, dot, dash and underscore becomes ``_``."""
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)


def exported(name: str, batch: int, resolution: int, cache: Path | None = None) -> Exported:
    """Zoo, ``timm:`` or ``torchvision:`` model ``name`` as an ONNX file, from the cache or exported now.

    The file is written under a temporary name and renamed, so a run killed mid-export leaves no half file.
    """
    folder = cache_folder(cache or onnx_cache())
    path = folder / f"{file_stem(name)}-b{batch}-r{resolution}-{_key(name, batch, resolution)}.onnx"

    def read(meta: dict[str, Any]) -> Exported:
        return Exported(path, float(meta["export_s"]), True, str(meta["exporter"]), batch, resolution)

    def make() -> tuple[Exported, dict[str, object]]:
        net = models.build_model(name, device="cpu").model
        with atomic_path(path) as temporary:
            seconds, exporter = export_onnx(net, temporary, batch, resolution)
        made = Exported(path, seconds, False, exporter, batch, resolution)
        return made, {**asdict(made), "path": path.name, "model": name, "opset": OPSET, "torch": torch.__version__}

    return cached_file(path, read, make)
