"""ShuffleNetV2's guidelines: the microbenchmarks' FLOPs and MAC against the paper's channel numbers and formulas
(SN2 §2, eq. 1–2, Tables 1–4), the verdicts against the paper's own speeds, the audit against toy models with
violations placed by hand, and the command line. Everything is counted on the meta device; nothing is timed."""

from __future__ import annotations

import contextlib
import io
import math
import statistics
from collections.abc import Iterator

import pandas as pd
import pytest
import torch
from torch import Tensor, nn

import zoo
from cnnbench.cli import main
from cnnbench.errors import CnnbenchError
from cnnbench.guidelines import microbench as guidelines
from cnnbench.guidelines.audit import audit, block_of
from cnnbench.guidelines.microbench import (
    GUIDELINES,
    SCALES,
    Case,
    ParallelConcat,
    cases,
    count_case,
    countable_stack,
)
from cnnbench.guidelines.run import GuidelineRun, run_guidelines
from cnnbench.guidelines.verdicts import verdict
from cnnbench.measure.breakdown import time_by_kind
from cnnbench.measure.disturbance import Disturbance
from cnnbench.measure.latency import QUICK_TIMING, Timing
from cnnbench.target import Target

HW = 56 * 56
BLOCKS = 10

# The paper's ×1 channel numbers, typed from reference/papers.md §5 (not read from cnnbench.guidelines).
PAPER_CHANNELS = {
    ("G1", "gpu"): [(128, 128), (90, 180), (52, 312), (36, 432)],  # (c1, c2)
    ("G1", "cpu"): [(32, 32), (22, 44), (13, 78), (9, 108)],
    ("G2", "gpu"): [(128, 1), (180, 2), (256, 4), (360, 8)],  # (c, g)
    ("G2", "cpu"): [(64, 1), (90, 2), (128, 4), (180, 8)],
    ("G3", "gpu"): [128] * 5,  # c of the 1-fragment block
    ("G3", "cpu"): [64] * 5,
    ("G4", "gpu"): [32] * 4,
    ("G4", "cpu"): [32] * 4,
}

# Largest FLOPs deviation from a table's first row that the paper's channel numbers allow at any scale; each is
# theirs, not ours: (22, 44) against (32, 32) is 968/1024 = −5.5%; Table 2's (180, g=2) against (128, g=1) −1.1%,
# and its CPU c = 180 for g = 8 cannot be split in 8 groups (184 runs: +3.3%); c/√2 rounds to 45, 91 (±1.1%).
FLOPS_SPREAD = {"G1": 0.055, "G2": 0.034, "G3": 0.012, "G4": 0.0}

ALL_CASES = cases(column="gpu") + cases(column="cpu")


