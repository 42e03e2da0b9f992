"""A model loaded on a deployment runtime, and the forward that cnnbench times on it.

- ONNX Runtime: an ``InferenceSession`` with every graph optimisation, ``intra_op_num_threads`` = the target's
  threads and one inter-op thread, on the CPU provider (the CUDA provider for a ``cuda`` target).
- OpenVINO: the CPU plugin, ``PERFORMANCE_HINT=LATENCY``, ``INFERENCE_NUM_THREADS`` = the target's threads and, for
  fp32, ``INFERENCE_PRECISION_HINT=f32`` (left alone, the plugin computes in bf16 on CPUs that have it).
- ExecuTorch: the ``.pte``'s ``forward`` method, XNNPACK's thread pool at the target's threads
  (:mod:`.executorch`).
- ncnn: the ``.param``/``.bin`` net, fp32 throughout, ``num_threads`` = the target's threads (:mod:`.ncnn`).

The timed call is the runtime's own, on an input made once: ``session.run(None, feed)``, ``request.infer(feed)``,
``method.execute([tensor])``, and an ncnn extractor's input and extract. ``benchmarks/test_runtimes.py`` checks
cnnbench adds nothing to it.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cnnbench.errors import CnnbenchError, reason
from cnnbench.runtimes import executorch, ncnn
from cnnbench.runtimes.export import INPUT_NAME, export_onnx, exported
from cnnbench.runtimes.int8 import Calibration, latency_calibration, quantize_int8
from cnnbench.target import INT8, RUNTIMES, Target

__all__ = [
    "Session",
    "load_session",
    "RuntimeForward",
    "runtime_forward",
    "Deployable",
    "deployable",
    "CALIBRATION_RANDOM",
    "PROFILED_BACKENDS",
]

CALIBRATION_RANDOM = 8  # inputs that are not images (a guideline's feature maps) calibrate on this many draws
PROFILED_BACKENDS = ("onnxruntime", "openvino")  # the runtimes load_session can profile node by node


def _onnx_feed(x: np.ndarray) -> dict[str, np.ndarray]:
    return {INPUT_NAME: np.ascontiguousarray(x, dtype=np.float32)}


@dataclass
class Session:
    """A loaded model: ``run(x)`` returns its first output; ``call(feed(x))`` is the runtime's bare call."""

    backend: str
    call: Callable[[Any], object]
    first_output: Callable[[object], np.ndarray]
    load_s: float  # session creation (ONNX Runtime), compilation (OpenVINO) or program loading, seconds
    providers: str = ""
    raw: object = None  # the runtime's own object: an InferenceSession, InferRequest, Method or ncnn net
    feed: Callable[[np.ndarray], Any] = _onnx_feed  # the runtime's input, made from a numpy batch

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.first_output(self.call(self.feed(x)))


