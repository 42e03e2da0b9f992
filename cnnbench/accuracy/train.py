"""Accuracy measured here: every model trained from scratch on real images that ship with scikit-learn.

:func:`train` trains each model with one fixed :class:`Recipe` on the handwritten digits and gives top-1 on a fixed
held-out split, mean ± std over seeds. It runs data-parallel when a ``torch.distributed`` process group is
initialised (``cnnbench train`` under ``torchrun`` does so): same global batch, same result up to BatchNorm's
per-rank statistics. With ``out`` it trains into a results table, row by row, reusing a stored row only where this
machine, torch, settings and code made it (:func:`train_stamp`).

Nothing here prints; the CLI does (:mod:`cnnbench.cli.accuracy`).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import update_bn
from torch.utils.data import DistributedSampler

import zoo
from cnnbench import images as images_module
from cnnbench import models
from cnnbench.accuracy import metrics
from cnnbench.catalog import resolve_patterns
from cnnbench.errors import CnnbenchError
from cnnbench.images import (
    DIGITS_CLASSES,
    DIGITS_MEAN,
    DIGITS_STD,
    DigitsSplit,
    digits_split,
    digits_to_input,
    shift_images,
)
from cnnbench.measure.profiling import smallest_resolution
from cnnbench.provenance import PROVENANCE_COLUMNS, Stamp
from cnnbench.store import ResultTable, code_fingerprint

__all__ = [
    "Recipe",
    "RECIPE",
    "TrainingBudget",
    "DATASETS",
    "DEFAULT_EPOCHS",
    "DEFAULT_SEEDS",
    "TRAIN_COLUMNS",
    "TRAIN_KEY",
    "device_columns",
    "train_stamp",
    "training_resolution",
    "FitResult",
    "fit",
    "prepare_digits",
    "train_model",
    "train",
    "process_group",
]


# ---------------------------------------------------------------------------------------------------------------------
# The training recipe


@dataclass(frozen=True)
class Recipe:
    """One recipe for every model, so that differences in the table come from the architectures.

    Chosen for short runs from scratch on 1,437 tiny images: each value below was checked on a handful of cheap
    BatchNorm nets (ShuffleNetV1/V2, MobileNetV1-V3, ResNet-18, EfficientNet-B0) at 1-5 epochs. BN-free nets
    (AlexNet, VGG, SqueezeNet) need lr <= 5e-4 and stay near chance at this budget whatever the rate: a finding
    about them under one recipe, not a bug; ``--recipe lr=...`` changes it (and the id).
    """

    optimizer: str = "adamw"  # or "sgd" (Nesterov): AdamW beat SGD at lr 0.05 and 0.1 on 4 BN nets at 5 epochs
    lr: float = 5e-3  # peak, after the warm-up; beat 2e-3 and 1e-2 on average at 1-2 epochs
    betas: tuple[float, float] = (0.9, 0.999)  # AdamW
    momentum: float = 0.9  # SGD, Nesterov
    weight_decay: float = 0.05  # on conv and linear weights only (ndim > 1), as timm's param_groups_weight_decay
    warmup: float = 0.1  # fraction of the steps with a linear ramp from lr/warmup_steps up to lr
    schedule: str = "cosine"  # after the warm-up, per step, down to 0
    batch_size: int = 32  # global (W ranks take batch_size / W each); twice the updates of 64 per epoch: +3 points
    label_smoothing: float = 0.1
    grad_clip_norm: float = 2.0  # total L2 norm; keeps BN-free nets (VGG, AlexNet, SqueezeNet) out of early blow-ups
    max_shift: int = 1  # random translation by up to this many 8×8 pixels each way, drawn per image and epoch
    interpolation: str = "bilinear"  # 8×8 → resolution, after the shift
    mean: float = DIGITS_MEAN  # grey-level normalisation, from the training split
    std: float = DIGITS_STD
    test_size: float = 0.2  # held-out share, stratified
    split_seed: int = 0  # the split's random_state: the same split for every run and every seed
    dropout: float | None = None  # None: each model's own; a number overrides it where the builder takes ``dropout``
    # After training, BatchNorm statistics are recomputed over the (unshifted) training images: a few dozen steps
    # leave the running averages (momentum 0.1, MobileNetV3's 0.01) far from what the trained weights produce.
    recalibrate_bn: bool = True

    @property
    def id(self) -> str:
        """A short hash of every field: two rows with the same id were trained the same way."""
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:8]


RECIPE = Recipe()
DATASETS = ("digits",)
# The default budget: one epoch of the whole zoo (62 models) takes 43 minutes measured on 2 CPU cores shared with
# another job (about 28 estimated without it), VGG half of it; a second epoch would not stay well under an hour.
DEFAULT_EPOCHS = 1
DEFAULT_SEEDS: tuple[int, ...] = (0,)


@dataclass(frozen=True)
class TrainingBudget:
    """What one training row is: the data, the input side asked for, the epochs, the seeds and the recipe. It is
    checked when made, so a bad budget is refused before any model trains."""

    dataset: str = "digits"
    resolution: int = 32
    epochs: int = DEFAULT_EPOCHS
    seeds: tuple[int, ...] = DEFAULT_SEEDS
    recipe: Recipe = RECIPE

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise CnnbenchError(f"unknown dataset {self.dataset!r}; the one offered is {', '.join(DATASETS)}")
        if self.epochs < 1:
            raise CnnbenchError(f"epochs must be at least 1, got {self.epochs}")
        if not self.seeds:
            raise CnnbenchError("give at least one seed")
        object.__setattr__(self, "seeds", tuple(self.seeds))

    @property
    def seeds_text(self) -> str:
        return ",".join(str(s) for s in self.seeds)

    def key(self, name: str, resolution: int) -> dict[str, object]:
        """The :data:`TRAIN_KEY` columns of ``name``'s row, trained at ``resolution``."""
        return {
            "model": name,
            "dataset": self.dataset,
            "recipe": self.recipe.id,
            "epochs": self.epochs,
            "seeds": self.seeds_text,
            "resolution": resolution,
        }


