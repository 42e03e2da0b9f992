"""Batch and threads sweeps: their rows recomputed by hand, the speed-up's anchor, counts above the cores accepted
as oversubscribed and one-line refusals of absurd ones (API and CLI), sweeps on ExecuTorch and ncnn with each count
reaching the runtime, and the charts written. No timing is asserted, nor that more threads are faster."""

from __future__ import annotations

import io
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from cnnbench.cli import main
from cnnbench.errors import CnnbenchError
from cnnbench.measure import sweep
from cnnbench.measure.disturbance import Quieting
from cnnbench.measure.latency import QUICK_TIMING
from cnnbench.measure.sweep import (
    batch_sweep,
    check_threads,
    default_threads,
    iter_sweep,
    oversubscription_warning,
    thread_sweep,
    with_speedup,
)
from cnnbench.report import charts
from cnnbench.target import Target

MODEL = "squeezenet1_1"
SIDE = 64
CORES = os.cpu_count() or 1
CAP = 4 * CORES  # the most a sweep takes: 4× the cores, written out here rather than read from the module


@pytest.fixture(scope="module")
def by_batch() -> pd.DataFrame:
    return batch_sweep(MODEL, Target(threads=1), [1, 2, 4], SIDE, QUICK_TIMING, isolate=False)


@pytest.fixture(scope="module")
def by_threads() -> pd.DataFrame:
    return thread_sweep(MODEL, Target(), [1, os.cpu_count() or 1], 2, SIDE, QUICK_TIMING, isolate=False)


def test_batch_sweep_rows_and_throughput_by_hand(by_batch: pd.DataFrame) -> None:
    assert list(by_batch["batch"]) == [1, 2, 4] and set(by_batch["status"]) == {"ok"}
    assert {"latency_ms_median", "latency_ms_p95", "throughput_img_s", "threads", "resolution"} <= set(by_batch)
    assert set(by_batch["resolution"]) == {SIDE} and set(by_batch["threads"]) == {1}
    for row in by_batch.to_dict("records"):
        assert row["throughput_img_s"] == pytest.approx(1000 * row["batch"] / row["latency_ms_median"])


def test_batch_sweep_stops_once_a_batch_is_too_slow() -> None:
    frame = batch_sweep(MODEL, Target(threads=1), [1, 2, 4], SIDE, QUICK_TIMING, stop_after_ms=1e-6, isolate=False)
    assert list(frame["batch"]) == [1]  # the first batch's median passes a microsecond: nothing larger is measured


def test_thread_sweep_speedup_is_one_at_the_fewest(by_threads: pd.DataFrame) -> None:
    counts = sorted({1, os.cpu_count() or 1})
    assert list(by_threads["threads"]) == counts and set(by_threads["batch"]) == {2}
    fewest = by_threads.iloc[0]
    assert fewest["speedup"] == 1.0 and fewest["efficiency"] == 1.0
    for row in by_threads.to_dict("records"):
        speedup = fewest["latency_ms_median"] / row["latency_ms_median"]
        assert row["speedup"] == pytest.approx(speedup)
        assert row["efficiency"] == pytest.approx(speedup / (row["threads"] / fewest["threads"]))


def test_speedup_leaves_failed_rows_out() -> None:
    frame = pd.DataFrame({"model": ["m"] * 3, "batch": [1] * 3, "threads": [1, 2, 4], "status": ["failed", "ok", "ok"],
                          "latency_ms_median": [None, 10.0, 4.0]})  # fmt: skip
    out = with_speedup(frame)
    assert pd.isna(out["speedup"].iloc[0]) and list(out["speedup"].iloc[1:]) == [1.0, 2.5]
    assert list(out["efficiency"].iloc[1:]) == [1.0, 1.25]  # 2.5× on twice the threads of the fewest measured


