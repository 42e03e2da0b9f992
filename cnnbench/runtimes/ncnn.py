"""ncnn: a model converted by pnnx to ncnn's ``.param`` (the graph, text) and ``.bin`` (the weights), run by the
``ncnn`` package's bindings of ncnn's C++ library.

pnnx traces the model with TorchScript and converts the trace. By default it stores the weights as fp16; cnnbench
asks for fp32 (``fp16=0``), and loads with ncnn's fp16 and bf16 storage, packing and arithmetic off, so that an
fp32 row computes in fp32. Left on, on a CPU with F16C (every x86-64 CPU here), ncnn keeps weights and feature
maps in fp16 and the outputs move by ~1e-3 of their scale.

ncnn takes one image per call (its ``Mat`` is channels × height × width): a row's batch is 1. Each call creates
an ``Extractor``, feeds the input and extracts the output, as an app does per frame.

A named model's files are cached under ``cache_root()/ncnn`` by the same rule as the ONNX files.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cnnbench import models
from cnnbench.errors import CnnbenchError, reason
from cnnbench.runtimes.export import file_stem
from cnnbench.store import atomic_path, cache_folder, cache_root, cached_file, code_fingerprint

__all__ = ["Converted", "convert", "converted", "version", "ONE_IMAGE"]

ONE_IMAGE = "ncnn takes one image per call; use --batch 1"


def version() -> str:
    import ncnn

    return str(ncnn.__version__)


@dataclass(frozen=True)
class Converted:
    """An ncnn ``.param`` file (its ``.bin`` beside it, same stem) and how it was made."""

    param: Path
    export_s: float  # tracing and pnnx's conversion, seconds (from the cache's record on a hit)
    cached: bool

    @property
    def bin(self) -> Path:
        return self.param.with_suffix(".bin")


def convert(model: nn.Module, param: Path, side: int, channels: int = 3) -> Converted:
    """Write ``model`` (a CPU copy in eval mode) to ``param`` and its ``.bin`` for one ``channels × side²``
    image, weights in fp32. Raises :class:`CnnbenchError` with pnnx's reason when it fails."""
    import pnnx

    x = torch.zeros(1, channels, side, side)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cnnbench-pnnx-") as scratch:
        work = Path(scratch)
        try:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                torch.jit.trace(model.eval(), x, check_trace=False).save(str(work / "model.pt"))
        except Exception as err:  # noqa: BLE001 - the tracer's failure is the row's reason
            raise CnnbenchError(f"ncnn export failed (TorchScript trace: {reason(err, 200)})") from None
        outputs = {key: work / f"model.{key}" for key in ("pnnxparam", "pnnxbin", "pnnxpy", "pnnxonnx", "ncnnpy")}
        command = [
            pnnx.EXEC_PATH,
            str(work / "model.pt"),
            f"inputshape=[1,{channels},{side},{side}]f32",
            "device=cpu",
            "fp16=0",
            f"ncnnparam={work / 'model.ncnn.param'}",
            f"ncnnbin={work / 'model.ncnn.bin'}",
            *(f"{key}={path}" for key, path in outputs.items()),
        ]
        done = subprocess.run(command, capture_output=True, text=True, cwd=scratch, check=False)
        made = work / "model.ncnn.param"
        if done.returncode != 0 or not made.exists() or not (work / "model.ncnn.bin").exists():
            last = (done.stderr.strip() or done.stdout.strip() or f"exit code {done.returncode}").splitlines()[-1]
            raise CnnbenchError(f"ncnn export failed (pnnx: {last[:200]})")
        with atomic_path(param.with_suffix(".bin")) as temporary:
            shutil.copyfile(work / "model.ncnn.bin", temporary)
        with atomic_path(param) as temporary:  # the .param last: it marks the pair complete
            shutil.copyfile(made, temporary)
    return Converted(param, time.perf_counter() - started, False)


def _key(name: str, side: int) -> str:
    code = code_fingerprint(name, [sys.modules[__name__], models])
    text = f"{name}|b1|r{side}|torch{torch.__version__}|ncnn{version()}|{code}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def converted(name: str, side: int, cache: Path | None = None) -> Converted:
    """Zoo, ``timm:`` or ``torchvision:`` model ``name`` as ncnn files, from the cache or converted now."""
    folder = cache_folder(cache or cache_root() / "ncnn")
    param = folder / f"{file_stem(name)}-b1-r{side}-{_key(name, side)}.param"

    def read(meta: dict[str, Any]) -> Converted:
        return Converted(param, float(meta["export_s"]), True)

    def make() -> tuple[Converted, dict[str, object]]:
        made = convert(models.build_model(name, device="cpu").model, param, side)
        fields = {
            "param": param.name,
            "model": name,
            "export_s": made.export_s,
            "resolution": side,
            "torch": torch.__version__,
            "ncnn": version(),
        }
        return made, fields

    return cached_file(param, read, make, also=[param.with_suffix(".bin")])


@dataclass
class Loaded:
    """A loaded ncnn net and its input and output blob names; ``call(mat)`` runs one image."""

    net: object
    input_name: str
    output_name: str

    def call(self, mat: object) -> object:
        extractor = self.net.create_extractor()  # type: ignore[attr-defined]
        extractor.input(self.input_name, mat)
        _, out = extractor.extract(self.output_name)
        return out


def load(param: Path, threads: int | None) -> tuple[Loaded, float]:
    """The ncnn net of ``param`` (and its ``.bin``), fp32 throughout, on ``threads`` threads; and the seconds
    loading took."""
    import ncnn

    started = time.perf_counter()
    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    for option in ("use_fp16_storage", "use_fp16_packed", "use_fp16_arithmetic", "use_bf16_storage"):
        setattr(net.opt, option, False)
    if threads:
        net.opt.num_threads = threads
    if net.load_param(str(param)) != 0 or net.load_model(str(param.with_suffix(".bin"))) != 0:
        raise CnnbenchError(f"ncnn could not load {param.name}")
    loaded = Loaded(net, net.input_names()[0], net.output_names()[0])
    return loaded, time.perf_counter() - started


def feed(x: np.ndarray) -> object:
    """One image (a batch of 1) as an ncnn ``Mat`` that owns its copy of the data."""
    import ncnn

    if len(x) != 1:
        raise CnnbenchError(ONE_IMAGE)
    return ncnn.Mat(np.ascontiguousarray(x[0], dtype=np.float32)).clone()


def output(out: object) -> np.ndarray:
    """ncnn's output Mat as a batch of one: (1, classes) for a classifier, (1, C, H, W) for a feature map."""
    return np.array(out, dtype=np.float32)[None]
