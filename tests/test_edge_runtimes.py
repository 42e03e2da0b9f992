"""The phone runtimes: ExecuTorch (XNNPACK) and ncnn give eager's outputs for every zoo model, their rows carry the
columns every runtime row has, ``cnnbench export`` writes the files a device loads with a manifest, what they
cannot do is refused in one line, and ``cnnbench report --deploy``, ``pick`` and ``compare`` take them.

No wall-clock time is asserted. Parity compares outputs of order one (tests/test_runtimes.py's well-conditioned
weights), relative to the largest output.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import pandas as pd
import pytest
import torch
from test_runtimes import SIDE, TOLERANCE, well_conditioned

import cnnbench.guidelines.microbench as guidelines
import cnnbench.report.latency_tables as latency_tables
import cnnbench.report.run as report_run
import zoo
from cnnbench.choose import Budget, no_fit_message, pick, rank
from cnnbench.cli import main
from cnnbench.errors import CnnbenchError
from cnnbench.measure.bench import bench
from cnnbench.measure.isolated import CallPlan
from cnnbench.measure.latency import QUICK_TIMING
from cnnbench.measure.roofline import Roofline
from cnnbench.report import deployment
from cnnbench.report.config import DEPLOYMENTS, ReportConfig
from cnnbench.report.run import run_report
from cnnbench.report.tables import Guard
from cnnbench.runtimes import executorch, ncnn
from cnnbench.runtimes.session import load_session
from cnnbench.target import RUNTIMES, Target, resolve_target

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


# --- the report's deployment tables, pick and compare on the phone runtimes ---------------------------------------

EDGE_MODELS = ("shufflenet_v1_g8_x0_25", "mobilenet_v3_small")  # the two lightest lowerings of the zoo
EDGE_DEPLOYED = ("executorch:fp32", "ncnn:fp32")


@pytest.fixture(scope="module")
def edge_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A quick report of :data:`EDGE_MODELS` deployed on ExecuTorch and ncnn; the roofline and the guideline tables
    take fixed figures (their own tests measure them)."""
    out = tmp_path_factory.mktemp("edge")
    roof = Roofline("fixed", peak_flops_per_s=50e9, bandwidth_bytes_per_s=15e9, matmul_size=1024, copy_bytes=1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(report_run, "cached_roofline", lambda target: roof)
        mp.setattr(guidelines, "time_table", lambda table, *_: [[1.0 + i] * 3 for i in range(len(table))])
        run_report(ReportConfig.quick_config(out, models=EDGE_MODELS, target=Target(threads=1),
                                             deployments=EDGE_DEPLOYED, sweeps=False, predict=False))  # fmt: skip
    return out


@pytest.mark.slow  # two lowerings and two conversions
def test_the_report_deploys_on_executorch_and_ncnn(edge_report: Path) -> None:
    eager = pd.read_csv(edge_report / "latency-cpu-t1-fp32-nchw-eager.csv").set_index("model")["latency_ms_median"]
    for backend, version in (("executorch", executorch.version()), ("ncnn", ncnn.version())):
        rows = pd.read_csv(edge_report / f"latency-cpu-t1-fp32-nchw-{backend}.csv").set_index("model")
        assert set(rows.index) == set(EDGE_MODELS) and (rows["status"] == "ok").all(), rows["error"].tolist()
        assert set(rows["backend"]) == {backend} and set(rows["runtime_version"]) == {version}
        for column in ("export_s", "load_s", "first_inference_ms", "peak_rss_bytes", "probe_ms"):
            assert (pd.to_numeric(rows[column]) > 0).all(), (backend, column)
        assert rows["hardware"].notna().all() and rows["disturbed"].notna().all()
        # the preparation made each file in a child ahead of the rows, which found it in the cache
        assert rows["notes"].str.contains("export, fp32 weights \\(cached\\)|XNNPACK export \\(cached\\)").all()
    readme = (edge_report / "README.md").read_text()
    section = readme[readme.index("## Deployment runtimes") :]
    assert section.startswith("## Deployment runtimes: ExecuTorch and ncnn, fp32\n")
    assert "### cpu-t1-fp32-nchw-executorch (ExecuTorch " in section and "### cpu-t1-fp32-nchw-ncnn (ncnn " in section
    assert "pnnx's conversion" in section and "ONNX" not in section.split("###")[0]
    lowered = pd.read_csv(edge_report / "latency-cpu-t1-fp32-nchw-executorch.csv").set_index("model")
    median = (eager / lowered["latency_ms_median"]).median()  # the README's sentence, recomputed from the tables
    assert f"On **cpu-t1-fp32-nchw-executorch**, the median model runs {median:.2f}× as fast" in section
    assert (edge_report / "speedup_vs_eager.png").exists()


@pytest.mark.slow  # measures the two rows again at the report's timing (the quick report's are not reused)
@pytest.mark.parametrize("backend", ["executorch", "ncnn"])
def test_pick_ranks_the_models_of_a_phone_runtimes_table(edge_report: Path, backend: str) -> None:
    ranked = pick(target=Target(threads=1, backend=backend), results=edge_report, models=EDGE_MODELS)
    table = pd.read_csv(edge_report / f"latency-cpu-t1-fp32-nchw-{backend}.csv").set_index("model")
    assert set(ranked["model"]) == set(EDGE_MODELS)
    for model, latency in ranked.set_index("model")["latency_ms"].items():  # pick's rows, saved in the report's table
        assert latency == pytest.approx(table.loc[model, "latency_ms_median"]) and table.loc[model, "status"] == "ok"
    fits = ranked[ranked["rank"].notna()]["model"].tolist()  # a row another process disturbed is left out, named
    assert all(why.startswith("latency disturbed") for why in ranked[ranked["rank"].isna()]["excluded_by"])
    # by the papers' top-1: MobileNetV3-Small 67.4 (Table 3), ShuffleNet 0.25× (g = 8) 32.4 (Table 2's 67.6 % error)
    assert fits == [m for m in ("mobilenet_v3_small", "shufflenet_v1_g8_x0_25") if m in fits]


def test_pick_says_when_only_disturbance_left_no_model() -> None:
    frame = pd.DataFrame({"model": ["resnet18", "alexnet"], "family": "resnet", "latency_ms": [5.0, 9.0],
                          "top1": [69.8, 57.0], "top1_std": None, "top1_from": "paper", "params_m": [11.7, 61.1],
                          "memory_mb": [10.0, 20.0], "status": "ok", "error": "", "disturbed": [True, True],
                          "cpu_share": [0.4, 0.5]})  # fmt: skip
    quiet_budget = no_fit_message(rank(frame, Budget(latency_ms=10.0)), Budget(latency_ms=10.0))
    assert "the rows that would (resnet18, alexnet) were disturbed" in quiet_budget
    tight = no_fit_message(rank(frame, Budget(latency_ms=1.0)), Budget(latency_ms=1.0))  # the budget is to blame
    assert "the fastest measured is resnet18 at 5 ms" in tight


@pytest.mark.slow
def test_compare_reads_the_phone_runtimes_tables(edge_report: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", str(edge_report), str(edge_report), "--format", "csv"]) == 0
    frame = pd.read_csv(io.StringIO(capsys.readouterr().out))
    for backend in ("executorch", "ncnn"):
        mine = frame[frame["target"] == f"cpu-t1-fp32-nchw-{backend}"]
        assert set(mine["model"]) == set(EDGE_MODELS) and (mine["ratio"] == 1.0).all()


def test_the_deployment_section_names_the_runtimes_it_shows() -> None:
    assert set(deployment.RUNTIME_NAMES) == set(RUNTIMES)
    default = [tuple(spec.split(":")) for spec in DEPLOYMENTS]
    assert deployment.runtimes_title(default) == "ONNX Runtime and OpenVINO, fp32 and INT8"  # type: ignore[arg-type]
    edge = [("executorch", "fp32"), ("executorch", "int8"), ("ncnn", "fp32")]
    assert deployment.runtimes_title(edge) == "ExecuTorch and ncnn, fp32 and INT8"
    text = deployment.method_text(edge, 8)
    assert "ONNX" not in text and "XNNPACK" in text and "pnnx" in text and "PT2E" in text and "QDQ" not in text
    assert "QDQ" in deployment.method_text(default, 8) and "ExecuTorch" not in deployment.method_text(default, 8)


class _Probe:
    def ms(self) -> float:
        return 1.0


def test_the_preparation_sizes_each_child_by_its_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The plan handed to the children, no child started: every file kind's job, each with its own size, an ONNX
    quantization after its export and ExecuTorch's INT8 after nothing, heavy models first."""
    seen: list[tuple[CallPlan, list[str]]] = []

    def plan_only(fn: object, argsets: list[object], workers: int, progress: object, desc: str, plan: CallPlan,
                  labels: list[str]) -> list[object]:  # fmt: skip
        seen.append((plan, labels))
        return [None] * len(argsets)

    monkeypatch.setattr(latency_tables.isolated, "map_isolated", plan_only)
    monkeypatch.setattr(latency_tables.isolated, "held_bytes", lambda: 1_000_000_000)
    specs = (*DEPLOYMENTS, "executorch:fp32", "executorch:int8", "ncnn:fp32")
    config = ReportConfig.quick_config(tmp_path, target=Target(threads=1), deployments=specs)
    guard = Guard(_Probe())  # type: ignore[arg-type]
    names = ["mobilenet_v2", "alexnet"]
    made = latency_tables.prepare_deployments(config, names, lambda items, desc: items, guard, frozenset({"alexnet"}))
    ((plan, labels),) = seen
    kinds = [("onnx", "fp32"), ("onnx", "int8"), ("pte", "fp32"), ("pte", "int8"), ("ncnn", "fp32")]
    assert made == 10 and sorted(labels) == sorted(f"{n} {f} {d}" for n in names for f, d in kinds)
    assert [label.split()[0] for label in labels] == ["alexnet"] * 5 + ["mobilenet_v2"] * 5
    assert plan.budget_bytes == latency_tables.PREPARATION_BUDGET_BYTES - 1_000_000_000
    for index, label in enumerate(labels):
        name, file, dtype = label.split()
        sizes = latency_tables.PREPARATION_BYTES[(file, dtype)]
        assert plan.sizes[index] == (sizes.heavy if name == "alexnet" else sizes.light), label
        expected = labels.index(f"{name} onnx fp32") if (file, dtype) == ("onnx", "int8") else None
        assert plan.prerequisite(index) == expected, label
