"""INT8 by static post-training quantization, calibrated on real images.

The fp32 ONNX file goes through ONNX Runtime's quantizer: the steps of ``quant_pre_process`` (its graph clean-up,
which turns the exporter's Identity-fed biases into initializers), ONNX Runtime's MinMax calibration, then
``quantize_static`` in the QDQ format with per-channel int8 weights and uint8 activations. OpenVINO runs the same QDQ
file. Each step runs apart, from file to file, so that one model's copies are not held by the next: the file is the
one ``quant_pre_process`` and ``quantize_static`` make, in a fraction of their memory (the process's peak resident
size: EfficientNet-B7 9.7 GB, now 1.8 GB; VGG-16 3.0 GB, now 2.1 GB).

Calibration images are real, never random: by default the first :data:`CALIBRATION_IMAGES` training digits of
scikit-learn (:func:`cnnbench.images.digits_split`), resized to the model's resolution and normalised as
``cnnbench train`` feeds them; or an image folder (``--calibration DIR``), preprocessed as the model's reference
implementation evaluates. The quantized file is cached beside its fp32 file, keyed by it, the calibration images
and onnxruntime's version.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import json
import logging
import tempfile
import time
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnbench.errors import CnnbenchError, reason
from cnnbench.provenance import now
from cnnbench.runtimes.export import INPUT_NAME
from cnnbench.store import atomic_path, atomic_write_text

__all__ = [
    "CALIBRATION_IMAGES",
    "LATENCY_CALIBRATION_IMAGES",
    "Calibration",
    "digits_calibration",
    "folder_calibration",
    "latency_calibration",
    "quantize_int8",
    "Quantized",
]

CALIBRATION_IMAGES = 32  # for accuracy (train --deployed, eval): MinMax ranges settle by a few dozen images
# For latency (bench, report, benchmarks/): the ranges change the scales in the file, not its graph or the kernels
# that run it, and each calibration image is a full forward, most of quantization's cost at high resolution
# (EfficientNet-B3 at 300 px: 17.6 s with 32 images, 10.8 s with 8).
LATENCY_CALIBRATION_IMAGES = 8


@dataclass(frozen=True)
class Calibration:
    """Images to calibrate on (N×3×R×R float32, already normalised) and where they come from."""

    images: np.ndarray
    source: str  # "digits (sklearn), 32 training images" or "DIR, 32 images"

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(np.ascontiguousarray(self.images).tobytes()).hexdigest()[:12]

    def batches(self, batch: int) -> Iterator[np.ndarray]:
        """The images in groups of ``batch`` (the exported file's fixed batch), the last group filled by repeats."""
        n = len(self.images)
        for start in range(0, n, batch):
            index = [(start + i) % n for i in range(batch)]
            yield np.ascontiguousarray(self.images[index])


def digits_calibration(resolution: int, count: int = CALIBRATION_IMAGES) -> Calibration:
    """The first ``count`` training digits at ``resolution``, normalised as ``cnnbench train`` normalises them."""
    from cnnbench.images import digits_split, digits_to_input

    if count < 1:
        raise CnnbenchError(f"calibration needs at least one image, got {count}")
    images = digits_split().train_images[:count]
    x = digits_to_input(images, resolution).numpy().astype(np.float32)
    return Calibration(x, f"digits (scikit-learn), {len(x)} training images")


def folder_calibration(name: str, folder: str | Path, resolution: int, count: int = CALIBRATION_IMAGES) -> Calibration:
    """Up to ``count`` images of an image folder (files in sorted order, spread over its classes), preprocessed as
    ``name``'s reference implementation evaluates (:func:`cnnbench.images.reference_preprocess`)."""
    from cnnbench.images import load_image, reference_preprocess, scan_image_folder

    scan = scan_image_folder(folder)
    samples = [path for path, _ in scan.samples]
    step = max(1, len(samples) // count)
    preprocess = reference_preprocess(name, resolution)
    images = []
    for path in samples[::step]:
        image = load_image(path)
        if image is not None:
            images.append(preprocess(image).numpy())
        if len(images) == count:
            break
    if not images:
        raise CnnbenchError(f"none of the images in {folder} could be read for calibration")
    return Calibration(np.stack(images).astype(np.float32), f"{folder}, {len(images)} images")


def latency_calibration(name: str, resolution: int, calibration: str | Path | Calibration | None) -> Calibration:
    """What a latency row of ``name`` calibrates on: ``calibration`` itself, :data:`LATENCY_CALIBRATION_IMAGES`
    of an image folder, or by default as many digits. Every caller resolves it here, so that a file quantized ahead
    (the report's preparation) and the row that loads it agree on the images, and the cache hits."""
    if isinstance(calibration, Calibration):
        return calibration
    if calibration is not None:
        return folder_calibration(name, calibration, resolution, LATENCY_CALIBRATION_IMAGES)
    return digits_calibration(resolution, LATENCY_CALIBRATION_IMAGES)


@dataclass(frozen=True)
class Quantized:
    path: Path
    quantize_s: float  # seconds the quantizer took (pre-processing, calibration, quantization) when it was made
    cached: bool
    source: str  # the calibration's source


class _Reader:
    """ONNX Runtime's CalibrationDataReader protocol: ``get_next`` gives one feed, then None."""

    def __init__(self, calibration: Calibration, batch: int) -> None:
        self._feeds = iter([{INPUT_NAME: x} for x in calibration.batches(batch)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)

    def rewind(self) -> None:  # part of the protocol; MinMax calibration reads once
        pass


def _pre_process(fp32: Path, pre: Path) -> None:
    """The model ``quant_pre_process(fp32, pre, skip_symbolic_shape=True)`` writes, in half its memory.

    The same two steps: ONNX Runtime's basic graph optimisations (its graph clean-up), then ONNX shape inference,
    each from file to file. ``quant_pre_process`` also holds the whole model loaded in Python while ONNX Runtime
    loads and optimises it, lets the session pack its weights for a run that never comes, and loads the result once
    more to add its marker: VGG-16 (553 MB of weights) peaked 2.2 GB above the process, and 1.1 GB here. The marker
    is written as a ModelProto holding only it, appended to the file: protobuf reads concatenated messages as their
    merge. The quantized file is byte for byte the one ``quant_pre_process`` led to.
    """
    import onnx
    import onnxruntime as ort

    optimized = pre.with_name("optimized.onnx")
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(optimized)
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC  # as quant_pre_process
    options.add_session_config_entry("session.disable_prepacking", "1")
    ort.InferenceSession(str(fp32), options, providers=["CPUExecutionProvider"])  # made only to write ``optimized``
    onnx.shape_inference.infer_shapes_path(str(optimized), str(pre))
    optimized.unlink()
    marker = onnx.StringStringEntryProto(key="onnx.quant.pre_process", value="onnxruntime.quant")
    with pre.open("ab") as file:
        file.write(onnx.ModelProto(metadata_props=[marker]).SerializeToString())


def _calibrate(model: Path, calibration: Calibration, batch: int, ranges: Path) -> None:
    """MinMax ranges of every tensor ``quantize_static`` quantizes, written to ``ranges`` for it to read.

    The same calibration ``quantize_static`` runs (ONNX Runtime's MinMaxCalibrater: ReduceMin/ReduceMax added after
    every such tensor, per-tensor ranges merged over the batches), but its session runs in another order. The
    added ReduceMin/ReduceMax nodes are leaves, which ONNX Runtime's default execution order runs after the whole
    network, so every activation of a forward stays allocated until the end; the memory pattern it records then
    asks for all of that again beside the arena: EfficientNet-B7 at 600 px held 4.3 GB after the first batch and
    8.3 GB from the second on. The priority-based order runs each reduction as soon as its tensor exists: 0.8 GB.
    The ranges are the same (same kernels, same inputs); keeping fewer batches' outputs
    (``CalibMaxIntermediateOutputs``) would not help, as each output is one number.
    """
    import onnxruntime as ort
    from onnxruntime.quantization.calibrate import MinMaxCalibrater, save_tensors_data
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    op_types = list(set(QLinearOpsRegistry) | set(QDQRegistry))  # quantize_static's own list when given none
    augmented = ranges.with_name("augmented.onnx")
    # Saved with its weights in a file beside it: onnx moves each tensor out of the loaded model as it writes it,
    # where one serialized piece would hold the weights twice more (VGG-16: 1.1 GB above the process while saving).
    # The session keeps ONNX Runtime's weight prepacking: without it the convolutions run other kernels, whose
    # last-bit differences move some ranges (ResNet-152's file then differs), though it would save 0.2 GB more.
    calibrator = MinMaxCalibrater(model, op_types, augmented_model_path=str(augmented), use_external_data_format=True)
    calibrator.augment_graph()  # written to ``augmented``; the session loads it from there
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # as ONNX Runtime's calibrator
    options.execution_order = ort.ExecutionOrder.PRIORITY_BASED
    calibrator.infer_session = ort.InferenceSession(str(augmented), options, providers=["CPUExecutionProvider"])
    calibrator.collect_data(_Reader(calibration, batch))
    save_tensors_data(calibrator.compute_data(), ranges)


def quantize_int8(fp32: Path, calibration: Calibration, batch: int, out: Path | None = None) -> Quantized:
    """The INT8 QDQ version of the ONNX file ``fp32``, from the cache beside it or quantized now."""
    import onnxruntime
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    digest = hashlib.sha256(f"{fp32.name}|{calibration.fingerprint}|{onnxruntime.__version__}".encode())
    path = out or fp32.with_name(f"{fp32.stem}-int8-{digest.hexdigest()[:12]}.onnx")
    record = path.with_suffix(".json")
    if out is None and path.exists() and record.exists():
        try:
            return Quantized(path, float(json.loads(record.read_text())["quantize_s"]), True, calibration.source)
        except (OSError, ValueError, KeyError):
            pass
    started = time.perf_counter()
    quiet = logging.getLogger()  # the quantizer warns per node through the root logger
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with (
            tempfile.TemporaryDirectory(prefix="cnnbench-int8-") as scratch,
            atomic_path(path) as temporary,
            redirect_stdout(io.StringIO()),
            redirect_stderr(io.StringIO()),
        ):
            pre, ranges = Path(scratch) / "pre.onnx", Path(scratch) / "ranges.json"
            _pre_process(fp32, pre)
            calibrated: dict[str, object]
            if "calibration_cache_path" in inspect.signature(quantize_static).parameters:  # onnxruntime >= 1.32
                # Calibrated apart, then quantized from the ranges: the calibration's model and session are gone
                # before the quantizer loads its own copy of the model.
                _calibrate(pre, calibration, batch, ranges)
                calibrated = {"calibration_cache_path": str(ranges)}
            else:  # an older onnxruntime calibrates inside quantize_static, in its default order
                calibrated = {"calibration_data_reader": _Reader(calibration, batch)}
            quantize_static(
                str(pre),
                str(temporary),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                **calibrated,
            )
    except CnnbenchError:
        raise
    except Exception as err:  # noqa: BLE001 - the quantizer's failure is the row's reason
        raise CnnbenchError(f"INT8 quantization failed ({reason(err)})") from None
    finally:
        quiet.setLevel(level)
    seconds = time.perf_counter() - started
    meta = {
        "quantize_s": seconds,
        "fp32": fp32.name,
        "calibration": calibration.source,
        "calibration_fingerprint": calibration.fingerprint,
        "onnxruntime": onnxruntime.__version__,
        "format": "QDQ, per-channel int8 weights, uint8 activations, MinMax",
        "made_at": now(),
    }
    atomic_write_text(record, json.dumps(meta, indent=2) + "\n")
    return Quantized(path, seconds, False, calibration.source)
