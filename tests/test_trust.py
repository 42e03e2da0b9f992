"""Figures a user can trust: the hardware in the identity, the speed probe and the disturbed flag in the reuse rule,
disturbed rows left out of fronts, ranks, verdicts, comparisons and the cost model's fit, the second line of
defence, and progress in a log. Nothing here times anything but the report's quick rows."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import STEADY_PROBE_MS
from test_compare import results_folder
from test_report import ROOF, _fake_rounds, _fixed_calibration, config

import cnnbench.guidelines.microbench as guidelines
import cnnbench.provenance as provenance
import cnnbench.report.latency_tables as latency_tables
import cnnbench.report.run as report_run
from cnnbench import choose, fronts
from cnnbench.cli import main
from cnnbench.compare import DISTURBED, compare, hardware
from cnnbench.costmodel import networks
from cnnbench.guidelines.verdicts import verdict
from cnnbench.measure.disturbance import Disturbance, Load, Quieting
from cnnbench.output import progress_lines
from cnnbench.provenance import PROBE_TOLERANCE, Stamp, probe_agrees
from cnnbench.report import recheck
from cnnbench.report.run import run_report
from cnnbench.target import Target

KEY = "cpu-t1-fp32-nchw-eager"
XEON = {"model name": "Intel(R) Xeon(R) Processor", "cpu family": "6", "model": "207", "stepping": "2",
        "flags": "fpu sse avx2 fma avx512f avx512_vnni avx512_bf16 amx_tile amx_int8 hypervisor"}  # fmt: skip
EPYC = {"model name": "AMD EPYC", "cpu family": "25", "model": "1", "stepping": "1", "flags": "fpu sse avx2 fma"}
GRAVITON = {"CPU implementer": "0x41", "CPU part": "0xd40", "CPU revision": "1",
            "Features": "fp asimd asimddp asimdhp i8mm bf16 sve"}  # fmt: skip


@pytest.fixture(autouse=True)
def fixed_roofline_and_guideline_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """As in tests/test_report.py: fixed figures for the roofline, the guideline tables and the cost model."""
    monkeypatch.setattr(report_run, "cached_roofline", lambda target: ROOF)
    monkeypatch.setattr(guidelines, "time_table", _fake_rounds)
    monkeypatch.setattr(report_run, "start_calibration", _fixed_calibration)


@pytest.fixture
def cpuinfo(monkeypatch: pytest.MonkeyPatch) -> dict[str, dict[str, str]]:
    """Replace /proc/cpuinfo's first processor with the dict stored under "now"."""
    current: dict[str, dict[str, str]] = {"now": XEON}
    monkeypatch.setattr(provenance, "_cpuinfo", lambda: current["now"])
    monkeypatch.setattr(provenance, "cpu_model", lambda: current["now"].get("model name", "ARM"))
    monkeypatch.setattr(provenance, "_memory_gib", lambda: 24)
    monkeypatch.setattr(provenance.os, "cpu_count", lambda: 2)
    provenance.cpu_hardware.cache_clear()
    yield current
    provenance.cpu_hardware.cache_clear()


def test_hardware_names_the_kernel_flags(cpuinfo: dict[str, dict[str, str]]) -> None:
    assert provenance.hardware() == ("Intel(R) Xeon(R) Processor; x86_64 6/207/2; avx2 fma avx512f avx512_vnni "
                                     "avx512_bf16 amx_tile amx_int8; 2 cpus; 24 GiB")  # fmt: skip
    cpuinfo["now"] = GRAVITON
    provenance.cpu_hardware.cache_clear()
    text = provenance.hardware()
    assert "0x41/0xd40/1" in text and "asimd asimddp asimdhp i8mm bf16 sve" in text


