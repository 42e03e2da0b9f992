"""`cnnbench report`: every file written; provenance in every row and sidecar; bad input refused before any
measurement; benchmark JSON from two targets kept apart. Reuse and resumption: tests/test_reuse.py. No timing is
asserted."""

from __future__ import annotations

import json
import os
import stat
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from conftest import fixed_model, fixed_runtime_model
from PIL import Image

import cnnbench.guidelines.microbench as guidelines
import cnnbench.report.latency_tables as latency_tables
import cnnbench.report.prediction as prediction
import cnnbench.report.readers as readers
import cnnbench.report.run as report_run
from cnnbench.benchmark_json import read_benchmark_json
from cnnbench.cli import main
from cnnbench.costmodel import check_modelled, predict_latency
from cnnbench.errors import CnnbenchError
from cnnbench.measure.latency import QUICK_TIMING, Timing
from cnnbench.measure.roofline import Roofline
from cnnbench.provenance import MACHINE_ENV, machine_identity
from cnnbench.report.config import ReportConfig
from cnnbench.report.page_sections import Page, runtime_prediction_section
from cnnbench.report.run import run_report
from cnnbench.runtimes import DEPLOY_MAX_FLOPS
from cnnbench.target import Target

MODELS = ("mobilenet_v3_small", "shufflenet_v2_x0_5", "squeezenet1_1")
DEPLOYED = ("onnxruntime:fp32", "onnxruntime:int8")
ROOF = Roofline("fixed", peak_flops_per_s=50e9, bandwidth_bytes_per_s=15e9, matmul_size=1024, copy_bytes=1)
KEY = "cpu-t1-fp32-nchw-eager"
RUNTIME_KEY = "cpu-t1-fp32-nchw-onnxruntime"


@pytest.fixture(autouse=True)
def fixed_roofline_and_guideline_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """The roofline is measured (and cached) per machine, and the guideline tables take seconds each: tests use
    fixed figures for both (the guidelines' own tests time them)."""
    monkeypatch.setattr(report_run, "cached_roofline", lambda target: ROOF)
    monkeypatch.setattr(guidelines, "time_table", _fake_rounds)
    monkeypatch.setattr(report_run, "start_calibration", _fixed_calibration)


def _fixed_calibration(config: ReportConfig, models: int, progress: object = None, quieting: object = None,
                       probe_ms: object = None, target: Target | None = None,
                       drawn: object = ()) -> SimpleNamespace | None:
    """Round numbers instead of a calibration, for the targets a cost model covers (tests/test_costmodel.py and
    tests/test_costmodel_runtime.py time real ones)."""
    try:
        target = check_modelled(target or config.target)
    except CnnbenchError:  # no cost model covers it: OpenVINO, INT8
        return None
    fixed = fixed_runtime_model(target.key) if target.runtime else fixed_model(target.key)
    return SimpleNamespace(target=target, between=lambda: None, cost_model=lambda: (fixed, False), drawn=())


def _fake_rounds(table: list[object], target: object, batch: int, timing: object, rounds: int) -> list[list[float]]:
    return [[1.0 + 0.1 * i + 0.01 * r for r in range(rounds)] for i in range(len(table))]


def config(out: Path, **changes: object) -> ReportConfig:
    """The quick report of :data:`MODELS` on one thread, eager only, without sweeps or predictions unless asked (the
    runtimes', sweeps' and cost model's own tests cover them; :func:`first_run` runs one report with all three)."""
    return ReportConfig.quick_config(out, **{"models": MODELS, "target": Target(threads=1), "deployments": (),
                                             "sweeps": False, "predict": False, **changes})  # fmt: skip


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    out = tmp_path_factory.mktemp("results")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(report_run, "cached_roofline", lambda target: ROOF)
        mp.setattr(guidelines, "time_table", _fake_rounds)
        mp.setattr(report_run, "start_calibration", _fixed_calibration)
        written = run_report(config(out, deployments=DEPLOYED, sweeps=True, predict=True))
    return out, written


@pytest.mark.slow
def test_report_writes_every_file(first_run: tuple[Path, dict[str, Path]]) -> None:
    out, written = first_run
    key = KEY
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


