"""The real images cnnbench feeds models, and how they are prepared: scikit-learn's handwritten digits for training,
a torchvision-style image folder for evaluating a checkpoint (preprocessed as the model's reference implementation).
Accuracy (:mod:`cnnbench.accuracy`) scores models on them and INT8 quantization (:mod:`cnnbench.runtimes.int8`)
calibrates on them, so this module sits below both.

Nothing here downloads anything. The digits (``sklearn.datasets.load_digits``) ship inside scikit-learn: 1,797 real
8×8 grey-level scans (values 0–16) of ten classes, from the UCI "Optical Recognition of Handwritten Digits" set.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

import zoo
from cnnbench.errors import CnnbenchError

__all__ = [
    "DIGITS_CLASSES",
    "DIGITS_MEAN",
    "DIGITS_STD",
    "DigitsSplit",
    "digits_split",
    "shift_images",
    "digits_to_input",
    "ImageFolderScan",
    "scan_image_folder",
    "Preprocess",
    "load_image",
    "reference_preprocess",
    "FolderImages",
    "collate_readable",
]

DIGITS_CLASSES = 10
# Pixel mean and standard deviation of the training split (load_digits().images / 16, the 1,437 images of
# digits_split()), rounded; tests/test_accuracy.py recomputes them. Normalising with the held-out images would leak.
DIGITS_MEAN = 0.3054
DIGITS_STD = 0.3761


@dataclass(frozen=True)
class DigitsSplit:
    """The digits as tensors, split once: images are N×1×8×8 floats in [0, 1], labels N int64."""

    train_images: Tensor
    train_labels: Tensor
    test_images: Tensor
    test_labels: Tensor
    train_index: np.ndarray  # positions in load_digits() order, so the split can be checked and reproduced
    test_index: np.ndarray


def digits_split(test_size: float = 0.2, random_state: int = 0) -> DigitsSplit:
    """A stratified split of the 1,797 digits that depends on ``random_state`` alone, never on a training seed.

    Stratified, so each class keeps its share of the full set in both halves (to within one image).
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    index = np.arange(len(digits.target))
    train_index, test_index = train_test_split(
        index, test_size=test_size, stratify=digits.target, random_state=random_state
    )
    images = torch.from_numpy(digits.images / 16.0).float().unsqueeze(1)  # 0–16 grey levels → [0, 1]
    labels = torch.from_numpy(digits.target).long()
    return DigitsSplit(
        train_images=images[train_index],
        train_labels=labels[train_index],
        test_images=images[test_index],
        test_labels=labels[test_index],
        train_index=train_index,
        test_index=test_index,
    )


def shift_images(images: Tensor, shifts: Tensor) -> Tensor:
    """Translate each N×C×H×W image by its own whole-pixel (dy, dx) in ``shifts`` (N×2), filling with zeros.

    Zero is the digits' background, so a shifted digit looks like one scanned off-centre.
    """
    n, _, h, w = images.shape
    pad = int(shifts.abs().max()) if shifts.numel() else 0
    if pad == 0:
        return images
    padded = F.pad(images, (pad, pad, pad, pad))
    rows = (pad - shifts[:, 0]).view(n, 1) + torch.arange(h).view(1, h)  # output row i reads padded row i - dy + pad
    cols = (pad - shifts[:, 1]).view(n, 1) + torch.arange(w).view(1, w)
    batch = torch.arange(n).view(n, 1, 1)
    return padded.permute(0, 2, 3, 1)[batch, rows.view(n, h, 1), cols.view(n, 1, w)].permute(0, 3, 1, 2)


def digits_to_input(
    images: Tensor,
    resolution: int,
    mean: float = DIGITS_MEAN,
    std: float = DIGITS_STD,
    interpolation: str = "bilinear",
) -> Tensor:
    """N×1×8×8 digits in [0, 1] → N×3×R×R model input: resize, normalise, repeat the grey channel 3 times.

    The zoo's stems take three channels; a grey image repeated is what a colour camera would see of a grey page.
    """
    resized = F.interpolate(images, size=(resolution, resolution), mode=interpolation, align_corners=False)
    return ((resized - mean) / std).expand(-1, 3, -1, -1).contiguous()


# ---------------------------------------------------------------------------------------------------------------------
# Image folders (``cnnbench eval``)

# torchvision.datasets.folder.IMG_EXTENSIONS, the files ImageFolder reads.
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class ImageFolderScan:
    """The files of a torchvision-style ImageFolder: one sub-folder per class, classes in sorted order."""

    root: Path
    classes: tuple[str, ...]
    samples: tuple[tuple[Path, int], ...]  # (file, class index)


