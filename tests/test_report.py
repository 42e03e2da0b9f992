"""`cnnbench report`: every file written, rows reused on a rerun, an interrupted run resumed without duplicates,
benchmark JSON from two targets kept apart. No timing is asserted."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

import cnnbench.report as report
from cnnbench.cli import main
from cnnbench.latency import Timing
from cnnbench.report import ReportConfig, read_benchmark_json, run_report
from cnnbench.roofline import Roofline
from cnnbench.target import Target

MODELS = ("mobilenet_v3_small", "shufflenet_v2_x0_5", "squeezenet1_1")
ROOF = Roofline("fixed", peak_flops_per_s=50e9, bandwidth_bytes_per_s=15e9, matmul_size=1024, copy_bytes=1)


@pytest.fixture(autouse=True)
def fixed_roofline(monkeypatch: pytest.MonkeyPatch) -> None:
    """The roofline is measured (and cached) per machine; tests use fixed figures."""
    monkeypatch.setattr(report, "cached_roofline", lambda target: ROOF)


def config(out: Path, **changes: object) -> ReportConfig:
    return ReportConfig.quick_config(out, **{"models": MODELS, "target": Target(threads=1), **changes})


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    out = tmp_path_factory.mktemp("results")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(report, "cached_roofline", lambda target: ROOF)
        written = run_report(config(out))
    return out, written


def test_report_writes_every_file(first_run: tuple[Path, dict[str, Path]]) -> None:
    out, written = first_run
    key = "cpu-t1-fp32-nchw-eager"
    expected = {
        "zoo.csv", "zoo.env.json", "accuracy-imagenet.csv", f"latency-{key}.csv", f"latency-{key}.env.json",
        f"breakdown-{key}.csv", f"roofline-{key}.json", "README.md",
        *(f"{chart}.{ext}" for chart in ("accuracy_vs_params", "accuracy_vs_flops", "latency_vs_flops",
                                          "latency_vs_mac", f"breakdown-{key}", f"roofline-{key}")
          for ext in ("png", "svg")),
    }
    assert expected <= {p.name for p in out.iterdir()}
    for png in out.glob("*.png"):
        with Image.open(png) as image:
            image.verify()
            assert image.size[0] > 400 and image.size[1] > 200
    for svg in out.glob("*.svg"):
        assert ET.parse(svg).getroot().tag.endswith("svg")
    readme = (out / "README.md").read_text()
    assert "![accuracy_vs_params](accuracy_vs_params.png)" in readme and "| mobilenet_v3_small" in readme
    assert set(written) >= {"zoo", "latency", "breakdown", "readme"}


def test_tables_have_the_expected_columns_and_rows(first_run: tuple[Path, dict[str, Path]]) -> None:
    out, _ = first_run
    zoo_csv = pd.read_csv(out / "zoo.csv")
    assert list(zoo_csv["model"]) == list(MODELS)
    assert {"params", "params_used", "flops", "mac", "mac_bytes", "activation_peak_bytes", "training_saved_bytes",
            "published_top1", "published_source", "code"} <= set(zoo_csv.columns)
    assert zoo_csv.set_index("model").loc["shufflenet_v2_x0_5", "flops"] == 40_476_448  # torchvision's _ops
    latency = pd.read_csv(out / "latency-cpu-t1-fp32-nchw-eager.csv")
    assert sorted(latency["model"]) == sorted(MODELS)
    assert (latency["status"] == "ok").all()
    assert {"latency_ms_median", "cv", "roofline_bound_ms", "roofline_fraction", "torch", "commit",
            "device_name", "threads"} <= set(latency.columns)
    bound = latency.set_index("model").loc["squeezenet1_1"]
    assert bound["roofline_bound_ms"] == pytest.approx(
        1e3 * max(2 * bound["flops"] / ROOF.peak_flops_per_s, bound["mac_bytes"] / ROOF.bandwidth_bytes_per_s)
    )
    accuracy = pd.read_csv(out / "accuracy-imagenet.csv")
    assert set(accuracy["origin"]) == {"paper", "reference"}
    paper = accuracy[(accuracy["model"] == "shufflenet_v2_x0_5") & (accuracy["origin"] == "paper")]
    assert paper["top1"].item() == pytest.approx(100 - 39.7)  # ShuffleNetV2 Table 8: 39.7% error
    env = json.loads((out / "latency-cpu-t1-fp32-nchw-eager.env.json").read_text())
    assert {"torch", "commit", "device_name", "threads", "dtype"} <= set(env)


def test_rerun_reuses_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "results"
    run_report(config(out, models=MODELS[:2]))
    calls: list[str] = []
    real = report.iter_bench
    monkeypatch.setattr(report, "iter_bench", lambda names, *a, **k: calls.append(names[0]) or real(names, *a, **k))
    monkeypatch.setattr(report, "profile", lambda *a, **k: pytest.fail("a reusable row was re-profiled"))
    before = pd.read_csv(out / "zoo.csv")
    run_report(config(out, models=MODELS[:2]))
    assert calls == []
    pd.testing.assert_frame_equal(pd.read_csv(out / "zoo.csv"), before)
    monkeypatch.undo()
    monkeypatch.setattr(report, "cached_roofline", lambda target: ROOF)
    monkeypatch.setattr(report, "iter_bench", lambda names, *a, **k: calls.append(names[0]) or real(names, *a, **k))
    run_report(config(out, models=MODELS[:2], force=True))
    assert calls == list(MODELS[:2])


def test_interrupted_run_resumes_without_duplicates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "results"
    real = report.iter_bench
    measured: list[str] = []

    def flaky(names: list[str], *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        if len(measured) == 2:
            raise KeyboardInterrupt  # killed while measuring the third model
        measured.append(names[0])
        return real(names, *args, **kwargs)

    monkeypatch.setattr(report, "iter_bench", flaky)
    with pytest.raises(KeyboardInterrupt):
        run_report(config(out))
    kept = pd.read_csv(out / "latency-cpu-t1-fp32-nchw-eager.csv")
    assert list(kept["model"]) == list(MODELS[:2])  # the finished rows survived

    monkeypatch.setattr(report, "iter_bench", lambda names, *a, **k: measured.append(names[0]) or real(names, *a, **k))
    run_report(config(out))
    assert measured == [*MODELS[:2], MODELS[2]]  # the rerun measured only the missing model
    final = pd.read_csv(out / "latency-cpu-t1-fp32-nchw-eager.csv")
    assert sorted(final["model"]) == sorted(MODELS) and not final["model"].duplicated().any()


def benchmark_json(path: Path, target: str, device: str, median_s: float) -> Path:
    """A pytest-benchmark JSON file shaped like benchmarks/test_latency.py's output."""
    entry = {
        "name": "test_latency[mobilenet_v3_small-1]",
        "stats": {"median": median_s, "mean": median_s, "stddev": median_s / 20, "iqr": median_s / 10, "rounds": 20},
        "extra_info": {
            "model": "mobilenet_v3_small", "family": "mobilenet_v3", "batch": 1, "params": 2_542_856,
            "flops": 56_510_400, "mac": 11_930_000, "mac_bytes": 47_720_000, "target_target": target,
            "target_device_name": device, "target_torch": "2.14.1",
        },
    }
    other = {"name": "test_sweep[fvcore]", "stats": entry["stats"], "extra_info": {"models": 30}}
    path.write_text(json.dumps({"machine_info": {"node": "x"}, "benchmarks": [entry, other]}))
    return path