@pytest.mark.slow
def test_deployment_tables_speedups_and_what_changed(first_run: tuple[Path, dict[str, Path]]) -> None:
    out, _ = first_run
    eager = pd.read_csv(out / f"latency-{KEY}.csv").set_index("model")["latency_ms_median"]
    fp32 = pd.read_csv(out / "latency-cpu-t1-fp32-nchw-onnxruntime.csv").set_index("model")
    int8 = pd.read_csv(out / "latency-cpu-t1-int8-nchw-onnxruntime.csv").set_index("model")
    assert (fp32["status"] == "ok").all() and (int8["status"] == "ok").all()
    assert set(fp32["backend"]) == set(int8["backend"]) == {"onnxruntime"} and set(int8["dtype"]) == {"int8"}
    assert "roofline_bound_ms" not in int8 or int8["roofline_bound_ms"].isna().all()  # the peak is fp32's
    assert (int8["quantize_s"] > 0).all() and (fp32["load_s"] > 0).all() and fp32["peak_rss_bytes"].notna().all()
    readme = (out / "README.md").read_text()
    median = (eager / fp32["latency_ms_median"]).median()  # the README's sentence, recomputed from the tables
    assert f"runs {median:.2f}× as fast as on {KEY}" in readme
    assert "## Deployment runtimes" in readme and "![speedup_vs_eager](speedup_vs_eager.png)" in readme
    assert (out / "speedup_vs_eager.png").exists() and "### How the ranking changes" in readme


@pytest.mark.slow
def test_pareto_tables_and_charts_follow_the_latency_tables(first_run: tuple[Path, dict[str, Path]]) -> None:
    out, written = first_run
    readme = (out / "README.md").read_text()
    assert readme.index("## Best models on this target") < readme.index("![accuracy_vs_params]")  # shown first
    published = {"mobilenet_v3_small": 67.4, "shufflenet_v2_x0_5": 60.3, "squeezenet1_1": 58.178}  # paper, tv
    for key in (KEY, "cpu-t1-fp32-nchw-onnxruntime", "cpu-t1-int8-nchw-onnxruntime"):
        assert f"pareto-{key}" in written and (out / f"accuracy_vs_latency-{key}.png").exists()
        latency = pd.read_csv(out / f"latency-{key}.csv").set_index("model")["latency_ms_median"]
        front = pd.read_csv(out / f"pareto-{key}.csv").set_index("model")
        assert front["latency_ms"].to_dict() == pytest.approx(latency.to_dict())
        assert front["top1"].to_dict() == published
        # By hand: a model is dominated when another is no slower and no less accurate, and better in one. A row
        # another process disturbed (a busy machine) is neither on the front nor dominated.
        disturbed = pd.read_csv(out / f"latency-{key}.csv").set_index("model")["disturbed"].astype(str) == "True"
        for model in MODELS:
            if disturbed[model]:
                assert not front.loc[model, "pareto"] and pd.isna(front.loc[model, "dominated_by"])
                continue
            beaten = [m for m in MODELS if m != model and not disturbed[m] and latency[m] <= latency[model]
                      and published[m] >= published[model]
                      and (latency[m] < latency[model] or published[m] > published[model])]
            assert bool(front.loc[model, "pareto"]) == (not beaten)
            assert (front.loc[model, "dominated_by"] if not pd.isna(front.loc[model, "dominated_by"]) else "") == (
                min(beaten, key=lambda m: latency[m]) if beaten else "")  # the only front rival here is the fastest
        assert f"### {key}" in readme and f"![accuracy_vs_latency-{key}](accuracy_vs_latency-{key}.png)" in readme


@pytest.mark.slow
def test_every_model_is_predicted_beside_its_measured_latency(first_run: tuple[Path, dict[str, Path]]) -> None:
    out, _ = first_run
    predicted = pd.read_csv(out / f"prediction-{KEY}.csv").set_index("model")
    latency = pd.read_csv(out / f"latency-{KEY}.csv").set_index("model")
    assert sorted(predicted.index) == sorted(MODELS)
    for name in MODELS:
        row = predicted.loc[name]
        assert row["measured_ms"] == pytest.approx(latency.loc[name, "latency_ms_median"])
        assert row["latency_ms"] == pytest.approx(predict_latency(name, fixed_model(KEY)).latency_ms)
        assert row["latency_error_pct"] == pytest.approx((row["latency_ms"] / row["measured_ms"] - 1) * 100)
        assert row["mac_only_error_pct"] == pytest.approx((row["mac_only_ms"] / row["measured_ms"] - 1) * 100)
    assert json.loads((out / f"costmodel-{KEY}.json").read_text())["target"]["key"] == KEY
    readme = (out / "README.md").read_text()
    assert "## Predicted latency" in readme and f"prediction-{KEY}.png" in readme and "MAC-only" in readme
    assert (out / f"prediction-{KEY}.png").exists()


