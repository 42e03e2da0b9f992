"""The Pareto front and `cnnbench pick`: a hand-built table checked against a hand computation, then one real pick
on two small models (measured once, then reused from the results folder)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from cnnbench.choose import Budget, no_fit_message, rank
from cnnbench.cli import main
from cnnbench.fronts import accuracy_for, candidates, pareto
from cnnbench.store import ResultTable

# model, median latency (ms), top-1 (%), params (M), peak memory (MB); f failed, g has no top-1.
HAND = pd.DataFrame(
    [
        ("a", 5.0, 70.0, 3.0, 20.0),
        ("b", 8.0, 75.0, 5.0, 30.0),
        ("c", 9.0, 72.0, 4.0, 25.0),  # b is faster and more accurate
        ("d", 12.0, 80.0, 20.0, 60.0),
        ("e", 20.0, 78.0, 10.0, 50.0),  # d is faster and more accurate
        ("f", math.nan, 76.0, 6.0, math.nan),
        ("g", 6.0, math.nan, 2.0, 10.0),
        ("h", 30.0, 60.0, 1.0, 5.0),  # a, b and d all dominate it; a is the cheapest
    ],
    columns=["model", "latency_ms", "top1", "params_m", "memory_mb"],
).assign(family="x", top1_std=math.nan, top1_from="paper", status="ok", error="")
HAND.loc[HAND["model"] == "f", ["status", "error"]] = ["failed", "out of memory"]


def test_pareto_front_and_dominators_match_a_hand_computation() -> None:
    front = pareto(HAND).set_index("model")
    assert sorted(front.index[front["pareto"]]) == ["a", "b", "d"]
    assert front["dominated_by"].to_dict() == {"a": "", "b": "", "c": "b", "d": "", "e": "d", "f": "", "g": "",
                                               "h": "a"}  # fmt: skip


def test_pareto_keeps_ties_on_the_front() -> None:
    tied = pd.DataFrame({"model": ["p", "q", "r"], "latency_ms": [1.0, 1.0, 2.0], "top1": [50.0, 50.0, 50.0]})
    assert pareto(tied)["pareto"].tolist() == [True, True, False]


def test_rank_orders_the_fitting_models_and_names_each_exclusion() -> None:
    ranked = rank(HAND, Budget(latency_ms=15, max_params_m=10))
    fits = ranked[ranked["rank"].notna()]
    assert fits["model"].tolist() == ["b", "c", "a"]  # by top-1
    assert fits["rank"].tolist() == [1, 2, 3]
    assert fits.set_index("model")["pareto"].to_dict() == {"b": True, "c": False, "a": True}
    assert fits.set_index("model")["dominated_by"]["c"] == "b"
    reasons = ranked[ranked["rank"].isna()].set_index("model")["excluded_by"].to_dict()
    assert reasons == {
        "d": "params 20 M > 10 M",
        "e": "latency 20 ms > 15 ms",
        "f": "no latency (out of memory)",
        "g": "no paper top-1",
        "h": "latency 30 ms > 15 ms",
    }


def test_a_model_dominated_only_by_an_excluded_one_stays_on_the_fitting_front() -> None:
    # Under 15 ms and 10 M parameters, d (which dominates e) is excluded; e is out on latency; within 25 ms, e fits
    # and nothing that fits dominates it.
    ranked = rank(HAND, Budget(latency_ms=25, max_params_m=10)).set_index("model")
    assert ranked.loc["e", "pareto"] and ranked.loc["e", "rank"] == 1


def test_every_budget_applies_and_the_impossible_one_names_the_fastest_model() -> None:
    ranked = rank(HAND, Budget(min_top1=74, max_memory_mb=40))
    assert ranked[ranked["rank"].notna()]["model"].tolist() == ["b"]
    reasons = ranked.set_index("model")["excluded_by"]
    assert reasons["d"] == "memory 60 MB > 40 MB" and reasons["a"] == "top-1 70% < 74%"
    nothing = rank(HAND, Budget(latency_ms=1))
    assert nothing["rank"].notna().sum() == 0
    assert no_fit_message(nothing, Budget(latency_ms=1)) == (
        "no model meets latency ≤ 1 ms; the fastest measured is a at 5 ms (top-1 70%): loosen a budget")


def test_candidates_take_the_measured_memory_and_the_papers_top1() -> None:
    latency = pd.DataFrame({"model": ["resnet18", "mobilenet_v3_small"], "batch": 1, "status": "ok", "error": "",
                            "latency_ms_median": [20.0, 4.0], "params": [11_689_512, 2_542_856],
                            "peak_rss_bytes": [50e6, 10e6], "peak_mem_bytes": [math.nan, math.nan]})  # fmt: skip
    frame = candidates(latency, accuracy_for("paper")).set_index("model")
    assert frame.loc["resnet18", "memory_mb"] == 50.0 and frame.loc["resnet18", "params_m"] == 11.689512
    # ResNet's paper gives no single-crop top-1 for ResNet-18 here: torchvision's weights score 69.758.
    assert frame.loc["resnet18", "top1_from"] == "reference" and frame.loc["resnet18", "top1"] == 69.758
    assert frame.loc["mobilenet_v3_small", "top1_from"] == "paper" and frame.loc["mobilenet_v3_small", "top1"] == 67.4


@pytest.fixture(scope="module")
def picked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A results folder where `pick` measured two small models once."""
    results = tmp_path_factory.mktemp("pick")
    code = main(["pick", "squeezenet1_1", "mobilenet_v3_small", "--results", str(results), "--threads", "1",
                 "--format", "csv"])  # fmt: skip
    assert code == 0
    return results


