"""``cnnbench compare``: the regression gate on synthetic samples, written as results folders and as pytest-benchmark
JSON files. Nothing is measured."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cnnbench.benchmark_json import REQUIRED_EXTRA, benchmark_samples_ms, read_benchmark_json
from cnnbench.cli import main
from cnnbench.cli.common import percentage
from cnnbench.compare import compare, gate
from cnnbench.errors import CnnbenchError
from cnnbench.measure.bench import BENCH_COLUMNS, BENCH_TEXT_COLUMNS
from cnnbench.measure.latency import LatencyResult, parse_samples, samples_text
from cnnbench.stats import ratio_interval, runs_ratio_interval
from cnnbench.store import ResultTable

TARGET = "cpu-t2-fp32-nchw-eager"
Samples = dict[str, list[float] | None]  # model → per-iteration times in ms (None: none kept)


def results_folder(folder: Path, samples: Samples, target: str = TARGET) -> Path:
    """A results folder holding one latency table, with the columns a real one has for this purpose."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"model": model, "batch": 1, "status": "ok",
             "latency_ms_median": float(np.median(times)) if times else None,
             "samples_ms": samples_text(times) if times else ""}
            for model, times in samples.items()]  # fmt: skip
    pd.DataFrame(rows).to_csv(folder / f"latency-{target}.csv", index=False)
    return folder


def benchmark_file(path: Path, samples: Samples) -> Path:
    """A minimal pytest-benchmark JSON file: ``stats.data`` in seconds, as pytest-benchmark writes it."""
    benchmarks = []
    for model, times in samples.items():
        stats: dict[str, object] = {"median": float(np.median(times)) / 1e3 if times else 0.0, "rounds": 50}
        if times is not None:
            stats["data"] = [t / 1e3 for t in times]
        benchmarks.append({"group": "latency-batch1", "name": f"test_latency[{model}-1]",
                           "fullname": f"benchmarks/test_latency.py::test_latency[{model}-1]", "stats": stats,
                           "extra_info": {"model": model, "batch": 1, "target_target": TARGET}})  # fmt: skip
    path.write_text(json.dumps({"machine_info": {}, "commit_info": {}, "datetime": "2026-12-01T00:00:00",
                                "version": "5.1.0", "benchmarks": benchmarks}))  # fmt: skip
    return path


Writer = Callable[[Path, str, Samples], Path]
WRITERS: dict[str, Writer] = {
    "folder": lambda tmp, name, samples: results_folder(tmp / name, samples),
    "json": lambda tmp, name, samples: benchmark_file(tmp / f"{name}.json", samples),
}


def draw(seed: int, scale: float = 1.0, n: int = 50) -> list[float]:
    """n times around 10 ms × scale with 2% lognormal noise."""
    return list(10.0 * scale * np.random.default_rng(seed).lognormal(0.0, 0.02, n))


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("kind", list(WRITERS))
@pytest.mark.parametrize(
    ("new_scale", "new_seed", "verdict", "exit_code"),
    [
        (1.2, 2, "slower", 1),  # (a) 20% slower, fresh noise
        (1.0, 2, "unchanged", 0),  # (b) a fresh draw from the same distribution
        (0.8, 2, "faster", 0),  # (c) a 20% speed-up
    ],
)
def test_verdict_and_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, new_scale: float,
                               new_seed: int, verdict: str, exit_code: int) -> None:  # fmt: skip
    write = WRITERS[kind]
    old = write(tmp_path, "old", {"mobilenet_v3_small": draw(1)})
    new = write(tmp_path, "new", {"mobilenet_v3_small": draw(new_seed, new_scale)})
    frame = compare(old, new)
    row = frame.iloc[0]
    assert (row["verdict"], row["n_old"], row["n_new"]) == (verdict, 50, 50)
    assert row["ci_low"] <= row["ratio"] <= row["ci_high"]
    assert row["ratio"] == pytest.approx(new_scale, rel=0.03)
    assert gate(frame) == exit_code
    assert compare(old, new).equals(frame)  # seeded: the same files give the same interval
    code, out, err = run_cli(capsys, "compare", old, new)
    assert (code, err) == (exit_code, "")
    assert "mobilenet_v3_small" in out and verdict in out
    counts = {"slower": "1 slower, 0 faster, 0 unchanged", "unchanged": "0 slower, 0 faster, 1 unchanged",
              "faster": "0 slower, 1 faster, 0 unchanged"}  # fmt: skip
    assert out.strip().splitlines()[-1] == f"{counts[verdict]} at threshold 5%"


