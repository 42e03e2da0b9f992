"""The command line: output of `cnnbench list`, and one-line errors with exit code 2."""

from __future__ import annotations

import io
import json
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