@pytest.mark.parametrize(("cores", "expected"), [(1, [1]), (2, [1, 2]), (6, [1, 2, 4, 6]), (8, [1, 2, 4, 8])])
def test_default_threads(monkeypatch: pytest.MonkeyPatch, cores: int, expected: list[int]) -> None:
    monkeypatch.setattr(sweep.os, "cpu_count", lambda: cores)
    assert default_threads() == expected


@pytest.mark.parametrize("threads", [[0], [1, -2], [1, CAP + 1], [1, 10**6], []])
def test_absurd_thread_counts_are_refused(threads: list[int]) -> None:
    with pytest.raises(CnnbenchError) as caught:
        thread_sweep(MODEL, Target(), threads, 1, SIDE, QUICK_TIMING, isolate=False)
    message = str(caught.value)
    assert "\n" not in message
    assert (f"from 1 to {CAP} (4× the {CORES} cores present" in message) if threads else ("at least one" in message)


def test_check_threads_sorts_and_drops_repeats(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sweep.os, "cpu_count", lambda: 4)
    assert check_threads([4, 1, 2, 2]) == [1, 2, 4]
    assert check_threads([16, 5, 1]) == [1, 5, 16]  # above the cores, up to 4× them: oversubscribed, accepted
    with pytest.raises(CnnbenchError, match=r"from 1 to 16 \(4× the 4 cores present here\), got 17"):
        check_threads([1, 17])


def test_oversubscription_warning_names_the_counts_above_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sweep.os, "cpu_count", lambda: 4)
    assert oversubscription_warning([1, 2, 4]) is None
    warning = oversubscription_warning([1, 4, 16, 8, 8])
    assert warning is not None and "\n" not in warning
    assert warning.startswith("threads 8, 16 oversubscribed: more than the 4 cores present")


def test_sweep_above_the_cores_marks_the_rows_oversubscribed() -> None:
    counts = [1, CORES + 1]
    frame = thread_sweep(MODEL, Target(), counts, 1, SIDE, QUICK_TIMING, isolate=False, quieting=Quieting(retries=0))
    assert list(frame["threads"]) == counts and set(frame["status"]) == {"ok"}
    assert list(frame["oversubscribed"]) == [t > CORES for t in counts] == [False, True]


def test_oversubscribed_rows_are_not_measured_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """Their own threads lower their cpu_share: measured again they would be as low, so no retries for them."""
    given: dict[int, int] = {}

    def fake_bench(models, target, batches, resolution, timing, roofline, isolate, calibration, quieting, probe):  # type: ignore[no-untyped-def]
        given[target.threads] = quieting.retries
        yield {"model": models[0], "batch": 1, "status": "ok", "threads": target.threads}

    monkeypatch.setattr(sweep, "iter_bench", fake_bench)
    rows = list(iter_sweep([MODEL], Target(), threads=[1, CORES + 1], isolate=False, quieting=Quieting(retries=2)))
    assert given == {1: 2, CORES + 1: 0}
    assert [row["oversubscribed"] for row in rows] == [False, True]