def test_ratio_and_interval_by_hand(tmp_path: Path) -> None:
    old = results_folder(tmp_path / "old", {"a": [10.0] * 20, "b": [10.0, 10.0, 10.0, 11.0]})
    new = results_folder(tmp_path / "new", {"a": [12.0] * 20, "b": [12.0] * 4})
    frame = compare(old, new).set_index("model")
    a, b = frame.loc["a"], frame.loc["b"]
    # constant samples: median 12 / median 10, and every resample gives the same ratio
    assert (a["old_ms"], a["new_ms"], a["ratio"], a["ci_low"], a["ci_high"]) == (10.0, 12.0, 1.2, 1.2, 1.2)
    # b's old median is 10; a resample's median is 10, 10.5 or 11, so the ratios lie in [12/11, 12/10]
    assert b["ratio"] == 1.2 and 12 / 11 <= b["ci_low"] <= b["ci_high"] <= 1.2
    assert frame["verdict"].tolist() == ["slower", "slower"]
    assert ratio_interval([10.0] * 5, [12.0] * 5) == (1.2, 1.2, 1.2)


@pytest.mark.parametrize(("threshold", "verdict"), [("5%", "unchanged"), ("5", "unchanged"), ("3", "slower"),
                                                    ("3%", "slower"), ("0", "slower")])  # fmt: skip
def test_the_threshold_is_a_percentage(tmp_path: Path, capsys: pytest.CaptureFixture[str], threshold: str,
                                       verdict: str) -> None:  # fmt: skip
    old = results_folder(tmp_path / "old", {"a": [10.0] * 10})
    new = results_folder(tmp_path / "new", {"a": [10.4] * 10})  # 4% slower, no noise at all
    code, out, _ = run_cli(capsys, "compare", old, new, "--threshold", threshold, "--format", "csv")
    assert pd.read_csv(io.StringIO(out))["verdict"].item() == verdict
    assert code == int(verdict == "slower")
    assert percentage("2.5%") == pytest.approx(0.025)


@pytest.mark.parametrize("text", ["-5", "-1%", "five", "nan", "inf"])
def test_a_bad_threshold_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str) -> None:
    folder = results_folder(tmp_path / "r", {"a": [10.0] * 10})
    code, out, err = run_cli(capsys, "compare", folder, folder, f"--threshold={text}")
    assert (code, out) == (2, "")
    assert "argument --threshold" in err and len(err.strip().splitlines()) == 1


