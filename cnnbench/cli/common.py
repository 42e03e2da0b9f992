"""What every command shares: one-line argparse errors, checked number types, the models named, and the target
options."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import fields
from pathlib import Path

import pandas as pd

from cnnbench.catalog import resolve_patterns, resolve_specs
from cnnbench.errors import CnnbenchError
from cnnbench.fronts import disturbed
from cnnbench.images import scan_image_folder
from cnnbench.measure.disturbance import Quieting, machine_load
from cnnbench.output import FORMATS, say_to_stderr
from cnnbench.target import BACKENDS, DTYPES, INT8, INT8_RUNTIMES, Target

__all__ = [
    "Parser",
    "add_model_arguments",
    "add_quiet_arguments",
    "add_target_arguments",
    "calibration_from",
    "model_names",
    "check_quiet",
    "disturbed_summary",
    "model_names",
    "printed_by",
    "positive_float",
    "percent",
    "percentage",
    "positive_int",
    "quieting_for",
    "target_from",
]


class Parser(argparse.ArgumentParser):
    """argparse, with its errors in one line (``cnnbench report: error: ...``) and exit code 2, no usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a number greater than 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
    return value


def positive_float_or_all(text: str) -> float | None:
    """An argparse type: a number greater than 0, or ``all`` (None: no limit)."""
    return None if text.strip().lower() == "all" else positive_float(text)