# ExecuTorch lowers the model first (20-60 s here, in the run's fresh cache); pnnx converts it in a few seconds.
@pytest.mark.parametrize("backend", [pytest.param("executorch", marks=pytest.mark.slow), "ncnn"])
def test_edge_runtime_sweep_sets_each_count_in_the_runtime(monkeypatch: pytest.MonkeyPatch, backend: str) -> None:
    """One ok row per thread count (one above the cores too), and each count is the one the runtime itself then
    reports: ExecuTorch's thread pool size, the loaded ncnn net's ``opt.num_threads``."""
    from cnnbench.runtimes import ncnn

    seen: list[int] = []
    if backend == "ncnn":
        load = ncnn.load

        def spy(param: Path, threads: int | None):  # type: ignore[no-untyped-def]
            loaded, load_s = load(param, threads)
            seen.append(loaded.net.opt.num_threads)
            return loaded, load_s

        monkeypatch.setattr(ncnn, "load", spy)
    counts = [1, CORES + 1]
    rows = []
    target = Target(backend=backend)
    for row in iter_sweep([MODEL], target, [1], counts, SIDE, QUICK_TIMING, isolate=False, quieting=Quieting(0)):
        rows.append(row)
        if backend == "executorch":
            from executorch.extension.pybindings import portable_lib

            seen.append(portable_lib._threadpool_get_thread_count())
    assert [(r["threads"], r["batch"], r["status"]) for r in rows] == [(t, 1, "ok") for t in counts], rows
    assert [r["oversubscribed"] for r in rows] == [False, True]
    assert seen == counts


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--threads", f"1,{CAP + 1}"], f"threads must be from 1 to {CAP} (4× the {CORES} cores present here)"),
        (["--threads", "0,1"], f"threads must be from 1 to {CAP} (4× the {CORES} cores present here), got 0"),
        (["--threads", "0"], "argument --threads: must be at least 1, got 0"),  # one count: as before
        (["--threads", "1,two"], "argument --threads: takes a whole number, or comma-separated ones"),
        (["--chart", "{tmp}/charts"], "--chart draws a sweep: give more than one --batch"),
        (["--batch", "1,2", "--chart", "{tmp}/file/charts"], "cannot write to"),
    ],
)
def test_bench_refuses_bad_sweeps_before_measuring(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch, argv: list[str],
                                                   expected: str) -> None:  # fmt: skip
    (tmp_path / "file").write_text("a file, not a folder")
    monkeypatch.setattr(sweep, "iter_bench", lambda *a, **k: pytest.fail("measured before refusing"))
    code, out, err = run(capsys, "bench", MODEL, "--no-roofline", *[a.format(tmp=tmp_path) for a in argv])
    assert (code, out) == (2, "")
    assert expected in err and len(err.strip().splitlines()) == 1


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="a threads sweep needs two cores")
def test_bench_sweeps_threads_and_batches_and_draws_them(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    threads = sorted({1, os.cpu_count() or 1})
    folder = tmp_path / "made" / "here"
    code, out, err = run(capsys, "bench", MODEL, "--res", str(SIDE), "--batch", "1,2", "--threads",
                         ",".join(map(str, threads)), "--min-time", "0.05", "--chart", str(folder), "--format", "csv")
    assert code == 0, err
    frame = pd.read_csv(io.StringIO(out))
    assert list(zip(frame["threads"], frame["batch"], strict=True)) == [(t, b) for t in threads for b in (1, 2)]
    assert (frame[frame["threads"] == threads[0]]["speedup"] == 1.0).all()
    key = Target().key  # the charts are named after the target without --threads: torch's default threads
    charted = {p.name for p in folder.iterdir()}
    assert charted == {f"sweep_{kind}-{key}.{ext}" for kind in ("batch", "threads") for ext in ("png", "svg")}
    assert all(f"wrote {folder / name}" in err for name in charted)
    _check_images(folder)


@pytest.mark.slow  # each row in a process of its own: about 30 s
def test_bench_warns_once_and_labels_oversubscribed_rows(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "bench", MODEL, "--res", str(SIDE), "--threads", f"1,{CORES + 1}", "--min-time",
                         "0.05", "--retries", "0")  # fmt: skip
    assert code == 0, err
    warnings = [line for line in err.splitlines() if "oversubscribed" in line]
    assert warnings == [f"cnnbench bench: warning: threads {CORES + 1} oversubscribed: more than the {CORES} cores "
                        "present, their rows time the runtime's threads taking turns on the cores as well as the "
                        "model"]  # fmt: skip
    rows = [line.split() for line in out.splitlines() if line.strip().startswith(MODEL)]
    assert [(int(r[1]), r[-1]) for r in rows] == [(1, rows[0][-1]), (CORES + 1, "oversubscribed")]
    assert rows[0][-1] != "oversubscribed"


def test_single_thread_count_keeps_the_table_as_before(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "bench", MODEL, "--res", str(SIDE), "--threads", "1", "--min-time", "0.05",
                       "--no-roofline")  # fmt: skip
    assert code == 0
    header = next(line for line in out.splitlines() if "median (ms)" in line)
    assert "speed-up" not in header and "threads" not in header and "# target: cpu-t1-" in out


def test_charts_are_written(by_batch: pd.DataFrame, by_threads: pd.DataFrame, tmp_path: Path) -> None:
    two = pd.concat([by_batch, by_batch.assign(model="mobilenet_v3_small")], ignore_index=True)
    charts.batch_chart(two, tmp_path / "sweep_batch", "Batch sweep")
    charts.threads_chart(by_threads.drop(columns=["speedup", "efficiency"]), tmp_path / "sweep_threads", "Threads")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "sweep_batch.png", "sweep_batch.svg", "sweep_threads.png", "sweep_threads.svg"]
    _check_images(tmp_path)