# How a model is built for training beyond num_classes: GoogLeNet's auxiliary heads would add two losses that no
# other model has, so they are left out (the recipe trains every model on its main logits alone).
_TRAIN_BUILD: dict[str, dict[str, Any]] = {"googlenet": {"aux_logits": False}}


def _build(name: str, recipe: Recipe, num_classes: int) -> nn.Module:
    kwargs: dict[str, Any] = {"num_classes": num_classes, **_TRAIN_BUILD.get(name, {})}
    if recipe.dropout is not None and "dropout" in zoo.accepted_overrides(name):
        kwargs["dropout"] = recipe.dropout
    return zoo.create_model(name, **kwargs)


def training_resolution(name: str, requested: int, recipe: Recipe = RECIPE) -> int:
    """``requested``, or the smallest side the model takes when ``requested`` is too small (AlexNet needs 63)."""
    if requested < 1:
        raise CnnbenchError(f"resolution must be a positive number of pixels, got {requested}")
    with torch.device("meta"):
        model = _build(name, recipe, DIGITS_CLASSES).eval()
    try:
        with torch.no_grad():
            model(torch.empty(1, 3, requested, requested, device="meta"))
        return requested
    except (RuntimeError, ValueError, IndexError):
        smallest = smallest_resolution(model)
    if smallest is None:
        raise CnnbenchError(f"{name} takes no input side up to 1024 pixels")
    return max(requested, smallest)


# ---------------------------------------------------------------------------------------------------------------------
# Provenance


def device_columns(device: torch.device | str = "cpu") -> dict[str, object]:
    """The columns of a trained or evaluated row beyond its provenance: device, threads, dtype and ranks."""
    device = torch.device(device)
    return {
        "device": device.type if device.type != "cuda" else str(device),
        "threads": torch.get_num_threads(),
        "dtype": "float32",
        "world_size": dist.get_world_size() if _distributed() else 1,
    }