def scan_image_folder(root: str | os.PathLike[str]) -> ImageFolderScan:
    """List ``root/CLASS/IMAGE`` as torchvision's ImageFolder does (sorted class names give the indices).

    An empty class folder still takes its index, so a folder with a class missing keeps the others' labels.
    """
    root = Path(root)
    if not root.is_dir():
        raise CnnbenchError(f"data folder {str(root)!r} does not exist; give a folder with one sub-folder per class")
    classes = tuple(sorted(entry.name for entry in os.scandir(root) if entry.is_dir()))
    if not classes:
        raise CnnbenchError(f"data folder {str(root)!r} has no class sub-folders; put each class's images in its own")
    samples = []
    for index, name in enumerate(classes):
        for folder, _, files in sorted(os.walk(root / name, followlinks=True)):
            for file in sorted(files):
                if file.lower().endswith(IMG_EXTENSIONS):
                    samples.append((Path(folder) / file, index))
    if not samples:
        raise CnnbenchError(
            f"data folder {str(root)!r} holds no images ({', '.join(IMG_EXTENSIONS)}) in its class sub-folders"
        )
    return ImageFolderScan(root, classes, tuple(samples))


@dataclass(frozen=True)
class Preprocess:
    """Evaluation preprocessing as the reference implementations do it: resize the short side, centre crop, scale
    to [0, 1], normalise per channel (torchvision's ``ImageClassification`` preset, timm's eval transform)."""

    crop: int  # side of the square fed to the model
    resize: int  # short side after resizing, before the crop
    interpolation: str  # "bilinear" or "bicubic"
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @property
    def crop_pct(self) -> float:
        return self.crop / self.resize

    def __call__(self, image: object) -> Tensor:
        """A PIL image → 3×crop×crop float tensor."""
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms import functional as TF

        mode = InterpolationMode(self.interpolation)
        # antialias=True: torchvision's preset and PIL both low-pass when they shrink
        resized = TF.resize(image, [self.resize], interpolation=mode, antialias=True)
        tensor = TF.pil_to_tensor(TF.center_crop(resized, [self.crop, self.crop])).float() / 255.0
        return TF.normalize(tensor, list(self.mean), list(self.std))


def load_image(path: Path) -> object | None:
    """The image at ``path`` as an RGB PIL image, or ``None`` when it cannot be decoded (truncated, not an image)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.convert("RGB")  # convert() forces the full decode, so a truncated file fails here
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError):  # PIL raises SyntaxError on some bad headers
        return None


DEFAULT_CROP_PCT = 0.875  # 224 / 256, the usual ImageNet evaluation crop


def reference_preprocess(name: str, resolution: int | None = None, crop_pct: float | None = None) -> Preprocess:
    """The evaluation transform of ``name``'s reference implementation (its default weights' preset), read from
    torchvision's weights enum or timm's pretrained config (nothing downloaded); ImageNet's usual 0.875 crop,
    bilinear, for a model with no reference. ``resolution`` (the crop side) and ``crop_pct`` override it."""
    info = zoo.model_info(name)
    crop, resize, interpolation = info.resolution, None, "bilinear"
    mean, std = zoo.IMAGENET_MEAN, zoo.IMAGENET_STD
    kind, _, ref = (info.reference or "").partition(":")
    if kind == "torchvision":
        from torchvision.models import get_model_weights

        preset = get_model_weights(ref).DEFAULT.transforms()
        crop, resize = preset.crop_size[0], preset.resize_size[0]
        interpolation = preset.interpolation.value  # bicubic for EfficientNet, bilinear elsewhere
        mean, std = tuple(preset.mean), tuple(preset.std)
    elif kind == "timm":
        from timm.models import get_pretrained_cfg

        cfg = get_pretrained_cfg(ref)
        crop, interpolation = cfg.input_size[-1], cfg.interpolation
        resize = math.floor(crop / cfg.crop_pct)  # timm's transforms_factory rounding
        mean, std = tuple(cfg.mean), tuple(cfg.std)
    if resolution is not None or crop_pct is not None or resize is None:
        pct = crop_pct if crop_pct is not None else (crop / resize if resize else DEFAULT_CROP_PCT)
        if not 0 < pct <= 1:
            raise CnnbenchError(f"crop fraction must be in (0, 1], got {pct}")
        crop = resolution if resolution is not None else crop
        if crop < 1:
            raise CnnbenchError(f"resolution must be a positive number of pixels, got {crop}")
        resize = math.floor(crop / pct + 1e-6)  # + 1e-6: 224 / (224 / 232) must stay 232
    return Preprocess(crop, resize, interpolation, mean, std)  # type: ignore[arg-type]


class FolderImages(torch.utils.data.Dataset):
    """The files of an :class:`ImageFolderScan`, preprocessed; ``None`` for a file that cannot be decoded."""

    def __init__(self, samples: Sequence[tuple[Path, int]], preprocess: Preprocess) -> None:
        self.samples, self.preprocess = samples, preprocess

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[Tensor | None, int]:
        path, label = self.samples[i]
        image = load_image(path)
        return (None if image is None else self.preprocess(image)), label


def collate_readable(batch: list[tuple[Tensor | None, int]]) -> tuple[Tensor | None, Tensor, int]:
    """Stack the decoded images of a batch; also return how many were not (``None``)."""
    kept = [(x, y) for x, y in batch if x is not None]
    if not kept:
        return None, torch.empty(0, dtype=torch.long), len(batch)
    return torch.stack([x for x, _ in kept]), torch.tensor([y for _, y in kept]), len(batch) - len(kept)
