"""ncnn's published table and device logs: the parser against hand-read excerpts, the shipped CSV against the
README it was parsed from, the model map against ncnn's .param files, and the import into a results folder."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

import zoo
from cnnbench.cli.common import Parser
from cnnbench.cli.fleet_import import add_import_command
from cnnbench.errors import CnnbenchError
from cnnbench.fleet.imports import import_benchncnn, import_executor_runner, write_imported
from cnnbench.fleet.published import (
    COLUMNS,
    NCNN_TO_ZOO,
    SHIPPED,
    parse_benchncnn,
    published_rows,
    read_benchncnn,
)

SHARED_README = Path("/work/shared/reference/ncnn/benchmark_README.md")

# Two devices as ncnn's README writes them (numbers made up, format copied): the Pi runs two thread counts, one
# of its rows is unstable (73.01 / 8.99 > 3), one model is int8; the phone runs on its GPU (gpu_device = 0), and one
# of its models is not in the zoo. One line is garbled.
EXCERPT = """\
### Raspberry Pi 5 Broadcom BCM2712, Cortex-A76 (ARMv8) (2.4GHz x 4)
```
pi@raspberrypi:~/ncnn/benchmark $ ./benchncnn 10 4 0 -1 1
loop_count = 10
num_threads = 4
powersave = 0
gpu_device = -1
cooling_down = 1
          squeezenet  min =    7.07  max =    7.92  avg =    7.38
     squeezenet_int8  min =    9.10  max =    9.64  avg =    9.29
           mobilenet  min =    8.99  max =   73.01  avg =   33.90
        mobilenet_v3  min =     n/a  max =    9.00  avg =    8.00
pi@raspberrypi:~/ncnn/benchmark $ ./benchncnn 10 1 0 -1 1
loop_count = 10
num_threads = 1
powersave = 0
gpu_device = -1
cooling_down = 1
          squeezenet  min =   19.40  max =   19.66  avg =   19.52
```

### Qualcomm SM8550-AB Snapdragon 8 Gen 2 (Kyro 3.20 GHz + 2.8 GHz x 2 + Adreno 740)
```
kalama:/data/local/tmp # ./benchncnn 4 1 2 0 0
loop_count = 4
num_threads = 1
powersave = 2
gpu_device = 0
cooling_down = 0
       shufflenet_v2  min =    3.02  max =    3.20  avg =    3.10
           blazeface  min =    1.05  max =    1.11  avg =    1.08
```
"""

PI4, PI1 = "Raspberry Pi 5 Broadcom BCM2712 · t4", "Raspberry Pi 5 Broadcom BCM2712 · t1"
PHONE = "Qualcomm SM8550-AB Snapdragon 8 Gen 2"
CPU, INT8, GPU = "published-ncnn-fp32", "published-ncnn-int8", "published-ncnn-fp32-gpu"
# device, model, ncnn_model, threads, dtype, gpu, avg, min, max, unstable, target: read off EXCERPT by hand
EXPECTED = [
    (PI4, "squeezenet1_1", "squeezenet", 4, "fp32", False, 7.38, 7.07, 7.92, False, CPU),
    (PI4, "squeezenet1_1", "squeezenet_int8", 4, "int8", False, 9.29, 9.10, 9.64, False, INT8),
    (PI4, "mobilenet_v1_x1_0", "mobilenet", 4, "fp32", False, 33.90, 8.99, 73.01, True, CPU),
    (PI1, "squeezenet1_1", "squeezenet", 1, "fp32", False, 19.52, 19.40, 19.66, False, CPU),
    (PHONE, "shufflenet_v2_x1_0", "shufflenet_v2", 1, "fp32", True, 3.10, 3.02, 3.20, False, GPU),
    (PHONE, "ncnn:blazeface", "blazeface", 1, "fp32", True, 1.08, 1.05, 1.11, False, GPU),
]


def test_the_parser_reads_the_excerpt_as_written_by_hand() -> None:
    frame = parse_benchncnn(EXCERPT)
    assert list(frame.columns) == list(COLUMNS)
    read = ["device", "model", "ncnn_model", "threads", "dtype", "gpu", "latency_ms_median", "latency_ms_min"]
    got = frame[[*read, "latency_ms_max", "unstable", "target"]]
    assert [tuple(row) for row in got.itertuples(index=False)] == EXPECTED
    assert set(frame["backend"]) == {"ncnn"} and set(frame["source"]) == {"published"}
    assert set(frame["published_commit"]) == {"a4d2ea1d"}


def test_a_line_that_does_not_read_is_counted_not_dropped_silently() -> None:
    log = read_benchncnn(EXCERPT)
    assert [line.split()[0] for line in log.unparsed] == ["mobilenet_v3"]
    assert [(run.threads, run.gpu_device, len(run.timings)) for run in log.runs] == [(4, -1, 3), (1, -1, 1), (1, 0, 2)]


def test_device_names_stay_short_and_tell_devices_apart() -> None:
    text = """\
