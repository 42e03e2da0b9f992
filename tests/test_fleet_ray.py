"""``cnnbench fleet run --ray``: which Ray resources are boards, the report's arguments, the refusals before Ray
starts, and the run itself on a two-node local Ray cluster (a fake report that measures nothing) and on ``auto``
(the real quick report of one tiny model, marked slow)."""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from cnnbench.cli import main
from cnnbench.errors import CnnbenchError, UnknownModelError
from cnnbench.fleet.ray_run import Board, ReportOptions, boards_of, is_board_resource, run_on_ray

MB = 2**20


def node(node_id: str, host: str, alive: bool = True, **resources: float) -> dict[str, object]:
    """One entry of ``ray.nodes()``, with the fields the fleet run reads (Ray 2.58-2.60's names)."""
    return {"NodeID": node_id, "Alive": alive, "NodeManagerHostname": host, "NodeManagerAddress": "10.0.0.1",
            "Resources": resources}  # fmt: skip


def fleet(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``cnnbench fleet ARGV``: its exit code, what it printed, and what it said on stderr."""
    code = main(["fleet", *argv])
    out, err = capsys.readouterr()
    return code, out, err


# --- which resources are boards, and their folders ----------------------------------------------------------------


def test_a_board_is_any_resource_that_is_not_rays_own() -> None:
    ray_own = ["CPU", "GPU", "memory", "object_store_memory", "node:10.0.0.1", "node:__internal_head__",
               "accelerator_type:A100", "TPU", "TPU-v4-16-head", "CPU_group_0_abc", "neuron_cores"]  # fmt: skip
    assert [r for r in ray_own if is_board_resource(r)] == []
    assert all(is_board_resource(r) for r in ["rpi5", "jetson_orin", "h100", "pixel-8"])


def test_boards_of_the_nodes() -> None:
    nodes = [
        node("a" * 40, "lab-pi", CPU=4.0, memory=8e9, rpi5=1.0, coral=0.5, **{"node:10.0.0.1": 1.0}),
        node("b" * 40, "lab-gpu", CPU=16.0, GPU=1.0, h100=1.0, rpi4=2.0, **{"accelerator_type:H100": 1.0}),
        node("c" * 40, "lab-cpu", CPU=8.0),  # carries no board: runs nothing
        node("d" * 40, "lab-dead", alive=False, CPU=4.0, rpi5=1.0),  # a dead node's board is not asked for
        node("e" * 40, "my-laptop", CPU=2.0, **{"my-laptop": 1.0}),  # `auto`'s board, named after its host
    ]
    assert boards_of(nodes) == [
        Board("b" * 40, "lab-gpu", "h100", 1.0, 16.0, 1.0, "lab-gpu-h100"),
        Board("b" * 40, "lab-gpu", "rpi4", 1.0, 16.0, 1.0, "lab-gpu-rpi4"),  # two of a name: still one board
        Board("a" * 40, "lab-pi", "coral", 0.5, 4.0, 0.0, "lab-pi-coral"),  # its task asks for the half there is
        Board("a" * 40, "lab-pi", "rpi5", 1.0, 4.0, 0.0, "lab-pi-rpi5"),
        Board("e" * 40, "my-laptop", "my-laptop", 1.0, 2.0, 0.0, "my-laptop"),
    ]


def test_two_nodes_of_one_host_with_one_board_name_get_two_folders() -> None:
    nodes = [node("12345678ff", "box", CPU=1.0, pi=1.0), node("abcdef01ff", "box", CPU=1.0, pi=1.0),
             node("99", "we/ird host", CPU=1.0, **{"a b": 1.0})]  # fmt: skip
    assert [b.folder for b in boards_of(nodes)] == ["box-pi-12345678", "box-pi-abcdef01", "we_ird_host-a_b"]


# --- the report's arguments, and what is refused before Ray starts ------------------------------------------------


def test_report_options_become_the_reports_arguments() -> None:
    assert ReportOptions().argv(["resnet18"]) == ["resnet18"]
    options = ReportOptions(quick=True, device="cuda", threads=4, deploy="none", sweeps=False, predict=False)
    assert options.argv(["a", "b"]) == ["a", "b", "--quick", "--device", "cuda", "--threads", "4", "--deploy", "none",
                                        "--no-sweeps", "--no-predict"]  # fmt: skip
    assert ReportOptions(deploy="onnxruntime:int8, openvino:fp32").deploy == "onnxruntime:int8, openvino:fp32"


@pytest.mark.parametrize("deploy", ["onnxruntime", "tensorrt:fp32", "onnxruntime:int4", "none,openvino"])
def test_a_bad_deployment_is_refused(deploy: str) -> None:
    with pytest.raises(CnnbenchError, match="a deployment is BACKEND:DTYPE"):
        ReportOptions(deploy=deploy)


@pytest.fixture
def no_ray_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Ray start fails the test: the refusals must come before it."""
    ray = pytest.importorskip("ray")

    def started(*args: object, **kwargs: object) -> None:
        raise AssertionError("Ray was started before the input was checked")

    monkeypatch.setattr(ray, "init", started)


def test_an_unknown_model_is_refused_before_ray_starts(tmp_path: Path, no_ray_start: None) -> None:
    with pytest.raises(UnknownModelError, match="closest: mobilenet_v3_small"):
        run_on_ray("auto", ["mobilenet_v3_smal"], ReportOptions(), tmp_path)


def test_an_unwritable_out_is_refused_before_ray_starts(
    tmp_path: Path, no_ray_start: None, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a-file").write_text("")
    code, out, err = fleet(capsys, "run", "--ray", "auto", "resnet18", "--out", str(tmp_path / "a-file" / "out"))
    assert (code, out) == (2, "")
    assert err.startswith("cnnbench fleet: error: cannot write to ") and err.count("\n") == 1
    assert err.endswith("give --out a folder you can write\n")


def test_without_ray_one_line_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # as if it were not installed: importlib finds no spec
    with pytest.raises(CnnbenchError, match=r"pip install cnnbench\[fleet\]$"):
        run_on_ray("auto", ["resnet18"], ReportOptions(), tmp_path)
    assert not list(tmp_path.iterdir())


# --- `auto`: the real report (before the cluster's tests: one Ray instance on the machine at a time) ---------------


@pytest.mark.slow
def test_auto_gathers_a_real_report_of_this_machine(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("ray")
    out = tmp_path / "fleet"
    code, printed, said = fleet(capsys, "run", "--ray", "auto", "shufflenet_v1_g8_x0_25", "--quick", "--no-sweeps",
                                "--no-predict", "--deploy", "none", "--out", str(out))  # fmt: skip
    folder = out / socket.gethostname()
    assert code == 0, said
    assert printed.splitlines() == [f"gathered 1 board folder(s) into {out}/:", f"  {folder}"]
    assert f"cnnbench fleet run: running the report on 1 board(s): {folder.name}" in said
    tables = list(folder.glob("latency-*.csv"))
    assert len(tables) == 1 and tables[0].name.endswith("-fp32-nchw-eager.csv")  # the eager table only: --deploy none
    rows = pd.read_csv(tables[0])
    assert list(rows["model"]) == ["shufflenet_v1_g8_x0_25"]
    assert (pd.to_numeric(rows["latency_ms_median"]) > 0).all()
    assert (folder / "README.md").exists() and (folder / "zoo.csv").exists()


# --- a two-node Ray cluster, the report faked ---------------------------------------------------------------------

# The report each board runs in the cluster tests: it measures nothing, writes a table and what it was given, and
# fails where its board's earlier folder holds a file named fail-here.
FAKE_REPORT = """
import json, os, sys
from pathlib import Path
args = sys.argv[1:]
out = Path(args[args.index("--out") + 1])
if (out / "fail-here").exists():
    print("progress...\\ncnnbench report: error: this board fails on purpose", file=sys.stderr)
    sys.exit(2)
(out / "latency-cpu-t1-fp32-nchw-eager.csv").write_text("model,latency_ms_median\\nresnet18,1.5\\n")
(out / "sub").mkdir(exist_ok=True)
given = {"argv": args, "omp": os.environ.get("OMP_NUM_THREADS"), "nice": os.nice(0)}
(out / "sub" / "given.json").write_text(json.dumps(given))
print("wrote 2 files\\ntook 0.0 min")
"""


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """Two Ray nodes on this machine, one CPU each, a small object store, one board each: boardA and boardB."""
    cluster_utils = pytest.importorskip("ray.cluster_utils")
    import ray

    small = {"num_cpus": 1, "object_store_memory": 80 * MB}
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("OMP_NUM_THREADS", raising=False)  # the nodes start without it: only Ray sets it in a task
        made = cluster_utils.Cluster(
            initialize_head=True, head_node_args={**small, "resources": {"boardA": 1}, "include_dashboard": False}
        )
        try:
            made.add_node(**small, resources={"boardB": 1})
            made.wait_for_nodes()
            yield made.address
        finally:
            ray.shutdown()
            made.shutdown()


def fake(tmp_path: Path) -> list[str]:
    script = tmp_path / "fake_report.py"
    script.write_text(FAKE_REPORT)
    return [sys.executable, str(script)]


def test_each_board_reports_once_and_its_folder_is_gathered(cluster: str, tmp_path: Path) -> None:
    out, host = tmp_path / "out", socket.gethostname()
    (out / f"{host}-boardA").mkdir(parents=True)
    (out / f"{host}-boardA" / "earlier.csv").write_text("kept\n")  # sent to the board, so it comes back
    options = ReportOptions(quick=True, threads=1, deploy="none", sweeps=False)
    said: list[str] = []
    folders = run_on_ray(cluster, ["resnet18"], options, out, command=fake(tmp_path), say=said.append)
    assert folders == [out / f"{host}-boardA", out / f"{host}-boardB"]
    assert sorted(p.name for p in out.iterdir()) == [f"{host}-boardA", f"{host}-boardB"]  # no temporaries left
    for folder in folders:
        table = pd.read_csv(folder / "latency-cpu-t1-fp32-nchw-eager.csv")
        assert table.to_dict("records") == [{"model": "resnet18", "latency_ms_median": 1.5}]
        given = json.loads((folder / "sub" / "given.json").read_text())
        assert given["argv"][:-2] == ["resnet18", "--quick", "--threads", "1", "--deploy", "none", "--no-sweeps"]
        assert given["argv"][-2] == "--out" and not Path(given["argv"][-1]).exists()  # the node's, cleaned up
        assert given["omp"] is None  # Ray's OMP_NUM_THREADS=1 (the task's CPUs) is not passed on
        assert given["nice"] == os.nice(0)  # the raylet's (this process's), not Ray's workers' +15
    assert (folders[0] / "earlier.csv").read_text() == "kept\n"
    assert not (folders[1] / "earlier.csv").exists()
    assert said[0] == f"running the report on 2 board(s): {host}-boardA, {host}-boardB"
    assert sum("(took 0.0 min)" in line for line in said) == 2


def test_a_failed_board_is_named_and_the_others_are_written(cluster: str, tmp_path: Path) -> None:
    out, host = tmp_path / "out", socket.gethostname()
    failing = out / f"{host}-boardB"
    failing.mkdir(parents=True)
    (failing / "fail-here").write_text("")
    with pytest.raises(CnnbenchError) as raised:
        run_on_ray(cluster, ["resnet18"], ReportOptions(), out, command=fake(tmp_path))
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"1 of 2 board(s) failed: {host}-boardB: cnnbench report exited 2: ")
    assert "this board fails on purpose" in message and f"written: {out / f'{host}-boardA'}" in message
    assert (out / f"{host}-boardA" / "latency-cpu-t1-fp32-nchw-eager.csv").exists()
    assert [p.name for p in failing.iterdir()] == ["fail-here"]  # the failed board's folder as it was

