"""Accuracy of a local checkpoint on the user's own image folder, preprocessed as the model's reference
implementation does (torchvision's weight transforms, timm's pretrained_cfg)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import torch
from torch import Tensor

from cnnbench.accuracy.checkpoints import load_model
from cnnbench.accuracy.metrics import topk_hits
from cnnbench.accuracy.train import device_columns
from cnnbench.errors import CnnbenchError
from cnnbench.images import FolderImages, collate_readable, reference_preprocess, scan_image_folder
from cnnbench.provenance import environment
from cnnbench.target import INT8, RUNTIMES, Target, resolve_target

__all__ = ["evaluate"]


def evaluate(
    name: str,
    data_dir: str | os.PathLike[str],
    weights: str | os.PathLike[str],
    resolution: int | None = None,
    crop_pct: float | None = None,
    batch: int = 64,
    device: torch.device | str = "cpu",
    workers: int = 0,
    on_batch: Callable[[int], None] | None = None,
    target: Target | None = None,
    calibration: str | os.PathLike[str] | None = None,
) -> pd.DataFrame:
    """Top-1/top-5 (%) of ``weights`` loaded into zoo model ``name`` on the image folder ``data_dir``; one row.

    Images are preprocessed as :func:`reference_preprocess` says. A file that cannot be decoded is skipped and
    counted (``skipped``); ``images`` counts those scored. Class indices are the sorted sub-folder names, as in
    torchvision's ImageFolder, so a folder for an ImageNet checkpoint needs all 1,000 class folders (wnids) in order.
    ``on_batch`` gets the number of files of each batch read (for a progress bar).

    A ``target`` on a deployment runtime (one of :data:`~cnnbench.target.RUNTIMES`) scores the model exported for
    it (ONNX, ExecuTorch ``.pte`` or ncnn files); an int8 target quantizes it first, calibrated on up to 32 images of
    ``calibration`` (an image folder; by default ``data_dir`` itself, which the ``calibration`` column says). The
    exported file takes ``batch`` images a call, or one on a runtime that takes one image per call (ncnn).
    """
    if batch < 1:
        raise CnnbenchError(f"batch must be at least 1, got {batch}")
    preprocess = reference_preprocess(name, resolution, crop_pct)
    scan = scan_image_folder(data_dir)
    loaded = load_model(name, weights)
    if len(scan.classes) > loaded.num_classes:
        raise CnnbenchError(
            f"{data_dir} has {len(scan.classes)} class folders but the checkpoint's head has {loaded.num_classes} "
            "classes; is it the right folder?"
        )
    device = torch.device(device)
    model = loaded.model.to(device)
    deployed = resolve_target(target)[0] if target is not None else None  # int8 on eager is refused here
    deployed = deployed if deployed is not None and deployed.runtime else None
    if calibration is not None:
        scan_image_folder(calibration)
    logits_of: Callable[[Tensor], Tensor] = lambda x: model(x.to(device)).float().cpu()  # noqa: E731
    calibration_text = ""
    if deployed is not None:
        from cnnbench.runtimes.int8 import folder_calibration
        from cnnbench.runtimes.session import runtime_forward

        images = folder_calibration(name, calibration or data_dir, preprocess.crop) if deployed.dtype == INT8 else None
        calibration_text = images.source if images is not None else ""
        per_call = 1 if RUNTIMES[deployed.backend].batch_one else batch  # predict() feeds the loader's batch in groups
        logits_of = runtime_forward(model.cpu(), deployed, per_call, preprocess.crop, calibration=images).predict

    loader = torch.utils.data.DataLoader(
        FolderImages(scan.samples, preprocess), batch_size=batch, num_workers=workers, collate_fn=collate_readable
    )
    hits1 = hits5 = read = skipped = 0
    with torch.no_grad():
        for x, y, bad in loader:
            skipped += bad
            if x is not None:
                logits = logits_of(x)
                top1, top5 = topk_hits(logits, y)
                hits1, hits5 = hits1 + top1, hits5 + top5
                read += len(y)
            if on_batch is not None:
                on_batch(len(y) + bad)
    if read == 0:
        raise CnnbenchError(f"none of the {skipped} image files in {data_dir} could be read")
    row = {
        "model": name,
        "weights": Path(weights).name,
        "layout": loaded.layout,
        "classes": len(scan.classes),
        "num_classes": loaded.num_classes,
        "images": read,
        "skipped": skipped,
        "top1": round(100.0 * hits1 / read, 3),
        "top5": round(100.0 * hits5 / read, 3),
        "resolution": preprocess.crop,
        "resize": preprocess.resize,
        "crop_pct": round(preprocess.crop_pct, 4),
        "interpolation": preprocess.interpolation,
        "backend": deployed.backend if deployed else "eager",
        "dtype": deployed.dtype if deployed else "fp32",
        "calibration": calibration_text,
    }
    ran = device_columns(device)  # an eager run's: torch's dtype (the row's is the target's) and threads
    del ran["dtype"]
    if deployed is not None:
        ran["threads"] = deployed.threads
    row |= environment(device) | ran
    return pd.DataFrame([row])
