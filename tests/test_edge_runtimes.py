"""The phone runtimes: ExecuTorch (XNNPACK) and ncnn give eager's outputs for every zoo model, their rows carry the
columns every runtime row has, ``cnnbench export`` writes the files a device loads with a manifest, and what they
cannot do is refused in one line.

No wall-clock time is asserted. Parity compares outputs of order one (tests/test_runtimes.py's well-conditioned
weights), relative to the largest output.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import torch
from test_runtimes import SIDE, TOLERANCE, well_conditioned

import zoo
from cnnbench.cli import main
from cnnbench.errors import CnnbenchError
from cnnbench.measure.bench import bench
from cnnbench.measure.latency import QUICK_TIMING
from cnnbench.runtimes import executorch, ncnn
from cnnbench.runtimes.session import load_session
from cnnbench.target import Target, resolve_target

EXECUTORCH = Target(threads=1, backend="executorch")
NCNN = Target(threads=1, backend="ncnn")


def _parity(name: str, target: Target, tmp_path: Path, generator: torch.Generator) -> None:
    x = torch.randn(1, 3, SIDE, SIDE, generator=generator)
    model = well_conditioned(name, generator, x)
    with torch.inference_mode():
        expected = model(x)
    scale = expected.abs().max().item()
    assert scale > 1e-3, f"logits of {scale:.1e}: the comparison would check nothing"
    if target.backend == "executorch":
        path = executorch.lower(model, tmp_path / "model.pte", 1, SIDE).path
    else:
        path = ncnn.convert(model, tmp_path / "model.param", SIDE).param
    got = torch.from_numpy(load_session(path, resolve_target(target)[0]).run(x.numpy()))
    torch.testing.assert_close(got, expected, rtol=0, atol=TOLERANCE * scale)


# ExecuTorch lowers a zoo model in 10-40 s here (25 min for the zoo), pnnx converts one in 2-10 s: the test run
# keeps one model per new kind of operator, CNNBENCH_FULL_PARITY=1 runs every zoo model on both.
FULL = os.environ.get("CNNBENCH_FULL_PARITY") == "1"
# hard-swish and squeeze-excitation, channel shuffle and split, dense 3×3 residual blocks
EXECUTORCH_MODELS = zoo.list_models() if FULL else ["mobilenet_v3_small", "shufflenet_v2_x1_0", "resnet18"]
# besides those: grouped 1×1 convolutions, inverted residuals, SiLU, fire modules, inception branches, bottlenecks,
# large fully connected layers, local response normalisation's absence (AlexNet), depthwise-separable stacks
NCNN_MODELS = (
    zoo.list_models()
    if FULL
    else [
        *EXECUTORCH_MODELS,
        "shufflenet_v1_g3_x1_0",
        "mobilenet_v2",
        "efficientnet_b0",
        "squeezenet1_1",
        "googlenet",
        "resnet50",
        "vgg11_bn",
        "alexnet",
        "mobilenet_v1_x1_0",
    ]
)


@pytest.mark.slow  # the lowerings
@pytest.mark.parametrize("name", EXECUTORCH_MODELS)
def test_executorch_gives_eager_outputs(name: str, tmp_path: Path, generator: torch.Generator) -> None:
    _parity(name, EXECUTORCH, tmp_path, generator)


@pytest.mark.slow  # the conversions
@pytest.mark.parametrize("name", NCNN_MODELS)
def test_ncnn_gives_eager_outputs(name: str, tmp_path: Path, generator: torch.Generator) -> None:
    _parity(name, NCNN, tmp_path, generator)


@pytest.mark.parametrize("target", [Target(threads=1, backend="executorch", dtype="int8"), NCNN])
def test_bench_rows_on_the_phone_runtimes_carry_cold_start_memory_and_version(target: Target) -> None:
    frame = bench(["squeezenet1_1"], target, resolution=SIDE, timing=QUICK_TIMING)
    assert list(frame["status"]) == ["ok"], list(frame["error"])
    for column in ("export_s", "load_s", "first_inference_ms", "latency_ms_median", "peak_rss_bytes"):
        assert float(frame[column].iloc[0]) > 0, column
    version = executorch.version() if target.backend == "executorch" else ncnn.version()
    assert frame["runtime_version"].iloc[0] == version
    for column in ("disturbed", "cpu_share", "hardware", "probe_ms"):
        assert column in frame


def test_ncnn_takes_one_image_per_call() -> None:
    frame = bench(["squeezenet1_1"], NCNN, batches=(2,), resolution=SIDE, timing=QUICK_TIMING, isolate=False)
    assert frame["status"].iloc[0] != "ok" and "one image per call" in frame["error"].iloc[0]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("backend", "dtype", "suffixes"),
    [("executorch", "int8", [".pte"]), ("ncnn", "fp32", [".param", ".bin"]), ("openvino", "fp32", [".xml", ".bin"]),
     ("onnxruntime", "int8", [".onnx"])],
)  # fmt: skip
def test_export_writes_the_file_and_its_manifest(backend: str, dtype: str, suffixes: list[str], tmp_path: Path) -> None:
    out = tmp_path / "ship"
    code = main(["export", "squeezenet1_1", "--backend", backend, "--dtype", dtype, "--resolution", str(SIDE),
                 "--threads", "4", "--out", str(out)])  # fmt: skip
    assert code == 0
    manifest = json.loads((out / "squeezenet1_1.json").read_text())
    files = {f"squeezenet1_1{suffix}" for suffix in suffixes}
    assert set(manifest["files"]) == files
    for file, digest in manifest["files"].items():
        assert _sha256(out / file) == digest
    assert manifest["input"]["shape"] == [1, 3, SIDE, SIDE]
    assert manifest["input"]["mean"] == pytest.approx([0.485, 0.456, 0.406])  # torchvision's ImageNet preset
    assert manifest["output"]["shape"] == [1, 1000]
    assert manifest["runtime"] == backend and manifest["dtype"] == dtype and manifest["runtime_version"]
    assert (manifest["calibration"] is not None) == (dtype == "int8")
    if backend == "executorch":  # what stayed outside XNNPACK is named, each operator with its count
        named = [note for note in manifest["notes"] if "XNNPACK" in note and ("outside" in note or "every" in note)]
        assert named and ("every operator" in named[0] or " ×" in named[0])
        assert any("INT8 PT2E" in note for note in manifest["notes"])
    command = manifest["time_on_device"]
    assert "4" in command.split() and any(file in command for file in files)  # the threads asked for, the file


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--backend", "ncnn", "--dtype", "int8"], "ncnn takes --dtype fp32, not int8"),
        (["--backend", "ncnn", "--batch", "2"], "one image per call"),
        (["--backend", "eager"], "invalid choice"),
    ],
)
def test_export_refuses_what_cannot_work_in_one_line(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["export", "squeezenet1_1", "--out", str(tmp_path / "x"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "Traceback" not in err and err.count("\n") == 0
    assert not (tmp_path / "x").exists()


def test_export_keeps_one_runtime_per_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "squeezenet1_1.json").write_text(json.dumps({"runtime": "openvino", "dtype": "fp32"}))
    assert main(["export", "squeezenet1_1", "--backend", "ncnn", "--out", str(tmp_path)]) == 2
    assert "already holds squeezenet1_1 for openvino fp32" in capsys.readouterr().err
    assert not (tmp_path / "squeezenet1_1.param").exists()


def test_export_refuses_an_unknown_model_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "mobilenet_v9", "--backend", "executorch", "--out", str(tmp_path / "x")]) == 2
    assert "mobilenet_v9" in capsys.readouterr().err


def test_int8_on_ncnn_is_refused_naming_the_runtimes_that_take_it() -> None:
    with pytest.raises(CnnbenchError, match="int8 runs on onnxruntime, openvino, executorch"):
        resolve_target(Target(backend="ncnn", dtype="int8"))