def _check_images(folder: Path) -> None:
    for png in folder.glob("*.png"):
        with Image.open(png) as image:
            image.verify()
            assert image.size[0] > 400 and image.size[1] > 200
    for svg in folder.glob("*.svg"):
        assert ET.parse(svg).getroot().tag.endswith("svg")


def test_report_sweeps_are_stored_reused_and_shown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cnnbench.report import page_sections
    from cnnbench.report import sweep_tables as tables
    from cnnbench.report.config import ReportConfig

    config = ReportConfig.quick_config(tmp_path, target=Target(threads=1), resolution=SIDE)
    by_batch, by_threads = tables.sweep_tables(config, [MODEL, "alexnet"], lambda items, desc: items)
    key = config.target.key
    assert set(by_batch["model"]) == set(by_threads["model"]) == {MODEL}  # --quick: one model, batches 1-4
    assert list(by_batch["batch"]) == list(tables.QUICK_SWEEP_BATCHES) and list(by_threads["threads"]) == [
        *default_threads()]
    for kind in ("batch", "threads"):
        stored = pd.read_csv(tmp_path / f"sweep-{kind}-{key}.csv")
        assert {"machine", "code", "settings", "family", "latency_ms_median"} <= set(stored.columns)
        assert (tmp_path / f"sweep-{kind}-{key}.env.json").exists()
    monkeypatch.setattr(tables.sweep, "batch_sweep", lambda *a, **k: pytest.fail("measured again"))
    monkeypatch.setattr(tables.sweep, "thread_sweep", lambda *a, **k: pytest.fail("measured again"))
    again = tables.sweep_tables(config, [MODEL], lambda items, desc: items)
    assert list(again[0]["measured_at"]) == list(by_batch["measured_at"])  # reused, not measured
    page = page_sections.Page(provenance={}, sweep_batch=by_batch, sweep_threads=by_threads,
                            sweep_timing=QUICK_TIMING, sweep_stop_ms=tables.SWEEP_STOP_MS)  # fmt: skip
    lines = page_sections.sweep_section(key, page, {f"sweep_batch-{key}": tmp_path / "x.png"})
    text = "\n".join(lines)
    assert lines[0] == "## Batch and threads sweeps" and f"![sweep_batch-{key}](sweep_batch-{key}.png)" in text
    assert f"passes {tables.SWEEP_STOP_MS / 1e3:g} s" in text and f"| {MODEL}" in text
    table = [line for line in text.splitlines() if line.startswith("| ")]
    header, row = table[0], next(line for line in table if line.startswith(f"| {MODEL}"))
    cells = dict(zip([c.strip() for c in header.split("|")], [c.strip() for c in row.split("|")], strict=True))
    best = by_batch.loc[pd.to_numeric(by_batch["throughput_img_s"]).idxmax()]
    assert int(float(cells["at batch"])) == best["batch"] and float(cells["speed-up there"]) == pytest.approx(
        by_threads["speedup"].iloc[-1], abs=0.01)