def load_session(path: Path, target: Target, profile: Path | None = None) -> Session:
    """Load ``path`` on ``target``'s runtime with its threads (see the module docstring). ``profile`` turns on the
    runtime's per-node profile: ONNX Runtime's profiler, writing its JSON under that prefix, or OpenVINO's
    performance counters (``PERF_COUNT``); the other runtimes refuse it."""
    if profile is not None and target.backend not in PROFILED_BACKENDS:
        raise CnnbenchError(f"{target.backend} has no per-node profile here; {', '.join(PROFILED_BACKENDS)} have")
    started = time.perf_counter()
    try:
        if target.backend == "onnxruntime":
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.intra_op_num_threads = target.threads or 0
            options.inter_op_num_threads = 1
            options.log_severity_level = 3  # errors only
            if profile is not None:
                options.enable_profiling, options.profile_file_prefix = True, str(profile)
            providers = ["CUDAExecutionProvider"] if target.torch_device.type == "cuda" else []
            session = ort.InferenceSession(str(path), options, providers=[*providers, "CPUExecutionProvider"])
            return Session(
                "onnxruntime",
                partial(session.run, None),
                lambda out: out[0],  # type: ignore[index]
                time.perf_counter() - started,
                ",".join(session.get_providers()),
                session,
            )
        if target.backend == "openvino":
            import openvino

            config: dict[str, object] = {"PERFORMANCE_HINT": "LATENCY"}
            if target.threads:
                config["INFERENCE_NUM_THREADS"] = target.threads
            if target.dtype != INT8:
                config["INFERENCE_PRECISION_HINT"] = "f32"
            if profile is not None:
                config["PERF_COUNT"] = True
            compiled = openvino.Core().compile_model(str(path), "CPU", config)
            request = compiled.create_infer_request()
            return Session(
                "openvino",
                request.infer,
                lambda out: next(iter(out.values())),  # type: ignore[attr-defined]
                time.perf_counter() - started,
                "CPU",
                request,
            )
        if target.backend == "executorch":
            method, load_s = executorch.load(path, target.threads)
            return Session(
                "executorch",
                method.execute,  # type: ignore[attr-defined]
                lambda out: out[0].numpy(),  # type: ignore[index]
                load_s,
                "XNNPACK",
                method,
                executorch.feed,
            )
        if target.backend == "ncnn":
            net, load_s = ncnn.load(path, target.threads)
            return Session("ncnn", net.call, ncnn.output, load_s, "CPU", net, ncnn.feed)
    except CnnbenchError:
        raise
    except Exception as err:  # noqa: BLE001 - a file the runtime cannot load is the row's reason
        raise CnnbenchError(f"{target.backend} could not load the model ({reason(err)})") from None
    raise CnnbenchError(f"{target.backend} is not a deployment runtime; use one of {', '.join(RUNTIMES)}")


@dataclass
class RuntimeForward:
    """One forward on a runtime, input fed from a buffer made once: what :func:`cnnbench.measure.latency.measure`
    times for a runtime target (the counterpart of :class:`cnnbench.measure.forward.Forward`)."""

    session: Session
    x: np.ndarray
    target: Target
    export_s: float | None = None
    quantize_s: float | None = None
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self._feed = self.session.feed(self.x)
        self._call = self.session.call

    @property
    def load_s(self) -> float:
        return self.session.load_s

    def __call__(self) -> object:
        return self._call(self._feed)

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """The first output on any number of ``images``: the file takes a fixed batch (the timed input's), so they
        run in groups of it, the last group padded with repeats of its first image and the padding cut off."""
        batch = len(self.x)
        outputs = []
        for chunk in images.split(batch):
            n = len(chunk)
            padded = torch.cat([chunk, chunk[:1].expand(batch - n, *chunk.shape[1:])]) if n < batch else chunk
            outputs.append(torch.from_numpy(np.asarray(self.session.run(padded.numpy())))[:n])
        return torch.cat(outputs).float()


def runtime_forward(
    model: nn.Module | None,
    target: Target,
    batch: int,
    side: int,
    *,
    channels: int = 3,
    seed: int | None = None,
    name: str | None = None,
    calibration: Calibration | None = None,
) -> RuntimeForward:
    """Export (or take from the cache, for a named model), quantize for an int8 target, load, and return the
    forward to time. ``name`` caches the export under that model name (``model`` may then be ``None``); otherwise
    ``model`` is exported with its own weights into a temporary folder. An int8 target calibrates on
    ``calibration``, by default :data:`~cnnbench.runtimes.int8.LATENCY_CALIBRATION_IMAGES` digits at ``side`` for
    3-channel inputs and random draws for anything else."""
    if RUNTIMES[target.backend].batch_one and batch != 1:
        raise CnnbenchError(ncnn.ONE_IMAGE)
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    x = torch.randn(batch, channels, side, side, generator=generator).numpy()
    with tempfile.TemporaryDirectory(prefix="cnnbench-export-") as scratch:
        if name is not None:
            made = deployable(name, target, batch, side, calibration)
        elif model is not None:
            if target.dtype == INT8 and calibration is None and channels != 3:  # not images: random draws
                draws = np.random.default_rng(seed or 0).standard_normal((CALIBRATION_RANDOM, channels, side, side))
                calibration = Calibration(draws.astype(np.float32), f"{CALIBRATION_RANDOM} random-normal inputs")
            made = _made_now(model.cpu(), target, batch, side, channels, calibration, Path(scratch))
        else:
            raise CnnbenchError("runtime_forward needs a model or a model name")
        session = load_session(made.path, target)  # loaded into memory: the scratch folder may go
    notes = [*made.notes, f"{target.backend} {session.providers}"] if session.providers else list(made.notes)
    return RuntimeForward(session, x, target, made.export_s, made.quantize_s, tuple(notes))


