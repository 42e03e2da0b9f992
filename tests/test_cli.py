"""The command line: output of `cnnbench list`, and one-line errors with exit code 2."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from cnnbench.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_efficientnet_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "list", "efficientnet*")
    assert code == 0
    lines = out.strip().splitlines()
    assert "params (M)" in lines[0] and "paper top-1 (%)" in lines[0]
    assert [line.split()[0] for line in lines[1:]] == [f"efficientnet_b{i}" for i in range(8)]
    assert "5.29" in lines[1] and "66.35" in lines[-1]


def test_list_family_without_paper_figures(capsys: pytest.CaptureFixture[str]) -> None:
    # ResNet's paper prints no single-crop params: the column is empty, not a crash
    code, out, _ = run(capsys, "list", "resnet*")
    assert code == 0
    assert "11.69" in out.splitlines()[1] and out.count("resnet") == 2 * 5  # name and family, five depths


def test_list_csv_and_json_agree(capsys: pytest.CaptureFixture[str]) -> None:
    _, out_csv, _ = run(capsys, "list", "efficientnet_b0", "efficientnet_b7", "--format", "csv")
    _, out_json, _ = run(capsys, "list", "efficientnet_b0", "efficientnet_b7", "--format", "json")
    frame = pd.read_csv(io.StringIO(out_csv))
    records = json.loads(out_json)
    assert list(frame["name"]) == [r["name"] for r in records] == ["efficientnet_b0", "efficientnet_b7"]
    assert list(frame["params"]) == [r["params"] for r in records] == [5_288_548, 66_347_960]
    assert set(frame.columns) >= {"name", "family", "resolution", "params", "published_top1", "published_source"}


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["list", "nothing*"], "no model matches 'nothing*'"),
        (["list", "efficientnet_b9"], "closest: efficientnet_b"),
    ],
)
def test_bad_input_one_line_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str], expected: str) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert expected in err
    assert len(err.strip().splitlines()) == 1


def test_console_script_exit_code_without_traceback() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "cnnbench", "list", "nothing*"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip() == "cnnbench list: error: no model matches 'nothing*'; `cnnbench list` shows every name"


def test_profile_csv_has_every_total(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "profile", "shufflenet_v2_x1_0", "timm:mobilenetv3_small_100", "--format", "csv")
    assert code == 0
    frame = pd.read_csv(io.StringIO(out))
    expected = {
        "params", "flops", "flops_elementwise", "mac", "mac_bytes", "arithmetic_intensity",
        "activation_peak_bytes", "training_saved_bytes",
    }
    assert expected <= set(frame.columns)
    # torchvision's _ops for shufflenet_v2_x1_0 and timm's mobilenetv3_small_100 (reference CSV), multiply-adds
    assert list(frame["flops"]) == [144_907_992, 56_510_400]
    assert list(frame["params"]) == [2_278_604, 2_542_856]


def test_profile_per_layer_and_by_kind(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "profile", "resnet18", "--per-layer", "--format", "csv", "--no-training")
    layers = pd.read_csv(io.StringIO(out))
    assert layers["flops"].sum() == 1_814_073_344
    assert {"module", "op", "kind", "input_shapes", "output_shape", "mac"} <= set(layers.columns)
    _, out, _ = run(capsys, "profile", "resnet18", "--by", "kind", "--format", "json", "--no-training")
    kinds = {r["kind"]: r for r in json.loads(out)}
    assert kinds["conv"]["flops"] + kinds["conv_1x1"]["flops"] + kinds["linear"]["flops"] == 1_814_073_344


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["profile", "efficientnet_b9"], "closest: efficientnet_b"),
        (["profile", "alexnet", "--res", "16"], "the smallest it takes is 63"),
        (["profile", "resnet18", "--batch", "0"], "argument --batch: must be at least 1, got 0"),
        (["profile", "resnet18", "--res", "-3"], "argument --res: must be at least 1, got -3"),
        (["profile", "resnet18", "--res", "abc"], "argument --res: takes a whole number"),
        (["profile", "resnet18", "--no-such-option"], "unrecognized arguments: --no-such-option"),
        (["bench", "resnet18", "--min-time", "0"], "argument --min-time: must be greater than 0, got 0"),
        (["bench", "resnet18", "--min-time", "-1"], "argument --min-time: must be greater than 0"),
        (["profile", "timm:not_a_model"], "timm has no model 'not_a_model'"),
        (["profile"], "name at least one model, or pass --all"),
        (["bench"], "name at least one model, or pass --all"),
        (["train"], "name at least one model, or pass --all"),
        (["train", "timm:resnet18"], "unknown model 'timm:resnet18'"),  # training takes zoo models only
    ],
)
def test_profile_bad_input(capsys: pytest.CaptureFixture[str], argv: list[str], expected: str) -> None:
    code, out, err = run(capsys, *argv)
    assert (code, out) == (2, "")
    assert expected in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_docs_table_is_current(capsys: pytest.CaptureFixture[str]) -> None:
    """docs/zoo.md holds the output of `cnnbench list --vs-paper --format markdown`; regenerate it when it drifts."""
    from pathlib import Path

    docs = (Path(__file__).parents[1] / "docs" / "zoo.md").read_text()
    _, out, _ = run(capsys, "list", "--vs-paper", "--format", "markdown")
    assert out.strip() in docs


@pytest.mark.parametrize(
    ("argv", "roofline"),
    [
        ([], True),
        (["--no-roofline"], False),
        (["--threads", "1,2"], False),  # measured per thread count: a threads sweep has none
        (["--dtype", "int8", "--backend", "onnxruntime"], False),  # its peak would be fp32's
    ],
)
def test_bench_takes_a_roofline_only_where_it_bounds_something(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, argv: list[str], roofline: bool
) -> None:
    """Nothing is measured: the roofline is a sentinel, and the sweep stops before its first row."""
    import cnnbench.cli.core as core
    from cnnbench.errors import CnnbenchError
    from cnnbench.target import Target

    if "1,2" in argv and (os.cpu_count() or 1) < 2:
        pytest.skip("a threads sweep needs two cores")
    roof = object()
    given: dict[str, object] = {}

    def sweep(*args: object, roofline: object = None, **kwargs: object) -> None:
        given["roofline"] = roofline
        raise CnnbenchError("stopped before measuring")

    monkeypatch.setattr(core, "cached_roofline", lambda target: roof)
    monkeypatch.setattr(core, "check_quiet", lambda command, args: None)
    monkeypatch.setattr(core, "iter_sweep", sweep)
    code, _, err = run(capsys, "bench", "resnet18", *argv)
    assert code == 2 and "stopped before measuring" in err
    assert given["roofline"] is (roof if roofline else None)
    assert Target().has_roofline and not Target(dtype="int8", backend="onnxruntime").has_roofline