@pytest.mark.slow
def test_pick_measures_what_is_missing_then_reuses_it(picked: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    table = ResultTable(picked / "latency-cpu-t1-fp32-nchw-eager.csv", key=["model", "batch"])
    rows = table.frame().set_index("model")
    before = rows["measured_at"].to_dict()
    disturbed = {m for m, flag in rows["disturbed"].items() if str(flag) == "True"}  # another process held the CPUs
    assert set(before) == {"squeezenet1_1", "mobilenet_v3_small"}
    assert main(["pick", "squeezenet1_1", "mobilenet_v3_small", "--results", str(picked), "--threads", "1",
                 "--latency-ms", "10000"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    after = ResultTable(picked / "latency-cpu-t1-fp32-nchw-eager.csv", key=["model", "batch"]).frame()
    for model, when in after.set_index("model")["measured_at"].items():  # reused, unless it was disturbed
        assert (when == before[model]) == (model not in disturbed), model
    lines = out.splitlines()
    assert lines[0].startswith("# target: cpu-t1-fp32-nchw-eager") and "latency ≤ 10000 ms" in lines[0]
    # MobileNetV3-Small (67.4, paper) ranks above SqueezeNet 1.1 (58.178, torchvision's weights).
    ranked = [line.split()[1] for line in lines if line.split()[:1] in (["1"], ["2"])]
    assert ranked == ["mobilenet_v3_small", "squeezenet1_1"]


def test_pick_refuses_an_impossible_budget_in_one_line(picked: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    code = main(["pick", "squeezenet1_1", "mobilenet_v3_small", "--results", str(picked), "--threads", "1",
                 "--latency-ms", "0.001"])  # fmt: skip
    err = capsys.readouterr().err
    said = [line for line in err.strip().splitlines() if not line.startswith("cnnbench: ")]  # not progress lines
    assert code == 2 and len(said) == 1
    assert said[0].startswith("cnnbench pick: error: no model meets latency ≤ 0.001 ms; the fastest measured is ")


def test_pick_refuses_bad_input_before_measuring(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pick", "nosuchnet", "--results", str(tmp_path)]) == 2
    assert main(["pick", "resnet18", "--min-top1", "120", "--results", str(tmp_path)]) == 2
    assert main(["pick", "resnet18", "--accuracy", "digits", "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and "accuracy-digits.csv has no rows measured on this machine" in err[2]
    assert not list(tmp_path.glob("latency-*.csv"))  # nothing was measured