def test_two_cpus_of_one_image_are_two_machines(cpuinfo: dict[str, dict[str, str]],
                                                monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """The AVX2-only EPYC and an AVX-512 one behind the same machine id and host name: two identities."""
    monkeypatch.setenv(provenance.MACHINE_ENV, "one-image")
    cpuinfo["now"] = {**EPYC, "flags": "fpu avx2 fma"}
    provenance.cpu_hardware.cache_clear()
    avx2 = provenance.machine_identity()
    cpuinfo["now"] = {**EPYC, "flags": "fpu avx2 fma avx512f avx512_vnni"}
    provenance.cpu_hardware.cache_clear()
    assert provenance.machine_identity() != avx2


def _stamp(probe_ms: float | None = 10.0) -> Stamp:
    return Stamp("m", "hw", "2.14.1", KEY, "s", "c", False, probe_ms)


def _row(**changes: object) -> dict[str, object]:
    return {"machine": "m", "hardware": "hw", "torch": "2.14.1", "target": KEY, "settings": "s", "code": "c",
            "quick": "False", "probe_ms": "10.0", "disturbed": "False", **changes}  # fmt: skip


@pytest.mark.parametrize(
    ("row", "reused"),
    [
        (_row(), True),
        (_row(probe_ms=10.0 * (1 + PROBE_TOLERANCE) - 1e-6), True),
        (_row(probe_ms=15.0), False),  # the machine is 1.5× faster today than when the row was measured
        (_row(probe_ms=6.0), False),
        (_row(probe_ms=""), False),  # a row from before the probe
        (_row(disturbed="True"), False),
        (_row(hardware="other hw"), False),
    ],
)
def test_the_reuse_rule(row: dict[str, object], reused: bool) -> None:
    assert _stamp().matches(row) is reused


def test_counts_need_no_probe() -> None:
    assert _stamp(None).matches(_row(probe_ms=""))
    assert probe_agrees("10.5", 10.0) and not probe_agrees("nan", 10.0) and not probe_agrees(None, 10.0)


def _latency(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / f"latency-{KEY}.csv", dtype={"measured_at": str}).set_index("model")


@pytest.mark.slow
def test_a_table_whose_probe_moved_or_that_was_disturbed_is_measured_again(tmp_path: Path) -> None:
    """The done-when check: a stored table whose probe_ms is edited ×1.5 is measured again by the next report, and so
    is a row flagged disturbed; the other rows are reused."""
    out = tmp_path / "results"
    models = ("mobilenet_v3_small", "shufflenet_v2_x0_5", "squeezenet1_1")
    run_report(config(out, models=models))
    first = _latency(out)
    assert (first["probe_ms"] == STEADY_PROBE_MS).all()
    assert {"disturbed", "cpu_share", "hardware", "attempts"} <= set(first.columns)
    edited = pd.read_csv(out / f"latency-{KEY}.csv", dtype=str)
    edited.loc[edited["model"] == models[0], "probe_ms"] = str(STEADY_PROBE_MS * 1.5)
    edited.loc[edited["model"] == models[1], "disturbed"] = "True"
    edited.to_csv(out / f"latency-{KEY}.csv", index=False)
    run_report(config(out, models=models))
    second = _latency(out)
    assert second.loc[models[0], "measured_at"] != first.loc[models[0], "measured_at"] or \
        second.loc[models[0], "samples_ms"] != first.loc[models[0], "samples_ms"]  # fmt: skip
    assert second.loc[models[0], "probe_ms"] == STEADY_PROBE_MS
    assert second.loc[models[1], "samples_ms"] != first.loc[models[1], "samples_ms"]
    assert second.loc[models[2], "samples_ms"] == first.loc[models[2], "samples_ms"]  # reused


def _frame(disturbed: list[bool]) -> pd.DataFrame:
    return pd.DataFrame({"model": ["a", "b", "c"], "latency_ms": [1.0, 2.0, 3.0], "top1": [70.0, 75.0, 80.0],
                         "disturbed": disturbed})  # fmt: skip


def test_a_disturbed_row_is_left_out_of_the_front() -> None:
    assert list(fronts.pareto(_frame([False, False, False]))["pareto"]) == [True, True, True]
    front = fronts.pareto(_frame([False, True, False]))
    assert list(front["pareto"]) == [True, False, True] and front["dominated_by"].tolist() == ["", "", ""]


def test_pick_shows_a_disturbed_row_as_such_and_does_not_rank_it() -> None:
    latency = pd.DataFrame({"model": ["mobilenet_v2", "resnet18"], "latency_ms_median": [12.0, 400.0],
                            "status": ["ok", "ok"], "disturbed": [False, True], "cpu_share": [0.99, 0.5]})  # fmt: skip
    top1 = pd.DataFrame({"model": ["mobilenet_v2", "resnet18"], "top1": [72.0, 69.8], "top1_std": np.nan,
                         "top1_from": "paper"})  # fmt: skip
    ranked = choose.rank(fronts.candidates(latency, top1), choose.Budget(latency_ms=1000.0))
    assert ranked.loc[0, "model"] == "mobilenet_v2" and ranked.loc[0, "rank"] == 1
    excluded = ranked.set_index("model").loc["resnet18", "excluded_by"]
    assert "disturbed" in excluded and "cpu_share 0.50" in excluded


def _guideline_rows(disturbed_scale: int | None) -> pd.DataFrame:
    rows = []
    for scale in (1, 2):
        for i, label in enumerate(["ReLU+shortcut", "ReLU only", "shortcut only", "neither"]):
            rows.append({"guideline": "G4", "config": label, "scale": scale, "flops": 100, "images_s": 100 + 10 * i,
                         "speed_vs_base": 1 + 0.1 * i, "speed_vs_base_low": 1 + 0.1 * i,
                         "speed_vs_base_high": 1 + 0.1 * i, "paper_vs_base": 1.0,
                         "disturbed": scale == disturbed_scale})  # fmt: skip
    return pd.DataFrame(rows)


def test_a_disturbed_guideline_table_is_not_judged() -> None:
    assert verdict(_guideline_rows(None), "G4").outcomes == ("holds", "holds")
    judged = verdict(_guideline_rows(2), "G4")
    assert judged.outcomes == ("holds", "disturbed") and judged.word == "holds" and "disturbed at 1/2" in judged.summary
    assert verdict(_guideline_rows(1).assign(disturbed=True), "G4").word.startswith("not judged")


def test_compare_draws_no_verdict_from_a_disturbed_row(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    old = results_folder(tmp_path / "old", {"a": list(rng.normal(10, 0.1, 30)), "b": list(rng.normal(10, 0.1, 30))})
    new = results_folder(tmp_path / "new", {"a": list(rng.normal(20, 0.1, 30)), "b": list(rng.normal(20, 0.1, 30))})
    table = pd.read_csv(new / "latency-cpu-t2-fp32-nchw-eager.csv")
    table["disturbed"] = [True, False]
    table["disturbance"] = ["cpu_share 0.50 < 0.9", ""]
    table["hardware"] = "AMD EPYC; x86_64 25/1/1; avx2 fma; 2 cpus; 8 GiB"
    table.to_csv(new / "latency-cpu-t2-fp32-nchw-eager.csv", index=False)
    frame = compare(old, new).set_index("model")
    assert frame.loc["a", "verdict"] == DISTURBED and "new disturbed (cpu_share 0.50" in frame.loc["a", "note"]
    assert frame.loc["b", "verdict"] == "slower"
    assert hardware(new) == "AMD EPYC; x86_64 25/1/1; avx2 fma; 2 cpus; 8 GiB"
    assert hardware(old).startswith("unknown")


def test_a_disturbed_calibration_network_is_timed_again_or_left_out_of_the_fit(monkeypatch: pytest.MonkeyPatch
                                                                               ) -> None:  # fmt: skip
    """Three networks: the first disturbed twice then quiet, the second disturbed throughout, the third quiet. The
    fit's table keeps the first and third; the per-network table keeps all three, the second flagged."""
    drawn = networks.network_suite(3, seed=0)
    readings = {drawn[0].draw: [0.5, 0.5, 0.99], drawn[1].draw: [0.5] * 5, drawn[2].draw: [0.99]}

    def fake_time(draw: int, target: Target, timing: object, repeats: int) -> tuple[float, pd.DataFrame, Disturbance]:
        layers = next(n.layers for n in drawn if n.draw == draw)
        share = readings[draw].pop(0)
        return 1.0, pd.DataFrame({"kind": layers["kind"], "time_ms": 0.01}), Disturbance(cpu_share=share)

    monkeypatch.setattr(networks, "run_isolated", lambda fn, *args: fake_time(*args))
    quieting = Quieting(retries=2)
    monkeypatch.setattr(quieting, "wait_for_quiet", lambda limit: Load(0.0, 0.0))
    ops, timed = networks.NetworkTimer(drawn, Target(threads=1), quieting=quieting).finish()
    assert set(ops["network"]) == {drawn[0].name, drawn[2].name}
    assert timed["disturbed"].tolist() == [False, True, False] and timed["attempts"].tolist() == [3, 3, 1]


def test_the_second_line_of_defence_flags_what_the_counts_cannot_explain() -> None:
    """Twelve rows on a line latency = FLOPs / 1e8 (MAC in proportion); one row 5× off the line. The cost model's
    prediction, where given, is the yardstick instead."""
    flops = np.geomspace(1e8, 1e10, 12)
    frame = pd.DataFrame({"model": [f"m{i}" for i in range(12)], "status": "ok", "flops": flops,
                          "mac_bytes": flops / 10, "latency_ms_median": flops / 1e8})  # fmt: skip
    frame.loc[5, "latency_ms_median"] *= 5
    found = recheck.implausible(frame)
    assert [f.model for f in found] == ["m5"] and found[0].factor == pytest.approx(5, rel=0.05)
    predicted = pd.Series({"m5": frame.loc[5, "latency_ms_median"] / 1.5})
    assert recheck.implausible(frame.iloc[:6], predicted) == []  # within 2× of the cost model; too few siblings else
    again = recheck.recheck_note(found[0], 1.0)
    assert again.startswith(f"{found[0].measured_ms:.4g} ms was 5.0× the table's counts fit")
    assert recheck.implausible(frame.assign(rechecked=[""] * 5 + ["done"] + [""] * 6)) == []


@pytest.mark.slow
def test_a_report_rechecks_a_row_far_slower_than_its_prediction(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                ) -> None:  # fmt: skip
    """The report's fixed cost model predicts each model; a first measurement inflated 100× (as the disturbed rows
    of the issue were) is measured again once, and the row says so. (The fixed model's figures are round numbers,
    not a calibration: other rows may be rechecked too, and no assertion is made about them.)"""
    real = latency_tables.iter_bench
    inflated = {"shufflenet_v2_x0_5"}

    def slow_once(names: list[str], *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        for row in real(names, *args, **kwargs):
            if names[0] in inflated:
                inflated.discard(names[0])
                row = {**row, "latency_ms_median": float(row["latency_ms_median"]) * 100}
            yield row

    monkeypatch.setattr(latency_tables, "iter_bench", slow_once)
    out = tmp_path / "results"
    run_report(config(out, predict=True))
    table = _latency(out)
    note = str(table.loc["shufflenet_v2_x0_5", "rechecked"])
    assert "the cost model" in note and "measured again" in note
    first, again = note.split(" ms was ")[0], note.split("measured again: ")[1].removesuffix(" ms")
    assert float(first) > 20 * float(again)  # the inflated figure, then a real one
    sidecar = json.loads((out / f"latency-{KEY}.env.json").read_text())  # it describes the rows measured again
    assert sidecar["provenance"]["measured"]["last"] == max(table["measured_at"])


def test_progress_in_a_log_is_a_line_per_item_with_the_time_left() -> None:
    lines: list[str] = []
    ticks = iter([0.0, 0.0, 10.0, 20.0, 30.0])
    items = list(progress_lines(["a", "b", "c"], "latency eager fp32", lines.append, lambda: next(ticks)))
    assert items == ["a", "b", "c"]
    assert lines == [
        "cnnbench: latency eager fp32 [1/3] a (0s)",
        "cnnbench: latency eager fp32 [2/3] b (10s, ~20s left)",
        "cnnbench: latency eager fp32 [3/3] c (20s, ~10s left)",
        "cnnbench: latency eager fp32 done: 3 in 30s",
    ]


def test_quick_items_share_a_progress_line() -> None:
    """A hundred items of 0.1 s each: a line at 0 s, then one a second (items 11, 21, ... 91), then the end."""
    lines: list[str] = []
    ticks = iter([0.0] + [i / 10 for i in range(101)])
    items = list(progress_lines(list(range(100)), "draw", lines.append, lambda: next(ticks)))
    assert len(items) == 100
    assert [line.split("]")[0].split("[")[1] for line in lines[:-1]] == [f"{n}/100" for n in range(1, 101, 10)]
    assert lines[-1] == "cnnbench: draw done: 100 in 10s"


@pytest.mark.slow
def test_a_piped_report_shows_each_model_in_its_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    log = io.StringIO()  # not a terminal, as in `cnnbench report > log 2>&1`
    monkeypatch.setattr(sys, "stderr", log)
    code = main(["report", "--quick", "--out", str(tmp_path / "out"), "--threads", "1", "--deploy", "none",
                 "--no-sweeps", "--no-predict", "mobilenet_v3_small", "squeezenet1_1"])  # fmt: skip
    assert code == 0
    text = log.getvalue()
    assert "cnnbench: latency eager fp32 [1/2] mobilenet_v3_small" in text
    assert "cnnbench: latency eager fp32 [2/2] squeezenet1_1" in text
    assert "peak memory" in capsys.readouterr().out


@pytest.mark.skipif(not Path("/proc/self/smaps_rollup").exists(), reason="needs Linux's smaps_rollup")
def test_the_memory_of_a_tree_counts_a_shared_page_once() -> None:
    """A child forked after the parent touched 64 MiB shares those pages: summed RSS counts them twice, the summed
    proportional set size once (the hand computation: 64 MiB between the two processes, not 128)."""
    import os
    import signal
    import time

    from cnnbench.measure.resident import tree_memory, tree_pids

    size = 64 * 2**20
    block = bytearray(b"\1") * size  # touched, so resident
    before = tree_memory()
    child = os.fork()
    if child == 0:  # the child only holds the shared pages until it is killed
        time.sleep(30)
        os._exit(0)
    try:
        time.sleep(0.2)
        during = tree_memory()
        assert child in tree_pids()
    finally:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
    assert before is not None and during is not None and before.pss_bytes and during.pss_bytes
    assert during.rss_bytes - before.rss_bytes > 0.9 * size  # the child's RSS: the shared block again
    assert during.pss_bytes - before.pss_bytes < 0.25 * size  # the block's pages split, not doubled
    assert len(block) == size
