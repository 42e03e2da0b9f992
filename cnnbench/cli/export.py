"""``cnnbench export``: the files a runtime loads, with their manifests, to take to a phone or a board."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pandas as pd

from cnnbench.cli.common import add_model_arguments, calibration_from, model_names, positive_int, printed_by
from cnnbench.errors import CnnbenchError
from cnnbench.output import emit, progress
from cnnbench.target import INT8, RUNTIMES, Target, resolve_target

__all__ = ["add_commands"]


def _cmd_export(args: argparse.Namespace) -> str:
    if args.backend not in RUNTIMES:
        raise CnnbenchError(f"export writes a deployment runtime's file; use --backend {' or '.join(RUNTIMES)}")
    target, _ = resolve_target(Target(threads=args.threads, backend=args.backend, dtype=args.dtype))
    if RUNTIMES[args.backend].batch_one and args.batch != 1:
        raise CnnbenchError(f"{args.backend} takes one image per call; use --batch 1")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CnnbenchError(f"--out {out} is a file; give a folder")
    names = model_names(args.models, args.all)
    calibration = calibration_from(args)
    from cnnbench.runtimes.device_files import clash, write_device_files

    for name in names:
        why = clash(out, name, target)
        if why:
            raise CnnbenchError(why)

    rows = []
    for name in progress(names, f"export {args.backend} {args.dtype}"):
        manifest = write_device_files(name, target, out, args.batch, args.resolution, calibration)
        files: dict[str, str] = manifest["files"]  # type: ignore[assignment]
        rows.append(
            {
                "model": name,
                "files": " ".join(files),
                "sha256": " ".join(digest[:12] for digest in files.values()),
                "megabytes": round(sum((out / file).stat().st_size for file in files) / 1e6, 2),
                "manifest": f"{out / Path(next(iter(files))).stem}.json",
                "time_on_device": manifest["time_on_device"],
            }
        )
    columns = {"model": "model", "files": "files", "megabytes": "MB", "sha256": "sha256", "manifest": "manifest"}
    return emit(pd.DataFrame(rows), args.format, columns)


def add_commands(sub: Any) -> None:
    """``export``."""
    p_export = sub.add_parser(
        "export",
        help="write the file a runtime loads (.onnx, OpenVINO .xml/.bin, .pte, ncnn .param/.bin) and its manifest",
        description="Writes each model's file for --backend into --out, named after the model, beside a JSON "
        "manifest: the input's name, shape, layout, mean and std; the runtime and its version; the calibration; "
        "each file's sha256; and the command that times the file on a device with the runtime's own tool. The "
        "file is the one cnnbench's latency rows load (same cache).",
    )
    add_model_arguments(p_export)
    p_export.add_argument("--backend", required=True, choices=list(RUNTIMES), help="the runtime to write for")
    p_export.add_argument("--dtype", choices=("fp32", INT8), default="fp32", help="int8: statically quantized")
    p_export.add_argument("--out", required=True, metavar="DIR", help="the folder to write into")
    p_export.add_argument("--batch", type=positive_int, default=1, help="the file's fixed batch (default 1)")
    p_export.add_argument(
        "--resolution", type=positive_int, default=None, help="input side in pixels (default: each model's own)"
    )
    p_export.add_argument(
        "--threads", type=positive_int, default=None, help="threads in the device command (default: this CPU's)"
    )
    p_export.add_argument(
        "--calibration", metavar="DIR", default=None, help="int8: calibrate on this image folder instead of the digits"
    )
    printed_by(p_export, _cmd_export)
