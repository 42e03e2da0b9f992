"""``cnnbench fleet`` and ``pick --fleet``: the committed results/ merged with two machines made from it (another
host, machine and hardware; one slower by a constant factor, one reordered), every figure checked against the
source CSVs, scipy, or a hand computation; and every refusal in one line, exit 2, nothing written."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import kendalltau, spearmanr

from cnnbench.choose import pick_fleet
from cnnbench.cli import main
from cnnbench.cli.fleet import merge_by_default
from cnnbench.errors import CnnbenchError
from cnnbench.fleet.merge import FROM_DEVICE_LOG, LONG_COLUMNS, Fleet, device_label, merge_folders, short_hardware
from cnnbench.fleet.page import PAGE_MARK, FleetFolder, write_page
from cnnbench.fleet.ranks import agreement, front_counts, fronts, int8_vs_fp32, matrix, ranks

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results"
EAGER = "cpu-t2-fp32-nchw-eager"
INT8 = "cpu-t2-int8-nchw-onnxruntime"
FP32_ORT = "cpu-t2-fp32-nchw-onnxruntime"
SLOWER = 1.5  # boxb runs everything this much slower
EPYC = "AMD EPYC 7763 64-Core Processor; x86_64 25/1/1; avx2 fma avx512f avx512_vnni; 16 cpus; 64 GiB"
ARM = "Cortex-A76; aarch64 0x41/0xd0b/1; asimd asimddp asimdhp; 4 cpus; 8 GiB"
DISTURBED_MODEL = "mobilenet_v2"  # flagged disturbed on boxc


def source(folder: Path, target: str) -> pd.DataFrame:
    """A latency table as the CSV holds it: the independent reference."""
    return pd.read_csv(folder / f"latency-{target}.csv")


def fake_machine(out: Path, host: str, machine: str, hardware: str, factor: pd.Series | float) -> Path:
    """A copy of results/ latency tables as if measured on another machine, each latency times ``factor`` (a number,
    or one per model)."""
    out.mkdir()
    for table in sorted(RESULTS.glob("latency-*.csv")):
        frame = pd.read_csv(table, dtype=str, keep_default_na=False)
        scale = factor if isinstance(factor, float) else frame["model"].map(factor).fillna(1.0)
        frame["latency_ms_median"] = pd.to_numeric(frame["latency_ms_median"], errors="coerce") * scale
        frame["host"], frame["machine"], frame["hardware"] = host, machine, hardware
        frame.to_csv(out / table.name, index=False)
    return out


def reorder_factors() -> pd.Series:
    """One factor per model, from 0.5 to 2.0 in a fixed shuffle: the ranks on boxc differ from results/'s."""
    models = sorted(pd.read_csv(RESULTS / f"latency-{EAGER}.csv")["model"])
    rng = np.random.default_rng(7)
    return pd.Series(rng.permutation(np.linspace(0.5, 2.0, len(models))), index=models)