### MacBook Pro (13-inch, M1, 2020)
loop_count = 4
num_threads = 1
      squeezenet  min =  1.00  max =  1.00  avg =  1.00
### MacBook Pro (15-inch, 2019) - 2.6GHz six cores Intel Core i7
loop_count = 4
num_threads = 1
      squeezenet  min =  2.00  max =  2.00  avg =  2.00
### Loongson 3A4000 (GS464V 1.8GHz * 4 with MSA128)
loop_count = 4
num_threads = 4
powersave = 2
      squeezenet  min =  3.00  max =  3.00  avg =  3.00
### Loongson 3A4000 (GS464V 1.8GHz * 4 with MSA128)
loop_count = 4
num_threads = 4
powersave = 2
      squeezenet  min =  4.00  max =  4.00  avg =  4.00
loop_count = 4
num_threads = 4
powersave = 1
      squeezenet  min =  5.00  max =  5.00  avg =  5.00
### Intel(R) UHD Graphics 770 of Desktop[2023-10-12]
loop_count = 4
num_threads = 16
gpu_device = 1
      squeezenet  min =  6.00  max =  6.00  avg =  6.00
"""
    assert list(parse_benchncnn(text)["device"]) == [
        "MacBook Pro (13-inch, M1, 2020)",  # "MacBook Pro" alone would name both
        "MacBook Pro (15-inch, 2019)",
        "Loongson 3A4000",
        "Loongson 3A4000 #2 · big cores",  # the same heading twice; one thread count, two core sets
        "Loongson 3A4000 #2 · little cores",
        "Intel UHD Graphics 770 of Desktop",  # not "Intel": the (R) is no specification
    ]


# Weights (conv and linear weights, no biases, no BN) counted from ncnn's benchmark/models/*.param at a4d2ea1d
# (the sum of each Convolution's 6= and InnerProduct's 2=), and the zoo model's own count where they differ (the
# comments of NCNN_TO_ZOO say why).
PARAM_WEIGHTS = {
    "squeezenet": (1_231_552, None),
    "mobilenet": (4_209_088, None),
    "mobilenet_v2": (3_470_784, 3_469_760),
    "mobilenet_v3": (5_115_080, 5_451_272),
    "shufflenet": (1_789_998, 1_840_248),
    "shufflenet_v2": (2_261_424, None),
    "efficientnet_b0": (5_236_192, None),
    "googlenet": (6_990_272, 6_609_344),
    "resnet18": (11_683_008, 11_678_912),
    "resnet50": (25_502_912, None),
    "vgg16": (138_344_128, None),
    "alexnet": (60_954_656, 61_090_496),
}


def _weights(model: nn.Module) -> int:
    kept = [m for name, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.Linear) and "aux" not in name]
    return sum(m.weight.numel() for m in kept)


@pytest.mark.parametrize("ncnn_name", sorted(NCNN_TO_ZOO))
def test_the_map_names_the_zoo_model_with_ncnns_weights(ncnn_name: str) -> None:
    ncnn_weights, zoo_weights = PARAM_WEIGHTS[ncnn_name]
    with torch.device("meta"):
        model = zoo.create_model(NCNN_TO_ZOO[ncnn_name])
    assert _weights(model) == (zoo_weights or ncnn_weights)
    assert zoo_weights is None or abs(zoo_weights / ncnn_weights - 1) < 0.07  # the same network, a detail apart


@pytest.mark.skipif(not SHARED_README.exists(), reason="the shared copy of ncnn's README is not here")
def test_the_shipped_table_is_the_readme_parsed() -> None:
    shipped = published_rows()
    pd.testing.assert_frame_equal(shipped, published_rows(SHARED_README))
    pi_cpu = shipped["device"] == "Raspberry Pi 5 Broadcom BCM2712, Cortex-A76 (ARMv8) · t4"
    pi = shipped[pi_cpu & (shipped["ncnn_model"] == "mobilenet") & ~shipped["gpu"]]
    # the README's own line: "mobilenet  min =    9.00  max =   72.98  avg =   33.88" (edge.md: 33.9, min 9.0)
    assert pi[["latency_ms_min", "latency_ms_max", "latency_ms_median", "unstable"]].values.tolist() == [
        [9.00, 72.98, 33.88, True]
    ]
    assert not shipped.duplicated(["device", "ncnn_model", "target"]).any()


def test_the_shipped_table_installs_with_the_package() -> None:
    assert SHIPPED.parent.name == "data" and SHIPPED.parent.parent.name == "cnnbench" and SHIPPED.exists()
    pyproject = (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text()
    assert 'cnnbench = ["data/*.csv"]' in pyproject


def test_a_readme_without_result_lines_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "README.md"
    empty.write_text("### A device\nnothing timed\n")
    with pytest.raises(CnnbenchError, match="no benchncnn result line"):
        published_rows(empty)
    with pytest.raises(CnnbenchError, match="cannot read"):
        published_rows(tmp_path / "absent.md")


DEVICE_LOG = """\
rpi5:~/bench $ ./benchncnn 100 4 0 -1 0 param=mobilenet_v3_small.param shape=[224,224,3]
loop_count = 100
num_threads = 4
powersave = 0
gpu_device = -1
cooling_down = 0
mobilenet_v3_small.param  min =    3.10  max =    4.20  avg =    3.30
rpi5:~/bench $ ./benchncnn 8 4 0 -1 0
loop_count = 8
num_threads = 4
powersave = 0
gpu_device = -1
cooling_down = 0
       shufflenet_v2  min =    3.30  max =    3.60  avg =    3.41
      mobilenet_int8  min =    6.00  max =    7.00  avg =    6.50
           blazeface  min =    1.00  max =    1.20  avg =    1.10