def percent(text: str) -> float:
    """An argparse type: a percentage, with or without its sign ("5", "5%", "2.5%"), in percent (5.0)."""
    try:
        value = float(text.strip().removesuffix("%"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes a percentage such as 5 or 5%, got {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a percentage of at least 0, got {text!r}")
    return value


def percentage(text: str) -> float:
    """An argparse type: a percentage as :func:`percent` reads it, as a fraction (0.05)."""
    return percent(text) / 100


def add_target_arguments(
    parser: argparse.ArgumentParser, sweep_threads: Callable[[str], list[int]] | None = None
) -> None:
    """The options that make a target: device, threads, dtype, memory format, backend, BN folding.
    ``sweep_threads`` parses a ``--threads`` that may also list several counts (``bench``'s sweep)."""
    parser.add_argument("--device", "--target", default="cpu", help="cpu, cuda, cuda:N or mps (default cpu)")
    if sweep_threads is None:
        parser.add_argument("--threads", type=positive_int, default=None, help="CPU threads (default: torch's)")
    else:
        parser.add_argument(
            "--threads",
            type=sweep_threads,
            default=None,
            metavar="N[,N...]",
            help="CPU threads (default: torch's); several, comma-separated, sweep them (1,2,4)",
        )
    parser.add_argument(
        "--dtype",
        choices=[*DTYPES, INT8],
        default="fp32",
        help=f"fp16/bf16 run under autocast; int8 ({', '.join(INT8_RUNTIMES)}) is static quantization",
    )
    parser.add_argument("--channels-last", action="store_true", help="NHWC memory format for model and input")
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="eager",
        help="compile: torch.compile; onnxruntime, openvino (ONNX), executorch (XNNPACK .pte), ncnn (pnnx): "
        "the model exported and run there",
    )
    parser.add_argument("--fuse-bn", action="store_true", help="fold BatchNorm into the convolutions first")
    parser.add_argument(
        "--calibration",
        metavar="DIR",
        default=None,
        help="int8: calibrate on this image folder (DIR/CLASS/IMAGE) instead of the digits",
    )


def target_from(args: argparse.Namespace) -> Target:
    """The :class:`Target` that :func:`add_target_arguments`' options name."""
    return Target(**{f.name: getattr(args, f.name) for f in fields(Target)})


def calibration_from(args: argparse.Namespace) -> Path | None:
    """The ``--calibration`` folder, checked now (one line if it is missing or holds no images)."""
    if getattr(args, "calibration", None) is None:
        return None
    if getattr(args, "dtype", INT8) != INT8 and not getattr(args, "deploy", None):
        raise CnnbenchError(f"--calibration is for --dtype int8 (with --backend {', '.join(INT8_RUNTIMES)})")
    return scan_image_folder(args.calibration).root


def add_model_arguments(
    parser: argparse.ArgumentParser, specs: str = "zoo names or wildcards, timm:NAME, torchvision:NAME"
) -> None:
    """The models a command takes: names (``specs`` says which kinds), or ``--all`` for the whole zoo."""
    parser.add_argument("models", nargs="*", metavar="MODEL", help=specs)
    parser.add_argument("--all", action="store_true", help="every zoo model")


def model_names(
    names: Sequence[str] | None,
    every: bool = False,
    *,
    option: str = "",
    required: bool = True,
    zoo_only: bool = False,
) -> list[str]:
    """The models a command was given: the whole zoo with ``--all`` (``every``), else ``names``: zoo names and
    wildcards resolved against the registry, ``timm:NAME`` and ``torchvision:NAME`` as they are (refused with
    ``zoo_only``). When none is named and one is ``required``, one line says how to name them; ``option`` is the
    flag they follow (``--audit``)."""
    if every:
        return resolve_patterns("*")
    if names:
        return resolve_patterns(names) if zoo_only else resolve_specs(names)
    if required:
        after = f" after {option}" if option else ""
        raise CnnbenchError(f"name at least one model{after}, or pass --all (`cnnbench list` shows the zoo)")
    return []


def printed_by(parser: argparse.ArgumentParser, run: Callable[[argparse.Namespace], str]) -> None:
    """``run`` handles the command; ``--format`` chooses how its table prints."""
    parser.add_argument("--format", choices=FORMATS, default="table")
    parser.set_defaults(run=run)


def non_negative_float(text: str) -> float:
    """An argparse type: a number of at least 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes a number, got {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a number of at least 0, got {text}")
    return value


def add_quiet_arguments(parser: argparse.ArgumentParser) -> None:
    """How a timing command treats other processes: wait for quiet first, and how long to wait on a disturbed row."""
    parser.add_argument(
        "--wait-quiet",
        type=non_negative_float,
        default=0.0,
        metavar="SECONDS",
        help="before measuring, wait up to SECONDS for the other processes to leave the CPUs",
    )
    parser.add_argument(
        "--retries",
        type=int,
        choices=range(0, 6),
        default=2,
        metavar="N",
        help="measure a disturbed row again up to N times once the machine is quiet (default 2)",
    )


def check_quiet(command: str, args: argparse.Namespace) -> None:
    """One line on stderr when the machine is busy before a long run, naming the busiest other processes; with
    ``--wait-quiet`` it first waits up to that long for quiet."""
    wait = getattr(args, "wait_quiet", 0.0) or 0.0
    load = Quieting(wait_s=wait, budget_s=wait).wait_for_quiet(wait) if wait else machine_load()
    if not load.quiet:
        advice = "rows it slows are flagged disturbed and measured again when it is quiet"
        waited = f" after waiting {wait:g} s" if wait else ""
        print(f"cnnbench {command}: warning: the machine is busy{waited}: {load.describe()}; {advice}", file=sys.stderr)


def quieting_for(command: str, args: argparse.Namespace) -> Quieting:
    """The :class:`~cnnbench.measure.disturbance.Quieting` of a command: ``--retries``, each line said on stderr."""
    return Quieting(retries=getattr(args, "retries", 2), say=say_to_stderr(command))


def disturbed_summary(frame: pd.DataFrame) -> str:
    """One line when rows stayed disturbed (``3 of 3 rows disturbed (cpu_share 0.48-0.52): ...``); "" otherwise."""
    if "disturbed" not in frame or frame.empty:
        return ""
    flagged = frame[disturbed(frame)]
    if flagged.empty:
        return ""
    shares = pd.to_numeric(flagged["cpu_share"], errors="coerce").dropna()
    spread = f" (cpu_share {shares.min():.2f}-{shares.max():.2f})" if not shares.empty else ""
    return (
        f"{len(flagged)} of {len(frame)} rows disturbed{spread}: other processes took the CPUs while they were "
        "timed, so their figures are too slow; rerun on a quiet machine, or with --wait-quiet SECONDS"
    )
