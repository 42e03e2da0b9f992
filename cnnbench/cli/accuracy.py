"""``cnnbench train`` and ``cnnbench eval``: thin commands over :mod:`cnnbench.accuracy`.

``train`` trains into the ``--out`` CSV through :func:`cnnbench.accuracy.train.train` (each finished row
written at once; a rerun on the same machine, with the same settings and code, reuses it). Launched by
``torchrun``, it joins the process group (gloo on the CPU, NCCL on GPUs) and trains data-parallel; rank 0 alone
prints and writes.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import sys
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from cnnbench.accuracy.deployed import DEPLOYED_TARGETS, deployed_accuracy
from cnnbench.accuracy.evaluate import evaluate
from cnnbench.accuracy.train import (
    DATASETS,
    DEFAULT_EPOCHS,
    DEFAULT_SEEDS,
    RECIPE,
    Recipe,
    TrainingBudget,
    process_group,
    train,
)
from cnnbench.cli.common import add_model_arguments, model_names, positive_int, printed_by
from cnnbench.errors import CnnbenchError
from cnnbench.images import scan_image_folder
from cnnbench.output import emit, progress
from cnnbench.results import DEFAULT_FOLDER, ResultsFolder
from cnnbench.target import INT8, INT8_RUNTIMES, RUNTIMES, Target

__all__ = ["add_commands"]


def _seeds(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise CnnbenchError(f"--seeds takes integers separated by commas, e.g. 0,1,2; got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise CnnbenchError(f"--seeds needs at least one seed and no repeats; got {text!r}")
    return seeds


def _deploy_on(text: str) -> tuple[tuple[str, str], ...]:
    """``BACKEND:DTYPE,...`` as (backend, dtype) pairs; :func:`~cnnbench.accuracy.deployed.check_targets` checks
    them against the runtimes."""
    pairs = [item.strip().partition(":") for item in text.split(",") if item.strip()]
    if not pairs or any(not sep or not backend or not dtype for backend, sep, dtype in pairs):
        raise CnnbenchError(
            f"--deploy-on takes BACKEND:DTYPE pairs separated by commas, e.g. executorch:int8,ncnn:fp32; got {text!r}"
        )
    return tuple((backend, dtype) for backend, _, dtype in pairs)


def _recipe(overrides: list[str]) -> Recipe:
    """The default recipe with ``KEY=VALUE`` changes (values read as Python literals); its id changes with them."""
    fields = {f.name: f for f in dataclasses.fields(Recipe)}
    changes: dict[str, Any] = {}
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or key not in fields:
            raise CnnbenchError(f"--recipe takes KEY=VALUE with KEY one of {', '.join(fields)}; got {item!r}")
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text  # a bare word: optimizer=sgd
        default = getattr(RECIPE, key)
        if isinstance(value, int) and not isinstance(value, bool) and "float" in str(fields[key].type):
            value = float(value)  # dropout=0 and dropout=0.0 are one recipe, with one id
        if value is not None and default is not None and type(value) is not type(default):
            raise CnnbenchError(f"--recipe {key} takes a {type(default).__name__}, got {text!r}")
        changes[key] = value
    return dataclasses.replace(RECIPE, **changes)


TRAIN_TABLE = {
    "model": "model",
    "resolution": "res",
    "top1_mean": "top-1 (%)",
    "top1_std": "± std",
    "top5_mean": "top-5 (%)",
    "train_loss": "loss",
    "wall_s": "wall (s)",
    "train_images_per_s": "img/s",
    "error": "error",
}


def _cmd_train(args: argparse.Namespace) -> str:
    if args.epochs < 1:
        raise CnnbenchError(f"--epochs must be at least 1, got {args.epochs}")
    names = model_names(args.models, args.all, zoo_only=True)
    budget = TrainingBudget(args.dataset, args.res, args.epochs, _seeds(args.seeds), _recipe(args.recipe))
    if args.deploy_on is not None and not args.deployed:
        raise CnnbenchError("--deploy-on chooses where --deployed scores; add --deployed")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.deployed:
        out = Path(args.out) if args.out else ResultsFolder(DEFAULT_FOLDER).accuracy(args.dataset, deployed=True)
        frame = deployed_accuracy(
            names,
            budget,
            args.threads,
            targets=_deploy_on(args.deploy_on) if args.deploy_on is not None else DEPLOYED_TARGETS,
            out=out,
            force=args.force,
            each=lambda chosen: progress(chosen, "train, export, quantize"),
        )
        shown = [c for c in frame.columns if c == "model" or c.startswith(("top1", "agree", "max_rel")) or c == "error"]
        return emit(frame, args.format, {c: c for c in shown})
    out = Path(args.out) if args.out else ResultsFolder(DEFAULT_FOLDER).accuracy(args.dataset)
    with process_group(args.device) as (rank, device):
        bar = progress(names, "train") if rank == 0 else names

        def on_epoch(event: dict[str, object]) -> None:
            if isinstance(bar, tqdm):
                bar.set_postfix_str(
                    f"{event['model']} seed {event['seed']} epoch {event['epoch']}/{event['epochs']} "
                    f"loss {event['loss']:.3f}"
                )

        frame = train(names, budget, device, on_epoch, out=out, force=args.force, write=rank == 0, each=lambda _: bar)
    if rank != 0:
        return ""
    return emit(frame, args.format, TRAIN_TABLE)


EVAL_TABLE = {
    "model": "model",
    "layout": "layout",
    "images": "images",
    "skipped": "skipped",
    "top1": "top-1 (%)",
    "top5": "top-5 (%)",
    "resolution": "res",
    "resize": "resize",
    "interpolation": "interp",
    "backend": "backend",
    "dtype": "dtype",
}


def _cmd_eval(args: argparse.Namespace) -> str:
    total = len(scan_image_folder(args.data).samples)  # also fails early, one line, on a missing or empty folder
    with tqdm(total=total, desc="eval", unit="image", disable=None, file=sys.stderr) as bar:
        frame = evaluate(
            args.model,
            args.data,
            args.weights,
            resolution=args.res,
            crop_pct=args.crop,
            batch=args.batch,
            device=args.device,
            workers=args.workers,
            on_batch=bar.update,
            target=Target(threads=args.threads, backend=args.backend, dtype=args.dtype),
            calibration=args.calibration,
        )
    return emit(frame, args.format, EVAL_TABLE)


def add_commands(sub: Any) -> None:
    """Add ``train`` and ``eval`` to the CLI's subparsers."""
    p_train = sub.add_parser(
        "train",
        help="train models from scratch on the handwritten digits with one fixed recipe; top-1 on a held-out split",
        description="Trains each model from scratch with one recipe (cnnbench.accuracy.Recipe, id "
        f"{RECIPE.id}) on scikit-learn's 1,797 handwritten digits (no download), 80/20 stratified split, and "
        "reports held-out top-1/top-5 as mean ± std over seeds. Rows are appended to --out as each model finishes; "
        "a rerun skips rows already there. Under torchrun it trains data-parallel (DistributedDataParallel).",
    )
    add_model_arguments(p_train, "zoo names or wildcards, e.g. 'mobilenet*'")
    p_train.add_argument("--dataset", choices=DATASETS, default="digits")
    p_train.add_argument(
        "--res", type=int, default=32, help="input side; a model that needs more is trained at its smallest (32)"
    )
    p_train.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS, help=f"default {DEFAULT_EPOCHS}")
    p_train.add_argument(
        "--seeds", default=",".join(map(str, DEFAULT_SEEDS)), help="comma-separated, e.g. 0,1,2 (default %(default)s)"
    )
    p_train.add_argument("--out", help="results CSV, appended to row by row (default results/accuracy-DATASET.csv)")
    p_train.add_argument(
        "--recipe",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change one field of the recipe, e.g. lr=0.001 or dropout=0 (the rows' recipe id changes with it)",
    )
    p_train.add_argument("--force", action="store_true", help="retrain models whose rows are already in --out")
    p_train.add_argument(
        "--deployed",
        action="store_true",
        help="train once (first seed), export (and quantize to INT8) for each --deploy-on target and score the "
        "held-out split there and in eager, with top-1 agreement (--out default: results/accuracy-DATASET-deployed"
        ".csv)",
    )
    p_train.add_argument(
        "--deploy-on",
        metavar="BACKEND:DTYPE,...",
        help=f"with --deployed: the targets to score on, BACKEND one of {', '.join(RUNTIMES)} and DTYPE one it takes "
        f"(int8 on {', '.join(INT8_RUNTIMES)}); default {','.join(':'.join(t) for t in DEPLOYED_TARGETS)}",
    )
    p_train.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p_train.add_argument("--threads", type=positive_int, help="torch CPU threads (default: torch's own choice)")
    printed_by(p_train, _cmd_train)

    p_eval = sub.add_parser(
        "eval",
        help="top-1/top-5 of a local checkpoint on an image folder (a class per sub-folder)",
        description="Loads --weights (ours, torchvision's or, for mobilenet_v1_x1_0, timm's layout; .pt/.pth read "
        "with weights_only=True, or .safetensors) and scores it on --data, preprocessed as the model's reference "
        "implementation does. Unreadable images are skipped and counted.",
    )
    p_eval.add_argument("model", metavar="MODEL", help="a zoo name")
    p_eval.add_argument("--data", required=True, help="image folder: DIR/CLASS/IMAGE, classes in sorted order")
    p_eval.add_argument("--weights", required=True, help="checkpoint file: .pt, .pth or .safetensors")
    p_eval.add_argument("--res", type=int, help="crop side fed to the model (default: the reference's)")
    p_eval.add_argument(
        "--crop", type=float, help="crop fraction: resize the short side to res / crop, then centre-crop (0.875)"
    )
    p_eval.add_argument(
        "--batch",
        type=int,
        default=64,
        help="images per forward (default 64; a runtime that takes one image per call, "
        f"{', '.join(n for n, r in RUNTIMES.items() if r.batch_one)}, is fed them one by one)",
    )
    p_eval.add_argument("--device", default="cpu")
    p_eval.add_argument("--workers", type=int, default=0, help="image-decoding worker processes (default 0)")
    p_eval.add_argument(
        "--backend",
        choices=("eager", *RUNTIMES),
        default="eager",
        help="score the model exported for this runtime (CPU): "
        + "; ".join(f"{n} ({r.file} file, {'/'.join(r.dtypes)})" for n, r in RUNTIMES.items()),
    )
    p_eval.add_argument(
        "--dtype", choices=("fp32", INT8), default="fp32", help=f"int8 on {', '.join(INT8_RUNTIMES)} only"
    )
    p_eval.add_argument(
        "--calibration",
        metavar="DIR",
        default=None,
        help="int8: image folder to calibrate on (default: the --data folder itself)",
    )
    p_eval.add_argument("--threads", type=positive_int, default=None, help="runtime threads (default: its own)")
    printed_by(p_eval, _cmd_eval)