rpi5:~/bench $ ./benchncnn 8 1 0 0 0
loop_count = 8
num_threads = 1
powersave = 0
gpu_device = 0
cooling_down = 0
       shufflenet_v2  min =    9.00  max =    9.50  avg =    9.20
"""


def test_a_device_log_becomes_latency_rows() -> None:
    rows = import_benchncnn(DEVICE_LOG, "Raspberry Pi 5, Cortex-A76 2.4 GHz x 4", "rpi5")
    got = rows[["model", "target", "latency_ms_median", "latency_ms_min", "latency_ms_max", "iters"]]
    assert [tuple(r) for r in got.itertuples(index=False)] == [
        ("mobilenet_v3_small", "cpu-t4-fp32-nchw-ncnn", 3.30, 3.10, 4.20, 100),
        ("shufflenet_v2_x1_0", "cpu-t4-fp32-nchw-ncnn", 3.41, 3.30, 3.60, 8),
        ("mobilenet_v1_x1_0", "cpu-t4-int8-nchw-ncnn", 6.50, 6.00, 7.00, 8),
    ]
    machine = hashlib.sha256(b"rpi5|Raspberry Pi 5, Cortex-A76 2.4 GHz x 4").hexdigest()[:12]
    assert set(rows["machine"]) == {machine} and set(rows["source"]) == {"device log"}
    assert set(rows["batch"]) == {1} and set(rows["status"]) == {"ok"} and not rows["disturbed"].any()
    assert rows["cpu_share"].isna().all() and set(rows["commit"]) == set(rows["code"]) == {"imported"}
    assert rows.attrs["left_out"] == ["blazeface (not a zoo model)", "1 lines run on Vulkan GPU 0 (no cnnbench target)"]


def test_imported_tables_are_written_whole_into_a_new_folder(tmp_path: Path) -> None:
    rows = import_benchncnn(DEVICE_LOG, "Raspberry Pi 5", "rpi5")
    out = tmp_path / "rpi5"
    written = write_imported(rows, out)
    assert [p.name for p in written] == ["latency-cpu-t4-fp32-nchw-ncnn.csv", "latency-cpu-t4-int8-nchw-ncnn.csv"]
    back = pd.read_csv(written[0])
    assert list(back["model"]) == ["mobilenet_v3_small", "shufflenet_v2_x1_0"]
    assert list(back["latency_ms_median"]) == [3.30, 3.41]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rpi5"]  # no staging folder left beside it
    with pytest.raises(CnnbenchError, match="not a new folder"):
        write_imported(rows, out)


@pytest.mark.parametrize(
    ("log", "hardware", "said"),
    [
        (DEVICE_LOG, "", "--hardware"),
        ("nothing timed here\n", "Raspberry Pi 5", "no CPU timing of a zoo model"),
        ("loop_count = 4\n  squeezenet  min = 1.00  max = 1.00  avg = 1.00\n", "Pi", "does not say its threads"),
        (DEVICE_LOG + DEVICE_LOG.split("rpi5:~/bench $ ./benchncnn 8 1")[0], "Pi", "twice on cpu-t4-fp32-nchw-ncnn"),
    ],
)
def test_a_bad_log_is_refused_in_one_line(log: str, hardware: str, said: str) -> None:
    with pytest.raises(CnnbenchError, match=said) as caught:
        import_benchncnn(log, hardware, "host")
    assert "\n" not in str(caught.value)


EXECUTOR_RUNNER_LOG = """\
I 00:00:00.000300 executorch:executor_runner.cpp:341] Resetting threadpool with num threads = 2
I 00:00:00.010000 executorch:executor_runner.cpp:476] Model file /data/local/tmp/mobilenet_v3_small.pte is loaded.
I 00:00:00.020000 executorch:executor_runner.cpp:781] Iteration 1 of 3: 4.000000 ms
I 00:00:00.030000 executorch:executor_runner.cpp:781] Iteration 2 of 3: 2.000000 ms
I 00:00:00.040000 executorch:executor_runner.cpp:781] Iteration 3 of 3: 3.000000 ms
I 00:00:00.050000 executorch:executor_runner.cpp:791] Model executed successfully 3 time(s) in 9.000000 ms.
I 00:00:01.000000 executorch:executor_runner.cpp:476] Model file resnet18.pte is loaded.
I 00:00:01.500000 executorch:executor_runner.cpp:791] Model executed successfully 4 time(s) in 100.000000 ms.
"""


def test_an_executor_runner_log_gives_the_median_of_its_iterations() -> None:
    rows = import_executor_runner(EXECUTOR_RUNNER_LOG, "Pixel 8", "pixel", dtype="int8", threads=4)
    got = rows[["model", "target", "latency_ms_median", "latency_ms_mean", "latency_ms_min", "latency_ms_max"]]
    assert got.iloc[0].tolist() == ["mobilenet_v3_small", "cpu-t2-int8-nchw-executorch", 3.0, 3.0, 2.0, 4.0]
    # the second run logs no threads (threads=4 stands) and no iterations: the mean of the total only
    assert got.iloc[1, :4].tolist() == ["resnet18", "cpu-t4-int8-nchw-executorch", 25.0, 25.0]
    assert got.iloc[1, 4:].isna().all()


def test_the_import_command_writes_the_folder_and_refuses_bad_input(tmp_path: Path) -> None:
    parser = Parser(prog="cnnbench fleet")
    add_import_command(parser.add_subparsers(dest="command", parser_class=Parser))
    log = tmp_path / "rpi5.log"
    log.write_text(DEVICE_LOG)

    def run(*argv: str) -> str:
        args = parser.parse_args(["import", *argv])
        return args.run(args)

    printed = run("--from-benchncnn", str(log), "--hardware", "Raspberry Pi 5", "--out", str(tmp_path / "out"))
    assert "mobilenet_v3_small" in printed and (tmp_path / "out" / "latency-cpu-t4-fp32-nchw-ncnn.csv").exists()
    with pytest.raises(CnnbenchError, match="cannot read the log"):
        run("--from-benchncnn", str(tmp_path / "absent.log"), "--hardware", "Pi", "--out", str(tmp_path / "o2"))
    with pytest.raises(CnnbenchError, match="--hardware"):
        run("--from-benchncnn", str(log), "--out", str(tmp_path / "o3"))
    with pytest.raises(CnnbenchError, match="not a new folder"):
        run("--from-benchncnn", str(log), "--hardware", "Pi", "--out", str(tmp_path / "out"))
    assert not (tmp_path / "o2").exists() and not (tmp_path / "o3").exists()


def test_an_executor_runner_log_without_times_is_refused() -> None:
    old = "I 00:00:00.010000 executorch:executor_runner.cpp:140] Model file m.pte is loaded.\n"
    old += "I 00:00:00.050000 executorch:executor_runner.cpp:279] Model executed successfully 3 time(s).\n"
    with pytest.raises(CnnbenchError, match="no CPU timing of a zoo model"):
        import_executor_runner(old.replace("m.pte", "resnet18.pte"), "Pixel 8", "pixel", threads=4)