def test_several_runs_a_side_widen_the_interval_by_their_drift(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    # two idle runs a side that drift by up to 15% between runs, with 2% noise within each run
    old = [results_folder(tmp_path / f"old{i}", {"m": draw(seed, scale)}) for i, (seed, scale) in
           enumerate([(1, 1.0), (3, 1.15)])]  # fmt: skip
    new = [results_folder(tmp_path / f"new{i}", {"m": draw(seed, scale)}) for i, (seed, scale) in
           enumerate([(2, 1.12), (4, 0.98)])]  # fmt: skip
    one = compare(old[0], new[0]).iloc[0]
    assert one["verdict"] == "slower" and one["ci_high"] - one["ci_low"] < 0.03  # one run a side: tight, and wrong
    both = compare(old, new).iloc[0]
    assert (both["n_old"], both["runs_old"], both["runs_new"], both["verdict"]) == (100, 2, 2, "unchanged")
    assert both["ci_low"] < 1 < both["ci_high"] and both["ci_high"] - both["ci_low"] > 0.1
    code, out, err = run_cli(capsys, "compare", old[0], new[0], "--old", old[1], "--new", new[1])
    assert (code, err) == (0, "")
    assert "old runs" in out and "covers the drift between runs" in out
    assert out.strip().splitlines()[-1] == "0 slower, 0 faster, 1 unchanged at threshold 5%"
    # a real 20% slowdown is still called, when the runs of each side agree within 4%
    slow = [results_folder(tmp_path / f"slow{i}", {"m": draw(seed, 1.2 * scale)}) for i, (seed, scale) in
            enumerate([(5, 0.99), (6, 1.03)])]  # fmt: skip
    steady = [results_folder(tmp_path / f"steady{i}", {"m": draw(seed, scale)}) for i, (seed, scale) in
              enumerate([(7, 1.0), (8, 1.04)])]  # fmt: skip
    row = compare(steady, slow).iloc[0]
    assert row["verdict"] == "slower" and row["ci_low"] > 1.1
    code, _, _ = run_cli(capsys, "compare", steady[0], slow[0], "--old", steady[1], "--new", slow[1])
    assert code == 1


def test_the_two_level_interval_by_hand() -> None:
    # old runs at 10 and 11 ms: a resample draws both runs at 10 (median 10), both at 11 (11) or one of each
    # (10.5), each of the first two with probability 1/4; the new runs are both at 12
    point, low, high = runs_ratio_interval([[10.0] * 4, [11.0] * 4], [[12.0] * 4, [12.0] * 4])
    assert point == pytest.approx(12 / 10.5)
    assert (low, high) == (pytest.approx(12 / 11), pytest.approx(12 / 10))
    assert runs_ratio_interval([[10.0] * 5], [[12.0] * 5]) == (1.2, 1.2, 1.2)


def test_runs_of_mixed_kinds_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = results_folder(tmp_path / "r", {"a": [1.0, 2.0]})
    json_file = benchmark_file(tmp_path / "n.json", {"a": [1.0, 2.0]})
    code, out, err = run_cli(capsys, "compare", folder, results_folder(tmp_path / "s", {"a": [1.0, 2.0]}),
                             "--old", json_file)  # fmt: skip
    assert (code, out) == (2, "")
    assert "the OLD runs mix a pytest-benchmark JSON file and a results folder" in err
    assert len(err.strip().splitlines()) == 1


def test_rows_on_one_side_and_rows_that_cannot_be_compared(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = results_folder(tmp_path / "old", {"kept": draw(1), "gone": draw(2), "once": [10.0], "old_table": None})
    new = results_folder(tmp_path / "new", {"kept": draw(3), "added": draw(4), "once": draw(5), "old_table": draw(6)})
    frame = compare(old, new).set_index("model")
    assert frame["verdict"].to_dict() == {"added": "only in new", "gone": "only in old", "kept": "unchanged",
                                          "old_table": "not comparable", "once": "not comparable"}  # fmt: skip
    assert "written before samples were kept" in frame.loc["old_table", "note"]
    assert "1 sample(s)" in frame.loc["once", "note"]
    assert gate(frame) == 0
    code, out, _ = run_cli(capsys, "compare", old, new)
    assert code == 0
    assert out.strip().splitlines()[-1] == ("0 slower, 0 faster, 1 unchanged at threshold 5% (1 only in old, "
                                            "1 only in new, 2 not comparable)")  # fmt: skip


def test_json_output_holds_every_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = benchmark_file(tmp_path / "old.json", {"a": draw(1)})
    new = benchmark_file(tmp_path / "new.json", {"a": draw(2, 1.3)})
    code, out, _ = run_cli(capsys, "compare", old, new, "--format", "json")
    (record,) = json.loads(out)
    assert code == 1
    assert record["model"] == "benchmarks/test_latency.py::test_latency[a-1]" and record["target"] == TARGET
    assert {"old_ms", "new_ms", "ratio", "ci_low", "ci_high", "n_old", "n_new", "verdict"} <= set(record)


def _empty_folder(tmp: Path) -> Path:
    (tmp / "empty").mkdir()
    return tmp / "empty"


def _no_samples_folder(tmp: Path) -> Path:
    (tmp / "pre").mkdir()
    pd.DataFrame([{"model": "a", "batch": 1, "status": "ok", "latency_ms_median": 10.0}]).to_csv(
        tmp / "pre" / f"latency-{TARGET}.csv", index=False)
    return tmp / "pre"


BAD = [
    (lambda tmp: (tmp / "nowhere", results_folder(tmp / "r", {"a": [1.0, 2.0]})), "OLD {tmp}/nowhere: no such folder"),
    (lambda tmp: (_empty_folder(tmp), results_folder(tmp / "r", {"a": [1.0, 2.0]})), "holds no latency-*.csv table"),
    (lambda tmp: (benchmark_file(tmp / "o.json", {"a": None}), benchmark_file(tmp / "n.json", {"a": None})),
     "re-run pytest-benchmark with --benchmark-save-data"),
    (lambda tmp: (results_folder(tmp / "r", {"a": [1.0, 2.0]}), benchmark_file(tmp / "n.json", {"a": [1.0, 2.0]})),
     "OLD is a results folder and NEW a pytest-benchmark JSON file"),
    (lambda tmp: (results_folder(tmp / "o", {"a": [1.0, 2.0]}), results_folder(tmp / "n", {"b": [1.0, 2.0]})),
     "have no row in common"),
    (lambda tmp: (_no_samples_folder(tmp), results_folder(tmp / "n", {"a": [1.0, 2.0]})),
     "this results folder was written before samples were kept; re-run cnnbench report"),
    (lambda tmp: (results_folder(tmp / "o", {"a": [1.0]}), results_folder(tmp / "n", {"a": [1.0]})),
     "no row of"),
]  # fmt: skip


@pytest.mark.parametrize(("make", "message"), BAD)
def test_bad_input_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      make: Callable[[Path], tuple[Path, Path]], message: str) -> None:  # fmt: skip
    old, new = make(tmp_path)
    with pytest.raises(CnnbenchError):
        compare(old, new)
    code, out, err = run_cli(capsys, "compare", old, new)
    assert (code, out) == (2, "")
    assert message.format(tmp=tmp_path) in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


# --- the samples in the latency tables -----------------------------------------------------------------------------


def test_a_latency_row_holds_its_samples() -> None:
    samples = (10.123456, 9.87654321, 1234.5678, 0.0123456)
    row = LatencyResult("m", batch=1, resolution=32, samples_ms=samples, warmup_iters=0).row()
    assert row["samples_ms"] == "10.123 9.8765 1234.6 0.012346"
    assert parse_samples(str(row["samples_ms"])) == pytest.approx(samples, rel=1e-4)  # 0.01%, well inside 0.1%
    assert BENCH_COLUMNS[-2:] == ["notes", "samples_ms"]


def test_one_sample_stays_text_through_a_results_table(tmp_path: Path) -> None:
    path = tmp_path / f"latency-{TARGET}.csv"
    ResultTable(path, key=["model", "batch"], text_columns=BENCH_TEXT_COLUMNS).put(
        {"model": "m", "batch": 1, "status": "ok", "samples_ms": samples_text([12.5])})
    row = ResultTable(path, key=["model", "batch"], text_columns=BENCH_TEXT_COLUMNS).get(model="m", batch=1)
    assert row is not None and row["samples_ms"] == "12.5"


def test_benchmark_json_samples_are_per_iteration_ms(tmp_path: Path) -> None:
    assert benchmark_samples_ms({"stats": {"data": [0.001, 0.0025]}}) == pytest.approx((1.0, 2.5))
    assert benchmark_samples_ms({"stats": {"median": 0.001}}) is None
    extra = {**{k: "x" for k in REQUIRED_EXTRA}, "model": "m", "batch": 1, "flops": 1, "mac_bytes": 1}
    stats = {"median": 0.002, "mean": 0.002, "stddev": 0.0, "iqr": 0.0, "rounds": 2, "data": [0.002, 0.002]}
    path = tmp_path / "b.json"
    path.write_text(json.dumps({"machine_info": {}, "commit_info": {}, "datetime": "2026-12-01", "version": "5.1.0",
                                "benchmarks": [{"name": "t", "stats": stats, "extra_info": extra}]}))  # fmt: skip
    assert read_benchmark_json(path)["samples_ms"].item() == "2 2"
