"""Deployment runtimes: every zoo model exported to ONNX gives eager's outputs, INT8 keeps a trained model's
accuracy, a row records cold start and peak memory, and bad settings are refused in one line.

No wall-clock time is asserted. Parity compares outputs of order one: the weights get He fan-in initialisation and
BatchNorm non-trivial statistics (as tests/test_parity.py does), and the tolerance is relative to the largest
output, after checking that the outputs depend on the input.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch
from conftest import randomize_bn_stats
from torch import nn

import zoo
from cnnbench.cli import main
from cnnbench.errors import CnnbenchError
from cnnbench.images import digits_split, digits_to_input
from cnnbench.measure.bench import bench
from cnnbench.measure.isolated import CallPlan, map_isolated, run_isolated
from cnnbench.measure.latency import QUICK_TIMING, measure
from cnnbench.runtimes import export
from cnnbench.runtimes.int8 import (
    CALIBRATION_IMAGES,
    LATENCY_CALIBRATION_IMAGES,
    digits_calibration,
    folder_calibration,
)
from cnnbench.runtimes.session import load_session
from cnnbench.target import Target, resolve_target

ORT = Target(threads=1, backend="onnxruntime")
SIDE = 64  # small keeps CI fast
# |runtime - eager| ≤ TOLERANCE · max |eager|: fp32 rounding grows with depth (ResNet-152 and EfficientNet-B6 reach
# 2e-4 of the scale); a wrong layer, weight or layout gives differences of the scale itself.
TOLERANCE = 1e-3


def well_conditioned(name: str, generator: torch.Generator, x: torch.Tensor) -> nn.Module:
    """``name`` with weights whose outputs are of order one and depend on the input: He fan-in weights, random BN
    affine parameters, then BN statistics taken from an eval-mode forward of ``x`` and six more random images (as
    ``cnnbench train`` recalibrates them), so that every layer's output on ``x`` is normalised and no deep net's
    activations blow up (statistics of other images leave near-constant channels of EfficientNet-B4+'s 2×2 stages
    to be divided by a near-zero variance)."""
    model = zoo.create_model(name)
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, generator=generator)
    randomize_bn_stats(model, generator)
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    model.eval()  # dropout and stochastic depth off; only BatchNorm collects statistics
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average: one forward sets the statistics
        m.train()
    with torch.no_grad():
        model(torch.cat([x, torch.randn(6, *x.shape[1:], generator=generator)]))
    return model.eval()


@pytest.mark.slow  # the 62 exports
@pytest.mark.parametrize("name", zoo.list_models())
def test_fp32_export_gives_eager_outputs(name: str, tmp_path: Path, generator: torch.Generator) -> None:
    side = SIDE
    x = torch.randn(2, 3, side, side, generator=generator)
    model = well_conditioned(name, generator, x)
    with torch.inference_mode():
        expected = model(x)
    assert (expected[0] - expected[1]).abs().max() > 1e-2 * expected.abs().max(), "outputs barely depend on input"
    path = tmp_path / "model.onnx"
    export.export_onnx(model, path, batch=2, resolution=side)
    got = torch.from_numpy(load_session(path, resolve_target(ORT)[0]).run(x.numpy()))
    scale = expected.abs().max().item()
    assert scale > 1e-3, f"logits of {scale:.1e}: the comparison would check nothing"
    torch.testing.assert_close(got, expected, rtol=0, atol=TOLERANCE * scale)


def test_openvino_runs_the_same_file(tmp_path: Path, generator: torch.Generator) -> None:
    x = torch.randn(1, 3, SIDE, SIDE, generator=generator)
    model = well_conditioned("mobilenet_v3_small", generator, x)
    with torch.inference_mode():
        expected = model(x)
    path = tmp_path / "model.onnx"
    export.export_onnx(model, path, batch=1, resolution=SIDE)
    got = torch.from_numpy(load_session(path, resolve_target(Target(threads=1, backend="openvino"))[0]).run(x.numpy()))
    torch.testing.assert_close(got, expected, rtol=0, atol=TOLERANCE * expected.abs().max().item())


def test_export_is_cached_by_model_batch_and_resolution(tmp_path: Path) -> None:
    first = export.exported("squeezenet1_1", 1, 64, cache=tmp_path)
    again = export.exported("squeezenet1_1", 1, 64, cache=tmp_path)
    other = export.exported("squeezenet1_1", 2, 64, cache=tmp_path)
    assert not first.cached and again.cached and not other.cached
    assert again.path == first.path != other.path
    assert again.export_s == pytest.approx(first.export_s)  # the record of when it was made, not a new timing
    assert len(list(tmp_path.glob("*.onnx"))) == 2 and not list(tmp_path.glob(".*tmp*"))


def test_a_cached_file_is_made_again_without_its_record_its_companion_or_a_readable_record(tmp_path: Path) -> None:
    from cnnbench.store import cached_file

    path, companion = tmp_path / "model.param", tmp_path / "model.bin"
    made: list[int] = []

    def make() -> tuple[str, dict[str, object]]:
        path.write_text("param")
        companion.write_text("weights")
        made.append(1)
        return "made", {"export_s": 1.5}

    def get() -> str:
        return cached_file(path, lambda record: f"read {record['export_s']}", make, also=[companion])

    assert get() == "made" and len(made) == 1
    record = json.loads(path.with_suffix(".json").read_text())
    assert record["export_s"] == 1.5 and record["made_at"]
    assert get() == "read 1.5" and len(made) == 1  # found: the record's figure, nothing made
    companion.unlink()  # an ncnn .param without its .bin
    assert get() == "made" and len(made) == 2
    path.with_suffix(".json").write_text("{not json")  # a record cut short
    assert get() == "made" and len(made) == 3
    path.with_suffix(".json").unlink()  # killed between the file and its record
    assert get() == "made" and len(made) == 4


def test_a_folder_is_replaced_whole_or_not_at_all_and_a_killed_ones_staging_is_removed(tmp_path: Path) -> None:
    from cnnbench.store import atomic_folder, remove_stale_temporaries

    folder = tmp_path / "page"
    with atomic_folder(folder) as staging:
        (staging / "a.csv").write_text("1")
    with atomic_folder(folder) as staging:  # replaced whole: a.csv goes
        (staging / "b.csv").write_text("2")
    assert sorted(p.name for p in folder.iterdir()) == ["b.csv"]
    with pytest.raises(RuntimeError), atomic_folder(folder) as staging:
        (staging / "c.csv").write_text("3")
        raise RuntimeError("killed half-way")
    assert sorted(p.name for p in folder.iterdir()) == ["b.csv"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["page"]  # no staging left
    stale = tmp_path / ".page.999999999-abc.tmp"  # a process that no longer runs
    stale.mkdir()
    (stale / "x.csv").write_text("4")
    assert remove_stale_temporaries(tmp_path) == [stale] and not stale.exists()


def test_digits_calibration_is_the_training_digits_at_the_models_side() -> None:
    calibration = digits_calibration(40)
    expected = digits_to_input(digits_split().train_images[:CALIBRATION_IMAGES], 40).numpy()
    np.testing.assert_array_equal(calibration.images, expected)
    assert calibration.images.shape == (CALIBRATION_IMAGES, 3, 40, 40)
    assert "32 training images" in calibration.source


def test_folder_calibration_reads_images_with_the_reference_preprocessing(tmp_path: Path) -> None:
    from PIL import Image

    for label in ("a", "b"):
        (tmp_path / label).mkdir()
        for i in range(3):
            Image.new("RGB", (48, 40), (40 * i, 100, 200)).save(tmp_path / label / f"{i}.png")
    (tmp_path / "a" / "broken.png").write_bytes(b"not an image")
    calibration = folder_calibration("resnet18", tmp_path, 32, count=4)
    assert calibration.images.shape == (4, 3, 32, 32)
    # torchvision's ImageNet normalisation: a pixel of 200 in the blue channel is (200/255 - 0.406) / 0.225
    assert calibration.images[0, 2, 0, 0] == pytest.approx((200 / 255 - 0.406) / 0.225, abs=1e-5)


def test_bench_rows_record_cold_start_peak_memory_and_runtime(tmp_path: Path) -> None:
    frame = bench(["squeezenet1_1", "mobilenet_v3_small"], Target(threads=1, backend="onnxruntime", dtype="int8"),
                  resolution=64, timing=QUICK_TIMING)  # fmt: skip
    assert list(frame["status"]) == ["ok", "ok"], list(frame["error"])
    for column in ("export_s", "quantize_s", "load_s", "first_inference_ms", "latency_ms_median"):
        assert (frame[column].astype(float) > 0).all(), column
    assert (frame["peak_rss_bytes"].astype(float) >= 0).all()
    assert set(frame["runtime_version"]) == {onnxruntime.__version__}
    assert frame["mac_bytes"].tolist() == frame["mac"].tolist()  # int8: one byte per element moved
    assert all("INT8 QDQ calibrated on digits" in n for n in frame["notes"])


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _fail() -> None:
    raise CnnbenchError("this model cannot be exported")


def test_a_killed_measurement_costs_one_row_not_the_sweep() -> None:
    with pytest.raises(CnnbenchError, match=r"died \(signal SIGKILL\) \(out of memory\?\)"):
        run_isolated(_die)
    with pytest.raises(CnnbenchError, match="cannot be exported"):
        run_isolated(_fail)
    assert run_isolated(sum, [1, 2, 3]) == 6


def test_map_isolated_gives_each_result_in_order_and_an_error_in_its_place() -> None:
    results = map_isolated(sum, [([1, 2],), ([3],), ([4, 5, 6],)], workers=2)
    assert results == [3, 3, 15]
    mixed = map_isolated(_fail, [()], workers=2) + map_isolated(sum, [([7],)], workers=2)
    assert isinstance(mixed[0], CnnbenchError) and "cannot be exported" in str(mixed[0]) and mixed[1] == 7


def _interval(seconds: float) -> tuple[float, float]:
    start = time.monotonic()  # one clock for every process of the machine
    time.sleep(seconds)
    return start, time.monotonic()


def test_map_isolated_starts_a_call_only_while_the_memory_budget_allows() -> None:
    """Sizes 3, 3, 1, 1 in a budget of 4 on 2 workers: the first large call runs beside the small ones, never beside
    the other large one, and the large one waiting does not hold back the small ones behind it."""
    plan = CallPlan(sizes=(3, 3, 1, 1), budget_bytes=4)
    spans = map_isolated(_interval, [(1.5,), (1.5,), (0.2,), (0.2,)], workers=2, plan=plan)
    assert all(isinstance(span, tuple) for span in spans), spans

    def overlap(a: int, b: int) -> bool:
        return spans[a][0] < spans[b][1] and spans[b][0] < spans[a][1]

    assert not overlap(0, 1)  # 3 + 3 > 4
    assert overlap(0, 2) and overlap(0, 3)  # 3 + 1 fits: the small calls pass the large one that waits
    assert spans[1][0] >= spans[0][1]
    # Without sizes, the order of the list: the two large calls together.
    plain = map_isolated(_interval, [(1.0,), (1.0,)], workers=2)
    assert plain[0][0] < plain[1][1] and plain[1][0] < plain[0][1]


def test_map_isolated_starts_a_call_after_its_prerequisite_and_never_after_a_failed_one() -> None:
    """Call 1 waits for call 0 though a worker is free; call 3 waits for call 2, which fails: it does not run and
    carries call 2's error. A prerequisite must come first in the list."""
    argsets: list[tuple[object, ...]] = [(0.4,), (0.05,), (), (0.05,)]
    calls = [_interval, _interval, _fail, _interval]

    plan = CallPlan(sizes=(0, 0, 0, 0), budget_bytes=0, after=(None, 0, None, 2))
    results = map_isolated(_dispatch, [(calls[i], *args) for i, args in enumerate(argsets)], workers=2, plan=plan)
    first, second = results[0], results[1]
    assert isinstance(first, tuple) and isinstance(second, tuple)
    assert second[0] >= first[1]
    assert isinstance(results[2], CnnbenchError) and isinstance(results[3], CnnbenchError)
    assert "cannot be exported" in str(results[3])
    with pytest.raises(ValueError, match="must come before"):
        map_isolated(sum, [([1],), ([2],)], workers=1, plan=CallPlan((0, 0), 0, after=(1, None)))