@pytest.mark.slow
def test_a_target_without_a_cost_model_says_why_it_has_no_prediction(tmp_path: Path) -> None:
    """INT8 has no cost model, and the report calibrates OpenVINO's on no run: the table is empty and says why."""
    for target, says in ((Target(threads=1, backend="onnxruntime", dtype="int8"), "covers eager, onnxruntime and "
                          "openvino at fp32, not onnxruntime int8"),
                         (Target(threads=1, backend="openvino"), "the report calibrates onnxruntime only; "
                          "`cnnbench calibrate --backend openvino` fits openvino")):  # fmt: skip
        frame, why = prediction.prediction_table(config(tmp_path, target=target), list(MODELS), pd.DataFrame())
        assert frame.empty and says in why, why
        assert prediction.start_calibration(config(tmp_path, target=target), len(MODELS)) is None


@pytest.mark.slow
def test_onnx_runtime_rows_are_predicted_by_its_own_cost_model(first_run: tuple[Path, dict[str, Path]]) -> None:
    """The deployed ONNX Runtime fp32 rows get a prediction table of their own, from the runtime's cost model; its
    INT8 rows none (no cost model covers INT8)."""
    out, written = first_run
    runtime_key = RUNTIME_KEY
    predicted = pd.read_csv(out / f"prediction-{runtime_key}.csv").set_index("model")
    latency = pd.read_csv(out / f"latency-{runtime_key}.csv").set_index("model")
    assert f"prediction-{runtime_key}" in written and sorted(predicted.index) == sorted(MODELS)
    for name in MODELS:
        assert predicted.loc[name, "measured_ms"] == pytest.approx(latency.loc[name, "latency_ms_median"])
        assert predicted.loc[name, "latency_ms"] == pytest.approx(
            predict_latency(name, fixed_runtime_model(runtime_key)).latency_ms
        )
    assert not (out / f"prediction-{Target(threads=1, backend='onnxruntime', dtype='int8').key}.csv").exists()
    assert json.loads((out / f"costmodel-{runtime_key}.json").read_text())["format"] == "runtime-1"
    assert f"## Predicted latency on {runtime_key}" in (out / "README.md").read_text()


def test_a_runtime_prediction_is_shown_model_by_model_only_within_20_percent() -> None:
    """The page lists a runtime's predictions only when their median error is within 20%; the summary either way."""
    key = Target(threads=1, backend="onnxruntime").key

    def frame(errors: list[float]) -> pd.DataFrame:
        measured = [2.0, 4.0, 8.0]
        predicted = [m * (1 + e / 100) for m, e in zip(measured, errors, strict=True)]
        return pd.DataFrame({"model": ["a", "b", "c"], "measured_ms": measured, "latency_ms": predicted,
                             "low_ms": predicted, "high_ms": predicted, "flops_only_ms": measured,
                             "mac_only_ms": measured, "latency_error_pct": errors, "networks": 7,
                             "calibrated_at": "now", "node_error_pct": 10.0, "node_ms": 0.005,
                             "network_error_pct": 15.0})  # fmt: skip

    close = "\n".join(runtime_prediction_section(Page({}, runtime_predictions={key: (frame([10, -19, 30]), "")}), {}))
    assert "| a " in close and "over the 20%" not in close  # median |error| 19%
    far = "\n".join(runtime_prediction_section(Page({}, runtime_predictions={key: (frame([10, -21, 30]), "")}), {}))
    assert "| a " not in far and "Its median error, 21.0%, is over the 20%" in far
    assert "| cost model " in close and "| cost model " in far