def _hand_flops(case: Case) -> int:
    """Multiply-adds of the 10-block stack for one 56×56 input, from the paper's channel numbers: B = hw·c1·c2."""
    row = GUIDELINES[case.guideline].rows.index(case.row)
    s = case.scale
    if case.guideline == "G1":
        c1, c2 = PAPER_CHANNELS["G1", case.column][row]
        return BLOCKS * 2 * HW * (c1 * s) * (c2 * s)
    if case.guideline == "G2":
        c, g = PAPER_CHANNELS["G2", case.column][row]
        c = math.ceil(c * s / g) * g  # the one cell the paper's c does not divide: 180 at g = 8 runs as 184
        return BLOCKS * HW * c * c // g
    if case.guideline == "G3":
        c = PAPER_CHANNELS["G3", case.column][row] * s
        k = (1, 2, 4, 2, 4)[row]
        if "parallel" in case.row.label:
            return BLOCKS * k * HW * c * (c // k)
        w = {1: c, 2: round(c / math.sqrt(2)), 4: c // 2}[k]
        return BLOCKS * k * HW * w * w
    c = PAPER_CHANNELS["G4", case.column][row] * s
    m = c // 4
    return BLOCKS * HW * (c * m + 9 * m * m + m * c)


def _hand_mac(case: Case) -> int:
    """SN2's MAC of the stack: hw(c1 + c2) + c1·c2/g per 1×1 conv; reads + writes of the other ops."""
    block = case.block
    if case.guideline == "G1":
        c1, c2 = block.c1, block.c2  # type: ignore[attr-defined]
        return BLOCKS * 2 * (HW * (c1 + c2) + c1 * c2)
    if case.guideline == "G2":
        c, g = block.in_channels, block.groups  # type: ignore[attr-defined]
        return BLOCKS * (HW * 2 * c + c * c // g)
    if case.guideline == "G3":
        k, c = block.fragments, block.c  # type: ignore[attr-defined]
        if block.parallel:  # type: ignore[attr-defined]
            concat = 2 * HW * c  # reads the k outputs, writes one tensor
            return BLOCKS * (k * (HW * (c + c // k) + c * c // k) + concat)
        w = block.in_channels
        return BLOCKS * k * (HW * 2 * w + w * w)
    c, m = block.c, block.c // 4  # type: ignore[attr-defined]
    convs = HW * (c + m) + c * m + HW * 2 * m + 9 * m * m + HW * (m + c) + m * c
    relus = (2 * HW * m * 2 + 2 * HW * c) if block.relu else 0  # type: ignore[attr-defined]
    add = 3 * HW * c if block.shortcut else 0  # type: ignore[attr-defined]
    return BLOCKS * (convs + relus + add)


@pytest.fixture(scope="module")
def counts() -> dict[str, tuple[int, int]]:
    return {f"{c.name}-{c.column}": count_case(c) for c in ALL_CASES}


def test_tables_transcribe_the_paper() -> None:
    for (g, column), channels in PAPER_CHANNELS.items():
        blocks = [row.gpu if column == "gpu" else row.cpu for row in GUIDELINES[g].rows]
        if g == "G1":
            assert [(b.c1, b.c2) for b in blocks] == channels  # type: ignore[attr-defined]
        elif g == "G2":
            assert [(b.c, b.groups) for b in blocks] == channels  # type: ignore[attr-defined]
        else:
            assert [b.c for b in blocks] == channels  # type: ignore[attr-defined]
    assert GUIDELINES["G1"].rows[3].cpu_images_s == (57.6, 15.1, 4.4)
    assert GUIDELINES["G3"].rows[4].gpu_batches_s == (691, 572, 292)


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda c: f"{c.name}-{c.column}")
def test_counted_flops_and_mac_equal_hand_computation(case: Case, counts: dict[str, tuple[int, int]]) -> None:
    flops, mac = counts[f"{case.name}-{case.column}"]
    assert flops == _hand_flops(case)
    assert mac == _hand_mac(case)


@pytest.mark.parametrize("guideline", list(GUIDELINES))
@pytest.mark.parametrize("column", ["gpu", "cpu"])
def test_flops_equal_within_a_table(guideline: str, column: str, counts: dict[str, tuple[int, int]]) -> None:
    for scale in SCALES:
        flops = [counts[f"{c.name}-{column}"][0] for c in cases([guideline], column, [scale])]
        assert max(abs(f / flops[0] - 1) for f in flops) <= FLOPS_SPREAD[guideline] + 1e-9
        assert len(flops) == len(GUIDELINES[guideline].rows)


def test_g3_and_g4_flops_within_one_percent(counts: dict[str, tuple[int, int]]) -> None:
    """The tables whose sizing is ours (G3) or fixed (G4) hold FLOPs to 1.1% and exactly."""
    for column in ("gpu", "cpu"):
        for scale in SCALES:
            g3 = [counts[f"{c.name}-{column}"][0] for c in cases(["G3"], column, [scale])]
            assert max(g3) / min(g3) - 1 < 0.0115
            g4 = {counts[f"{c.name}-{column}"][0] for c in cases(["G4"], column, [scale])}
            assert len(g4) == 1


def test_mac_meets_the_lower_bound_with_equality_at_equal_widths() -> None:
    """Every 1×1 conv of Table 1: MAC ≥ 2·√(hw·B) + B/hw, with equality exactly at c1 = c2 (SN2 eq. 2)."""
    for case in cases(["G1"], "cpu", [1]):
        layers = audit(countable_stack(case.block), 56).layers
        convs = layers[layers["kind"] == "conv_1x1"]
        assert len(convs) == 2 * BLOCKS
        c1, c2 = case.block.c1, case.block.c2  # type: ignore[attr-defined]
        bound = 2 * math.sqrt(HW * HW * c1 * c2) + c1 * c2  # B = hw·c1·c2
        assert convs["bound"].tolist() == pytest.approx([bound] * len(convs))
        if c1 == c2:
            assert convs["mac_over_bound"].tolist() == pytest.approx([1.0] * len(convs), abs=1e-12)
        else:
            expected = (HW * (c1 + c2) + c1 * c2) / bound
            assert convs["mac_over_bound"].tolist() == pytest.approx([expected] * len(convs))
            assert expected > 1.0


def _paper_frame(column: str) -> pd.DataFrame:
    """The paper's own speeds laid out as measured results: its claims must hold on its own figures."""
    rows = []
    for case in cases(column=column):
        rows.append(
            {
                "guideline": case.guideline,
                "config": case.row.label,
                "scale": case.scale,
                "images_s": case.paper_speed,
                "flops": 1,
                "paper_speed": case.paper_speed,
                "batch": 1,
            }
        )
    return guidelines.results_frame(rows)


@pytest.mark.parametrize("column", ["gpu", "cpu"])
def test_verdicts_hold_on_the_papers_own_figures(column: str) -> None:
    frame = _paper_frame(column)
    for g in GUIDELINES:
        v = verdict(frame, g)
        assert (v.holds, v.scales) == (3, 3), v.summary
    assert "0.76 / 0.70 / 0.83× here" in verdict(_paper_frame("cpu"), "G1").detail  # 57.6/76.2, 15.1/21.7, 4.4/5.3


def test_verdicts_fail_on_reversed_speeds() -> None:
    frame = _paper_frame("cpu")
    frame["images_s"] = 1.0 / frame["images_s"]
    measured = frame.drop(columns=["flops_vs_base", "speed_vs_base", "paper_vs_base"]).to_dict("records")
    frame = guidelines.results_frame(measured)
    for g in GUIDELINES:
        v = verdict(frame, g)
        assert v.holds == 0 and "does not hold" in v.summary


def test_time_table_measures_in_interleaved_rounds(monkeypatch: pytest.MonkeyPatch) -> None:
    """A B C D, A B C D, ...: each configuration timed once per round, in table order, after all are warmed up."""
    calls: list[str] = []
    monkeypatch.setattr(guidelines, "prepared_forward", lambda case, target, batch: lambda: calls.append(
        case.row.label))  # fmt: skip
    monkeypatch.setattr(guidelines, "warm_up", lambda fn, device, timing: (calls.append("warm"), 0)[1])
    monkeypatch.setattr(guidelines, "time_iterations", lambda fn, device, s, n: (fn(), [1.5, 1.0, 2.0])[1])
    table = cases(["G1"], "cpu", [1])
    times = guidelines.time_table(table, Target(threads=1), 1, Timing(min_time_s=0.7, min_iters=7), rounds=3)
    labels = [c.row.label for c in table]
    assert calls == ["warm"] * 4 + labels * 3
    assert times == [[1.5] * 3] * 4  # each round's median


def test_speed_ratio_interval_by_hand() -> None:
    """Speed of A vs B = B's time / A's time per round; the point is the median of the per-round ratios, the interval
    a seeded bootstrap over rounds that contains it; identical ratios give a zero-width interval."""
    a = [10.0, 10.2, 9.9, 10.1, 10.0, 10.3, 9.8]
    b = [9.0, 9.3, 8.8, 9.1, 9.2, 9.0, 9.1]
    point, low, high = guidelines.speed_ratio(a, b)
    assert point == pytest.approx(statistics.median([y / x for x, y in zip(a, b, strict=True)]))
    assert low <= point <= high < 1  # A is slower, with confidence
    assert guidelines.speed_ratio(a, b) == (point, low, high)  # seeded: the same rounds, the same interval
    assert guidelines.speed_ratio([2.0] * 5, [1.0] * 5) == (0.5, 0.5, 0.5)


def _g4_rounds(times: dict[str, list[float]]) -> pd.DataFrame:
    rows = [
        {"guideline": "G4", "config": label, "scale": 1, "images_s": 1000 / statistics.median(t), "flops": 1,
         "paper_speed": 1.0, "batch": 1, "rounds_ms": ";".join(map(str, t))}
        for label, t in times.items()
    ]  # fmt: skip
    return guidelines.results_frame(rows)


@pytest.mark.parametrize(
    ("others", "outcome"),
    [
        ([9.0, 9.1, 8.9, 9.0, 9.2, 9.1, 8.8], "holds"),  # removing ReLU or shortcut: clearly faster
        ([11.0, 11.1, 10.9, 11.2, 11.0, 10.8, 11.1], "fails"),  # clearly slower
        ([10.4, 9.6, 10.5, 9.5, 10.3, 9.7, 10.0], "undecided"),  # as fast, within the noise
    ],
)
def test_verdict_by_interval(others: list[float], outcome: str) -> None:
    base = [10.0, 10.1, 9.9, 10.0, 10.2, 9.8, 10.0]
    frame = _g4_rounds({"ReLU+shortcut": base, "ReLU only": others, "shortcut only": others, "neither": others})
    v = verdict(frame, "G4")
    assert v.outcomes == (outcome,), v.summary
    low, high = frame.loc[frame["config"] == "neither", ["speed_vs_base_low", "speed_vs_base_high"]].iloc[0]
    assert (high < 1) if outcome == "fails" else (low > 1) if outcome == "holds" else (low < 1 < high)
    assert "[" in v.detail  # the quoted ratio carries its interval


# --- the audit on toy models ---------------------------------------------------------------------------------------


def _conv1x1(c_in: int, c_out: int, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 1, groups=groups, bias=False)


class Elementwise(nn.Module):
    """A chain of element-wise ops (no fork): relu, scale, shift, sigmoid, five times."""

    def forward(self, x: Tensor) -> Tensor:
        for _ in range(5):
            x = torch.sigmoid(torch.relu(x) * 0.5 + 0.1)
        return x


def toy(violations: bool) -> nn.Module:
    """A 16-channel toy on a 32×32 input. With violations: an unbalanced 1×1 pair (16→96→16), a group conv with 8
    groups, a block of 4 parallel branches, a chain of 20 element-wise ops. Without: balanced 1×1 convs in series."""
    stem = nn.Conv2d(3, 16, 3, padding=1, bias=False)
    if not violations:
        return nn.Sequential(stem, nn.Sequential(*[_conv1x1(16, 16) for _ in range(4)]))
    blocks = nn.Sequential(
        nn.Sequential(_conv1x1(16, 96), _conv1x1(96, 16)),
        _conv1x1(16, 16, groups=8),
        ParallelConcat([_conv1x1(16, 4) for _ in range(4)]),
        Elementwise(),
    )
    return nn.Sequential(stem, blocks)


def test_audit_finds_the_placed_violations() -> None:
    result = audit(toy(True), resolution=32, name="toy")
    s = result.summary
    hw = 32 * 32
    bound = 2 * math.sqrt(hw * hw * 16 * 96) + 16 * 96
    assert s["g1_worst"] == pytest.approx((hw * (16 + 96) + 16 * 96) / bound)  # 1.43: 1:6
    assert s["g1_flagged"] == 2
    assert (s["g2_group_convs"], s["g2_groups"]) == (1, "8")
    assert s["g2_mac_share"] == pytest.approx((2 * hw * 16 + 16 * 16 // 8) / s["mac"])  # type: ignore[operator]
    assert (s["g3_max_branches"], s["g3_flagged_blocks"]) == (4, 1)
    n = hw * 16
    elementwise = 5 * (2 * n + 2 * n + 2 * n + 2 * n)  # relu, mul by scalar, add scalar, sigmoid: read + write
    assert s["g4_mac_share"] == pytest.approx(elementwise / s["mac"])  # type: ignore[operator]
    assert s["g4_mac_share"] > 0.5
    assert s["flags"] == "G1 G2 G3 G4"
    offenders = result.offenders(top=3)
    found = {g: set(rows["module"]) for g, rows in offenders.groupby("guideline")}
    assert found["G1"] == {"1.0.0", "1.0.1"}
    assert found["G2"] == {"1.1"}
    assert found["G3"] == {"1.2"}
    assert found["G4"] <= {"1.3"} and len(offenders[offenders["guideline"] == "G4"]) == 3


def test_audit_reports_nothing_where_nothing_was_placed() -> None:
    result = audit(toy(False), resolution=32, name="clean")
    s = result.summary
    assert s["g1_pointwise_convs"] == 4
    assert s["g1_worst"] == pytest.approx(1.0, abs=1e-12)
    assert (s["g2_group_convs"], s["g2_mac_share"], s["g2_groups"]) == (0, 0.0, "")
    assert (s["g3_max_branches"], s["g3_flagged_blocks"]) == (1, 0)
    assert s["g4_mac_share"] == 0.0
    assert s["flags"] == ""
    assert result.offenders().empty


@pytest.mark.parametrize(("parallel", "fragments"), [(True, 4), (True, 2), (False, 4)])
def test_audit_counts_the_g3_branches(parallel: bool, fragments: int) -> None:
    block = guidelines.Fragments(64, fragments, parallel)
    blocks = audit(countable_stack(block), 56).blocks
    assert list(blocks["block"]) == [f"stack.{i}" for i in range(BLOCKS)]
    assert set(blocks["branches"]) == {fragments if parallel else 1}
    assert set(blocks["fragments"]) == {fragments}


@pytest.mark.parametrize(
    ("name", "module", "block"),
    [
        ("resnet50", "layer1.0.conv1", "layer1.0"),
        ("resnet50", "conv1", "conv1"),
        ("googlenet", "inception3a.branch2.0.conv", "inception3a"),
        ("vgg16", "features.3", "features.3"),
        ("efficientnet_b0", "features.1.0.block.0.0", "features.1.0"),
        ("shufflenet_v2_x1_0", "stage2.0.branch2.3", "stage2.0"),
        ("squeezenet1_0", "features.3.expand3x3", "features.3"),
    ],
)
def test_blocks_follow_module_paths(name: str, module: str, block: str) -> None:
    assert block_of(zoo.create_model(name).to("meta"))(module) == block


def test_time_by_kind_names_the_counted_kinds() -> None:
    """On the CPU, for real: every kind the counting engine sees appears, and the shares add up (no time asserted)."""
    model = toy(True).eval()
    frame = time_by_kind(model, Target(threads=1), resolution=32, repeats=2)
    counted = audit(toy(True), resolution=32).layers
    assert dict(zip(frame["kind"], frame["timed_ops"], strict=True)) == counted["kind"].value_counts().to_dict()
    assert frame["time_share"].sum() == pytest.approx(1.0)


# --- the command line ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_audit_every_zoo_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["guidelines", "--audit", "--all", "--format", "csv"]) == 0
    frame = pd.read_csv(io.StringIO(capsys.readouterr().out), dtype={"g2_groups": str}).set_index("model")
    assert list(frame.index) == zoo.list_models()
    shares = frame[[c for c in frame.columns if c.endswith("_share")]]
    assert ((shares >= 0) & (shares <= 1)).all().all()
    assert (frame["g1_worst"].dropna() >= 1 - 1e-9).all()  # no 1×1 conv beats its lower bound
    assert frame.loc["googlenet", "g3_max_branches"] == 4  # Inception: four branches
    assert frame.loc["googlenet", "g3_flagged_blocks"] == 9  # 3a, 3b, 4a–4e, 5a, 5b
    assert frame.loc["mobilenet_v1_x1_0", "g3_max_branches"] == 1  # a plain chain
    assert frame.loc["resnet50", "g3_max_branches"] == 2  # residual blocks
    assert frame.loc["shufflenet_v1_g8_x1_0", "g2_groups"] == "8"
    assert frame.loc["shufflenet_v2_x1_0", "g2_group_convs"] == 0
    assert frame.loc["shufflenet_v2_x1_0", "g4_elementwise_share"] == 0  # concat, no add
    assert frame.loc["vgg16", "g1_pointwise_convs"] == 0


def test_audit_per_layer_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["guidelines", "--audit", "googlenet", "--per-layer", "--top", "2"]) == 0
    out = capsys.readouterr().out
    assert "inception3b" in out and "4 branches" in out and "MAC/bound" in out


def test_microbenchmark_table_without_timing(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole microbenchmark path, with the clock replaced by fixed rounds: 2 ms for every configuration, and the
    machine's watch by a quiet window (a window of microseconds around the fake clock can read as disturbed, and
    the verdict then says "not judged")."""
    monkeypatch.setattr(guidelines, "time_table", lambda table, target, batch, timing, rounds: [[2.0] * rounds
                                                                                               for _ in table])

    @contextlib.contextmanager
    def quiet(threads: int | None = None) -> Iterator[list[Disturbance]]:
        yield [Disturbance(cpu_share=1.0, cpu_others=0.0, cpu_steal=0.0)]

    monkeypatch.setattr(guidelines, "watch", quiet)
    assert main(["guidelines", "--quick", "--only", "G1", "G4", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "## G1 (SN2 Table 1)" in out and "## G4 (SN2 Table 4)" in out and "## G2" not in out
    assert "500.0" in out  # 1000 / 2 ms, batch 1
    assert "3 interleaved rounds" in out and "1.00 [1.00, 1.00]" in out
    assert "verdict: G1 holds (holds at 1/1 scales)" in out  # equal speeds: "no faster than" holds
    assert "verdict: G4 does not hold (fails at 1/1 scales)" in out  # equal speeds: no speed-up


def test_a_run_chooses_its_tables_batch_timing_and_rounds() -> None:
    full, quick = GuidelineRun.chosen(), GuidelineRun.chosen(quick=True)
    assert (full.scales, full.rounds, full.timing) == (SCALES, guidelines.ROUNDS, Timing())
    assert (quick.scales, quick.rounds, quick.timing) == ((1,), guidelines.QUICK_ROUNDS, QUICK_TIMING)
    chosen = GuidelineRun.chosen(quick=True, guidelines=["G4", "G1"], batch=2, rounds=5)
    assert chosen.tables == [("G4", 1), ("G1", 1)] and chosen.rounds == 5 and chosen.timing == QUICK_TIMING
    cpu = Target(threads=1)
    assert (full.batch_on(cpu), chosen.batch_on(cpu)) == (1, 2)  # the paper's Fig. 1 batch on the CPU: 1
    assert full.settings(cpu) == {"timing": vars(Timing()), "batch": 1, "rounds": guidelines.ROUNDS}
    with pytest.raises(CnnbenchError, match="unknown guideline 'G5'"):
        GuidelineRun(guidelines=("G5",)).check(cpu)
    with pytest.raises(CnnbenchError, match="rounds must be at least 1, got 0"):
        GuidelineRun(rounds=0).check(cpu)


def test_run_guidelines_times_every_table_and_judges_each_guideline(monkeypatch: pytest.MonkeyPatch) -> None:
    def clock(table: list[Case], target: Target, batch: int, timing: Timing, rounds: int) -> list[list[float]]:
        return [[2.0] * rounds for _ in table]  # 2 ms every round, for every configuration

    monkeypatch.setattr(guidelines, "time_table", clock)
    seen: list[object] = []

    def progress(tables: list[tuple[str, int]], desc: str) -> list[tuple[str, int]]:
        seen.append((list(tables), desc))
        return tables

    run = GuidelineRun.chosen(quick=True, guidelines=["G1", "G4"])
    frame = run_guidelines(Target(threads=1), run, progress)
    assert seen == [([("G1", 1), ("G4", 1)], "guidelines")]
    assert frame.groupby("guideline")["verdict"].first().to_dict() == {
        g: verdict(frame, g).summary for g in ("G1", "G4")
    }
    assert frame["rounds"].eq(guidelines.QUICK_ROUNDS).all() and len(frame) == 8


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["guidelines", "--audit"], "name at least one model after --audit"),
        (["guidelines", "--audit", "nothing*"], "no model matches 'nothing*'"),
        (["guidelines", "--audit", "resnet18", "--top", "0"], "--top must be at least 1"),
        (["guidelines", "--audit", "alexnet", "--res", "16"], "alexnet: resolution 16 is too small"),
        (["guidelines", "--audit", "resnet18", "--res", "0"], "resolution must be a positive number"),
        (["guidelines", "--threads", "0"], "argument --threads: must be at least 1"),
        (["guidelines", "--batch", "0"], "--batch must be at least 1"),
        (["guidelines", "--per-layer"], "--per-layer goes with --audit"),
        (["guidelines", "--device", "cuda:7"], "cuda:7"),
    ],
)
def test_bad_input_one_line_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str], expected: str) -> None:
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert expected in err
    assert len(err.strip().splitlines()) == 1
