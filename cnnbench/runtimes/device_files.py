"""Files to take to a device: the exact file a runtime loads there, beside a JSON manifest that says how to feed
it, what made it, and the command that times it with the runtime's own tool.

The file is the one cnnbench's rows load (the same cache, the same key), so a latency measured here and one
measured on the phone are of the same bytes (the manifest's ``sha256``). OpenVINO gets its own IR (``.xml`` and
``.bin``, converted from that ONNX file without compressing the weights to fp16).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np

import zoo
from cnnbench.images import reference_preprocess
from cnnbench.provenance import git_commit
from cnnbench.runtimes.export import INPUT_NAME, file_stem
from cnnbench.runtimes.int8 import Calibration
from cnnbench.runtimes.session import deployable, load_session
from cnnbench.store import atomic_path, atomic_write_text
from cnnbench.target import RUNTIMES, Target, runtime_version

__all__ = ["write_device_files", "device_command", "clash"]


def device_command(backend: str, files: list[str], threads: int, side: int) -> str:
    """The command that times ``files`` on a device with the runtime's own benchmark tool, ``threads`` threads."""
    first = files[0]
    if backend == "executorch":  # built with the XNNPACK backend (EXECUTORCH_BUILD_XNNPACK=ON)
        return f"executor_runner --model_path {first} --num_executions 100 --cpu_threads {threads}"
    if backend == "ncnn":  # benchncnn reads the .param only and fills the weights itself
        return f"benchncnn 100 {threads} 0 -1 0 param={first} shape=[{side},{side},3]"
    if backend == "openvino":
        return f"benchmark_app -m {first} -d CPU -hint latency -nthreads {threads} -niter 100"
    return f"onnxruntime_perf_test -I -m times -r 100 -e cpu -x {threads} {first}"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _copy(source: Path, destination: Path) -> None:
    with atomic_path(destination) as temporary:
        shutil.copyfile(source, temporary)


def _openvino_ir(onnx_file: Path, xml: Path) -> None:
    import openvino

    model = openvino.Core().read_model(str(onnx_file))
    with atomic_path(xml) as temporary:
        openvino.save_model(model, str(temporary), compress_to_fp16=False)
        temporary.with_suffix(".bin").replace(xml.with_suffix(".bin"))


def clash(out: Path, name: str, target: Target) -> str | None:
    """Why ``name``'s files for ``target`` cannot go into ``out``: its manifest there is another runtime's or
    dtype's (their files share names: ncnn's and OpenVINO's ``.bin``). None when they can."""
    manifest = out / f"{file_stem(name)}.json"
    try:
        held = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(held, dict) or (held.get("runtime"), held.get("dtype")) == (target.backend, target.dtype):
        return None
    return (
        f"{out} already holds {name} for {held.get('runtime')} {held.get('dtype')}; give each runtime and dtype "
        "its own --out folder"
    )


def write_device_files(
    name: str,
    target: Target,
    out: Path,
    batch: int = 1,
    resolution: int | None = None,
    calibration: str | Path | Calibration | None = None,
) -> dict[str, object]:
    """Write ``name``'s file for ``target``'s runtime into ``out`` (``<name>.onnx``, ``.xml``/``.bin``, ``.pte``,
    or ``.param``/``.bin``) and its manifest ``<name>.json``; returns the manifest. The file is loaded and run
    once here, so a file that does not load never reaches a device."""
    runtime = RUNTIMES[target.backend]
    side = resolution or zoo.model_info(name).resolution
    made = deployable(name, target, batch, side, calibration)
    stem = file_stem(name)
    out.mkdir(parents=True, exist_ok=True)
    if runtime.file == "ncnn":
        written = [out / f"{stem}.param", out / f"{stem}.bin"]
        _copy(made.path, written[0])
        _copy(made.path.with_suffix(".bin"), written[1])
    elif runtime.file == "pte":
        written = [out / f"{stem}.pte"]
        _copy(made.path, written[0])
    elif target.backend == "openvino":
        written = [out / f"{stem}.xml", out / f"{stem}.bin"]
        _openvino_ir(made.path, written[0])
    else:
        written = [out / f"{stem}.onnx"]
        _copy(made.path, written[0])
    session = load_session(written[0], target)
    x = np.zeros((batch, 3, side, side), dtype=np.float32)
    output = np.asarray(session.run(x))
    input_name = {"executorch": "forward's first argument", "ncnn": getattr(session.raw, "input_name", "in0")}
    preprocess = reference_preprocess(name, side)
    manifest: dict[str, object] = {
        "model": name,
        "runtime": target.backend,
        "runtime_version": runtime_version(target.backend),
        "dtype": target.dtype,
        "files": {path.name: _sha256(path) for path in written},
        "input": {
            "name": input_name.get(target.backend, INPUT_NAME),
            "shape": [batch, 3, side, side],
            "layout": "NCHW" if runtime.file != "ncnn" else "CHW (one image per call)",
            "dtype": "float32",
            "pixels": "RGB, scaled to [0, 1], then (x - mean) / std per channel",
            "mean": list(preprocess.mean),
            "std": list(preprocess.std),
            "resize_short_side": preprocess.resize,
            "center_crop": preprocess.crop,
            "interpolation": preprocess.interpolation,
        },
        "output": {"shape": list(output.shape), "meaning": "logits (no softmax)"},
        "calibration": next((note.split(" on ", 1)[1] for note in made.notes if " calibrated on " in note), None),
        "notes": list(made.notes),
        "made_by": {"cnnbench": git_commit(), "torch": runtime_version("eager")},
        "time_on_device": device_command(target.backend, [p.name for p in written], target.threads or 4, side),
    }
    atomic_write_text(out / f"{stem}.json", json.dumps(manifest, indent=2) + "\n")
    return manifest