@pytest.mark.slow
def test_the_calibration_times_its_networks_between_the_eager_rows(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Four networks for three models: two after each row measured while any are left; a rerun times all at the end."""
    events: list[tuple[str, object]] = []

    class Timer:
        def __init__(self, drawn: list[object], target: Target, timing: Timing, quieting: object = None) -> None:
            self.left = len(drawn)

        def step(self, count: int) -> None:
            events.append(("networks", min(count, self.left)))
            self.left -= min(count, self.left)

        def finish(self, progress: object) -> tuple[str, str]:
            events.append(("rest", self.left))
            return "ops", "timed"

    real_bench = latency_tables.iter_bench
    monkeypatch.setattr(report_run, "start_calibration", prediction.start_calibration)
    monkeypatch.setattr(latency_tables, "iter_bench", lambda names, *a, **k: events.append(("row", names[0]))
                        or real_bench(names, *a, **k))  # fmt: skip
    monkeypatch.setattr(prediction.networks, "network_suite", lambda count, progress=None: [None] * count)
    monkeypatch.setattr(prediction.networks, "NetworkTimer", Timer)
    monkeypatch.setattr(prediction.costmodel, "fit_cost_model", lambda ops, timed, target: fixed_model(KEY))
    run_report(config(tmp_path, predict=True))
    end = events.index(("rest", 0)) + 1
    assert events[:end] == [("row", MODELS[0]), ("networks", 2), ("row", MODELS[1]), ("networks", 2),
                            ("row", MODELS[2]), ("networks", 0), ("rest", 0)]  # fmt: skip
    assert all(kind == "row" for kind, _ in events[end:])  # at most a recheck of a row a busy machine slowed
    events.clear()
    run_report(config(tmp_path, predict=True))
    assert events[:1] == [("rest", 4)] and prediction.QUICK_NETWORKS == 4
    assert all(kind == "row" for kind, _ in events[1:])


@pytest.mark.slow
def test_the_runtime_calibration_times_its_networks_between_the_runtimes_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ONNX Runtime's networks run between its own rows, as the eager ones do between the eager rows."""
    events: list[tuple[str, object]] = []

    class Timer:
        def __init__(self, drawn: list[object], target: Target, timing: Timing, quieting: object = None) -> None:
            self.left, self.kind = len(drawn), "runtime" if target.runtime else "eager"

        def step(self, count: int) -> None:
            events.append((self.kind, min(count, self.left)))
            self.left -= min(count, self.left)

        def finish(self, progress: object) -> tuple[object, str]:
            events.append((f"{self.kind} rest", self.left))
            return (fixed_runtime_model(RUNTIME_KEY), "timed") if self.kind == "runtime" else ("ops", "timed")

    real_bench = latency_tables.iter_bench
    monkeypatch.setattr(report_run, "start_calibration", prediction.start_calibration)
    monkeypatch.setattr(latency_tables, "iter_bench", lambda names, target, *a, **k: events.append(
        ("row", f"{target.backend}:{names[0]}")) or real_bench(names, target, *a, **k))  # fmt: skip
    monkeypatch.setattr(prediction.networks, "network_suite", lambda count, progress=None: [None] * count)
    monkeypatch.setattr(prediction.networks, "NetworkTimer", Timer)
    monkeypatch.setattr(prediction, "RuntimeNetworkTimer", Timer)
    monkeypatch.setattr(prediction.costmodel, "fit_cost_model", lambda ops, timed, target: fixed_model(KEY))
    run_report(config(tmp_path, predict=True, deployments=("onnxruntime:fp32",)))
    start = events.index(("row", f"onnxruntime:{MODELS[0]}"))
    end = events.index(("runtime rest", 0)) + 1
    assert events[start:end] == [("row", f"onnxruntime:{MODELS[0]}"), ("runtime", 2),
                                 ("row", f"onnxruntime:{MODELS[1]}"), ("runtime", 2),
                                 ("row", f"onnxruntime:{MODELS[2]}"), ("runtime", 0), ("runtime rest", 0)]  # fmt: skip
    assert f"## Predicted latency on {RUNTIME_KEY}" in (tmp_path / "README.md").read_text()


@pytest.mark.slow
def test_reading_a_table_without_measuring_leaves_its_sidecar(first_run: tuple[Path, dict[str, Path]]) -> None:
    """``pick`` reads a latency table through latency_table without a roofline: when it measures nothing, the
    table's sidecar keeps the roofline the report recorded."""
    out, _ = first_run
    deployed = Target(threads=1, backend="onnxruntime")
    sidecar = out / f"latency-{deployed.key}.env.json"
    before = sidecar.read_text()
    frame = latency_tables.latency_table(config(out, deployments=DEPLOYED), list(MODELS), None,
                                         lambda items, desc: items, deployed)  # fmt: skip
    assert sorted(frame["model"]) == sorted(MODELS) and sidecar.read_text() == before
    assert json.loads(before)["roofline"] is not None


@pytest.mark.slow
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
    assert set(accuracy["origin"]) == {"paper", "reference", "reference-int8"}
    int8 = accuracy[(accuracy["model"] == "shufflenet_v2_x0_5") & (accuracy["origin"] == "reference-int8")]
    assert int8["top1"].item() == pytest.approx(57.972) and int8["dtype"].item() == "int8"  # torchvision's meta
    paper = accuracy[(accuracy["model"] == "shufflenet_v2_x0_5") & (accuracy["origin"] == "paper")]
    assert paper["top1"].item() == pytest.approx(100 - 39.7)  # ShuffleNetV2 Table 8: 39.7% error
    env = json.loads((out / "latency-cpu-t1-fp32-nchw-eager.env.json").read_text())
    assert {"threads", "dtype", "device"} <= set(env["target_settings"]) and env["target_settings"]["threads"] == 1


@pytest.mark.slow
def test_every_row_carries_its_provenance_and_sidecars_agree(first_run: tuple[Path, dict[str, Path]]) -> None:
    out, _ = first_run
    here = machine_identity("cpu")
    for name in ("zoo", f"latency-{KEY}", f"breakdown-{KEY}", f"guidelines-{KEY}", "guidelines-audit",
                 f"prediction-{KEY}"):
        rows = pd.read_csv(out / f"{name}.csv", dtype=str)
        assert {"machine", "torch", "target", "settings", "code", "quick", "commit", "host", "device_name",
                "measured_at"} <= set(rows.columns), name
        assert set(rows["machine"]) == {here} and set(rows["quick"]) == {"True"}
        env = json.loads((out / f"{name}.env.json").read_text())["provenance"]
        assert env["commits"] == sorted(set(rows["commit"])) and env["rows"] == len(rows)
        assert [m["machine"] for m in env["machines"]] == [here]
        assert env["measured"]["first"] == min(rows["measured_at"]) and env["quick_rows"] == len(rows)
    readme = (out / "README.md").read_text()
    commits = set(pd.read_csv(out / f"latency-{KEY}.csv", dtype=str)["commit"])
    assert all(c in readme for c in commits) and f"machine id {here}" in readme
    roof = json.loads((out / f"roofline-{KEY}.json").read_text())
    assert {"machine", "commit", "measured_at"} <= set(roof)


@pytest.mark.slow
def test_guideline_tables_carry_intervals(first_run: tuple[Path, dict[str, Path]]) -> None:
    out, _ = first_run
    rows = pd.read_csv(out / f"guidelines-{KEY}.csv", dtype={"rounds_ms": str})
    assert (rows["rounds"] == 3).all() and rows["rounds_ms"].str.count(";").eq(2).all()
    md = (out / f"guidelines-{KEY}.md").read_text()
    assert "3 interleaved rounds" in md and "speed vs base [95% CI]" in md and "(fails at 1/1" in md


def benchmark_json(path: Path, target: str, device: str, median_s: float, machine: str = "0123456789ab") -> Path:
    """A pytest-benchmark JSON file shaped like benchmarks/test_latency.py's output."""
    entry = {
        "name": "test_latency[mobilenet_v3_small-1]",
        "stats": {"median": median_s, "mean": median_s, "stddev": median_s / 20, "iqr": median_s / 10, "rounds": 20},
        "extra_info": {
            "model": "mobilenet_v3_small", "family": "mobilenet_v3", "batch": 1, "params": 2_542_856,
            "flops": 56_510_400, "mac": 11_930_000, "mac_bytes": 47_720_000, "target_target": target,
            "target_device_name": device, "target_torch": "2.14.1", "target_machine": machine,
            "target_host": "box", "target_commit": "abc1234",
        },
    }
    other = {"name": "test_sweep[fvcore]", "stats": entry["stats"], "extra_info": {"models": 30}}
    path.write_text(json.dumps({"machine_info": {"node": "box"}, "commit_info": {"id": "abc1234"},
                                "datetime": "2026-11-30T10:00:00", "version": "5.1.0",
                                "benchmarks": [entry, other]}))  # fmt: skip
    return path


@pytest.mark.slow
def test_benchmark_json_from_two_targets_stays_apart(tmp_path: Path) -> None:
    a = benchmark_json(tmp_path / "a.json", "cuda0-fp16-nhwc-eager", "NVIDIA H100", 0.0021)
    b = benchmark_json(tmp_path / "b.json", "cpu-t8-fp32-nchw-eager", "Some CPU", 0.0130)
    assert read_benchmark_json(a)["latency_ms_median"].item() == pytest.approx(2.1)
    out = tmp_path / "results"
    run_report(config(out, models=MODELS[:1], benchmark_files=(a, b)))
    gpu = pd.read_csv(out / "latency-cuda0-fp16-nhwc-eager@box-012345.csv", dtype={"commit": str})
    cpu = pd.read_csv(out / "latency-cpu-t8-fp32-nchw-eager@box-012345.csv")
    assert (gpu["device_name"].item(), gpu["latency_ms_median"].item()) == ("NVIDIA H100", pytest.approx(2.1))
    assert (cpu["device_name"].item(), cpu["latency_ms_median"].item()) == ("Some CPU", pytest.approx(13.0))
    assert (gpu["commit"].item(), gpu["measured_at"].item()) == ("abc1234", "2026-11-30T10:00:00")  # as recorded
    readme = (out / "README.md").read_text()
    assert "Latency on cuda0-fp16-nhwc-eager @ box (imported" in readme
    assert "Latency on cpu-t8-fp32-nchw-eager @ box (imported" in readme


@pytest.mark.slow
def test_rows_of_another_machine_are_not_shown_as_measured_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A latency table another machine made for another target (committed results on a fresh clone) is left alone
    and left out of the page and charts, with a note."""
    out = tmp_path / "results"
    monkeypatch.setenv(MACHINE_ENV, "machine-A")
    run_report(config(out, models=MODELS[:1], target=Target(threads=2)))
    monkeypatch.setenv(MACHINE_ENV, "machine-B")
    run_report(config(out, models=MODELS[:1]))
    readme = (out / "README.md").read_text()
    assert "## Latency on cpu-t2" not in readme
    assert "Not shown, because another machine measured them: latency-cpu-t2-fp32-nchw-eager.csv" in readme
    table = out / "latency-cpu-t2-fp32-nchw-eager.csv"
    row = pd.read_csv(table, dtype=str).iloc[0]  # where another machine's rows came from, in words
    said = f"1 row of machine {row['machine']} at commit {row['commit']}, measured {row['measured_at'][:10]}"
    assert readers.measured_elsewhere(readers.here(table, ["model", "batch"], "B")[1]) == said


BAD_REPORTS = [
    (["--from-benchmark", "{tmp}/no.json"], "no such file"),
    (["--from-benchmark", "{tmp}/broken.json"], "is not JSON"),
    (["--from-benchmark", "{tmp}/empty.json"], "it lacks machine_info, commit_info, benchmarks, datetime, version"),
    (["--from-benchmark", "{tmp}/other.json"], "holds no latency test of benchmarks/test_latency.py"),
    (["--from-benchmark", "{tmp}/old.json"], "lacks extra_info.target_machine"),
    (["--out", "{tmp}/a-file/results"], "cannot write to"),
    (["--min-time", "-1"], "argument --min-time: must be greater than 0"),
    (["--min-time", "0"], "argument --min-time: must be greater than 0"),
    (["--batch", "0"], "argument --batch: must be at least 1"),
    (["--res", "-2"], "argument --res: must be at least 1"),
    (["alexnet", "--res", "32"], "resolution 32 is too small for alexnet"),
    (["--device", "cuda:3"], "cuda:3"),
    (["no_such_model"], "unknown model 'no_such_model'"),
    (["--deploy", "onnxruntime"], "a deployment is BACKEND:DTYPE"),
    (["--deploy", "tensorrt:fp32"], "unknown backend 'tensorrt'"),
    (["--deploy", "openvino:bf16"], "takes --dtype fp32 or int8, not bf16"),
    (["--dtype", "int8"], "int8 runs on onnxruntime, openvino, executorch only"),
    (["--deploy", "onnxruntime:int8", "--calibration", "{tmp}/nowhere"], "data folder"),
    (["--deploy-max-gflops", "0"], "argument --deploy-max-gflops: must be greater than 0"),
]


@pytest.mark.parametrize(("argv", "expected"), BAD_REPORTS, ids=[e for _, e in BAD_REPORTS])
def test_report_refuses_bad_input_before_measuring(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, argv: list[str],
    expected: str,
) -> None:  # fmt: skip
    (tmp_path / "broken.json").write_text('{"benchmarks": [')
    (tmp_path / "empty.json").write_text("{}")
    other = {"machine_info": {}, "commit_info": {}, "datetime": "x", "version": "5", "benchmarks": [
        {"name": "test_sweep", "stats": {}, "extra_info": {"models": 3}}]}  # fmt: skip
    (tmp_path / "other.json").write_text(json.dumps(other))
    old = json.loads(benchmark_json(tmp_path / "old.json", "cpu-t8-fp32-nchw-eager", "CPU", 0.01).read_text())
    del old["benchmarks"][0]["extra_info"]["target_machine"]
    (tmp_path / "old.json").write_text(json.dumps(old))
    (tmp_path / "a-file").write_text("not a folder")
    monkeypatch.setattr(report_run, "zoo_table", lambda *a, **k: pytest.fail("measured before refusing bad input"))
    out = ["--out", str(tmp_path / "results")] if "--out" not in argv else []
    code = main(["report", "--quick", *out, *[a.format(tmp=tmp_path) for a in argv]])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert expected in captured.err and len(captured.err.strip().splitlines()) == 1
    assert "Traceback" not in captured.err


def test_results_files_are_readable_by_others_and_keep_text_columns(tmp_path: Path) -> None:
    from cnnbench.store import ResultTable, atomic_write_text

    old = os.umask(0o022)
    try:
        path = tmp_path / "t.csv"
        table = ResultTable(path, key=["model"])
        table.put({"model": "m", "code": "123456789012", "commit": "0123456", "value": 1.5})
        assert stat.S_IMODE(path.stat().st_mode) == 0o644  # mkstemp alone gives 0600
        atomic_write_text(tmp_path / "x.txt", "x")
        assert stat.S_IMODE((tmp_path / "x.txt").stat().st_mode) == 0o644
    finally:
        os.umask(old)
    row = ResultTable(path, key=["model"]).get(model="m")
    assert row is not None and row["code"] == "123456789012" and row["commit"] == "0123456"  # text, not numbers
    assert row["value"] == 1.5


def test_temporaries_of_a_killed_run_are_removed(tmp_path: Path) -> None:
    import subprocess
    import sys

    from cnnbench.store import ResultTable

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    orphan = tmp_path / f".latency-cpu.{int(dead.stdout)}-k3x_9q.tmp.csv"  # what kill -9 mid-write leaves
    live = tmp_path / f".accuracy_vs_flops.{os.getpid()}-a1b2c3.tmp.svg"  # a write in progress: kept
    other = tmp_path / ".notes.tmp"  # not ours: kept
    for path in (orphan, live, other):
        path.write_text("partial")
    ResultTable(tmp_path / "latency-cpu.csv", key=["model"])
    assert not orphan.exists() and live.exists() and other.exists()


def test_charts_are_written_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import matplotlib.pyplot as plt

    from cnnbench.report import charts

    stem = tmp_path / "chart"
    fig, _ = plt.subplots()
    charts.save(fig, stem)
    before = stem.with_suffix(".png").read_bytes()

    def broken(self, fname, *args, **kwargs):  # type: ignore[no-untyped-def]
        Path(fname).write_bytes(b"half a PNG")
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(plt.Figure, "savefig", broken)
    fig, _ = plt.subplots()
    with pytest.raises(OSError, match="disk full"):
        charts.save(fig, stem)
    assert stem.with_suffix(".png").read_bytes() == before  # the old chart, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chart.png", "chart.svg"]  # no temporary file left


def test_roofline_cache_uses_a_unique_temporary_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process writing the cache at the same moment has its own temporary file: ours never touches it."""
    import cnnbench.measure.roofline as roofline

    monkeypatch.setattr(roofline, "measure_roofline", lambda target: ROOF)
    cache = tmp_path / "roofline.json"
    theirs = cache.with_suffix(".tmp")  # the fixed name the cache used to write through
    theirs.write_text("another writer's half-written file")
    assert roofline.cached_roofline(Target(threads=1), cache=cache) == ROOF
    assert theirs.read_text() == "another writer's half-written file"
    assert json.loads(cache.read_text())  # whole JSON
    assert sorted(p.name for p in tmp_path.iterdir()) == ["roofline.json", "roofline.tmp"]
    monkeypatch.setenv(MACHINE_ENV, "machine-B")  # another machine: measured again, both entries kept
    roofline.cached_roofline(Target(threads=1), cache=cache)
    assert len(json.loads(cache.read_text())) == 2


def test_quick_timing_is_short() -> None:
    # one QUICK_TIMING for report, bench and guidelines alike
    assert ReportConfig.quick_config(Path("x")).timing == QUICK_TIMING == Timing(
        min_time_s=0.1, min_iters=3, window=2, max_warmup_s=0.5, min_warmup_iters=0
    )


def test_the_deployment_tables_stop_at_7g_multiply_adds_unless_told_otherwise(tmp_path: Path) -> None:
    # VGG-16 counts 15.47 G multiply-adds (its paper's 15.5 G) and ResNet-101 7.80 G: both above the default 7 G;
    # ResNet-18 (1.81 G) is deployed. Without a limit (`--deploy-max-gflops all`) every model is.
    names = ["resnet18", "resnet101", "vgg16"]
    zoo_frame = pd.DataFrame({"model": names, "flops": [1_814_073_344, 7_801_405_440, 15_470_264_320]})
    assert DEPLOY_MAX_FLOPS == 7e9
    assert latency_tables.deployed_models(ReportConfig(out=tmp_path), names, zoo_frame) == ["resnet18"]
    every = ReportConfig(out=tmp_path, deploy_max_flops=None)
    assert latency_tables.deployed_models(every, names, zoo_frame) == names
    eight = ReportConfig(out=tmp_path, deploy_max_flops=8e9)
    assert latency_tables.deployed_models(eight, names, zoo_frame) == names[:2]


@pytest.mark.slow
def test_baseline_comparison_goes_into_the_readme(first_run: tuple[Path, dict[str, Path]], tmp_path: Path) -> None:
    import shutil

    out, _ = first_run
    rerun = tmp_path / "rerun"
    shutil.copytree(out, rerun)
    run_report(config(rerun, deployments=DEPLOYED, baseline=out))  # every row reused: the same samples
    readme = (rerun / "README.md").read_text()
    tables = len(list(out.glob("latency-*.csv")))
    assert f"## Against the baseline `{out}`" in readme
    assert f"0 slower, 0 faster, {tables * len(MODELS)} unchanged at threshold 5%" in readme


def test_a_baseline_without_latency_tables_is_refused_first(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(CnnbenchError, match="holds no latency-"):
        run_report(config(tmp_path / "out", baseline=tmp_path / "empty"))
    assert not (tmp_path / "out" / "zoo.csv").exists()


@pytest.mark.parametrize(("argv", "limit"), [([], 7e9), (["--deploy-max-gflops", "all"], None),
                                             (["--deploy-max-gflops", "0.5"], 5e8)])  # fmt: skip
def test_the_report_deploys_up_to_7g_multiply_adds_unless_told_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str], limit: float | None
) -> None:
    import cnnbench.report

    seen: list[ReportConfig] = []
    monkeypatch.setattr(cnnbench.report, "run_report", lambda config, progress, say=None: seen.append(config) or {})
    assert main(["report", "--out", str(tmp_path / "r"), *argv]) == 0
    assert seen[0].deploy_max_flops == limit