def train_stamp(name: str, budget: TrainingBudget, device: torch.device | str = "cpu") -> Stamp:
    """What a stored row of :func:`train_model` must match to be reused: this machine and torch, the device and
    threads, the budget (data, recipe, epochs, seeds and resolution asked for), and the code that built and
    trained it."""
    device = torch.device(device)
    world = dist.get_world_size() if _distributed() else 1
    target = f"{device.type}-t{torch.get_num_threads()}" + (f"-w{world}" if world > 1 else "")
    settings = {
        "dataset": budget.dataset,
        "recipe": budget.recipe.id,
        "epochs": budget.epochs,
        "seeds": budget.seeds_text,
        "resolution": budget.resolution,
        "world_size": world,
    }
    code = code_fingerprint(name, [sys.modules[__name__], images_module, metrics, models])
    return Stamp.here(target, settings, code, device=device)


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


# ---------------------------------------------------------------------------------------------------------------------
# Training on the digits


@dataclass
class FitResult:
    """One model, one seed."""

    model: nn.Module  # trained, unwrapped, in eval mode
    resolution: int
    epoch_loss: list[float]  # mean training loss (label-smoothed) of each epoch, over every rank's images
    top1: float  # held-out accuracy, %
    top5: float
    train_seconds: float  # the training loop alone (no build, no evaluation)
    train_images: int  # images seen in training, over every rank
    test_predictions: Tensor = field(repr=False)  # held-out logits, N×10, in digits_split() order


EpochCallback = Callable[[dict[str, object]], None]


def _lr_factor(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]  # biases, BN scales and shifts
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    groups = _param_groups(model, recipe.weight_decay)
    if recipe.optimizer == "adamw":
        # fused: one kernel for all parameters; 8× faster than the default on VGG's 130M weights on a CPU
        return torch.optim.AdamW(groups, lr=recipe.lr, betas=recipe.betas, fused=True)
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=recipe.lr, momentum=recipe.momentum, nesterov=True)
    raise CnnbenchError(f"unknown optimizer {recipe.optimizer!r}; use adamw or sgd")


def prepare_digits(images: Tensor, resolution: int, recipe: Recipe = RECIPE) -> Tensor:
    """Digits as the recipe feeds them to a model: resized, normalised, three channels."""
    return digits_to_input(images, resolution, recipe.mean, recipe.std, recipe.interpolation)