@pytest.fixture(scope="module")
def machines(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("fleet")
    boxb = fake_machine(base / "boxb", "boxb", "bbbbbbbbbbbb", EPYC, SLOWER)
    boxc = fake_machine(base / "boxc", "boxc", "cccccccccccc", ARM, reorder_factors())
    table = boxc / f"latency-{EAGER}.csv"
    frame = pd.read_csv(table, dtype=str, keep_default_na=False)
    frame.loc[frame["model"] == DISTURBED_MODEL, ["disturbed", "cpu_share"]] = ["True", "0.45"]
    frame.to_csv(table, index=False)
    return {"a": RESULTS, "b": boxb, "c": boxc, "base": base}


@pytest.fixture(scope="module")
def fleet(machines: dict[str, Path]) -> Fleet:
    return merge_folders([machines["a"], machines["b"], machines["c"]])


def label(fleet: Fleet, host: str) -> str:
    return next(d for d in fleet.devices["device"] if d.startswith(host + " "))


def clean(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows that are ranked: status ok, not disturbed."""
    return frame[(frame["status"] == "ok") & ~frame["disturbed"].astype(str).str.lower().eq("true")]


def test_labels_name_the_host_and_the_hardware(fleet: Fleet) -> None:
    assert short_hardware(EPYC) == "AMD EPYC 7763, avx512_vnni"
    assert device_label("boxc", ARM) == "boxc · Cortex-A76, asimddp"
    assert "boxb · AMD EPYC 7763, avx512_vnni" in list(fleet.devices["device"])
    assert list(fleet.rows.columns) == LONG_COLUMNS


def test_the_matrix_holds_the_source_csv_values(fleet: Fleet, machines: dict[str, Path]) -> None:
    wide = matrix(fleet, EAGER)
    a, b = label(fleet, "vm"), label(fleet, "boxb")
    expected = clean(source(RESULTS, EAGER)).set_index("model")["latency_ms_median"]
    assert len(expected) > 10
    assert wide[a].dropna().to_dict() == pytest.approx(expected.to_dict())
    assert wide[b].dropna().to_dict() == pytest.approx((expected * SLOWER).to_dict())
    boxb = source(machines["b"], EAGER).set_index("model")["latency_ms_median"]
    assert wide.loc[expected.index, b].to_numpy() == pytest.approx(boxb[expected.index].to_numpy())


def test_rho_and_tau_equal_scipy_on_the_same_vectors(fleet: Fleet, machines: dict[str, Path]) -> None:
    agree = agreement(fleet, EAGER).set_index("device")
    a = clean(source(RESULTS, EAGER)).set_index("model")["latency_ms_median"]
    c = clean(source(machines["c"], EAGER)).set_index("model")["latency_ms_median"]
    both = a.index.intersection(c.index)
    row = agree.loc[label(fleet, "boxc")]
    assert row["models"] == len(both) == len(a) - 1  # the disturbed model is not ranked
    assert row["spearman_rho"] == pytest.approx(spearmanr(a[both], c[both]).statistic)
    assert row["kendall_tau"] == pytest.approx(kendalltau(a[both], c[both]).statistic)
    assert row["spearman_rho"] < 0.99  # the reordering shows
    assert agree.loc[label(fleet, "boxb"), "spearman_rho"] == pytest.approx(1.0)  # a constant factor keeps the order


def test_rho_and_tau_match_a_hand_computation() -> None:
    # reference order x < y < z; the other swaps y and z: d² = 0, 1, 1 → ρ = 1 - 6·2 / (3·8) = 0.5;
    # pairs (x,y) (x,z) agree, (y,z) does not → τ = (2 - 1) / 3.
    latency = [1.0, 2.0, 3.0, 1.0, 5.0, 4.0]
    rows = pd.DataFrame({"device": ["r"] * 3 + ["o"] * 3, "model": ["x", "y", "z"] * 2, "latency_ms_median": latency})
    rows = rows.assign(target="t", source="measured", left_out="")
    devices = pd.DataFrame({"device": ["r", "o"], "source": "measured", "isa": ""})
    agree = agreement(Fleet(rows, devices, "r"), "t").set_index("device")
    assert agree.loc["o", "spearman_rho"] == pytest.approx(0.5)
    assert agree.loc["o", "kendall_tau"] == pytest.approx(1 / 3)
    assert ranks(Fleet(rows, devices, "r"), "t")["o"].to_dict() == {"x": 1.0, "y": 3.0, "z": 2.0}


def test_disturbed_rows_are_listed_but_not_ranked(fleet: Fleet) -> None:
    c = label(fleet, "boxc")
    assert DISTURBED_MODEL not in ranks(fleet, EAGER).index
    assert math.isnan(matrix(fleet, EAGER).loc[DISTURBED_MODEL, c])
    left = fleet.left_out().set_index(["device", "target", "model"])
    assert left.loc[(c, EAGER, DISTURBED_MODEL), "left_out"] == "disturbed (cpu_share 0.45)"


def test_int8_against_fp32_per_device_equals_the_source_ratio(fleet: Fleet) -> None:
    table = int8_vs_fp32(fleet).set_index("device")
    fp32 = clean(source(RESULTS, FP32_ORT)).set_index("model")["latency_ms_median"]
    int8 = clean(source(RESULTS, INT8)).set_index("model")["latency_ms_median"]
    both = fp32.index.intersection(int8.index)
    ratio = fp32[both] / int8[both]
    row = table.loc[label(fleet, "vm")]
    assert row["median_speedup"] == pytest.approx(float(ratio.median()))
    assert row["int8_slower"] == int((ratio < 1).sum())
    assert "amx_int8" in row["isa"]


def test_fronts_count_the_devices_a_model_is_on(fleet: Fleet) -> None:
    top1 = pd.DataFrame({"model": ["mobilenet_v3_small", "efficientnet_b0", "alexnet"], "top1": [67.7, 77.7, 56.5]})
    points = fronts(fleet, EAGER, top1)
    counts = front_counts(points).set_index("model")
    # mobilenet_v3_small is faster than alexnet on every device here and more accurate: alexnet is on no front
    assert "alexnet" not in counts.index
    assert counts.loc["efficientnet_b0", "devices"] == 3


def test_the_same_machine_twice_and_a_folder_twice_are_refused(machines: dict[str, Path]) -> None:
    twin = machines["base"] / "twin"
    shutil.copytree(machines["b"], twin)
    with pytest.raises(CnnbenchError, match="both measured on machine bbbbbbbbbbbb"):
        merge_folders([machines["a"], machines["b"], twin])
    with pytest.raises(CnnbenchError, match="given twice"):
        merge_folders([machines["a"], machines["a"]])


def test_rows_of_other_code_are_shown_apart_and_a_table_of_other_code_is_refused(machines: dict[str, Path]) -> None:
    other = machines["base"] / "other"
    shutil.copytree(machines["b"], other)
    frames = {t: pd.read_csv(other / f"latency-{t}.csv", dtype=str, keep_default_na=False) for t in (EAGER, INT8)}
    for frame in frames.values():
        frame["machine"] = "dddddddddddd"
    frames[EAGER].loc[frames[EAGER]["model"] == "alexnet", "code"] = "0123456789ab"  # one row
    frames[INT8]["code"] = "0123456789ab"  # a whole table
    for target, frame in frames.items():
        frame.to_csv(other / f"latency-{target}.csv", index=False)
    for table in other.glob("latency-*.csv"):
        if table.stem.removeprefix("latency-") not in frames:
            frame = pd.read_csv(table, dtype=str, keep_default_na=False).assign(machine="dddddddddddd")
            frame.to_csv(table, index=False)
    with pytest.raises(CnnbenchError, match=f"latency-{INT8}.csv was measured by other code"):
        merge_folders([machines["a"], other])
    (other / f"latency-{INT8}.csv").unlink()
    merged = merge_folders([machines["a"], other])
    shown = merged.left_out().set_index(["target", "model"])
    assert shown.loc[(EAGER, "alexnet"), "left_out"].startswith("other code (0123456789ab")
    assert "alexnet" not in ranks(merged, EAGER).index


@pytest.mark.parametrize("case", ["missing", "no tables", "broken csv"])
def test_bad_input_is_one_line_exit_2_and_nothing_written(
    case: str, machines: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad"
    if case != "missing":
        bad.mkdir()
        (bad / "notes.txt").write_text("not a results folder\n")
    if case == "broken csv":
        (bad / f"latency-{EAGER}.csv").write_bytes(b'model,batch\n\xff\xfe,\x00\n"unclosed')
    out = tmp_path / "page"
    assert main(["fleet", str(machines["a"]), str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(bad) in err and err.startswith("cnnbench fleet: error: ")
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left behind


def test_pick_fleet_keeps_the_models_within_budget_on_every_device(machines: dict[str, Path]) -> None:
    ranked = pick_fleet([machines["a"], machines["b"]], 15.0)
    a = clean(source(RESULTS, EAGER)).set_index("model")["latency_ms_median"]
    b = clean(source(machines["b"], EAGER)).set_index("model")["latency_ms_median"]
    within = set(a.index[(a <= 15) & (b.reindex(a.index) <= 15)])
    fits = ranked[ranked["rank"].notna()]
    from cnnbench.fronts import accuracy_for

    known = set(accuracy_for("paper")["model"])
    assert set(fits["model"]) == within & known
    assert len(fits) > 0
    assert fits["top1"].is_monotonic_decreasing
    boxb = next(c for c in ranked.columns if c.startswith("boxb "))
    assert (fits["binding"] == boxb).all()  # boxb is 1.5 times slower on every model: it binds
    assert fits[boxb].to_numpy() == pytest.approx(b[fits["model"]].to_numpy())


def test_pick_fleet_on_the_command_line_names_each_device_and_the_binding_one(
    machines: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["pick", "--fleet", str(machines["a"]), str(machines["b"]), "--latency-ms", "15", "--format", "csv"]) == 0
    )
    table = pd.read_csv(__import__("io").StringIO(capsys.readouterr().out))
    devices = [c for c in table.columns if " · " in c]
    assert len(devices) == 2
    fits = table[table["rank"].notna()]
    assert (fits[devices] <= 15).all().all()
    assert (fits["binding"] == fits[devices].idxmax(axis=1)).all()
    one = pick_fleet([machines["a"], machines["b"]], 15.0, on=1)
    assert len(one[one["rank"].notna()]) >= len(fits)


def test_pick_fleet_with_no_fit_names_the_closest_model_in_one_line(
    machines: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["pick", "--fleet", str(machines["a"]), str(machines["b"]), "--latency-ms", "0.01"]) == 2
    err = capsys.readouterr().err
    fastest = clean(source(machines["b"], EAGER)).sort_values("latency_ms_median").iloc[0]
    assert err.count("\n") == 1 and f"{fastest['model']} comes closest" in err


def test_merge_is_the_default_subcommand() -> None:
    assert merge_by_default(["fleet", "a", "b"]) == ["fleet", "merge", "a", "b"]
    assert merge_by_default(["fleet", "--out", "x", "a"]) == ["fleet", "merge", "--out", "x", "a"]
    assert merge_by_default(["fleet", "import", "x"]) == ["fleet", "import", "x"]
    assert merge_by_default(["pick", "a"]) == ["pick", "a"]


def published_frame() -> pd.DataFrame:
    """Rows in the schema of cnnbench.fleet.published.published_rows, by hand."""
    rows = [
        ("Raspberry Pi 5 · t4", "mobilenet_v2", "mobilenetv2", 4, "fp32", 9.1, False),
        ("Raspberry Pi 5 · t4", "efficientnet_b0", "efficientnet_b0", 4, "fp32", 14.2, False),
        ("Raspberry Pi 5 · t4", "ncnn:mobilenet_yolo", "mobilenet_yolo", 4, "fp32", 40.0, True),
        ("Rockchip RK3588 · t4", "mobilenet_v2", "mobilenetv2", 4, "fp32", 7.5, False),
        ("Rockchip RK3588 · t4", "efficientnet_b0", "efficientnet_b0", 4, "fp32", 12.0, False),
        ("Rockchip RK3588 · t4", "ncnn:mobilenet_yolo", "mobilenet_yolo", 4, "fp32", 30.0, False),
    ]
    frame = pd.DataFrame(
        rows, columns=["device", "model", "ncnn_model", "threads", "dtype", "latency_ms_median", "unstable"]
    )
    return frame.assign(
        backend="ncnn",
        gpu=False,
        latency_ms_min=frame["latency_ms_median"] * 0.9,
        latency_ms_max=frame["latency_ms_median"] * 1.2,
        source="published",
        target="published-ncnn-fp32",
        published_commit="abc1234",
    )


@pytest.mark.slow
def test_the_fleet_page_has_the_matrix_ranks_bump_chart_and_fronts(machines: dict[str, Path], tmp_path: Path) -> None:
    merged = merge_folders([machines["a"], machines["b"], machines["c"]], published=published_frame())
    out = tmp_path / "fleet"
    readme = write_page(merged, out)
    text = readme.read_text()
    files = FleetFolder(out)
    assert text.splitlines()[1] == PAGE_MARK
    for target in (EAGER, "published-ncnn-fp32"):
        assert f"## {target}" in text
        assert files.matrix(target).exists()
        assert files.bump_chart(target).with_suffix(".png").exists()
    assert files.fronts_chart(EAGER).with_suffix(".png").exists()
    assert "Spearman ρ" in text and "on the front on" in text and DISTURBED_MODEL in text
    stored = pd.read_csv(files.matrix("published-ncnn-fp32"), index_col="model")
    assert stored.loc["ncnn:mobilenet_yolo", "Rockchip RK3588 · t4"] == 30.0
    write_page(merged, out)  # a fleet page is replaced whole
    (tmp_path / "results-like").mkdir()
    (tmp_path / "results-like" / "zoo.csv").write_text("model\n")
    with pytest.raises(CnnbenchError, match="not a fleet page"):
        write_page(merged, tmp_path / "results-like")


def test_a_small_page_is_written_whole_with_its_sections(fleet: Fleet, tmp_path: Path) -> None:
    kept = ["mobilenet_v3_small", "efficientnet_b0", "resnet18", "shufflenet_v2_x0_5", DISTURBED_MODEL]
    small = Fleet(fleet.rows[fleet.rows["model"].isin(kept)], fleet.devices, fleet.reference)
    readme = write_page(small, tmp_path / "fleet")
    text = readme.read_text()
    files = FleetFolder(tmp_path / "fleet")
    for heading in (f"## {EAGER}", "### Ranks against", "### Pareto fronts", "## INT8 against fp32", "## Left out"):
        assert heading in text
    stored = pd.read_csv(files.matrix(EAGER), index_col="model")
    a = clean(source(RESULTS, EAGER)).set_index("model")["latency_ms_median"]
    assert stored[label(fleet, "vm")].to_dict() == pytest.approx(a[stored.index].to_dict())
    assert files.bump_chart(EAGER).with_suffix(".png").stat().st_size > 10_000


def test_published_devices_are_kept_by_pattern(machines: dict[str, Path]) -> None:
    merged = merge_folders([machines["a"]], published=published_frame(), published_devices=["raspberry*"])
    assert list(merged.devices["device"])[1:] == ["Raspberry Pi 5 · t4"]
    assert merged.rows.loc[merged.rows["model"] == "ncnn:mobilenet_yolo", "note"].tolist() == ["unstable (max/min > 3)"]
    with pytest.raises(CnnbenchError, match="matches no published device"):
        merge_folders([machines["a"]], published=published_frame(), published_devices=["jetson*"])


def test_name_renames_a_device_and_two_equal_labels_are_refused(machines: dict[str, Path]) -> None:
    merged = merge_folders([machines["a"], machines["b"]], {str(machines["b"]): "the build box"})
    assert list(merged.devices["device"]) == ["vm · Intel Xeon, amx_int8", "the build box"]
    assert set(merged.rows["device"]) == {"vm · Intel Xeon, amx_int8", "the build box"}
    with pytest.raises(CnnbenchError, match="two devices are labelled 'x'"):
        merge_folders([machines["a"], machines["b"]], {str(machines["a"]): "x", str(machines["b"]): "x"})
    with pytest.raises(CnnbenchError, match="not one of the folders given"):
        merge_folders([machines["a"], machines["b"]], {str(machines["c"]): "y"})


def test_rows_from_a_device_log_are_noted_not_checked_for_code(machines: dict[str, Path], tmp_path: Path) -> None:
    logged = tmp_path / "phone"
    logged.mkdir()
    frame = pd.read_csv(machines["b"] / f"latency-{EAGER}.csv", dtype=str, keep_default_na=False)
    frame = frame.assign(code="imported", commit="imported", source="device log", machine="eeeeeeeeeeee")
    frame.to_csv(logged / f"latency-{EAGER}.csv", index=False)
    merged = merge_folders([machines["a"], logged])
    rows = merged.rows[merged.rows["folder"] == str(logged)]
    assert (rows["note"] == FROM_DEVICE_LOG).all() and (rows["left_out"] == "").all()
