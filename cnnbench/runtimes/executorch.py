"""ExecuTorch with its XNNPACK delegate: a model lowered to a ``.pte`` file, and that file run by ExecuTorch's own
runtime (its Python bindings call the same C++ runtime a phone app links).

- fp32: ``torch.export`` → ``to_edge_transform_and_lower`` with the XNNPACK partitioner → ``to_executorch``.
- int8: PT2E static quantization before lowering, with the XNNPACK quantizer (int8 weights, symmetric per output
  channel; int8 activations), calibrated on the images every int8 row uses
  (:func:`~cnnbench.runtimes.int8.latency_calibration`: the training digits at the model's resolution, or
  ``--calibration DIR``).

What the partitioner leaves outside XNNPACK runs on ExecuTorch's portable kernels, which are reference code and
far slower; :func:`lower` names those operators, and the row's notes say them.

Threads: XNNPACK's thread pool is one per process; loading sets it to the target's threads. Each row of a report
or ``bench`` runs in a process of its own.

A named model's file is cached under ``cache_root()/executorch`` by the same rule as the ONNX files: model,
resolution, batch, dtype, the calibration images for int8, torch's and ExecuTorch's versions and the code's
fingerprint.
"""

from __future__ import annotations

import hashlib
import io
import operator
import sys
import time
import warnings
from collections import Counter
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cnnbench import models
from cnnbench.errors import CnnbenchError, reason
from cnnbench.runtimes.export import file_stem
from cnnbench.runtimes.int8 import Calibration
from cnnbench.store import atomic_path, cache_folder, cache_root, cached_file, code_fingerprint

__all__ = ["Lowered", "lower", "lowered", "version"]


def version() -> str:
    from importlib.metadata import version as installed

    return installed("executorch")


@dataclass(frozen=True)
class Lowered:
    """A ``.pte`` file and how it was made."""

    path: Path
    export_s: float  # torch.export and lowering, seconds (from the cache's record on a hit)
    quantize_s: float | None  # PT2E preparation, calibration and conversion, for int8
    cached: bool
    undelegated: tuple[str, ...]  # operators left to the portable kernels, "aten.mean.dim ×2"
    calibration: str | None  # the calibration's source, for int8


def _undelegated(program: torch.export.ExportedProgram) -> tuple[str, ...]:
    """The operators of a lowered program that run outside any delegate, with how many nodes each."""
    from executorch.exir.delegate import executorch_call_delegate

    left = Counter(
        str(getattr(node.target, "__name__", node.target))
        for node in program.graph_module.graph.nodes
        if node.op == "call_function" and node.target not in (executorch_call_delegate, operator.getitem)
    )
    return tuple(f"{op} ×{count}" for op, count in sorted(left.items()))


def lower(
    model: nn.Module,
    path: Path,
    batch: int,
    side: int,
    channels: int = 3,
    calibration: Calibration | None = None,
) -> Lowered:
    """Write ``model`` (a CPU copy in eval mode) to ``path`` as an XNNPACK-delegated ``.pte`` for a fixed
    ``batch × channels × side²`` input; quantized to int8 when ``calibration`` is given. Raises
    :class:`CnnbenchError` with the exporter's reason when it fails."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    model = model.eval()
    x = (torch.zeros(batch, channels, side, side),)
    quantize_s = None
    try:
        with warnings.catch_warnings(), redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()), torch.no_grad():
            warnings.simplefilter("ignore")
            started = time.perf_counter()
            program = torch.export.export(model, x)
            if calibration is not None:
                quantized_at = time.perf_counter()
                module = _quantize(program.module(), calibration, batch)
                quantize_s = time.perf_counter() - quantized_at
                program = torch.export.export(module, x)
            edge = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
            undelegated = _undelegated(edge.exported_program())
            buffer = edge.to_executorch().buffer
            export_s = time.perf_counter() - started - (quantize_s or 0.0)
    except CnnbenchError:
        raise
    except Exception as err:  # noqa: BLE001 - the exporter's failure is the row's reason
        raise CnnbenchError(f"ExecuTorch export failed ({reason(err, 200)})") from None
    with atomic_path(path) as temporary:
        temporary.write_bytes(buffer)
    return Lowered(path, export_s, quantize_s, False, undelegated, calibration.source if calibration else None)


def _quantize(module: nn.Module, calibration: Calibration, batch: int) -> nn.Module:
    """PT2E: observers placed by the XNNPACK quantizer, run over the calibration images, then converted."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    prepared = prepare_pt2e(module, quantizer)
    for images in calibration.batches(batch):
        prepared(torch.from_numpy(images))
    return convert_pt2e(prepared)


def _key(name: str, batch: int, side: int, calibration: Calibration | None) -> str:
    code = code_fingerprint(name, [sys.modules[__name__], models])
    int8 = f"|int8:{calibration.fingerprint}" if calibration is not None else ""
    text = f"{name}|b{batch}|r{side}{int8}|torch{torch.__version__}|executorch{version()}|{code}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def lowered(
    name: str, batch: int, side: int, calibration: Calibration | None = None, cache: Path | None = None
) -> Lowered:
    """Zoo, ``timm:`` or ``torchvision:`` model ``name`` as a ``.pte`` file (int8 with ``calibration``), from the
    cache or lowered now; written under a temporary name and renamed, so a run killed half-way leaves no file."""
    folder = cache_folder(cache or cache_root() / "executorch")
    dtype = "int8" if calibration is not None else "fp32"
    path = folder / f"{file_stem(name)}-b{batch}-r{side}-{dtype}-{_key(name, batch, side, calibration)}.pte"

    def read(meta: dict[str, Any]) -> Lowered:
        undelegated = tuple(meta["undelegated"])
        return Lowered(path, float(meta["export_s"]), meta["quantize_s"], True, undelegated, meta["calibration"])

    def make() -> tuple[Lowered, dict[str, object]]:
        made = lower(models.build_model(name, device="cpu").model, path, batch, side, calibration=calibration)
        fields = {
            "path": path.name,
            "model": name,
            "export_s": made.export_s,
            "quantize_s": made.quantize_s,
            "undelegated": list(made.undelegated),
            "calibration": made.calibration,
            "batch": batch,
            "resolution": side,
            "torch": torch.__version__,
            "executorch": version(),
        }
        return made, fields

    return cached_file(path, read, make)


def load(path: Path, threads: int | None) -> tuple[object, float]:
    """The ``forward`` method of the ``.pte`` at ``path``, loaded by ExecuTorch's runtime with XNNPACK's thread
    pool at ``threads``, and the seconds loading took."""
    from executorch.extension.pybindings import portable_lib
    from executorch.runtime import Runtime

    if threads:
        portable_lib._unsafe_reset_threadpool(threads)
    started = time.perf_counter()
    method = Runtime.get().load_program(path).load_method("forward")
    if method is None:
        raise CnnbenchError(f"{path.name} has no forward method")
    return method, time.perf_counter() - started


def feed(x: np.ndarray) -> list[torch.Tensor]:
    return [torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))]