@dataclass(frozen=True)
class Deployable:
    """The file a runtime loads for a model on a target: an ONNX export or its INT8 QDQ version, a ``.pte``, or an
    ncnn ``.param`` (its ``.bin`` beside it)."""

    path: Path
    export_s: float
    quantize_s: float | None
    notes: tuple[str, ...]


def _made_now(
    model: nn.Module,
    target: Target,
    batch: int,
    side: int,
    channels: int,
    calibration: Calibration | None,
    scratch: Path,
) -> Deployable:
    """``model`` with its own weights, exported for ``target`` into ``scratch``."""
    file = RUNTIMES[target.backend].file
    int8 = target.dtype == INT8
    if int8:
        calibration = latency_calibration(type(model).__name__, side, calibration)
    if file == "pte":
        lowered = executorch.lower(model, scratch / "model.pte", batch, side, channels, calibration if int8 else None)
        return Deployable(lowered.path, lowered.export_s, lowered.quantize_s, _pte_notes(lowered))
    if file == "ncnn":
        converted = ncnn.convert(model, scratch / "model.param", side, channels)
        return Deployable(converted.param, converted.export_s, None, ("pnnx export, fp32 weights",))
    path = scratch / "model.onnx"
    export_s, exporter = export_onnx(model, path, batch, side, channels)
    if not int8 or calibration is None:
        return Deployable(path, export_s, None, (f"ONNX {exporter} export",))
    quantized = quantize_int8(path, calibration, batch, scratch / "model-int8.onnx")
    notes = (f"ONNX {exporter} export", f"INT8 QDQ calibrated on {calibration.source}")
    return Deployable(quantized.path, export_s, quantized.quantize_s, notes)


def _pte_notes(lowered: executorch.Lowered) -> tuple[str, ...]:
    notes = [f"ExecuTorch XNNPACK export{' (cached)' if lowered.cached else ''}"]
    if lowered.calibration is not None:
        notes.append(f"INT8 PT2E (XNNPACK quantizer, per-channel) calibrated on {lowered.calibration}")
    if lowered.undelegated:
        notes.append(f"outside XNNPACK (portable kernels): {', '.join(lowered.undelegated)}")
    else:
        notes.append("every operator delegated to XNNPACK")
    return tuple(notes)


def deployable(
    name: str, target: Target, batch: int, side: int, calibration: str | Path | Calibration | None = None
) -> Deployable:
    """Zoo, ``timm:`` or ``torchvision:`` model ``name`` exported for ``target``'s runtime (and for an int8 target
    quantized, calibrated by :func:`~cnnbench.runtimes.int8.latency_calibration`), each from the cache when it is
    there. Nothing is loaded: the report makes these files ahead, several at once, before any timing starts."""
    file = RUNTIMES[target.backend].file
    int8 = target.dtype == INT8
    calibrated = latency_calibration(name, side, calibration) if int8 else None
    if file == "pte":
        lowered = executorch.lowered(name, batch, side, calibrated)
        return Deployable(lowered.path, lowered.export_s, lowered.quantize_s, _pte_notes(lowered))
    if file == "ncnn":
        if batch != 1:
            raise CnnbenchError(ncnn.ONE_IMAGE)
        converted = ncnn.converted(name, side)
        notes = (f"pnnx export, fp32 weights{' (cached)' if converted.cached else ''}",)
        return Deployable(converted.param, converted.export_s, None, notes)
    made = exported(name, batch, side)
    notes = [f"ONNX {made.exporter} export{' (cached)' if made.cached else ''}"]
    if calibrated is None:
        return Deployable(made.path, made.export_s, None, tuple(notes))
    quantized = quantize_int8(made.path, calibrated, batch)
    notes.append(f"INT8 QDQ calibrated on {calibrated.source}{' (cached)' if quantized.cached else ''}")
    return Deployable(quantized.path, made.export_s, quantized.quantize_s, tuple(notes))