def fit(
    name: str,
    *,
    resolution: int = 32,
    epochs: int = DEFAULT_EPOCHS,
    seed: int = 0,
    recipe: Recipe = RECIPE,
    device: torch.device | str = "cpu",
    data: DigitsSplit | None = None,
    on_epoch: EpochCallback | None = None,
) -> FitResult:
    """Train zoo model ``name`` from scratch on the digits' training split; score it on the held-out split.

    ``resolution`` is used as given (see :func:`training_resolution`). The seed sets the initial weights, the order
    of the images and their shifts; the split never depends on it. Under an initialised process group the model is
    wrapped in DistributedDataParallel and each rank takes ``batch_size / world_size`` images of every global batch.
    """
    if epochs < 1:
        raise CnnbenchError(f"epochs must be at least 1, got {epochs}")
    if recipe.schedule != "cosine":
        raise CnnbenchError(f"unknown schedule {recipe.schedule!r}; the one offered is cosine")
    device = torch.device(device)
    data = data or digits_split(recipe.test_size, recipe.split_seed)
    rank, world = (dist.get_rank(), dist.get_world_size()) if _distributed() else (0, 1)
    if recipe.batch_size % world:
        raise CnnbenchError(f"batch size {recipe.batch_size} does not split over {world} processes; use a divisor")
    per_rank = recipe.batch_size // world

    torch.manual_seed(seed)  # the same initial weights on every rank (DDP broadcasts rank 0's anyway)
    model = _build(name, recipe, DIGITS_CLASSES).to(device)
    torch.manual_seed(seed + 1_000_003 * rank)  # dropout masks: independent across ranks, rank 0 as a single process
    net: nn.Module = DistributedDataParallel(model) if world > 1 else model
    optimizer = _optimizer(model, recipe)
    n_train = len(data.train_labels)
    # The sampler shuffles with seed + epoch and deals positions round-robin, so rank r's share of global batch b is
    # every W-th image of that batch; one process (W = 1) sees the same batches whole. Incomplete batches are dropped.
    sampler = DistributedSampler(range(n_train), num_replicas=world, rank=rank, shuffle=True, seed=seed)
    steps_per_epoch = len(sampler) // per_rank
    if steps_per_epoch < 1:
        raise CnnbenchError(f"batch size {recipe.batch_size} is larger than the {n_train} training images")
    total = epochs * steps_per_epoch
    warmup = max(1, round(recipe.warmup * total))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: _lr_factor(step, total, warmup))
    criterion = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)

    epoch_loss: list[float] = []
    start = time.perf_counter()
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        # Shifts drawn for all training images at once from (seed, epoch): image i gets the same shift whichever
        # rank takes it, so the global batch is the same images, shifted the same, at any world size.
        shifts = torch.randint(
            -recipe.max_shift,
            recipe.max_shift + 1,
            (n_train, 2),
            generator=torch.Generator().manual_seed(seed * 10_007 + epoch),
        )
        order = torch.tensor(list(sampler))
        net.train()
        sums = torch.zeros(2, dtype=torch.float64)
        for step in range(steps_per_epoch):
            index = order[step * per_rank : (step + 1) * per_rank]
            images = shift_images(data.train_images[index], shifts[index])
            x = prepare_digits(images, resolution, recipe).to(device)
            y = data.train_labels[index].to(device)
            loss = criterion(net(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip_norm)
            optimizer.step()
            scheduler.step()
            sums += torch.tensor([loss.item() * len(index), len(index)], dtype=torch.float64)
        if world > 1:
            dist.all_reduce(sums)
        epoch_loss.append(float(sums[0] / sums[1]))
        if on_epoch is not None:
            on_epoch({"model": name, "seed": seed, "epoch": epoch + 1, "epochs": epochs, "loss": epoch_loss[-1]})
    train_seconds = time.perf_counter() - start

    if recipe.recalibrate_bn:  # every rank on all images, in a fixed order: the same statistics at any world size
        batches = prepare_digits(data.train_images, resolution, recipe).split(recipe.batch_size)
        update_bn(batches, model, device)
    model.eval()
    with torch.no_grad():
        x = prepare_digits(data.test_images, resolution, recipe)
        logits = torch.cat([model(chunk.to(device)).float().cpu() for chunk in x.split(256)])
    hits1, hits5 = metrics.topk_hits(logits, data.test_labels)
    return FitResult(
        model=model,
        resolution=resolution,
        epoch_loss=epoch_loss,
        top1=100.0 * hits1 / len(data.test_labels),
        top5=100.0 * hits5 / len(data.test_labels),
        train_seconds=train_seconds,
        train_images=epochs * steps_per_epoch * recipe.batch_size,
        test_predictions=logits,
    )


TRAIN_COLUMNS = [
    "model",
    "dataset",
    "recipe",
    "epochs",
    "seeds",
    "resolution",
    "top1_mean",
    "top1_std",
    "top5_mean",
    "train_loss",
    "wall_s",
    "train_images_per_s",
    "params",
    "error",
    "device",
    "threads",
    "dtype",
    "world_size",
    *PROVENANCE_COLUMNS,
]


def train_model(
    name: str,
    budget: TrainingBudget = TrainingBudget(),  # noqa: B008 - frozen, so one shared default is safe
    device: torch.device | str = "cpu",
    on_epoch: EpochCallback | None = None,
    data: DigitsSplit | None = None,
) -> dict[str, object]:
    """One row of :func:`train`: ``name`` trained once per seed of ``budget``. A model that fails gives a row with
    ``error`` set (and empty figures) instead of raising, so that a sweep goes on."""
    row: dict[str, object] = budget.key(name, budget.resolution)
    stamp = train_stamp(name, budget, device)
    start = time.perf_counter()
    try:
        row["resolution"] = used = training_resolution(name, budget.resolution, budget.recipe)
        runs = [
            fit(
                name,
                resolution=used,
                epochs=budget.epochs,
                seed=s,
                recipe=budget.recipe,
                device=device,
                data=data,
                on_epoch=on_epoch,
            )
            for s in budget.seeds
        ]
    except Exception as err:  # noqa: BLE001 - recorded in the row: one model's failure must not end a sweep
        message = " ".join(str(err).split())[:300]
        return {
            **row,
            "wall_s": round(time.perf_counter() - start, 1),
            "error": f"{type(err).__name__}: {message}",
            **device_columns(device),
            **stamp.columns(device),
        }
    top1 = np.array([r.top1 for r in runs])
    row.update(
        top1_mean=round(float(top1.mean()), 2),
        top1_std=round(float(top1.std(ddof=1)), 2) if len(runs) > 1 else float("nan"),
        top5_mean=round(float(np.mean([r.top5 for r in runs])), 2),
        train_loss=round(float(np.mean([r.epoch_loss[-1] for r in runs])), 4),
        wall_s=round(time.perf_counter() - start, 1),
        train_images_per_s=round(sum(r.train_images for r in runs) / sum(r.train_seconds for r in runs), 1),
        params=sum(p.numel() for p in runs[0].model.parameters()),
        error="",
    )
    row.update({**device_columns(device), **stamp.columns(device)})
    return row


def train(
    model_names: str | Iterable[str],
    budget: TrainingBudget = TrainingBudget(),  # noqa: B008 - frozen, so one shared default is safe
    device: torch.device | str = "cpu",
    on_epoch: EpochCallback | None = None,
    *,
    out: Path | None = None,
    force: bool = False,
    write: bool = True,
    each: Callable[[Sequence[str]], Iterable[str]] = lambda names: names,
) -> pd.DataFrame:
    """Train each model (names or wildcards) from scratch within ``budget`` (its dataset, input side, epochs, seeds
    and recipe); one row per model.

    Columns (:data:`TRAIN_COLUMNS`): top-1/top-5 (%) on the held-out split as mean (and sample std) over the seeds,
    the resolution actually used, the last epoch's training loss, wall time of the row, training throughput
    (images/s, training loop only), params, ``error`` ("" when it trained), the device and the provenance.

    With ``out``, the rows go to that results table (a :class:`~cnnbench.store.ResultTable` keyed by
    :data:`TRAIN_KEY`) as each model finishes, atomically, so an interrupted sweep keeps what it finished; a stored
    row is reused, unless ``force``, only when it trained without error and its stamp (:func:`train_stamp`: this
    machine, torch, device, settings and code) matches, and any other is trained again and replaced.
    ``write=False`` (the ranks other than 0 under torchrun) reads the table but never writes it. ``each`` wraps the
    names (a progress bar).
    """
    names = resolve_patterns(model_names)
    table = ResultTable(out, key=TRAIN_KEY) if out is not None else None
    data = digits_split(budget.recipe.test_size, budget.recipe.split_seed)
    rows: list[dict[str, object]] = []
    for name in each(names):
        previous = None if table is None or force else _reusable(table, name, budget, device)
        if previous is not None:
            rows.append(previous)
            continue
        row = train_model(name, budget, device, on_epoch, data)
        if table is not None and write:
            table.put(row)
        rows.append(row)
    return pd.DataFrame(rows, columns=TRAIN_COLUMNS)


# The columns that say two rows trained the same thing; the reuse rule also compares the stamp (train_stamp).
TRAIN_KEY = ["model", "dataset", "recipe", "epochs", "seeds", "resolution"]


def _reusable(
    table: ResultTable, name: str, budget: TrainingBudget, device: torch.device | str
) -> dict[str, object] | None:
    """The stored row of ``name`` that this run would train again, if it trained without error here."""
    try:
        used = training_resolution(name, budget.resolution, budget.recipe)
    except Exception:  # noqa: BLE001 - train_model records the failure in the model's row
        used = budget.resolution
    row = table.reusable(train_stamp(name, budget, device), **budget.key(name, used))
    return row if row is not None and not row.get("error") else None


@contextmanager
def process_group(device: str) -> Iterator[tuple[int, str]]:
    """Join torchrun's process group when launched by it (it sets WORLD_SIZE, RANK, MASTER_ADDR/PORT); yield
    (rank, device). A plain launch yields (0, device) and touches nothing."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or "RANK" not in os.environ:
        yield 0, device
        return
    if device.startswith("cuda"):
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    try:
        yield dist.get_rank(), device
    finally:
        dist.destroy_process_group()
