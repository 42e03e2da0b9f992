"""INT8 by static post-training quantization, calibrated on real images.

The fp32 ONNX file goes through ONNX Runtime's quantizer: ``quant_pre_process`` (its graph clean-up, which turns
the exporter's Identity-fed biases into initializers), then ``quantize_static`` in the QDQ format with per-channel
int8 weights and uint8 activations, whose ranges come from MinMax calibration. OpenVINO runs the same QDQ file.

Calibration images are real, never random: by default the first :data:`CALIBRATION_IMAGES` training digits of
scikit-learn (:func:`cnnbench.accuracy.data.digits_split`), resized to the model's resolution and normalised as
``cnnbench train`` feeds them; or an image folder (``--calibration DIR``), preprocessed as the model's reference
implementation evaluates. The quantized file is cached beside its fp32 file, keyed by it, the calibration images
and onnxruntime's version.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
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

__all__ = ["CALIBRATION_IMAGES", "LATENCY_CALIBRATION_IMAGES", "Calibration", "digits_calibration",
           "folder_calibration", "latency_calibration", "quantize_int8", "Quantized"]

CALIBRATION_IMAGES = 32  # for accuracy (train --deployed, eval): MinMax ranges settle by a few dozen images
# For latency (bench, report, benchmarks/): the ranges change the scales in the file, not its graph or the kernels
# that run it, and each calibration image is a full forward with every activation kept, most of quantization's cost
# at high resolution (EfficientNet-B3 at 300 px: 17.6 s with 32 images, 10.8 s with 8).
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
    from cnnbench.accuracy.data import digits_split, digits_to_input

    if count < 1:
        raise CnnbenchError(f"calibration needs at least one image, got {count}")
    images = digits_split().train_images[:count]
    x = digits_to_input(images, resolution).numpy().astype(np.float32)
    return Calibration(x, f"digits (scikit-learn), {len(x)} training images")


def folder_calibration(name: str, folder: str | Path, resolution: int, count: int = CALIBRATION_IMAGES) -> Calibration:
    """Up to ``count`` images of an image folder (files in sorted order, spread over its classes), preprocessed as
    ``name``'s reference implementation evaluates (:func:`cnnbench.accuracy.data.reference_preprocess`)."""
    from cnnbench.accuracy.data import load_image, reference_preprocess, scan_image_folder

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


def quantize_int8(fp32: Path, calibration: Calibration, batch: int, out: Path | None = None) -> Quantized:
    """The INT8 QDQ version of the ONNX file ``fp32``, from the cache beside it or quantized now."""
    import onnxruntime
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

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
        with atomic_path(path.with_name(path.stem + "-pre.onnx")) as pre, atomic_path(path) as temporary, \
                redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):  # fmt: skip
            quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
            quantize_static(str(pre), str(temporary), _Reader(calibration, batch), quant_format=QuantFormat.QDQ,
                            per_channel=True, activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8)  # fmt: skip
    except CnnbenchError:
        raise
    except Exception as err:  # noqa: BLE001 - the quantizer's failure is the row's reason
        raise CnnbenchError(f"INT8 quantization failed ({reason(err)})") from None
    finally:
        quiet.setLevel(level)
        path.with_name(path.stem + "-pre.onnx").unlink(missing_ok=True)
    seconds = time.perf_counter() - started
    meta = {"quantize_s": seconds, "fp32": fp32.name, "calibration": calibration.source,
            "calibration_fingerprint": calibration.fingerprint, "onnxruntime": onnxruntime.__version__,
            "format": "QDQ, per-channel int8 weights, uint8 activations, MinMax", "made_at": now()}  # fmt: skip
    atomic_write_text(record, json.dumps(meta, indent=2) + "\n")
    return Quantized(path, seconds, False, calibration.source)