def _dispatch(fn: Callable[..., object], *args: object) -> object:
    return fn(*args)


def test_the_report_prepares_the_files_its_runtime_rows_load(tmp_path: Path) -> None:
    """The preparation exports and quantizes ahead, in parallel; each row then finds its file in the cache, so the
    calibration the preparation used is the one the row would have used."""
    from cnnbench.report.config import ReportConfig
    from cnnbench.report.latency_tables import latency_table, prepare_deployments

    # The children fork from a forkserver started with this session's cache folder: the files land there.
    config = ReportConfig.quick_config(tmp_path / "out", models=("squeezenet1_1",), target=Target(threads=1),
                                       deployments=("onnxruntime:fp32", "onnxruntime:int8"))  # fmt: skip
    assert prepare_deployments(config, ["squeezenet1_1"], lambda items, desc: items) == 2
    int8_target = resolve_target(Target(threads=1, backend="onnxruntime", dtype="int8"))[0]
    frame = latency_table(config, ["squeezenet1_1"], None, lambda items, desc: items, int8_target)
    assert frame.loc[0, "status"] == "ok", frame.loc[0, "error"]
    assert "export (cached)" in frame.loc[0, "notes"] and "8 training images (cached)" in frame.loc[0, "notes"]


def test_a_model_that_fails_to_export_is_recorded_and_the_sweep_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    real = export.export_onnx

    def picky(model: nn.Module, path: Path, *args: object, **kwargs: object) -> tuple[float, str]:
        if type(model).__name__ == "SqueezeNet":
            raise CnnbenchError("ONNX export failed (torchscript: RuntimeError: unsupported op)")
        return real(model, path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(export, "export_onnx", picky)
    monkeypatch.setenv("CNNBENCH_CACHE", str(Path(os.environ.get("CNNBENCH_CACHE", "/tmp")) / "picky"))
    frame = bench(["squeezenet1_1", "mobilenet_v3_small"], ORT, resolution=64, timing=QUICK_TIMING, isolate=False)
    assert list(frame["status"]) == ["failed", "ok"]
    assert "unsupported op" in frame["error"].iloc[0]


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (Target(dtype="int8"), "int8 runs on onnxruntime, openvino, executorch only"),
        (Target(backend="onnxruntime", dtype="fp16"), "takes --dtype fp32 or int8"),
        (Target(backend="openvino", channels_last=True), "drop --channels-last"),
        (Target(backend="onnxruntime", fuse_bn=True), "drop --fuse-bn"),
        (Target(backend="openvino", device="cuda"), "openvino on cpu only"),
        (Target(backend="tensorrt"), "use one of eager, compile, onnxruntime, openvino, executorch, ncnn"),
        (Target(backend="ncnn", dtype="int8"), r"takes --dtype fp32, not int8 \(ncnn's INT8 needs .*on onnxruntime"),
        (Target(backend="executorch", device="cuda"), "executorch on cpu only"),
    ],
)
def test_runtime_settings_that_cannot_work_are_refused(target: Target, message: str) -> None:
    with pytest.raises(CnnbenchError, match=message):
        resolve_target(target)


def test_cli_bench_on_onnxruntime_int8_prints_latency_cold_start_and_memory(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bench", "squeezenet1_1", "--backend", "onnxruntime", "--dtype", "int8", "--threads", "1",
                 "--res", "64", "--min-time", "0.05"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    header = next(line for line in out.splitlines() if line.lstrip().startswith("model"))
    for column in ("median (ms)", "export (s)", "quantize (s)", "load (s)", "first (ms)", "peak RSS (MB)"):
        assert column in header
    assert "calibrated on up to 8 images of the scikit-learn digits" in out


def test_latency_calibrates_on_fewer_digits_than_accuracy() -> None:
    # The scales differ, the graph and its kernels do not: latency quantizes on 8 digits, accuracy on 32.
    target = Target(threads=1, backend="onnxruntime", dtype="int8")
    result = measure("squeezenet1_1", target, 1, 48, QUICK_TIMING)
    assert LATENCY_CALIBRATION_IMAGES == 8 < CALIBRATION_IMAGES
    assert "calibrated on digits (scikit-learn), 8 training images" in result.notes


def test_cli_refuses_int8_on_eager_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "squeezenet1_1", "--dtype", "int8"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "onnxruntime, openvino, executorch" in err and "Traceback" not in err