def test_benchmark_json_from_two_targets_stays_apart(tmp_path: Path) -> None:
    a = benchmark_json(tmp_path / "a.json", "cuda0-fp16-nhwc-eager", "NVIDIA H100", 0.0021)
    b = benchmark_json(tmp_path / "b.json", "cpu-t8-fp32-nchw-eager", "Some CPU", 0.0130)
    assert read_benchmark_json(a)["latency_ms_median"].item() == pytest.approx(2.1)
    out = tmp_path / "results"
    run_report(config(out, models=MODELS[:1], benchmark_files=(a, b)))
    gpu = pd.read_csv(out / "latency-cuda0-fp16-nhwc-eager.csv")
    cpu = pd.read_csv(out / "latency-cpu-t8-fp32-nchw-eager.csv")
    assert (gpu["device_name"].item(), gpu["latency_ms_median"].item()) == ("NVIDIA H100", pytest.approx(2.1))
    assert (cpu["device_name"].item(), cpu["latency_ms_median"].item()) == ("Some CPU", pytest.approx(13.0))
    readme = (out / "README.md").read_text()
    assert "Latency on cuda0-fp16-nhwc-eager" in readme and "Latency on cpu-t8-fp32-nchw-eager" in readme


def test_report_cli_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--quick", "--out", str(tmp_path), "--from-benchmark", str(tmp_path / "no.json")]) == 2
    assert "no such file" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("{}")
    assert main(["report", "--quick", "--out", str(tmp_path), "--from-benchmark", str(tmp_path / "bad.json")]) == 2
    assert "not a pytest-benchmark JSON file" in capsys.readouterr().err
    assert main(["report", "--quick", "--out", str(tmp_path), "--device", "cuda:3"]) == 2


def test_quick_timing_is_short() -> None:
    assert ReportConfig.quick_config(Path("x")).timing == Timing(
        min_time_s=0.0, min_iters=3, window=2, max_warmup_s=0.5, min_warmup_iters=0
    )
