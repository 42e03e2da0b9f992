"""ShuffleNet v1 against the paper (arXiv 1707.01083, Tables 1, 2, 5) and a hand count; ShuffleNetV2 against
torchvision (stage table, num_params, ``_ops``, initialisation) and the paper (arXiv 1807.11164, Table 8).

Checkpoint format and eval outputs of ShuffleNetV2 are checked in test_parity.py, like every torchvision model.
Counting runs on the meta device; multiply-adds are conv + linear, the papers' "FLOPs".
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
import torchvision
from conftest import conv_linear_madds, param_count
from torch import nn

import zoo
from zoo._layers import ChannelShuffle
from zoo.shufflenetv1 import SCALES, SHUFFLENET_V1_1X, ShuffleV1Unit, build_shufflenet_v1, scale
from zoo.shufflenetv2 import SHUFFLENET_V2, ShuffleV2Unit, build_shufflenet_v2

# ---------------------------------------------------------------------------------------------------------------------
# ShuffleNet v1
# ---------------------------------------------------------------------------------------------------------------------

GROUPS = (1, 2, 3, 4, 8)
REPEATS = (4, 8, 4)  # SN1 Table 1: Stage2 1 + 3, Stage3 1 + 7, Stage4 1 + 3

# SN1 Table 1, read off the paper (not imported from the zoo): Stage2/3/4 output channels at 1×, per g.
TABLE1_OUT = {
    1: (144, 288, 576),
    2: (200, 400, 800),
    3: (240, 480, 960),
    4: (272, 544, 1088),
    8: (384, 768, 1536),
}

# Every member: our stem and stage widths, the paper's MFLOPs (None where it prints none), our count (conv + linear
# multiply-adds at 224, MFLOPs to 2 dp) and the tolerance against the paper.
# Paper: 1× Table 1 (per g), 0.5× and 0.25× Table 2 (one figure for all g), 1.5× and 2× Table 5 (g=3 only).
# Stems 12 / 12 / 24 / 24 / 48 (0.25× … 2×), rounded down to a multiple of g (g=8: 8 at 0.25× and 0.5×); stage widths
# s · Table 1, rounded to a multiple of 4·g. See zoo/shufflenetv1.py, SCALES and scale().
#
#  scale   g  stem  Stage2/3/4             paper   counted  deviation
V1_MEMBERS = [
    ("1_0", 1, 24, (144, 288, 576), 143, 143.08, 0.02),  # +0.1%
    ("1_0", 2, 24, (200, 400, 800), 140, 140.84, 0.02),  # +0.6%
    ("1_0", 3, 24, (240, 480, 960), 137, 137.46, 0.02),  # +0.3%
    ("1_0", 4, 24, (272, 544, 1088), 133, 134.34, 0.02),  # +1.0%
    ("1_0", 8, 24, (384, 768, 1536), 137, 138.37, 0.02),  # +1.0%
    ("0_5", 1, 12, (72, 144, 288), 38, 38.52, 0.10),  # +1.4%
    ("0_5", 2, 12, (104, 200, 400), 38, 38.91, 0.10),  # +2.4%
    ("0_5", 3, 12, (120, 240, 480), 38, 37.59, 0.10),  # −1.1%
    ("0_5", 4, 12, (144, 272, 544), 38, 37.94, 0.10),  # −0.2%
    ("0_5", 8, 8, (192, 384, 768), 38, 36.59, 0.10),  # −3.7%
    ("0_25", 1, 12, (36, 72, 144), 13, 13.16, 0.10),  # +1.2%
    ("0_25", 2, 12, (48, 104, 200), 13, 13.47, 0.10),  # +3.6%
    ("0_25", 3, 12, (60, 120, 240), 13, 13.30, 0.10),  # +2.3%
    ("0_25", 4, 12, (64, 144, 272), 13, 13.48, 0.10),  # +3.7%
    ("0_25", 8, 8, (96, 192, 384), 13, 12.43, 0.10),  # −4.4%
    ("1_5", 1, 24, (216, 432, 864), None, 308.10, None),
    ("1_5", 2, 24, (304, 600, 1200), None, 303.20, None),
    ("1_5", 3, 24, (360, 720, 1440), 292, 292.44, 0.02),  # +0.2%
    ("1_5", 4, 24, (416, 816, 1632), None, 287.15, None),
    ("1_5", 8, 24, (576, 1152, 2304), None, 290.19, None),
    ("2_0", 1, 48, (288, 576, 1152), None, 550.33, None),
    ("2_0", 2, 48, (400, 800, 1600), None, 539.14, None),
    ("2_0", 3, 48, (480, 960, 1920), 524, 524.05, 0.02),  # +0.0%
    ("2_0", 4, 48, (544, 1088, 2176), None, 510.29, None),
    ("2_0", 8, 48, (768, 1536, 3072), None, 521.94, None),
]
V1_IDS = [f"g{g}_x{s}" for s, g, *_ in V1_MEMBERS]


def v1_madds_by_hand(groups: int, stem: int, outs: tuple[int, ...], side: int = 224, classes: int = 1000) -> int:
    """Conv + linear multiply-adds of a ShuffleNet v1, from its stage table alone (SN1 Table 1 and Fig. 2).

    Conv1 3×3 stride 2 on 3 channels; MaxPool halves; each unit: 1×1 conv in → out/4 (ungrouped in Stage2's first
    unit, g groups elsewhere) at the input resolution, 3×3 depthwise (stride 2 in a stage's first unit), 1×1 g-group
    conv out/4 → out (out − in in a stride-2 unit, whose other channels are the pooled input); FC.
    """
    h = side // 2
    total = h * h * stem * 3 * 3 * 3  # conv1
    h //= 2  # maxpool
    c_in = stem
    for stage, (c, repeats) in enumerate(zip(outs, REPEATS, strict=True)):
        bottleneck = c // 4
        for unit in range(repeats):
            first = unit == 0
            g1 = 1 if stage == 0 and first else groups
            total += h * h * bottleneck * (c_in // g1)
            h //= 2 if first else 1
            total += h * h * bottleneck * 9
            total += h * h * (c - c_in if first else c) * (bottleneck // groups)
            c_in = c
    return total + c_in * classes


def _meta_model(name: str) -> nn.Module:
    with torch.device("meta"):
        return zoo.create_model(name)


def test_v1_registry_holds_25_members() -> None:
    names = zoo.list_models("shufflenet_v1_*")
    assert sorted(names) == sorted(f"shufflenet_v1_g{g}_x{s}" for g in GROUPS for s in SCALES)
    for name in names:
        info = zoo.model_info(name)
        assert info.family == "shufflenet_v1" and info.reference is None
        assert info.paper.arxiv == "1707.01083" and info.resolution == 224


def test_v1_table_transcribes_table1() -> None:
    assert {g: tuple(s.out for s in spec.stages) for g, spec in SHUFFLENET_V1_1X.items()} == TABLE1_OUT
    assert all(tuple(s.repeats for s in spec.stages) == REPEATS for spec in SHUFFLENET_V1_1X.values())
    assert all(spec.stem == 24 and spec.groups == g for g, spec in SHUFFLENET_V1_1X.items())
    for g, spec in SHUFFLENET_V1_1X.items():  # Table 1's widths already split evenly: 1× is not rounded
        assert scale(spec, 1.0, 24) == spec
        assert all(c % (4 * g) == 0 for c in TABLE1_OUT[g])


@pytest.mark.parametrize("groups", GROUPS)
def test_v1_channels_follow_table1(groups: int) -> None:
    """The built 1× network: stem 24, Table 1's stage widths, bottleneck out/4, groups where SN1 §3.3 puts them."""
    model = _meta_model(f"shufflenet_v1_g{groups}_x1_0")
    assert model.conv1[0].out_channels == 24 and model.conv1[0].stride == (2, 2)
    c_in = 24
    for i, (c, repeats) in enumerate(zip(TABLE1_OUT[groups], REPEATS, strict=True), start=2):
        units = list(getattr(model, f"stage{i}"))
        assert len(units) == repeats
        for j, unit in enumerate(units):
            stride = 2 if j == 0 else 1
            assert unit.compress[0].in_channels == c_in and unit.compress[0].out_channels == c // 4
            assert unit.compress[0].groups == (1 if (i, j) == (2, 0) else groups)  # Stage2's first is not grouped
            assert unit.depthwise[0].groups == c // 4 and unit.depthwise[0].stride == (stride, stride)
            assert unit.expand[0].groups == groups
            assert unit.expand[0].out_channels == (c - c_in if stride == 2 else c)
            c_in = c
    assert model.fc.in_features == TABLE1_OUT[groups][-1] and model.fc.out_features == 1000


@pytest.mark.parametrize(("width", "groups", "stem", "outs", "paper", "counted", "rel"), V1_MEMBERS, ids=V1_IDS)
def test_v1_multiply_adds_by_hand_and_against_the_paper(
    width: str, groups: int, stem: int, outs: tuple[int, ...], paper: int | None, counted: float, rel: float | None
) -> None:
    """Every member: its widths as in the table above, conv_linear_madds equal to the hand count exactly, the count
    as printed there, and within tolerance of the paper's MFLOPs where it prints one."""
    name = f"shufflenet_v1_g{groups}_x{width}"
    model = _meta_model(name)
    assert model.spec.stem == stem and tuple(s.out for s in model.spec.stages) == outs
    madds = conv_linear_madds(model, 224)
    assert madds == v1_madds_by_hand(groups, stem, outs)
    assert round(madds / 1e6, 2) == pytest.approx(counted, abs=1e-9)
    published = zoo.model_info(name).published.flops
    if paper is None:
        assert published is None
    else:
        assert published == paper * 1e6
        assert madds == pytest.approx(paper * 1e6, rel=rel)


@pytest.mark.parametrize("groups", GROUPS)
def test_v1_unit_structure(groups: int) -> None:
    """SN1 Fig. 2: no ReLU after the depthwise conv; shuffle after the first 1×1 conv (none for g=1); stride-2 units
    concatenate a 3×3 stride-2 average pool of the input."""
    model = _meta_model(f"shufflenet_v1_g{groups}_x1_0")
    units = [m for m in model.modules() if isinstance(m, ShuffleV1Unit)]
    assert len(units) == sum(REPEATS)
    for unit in units:
        assert isinstance(unit.compress[2], nn.ReLU)
        assert len(unit.depthwise) == 2 and len(unit.expand) == 2  # conv + BN, linear
        if groups == 1:
            assert isinstance(unit.shuffle, nn.Identity)
        else:
            assert isinstance(unit.shuffle, ChannelShuffle) and unit.shuffle.groups == groups
        if unit.stride == 2:
            pool = unit.shortcut
            assert isinstance(pool, nn.AvgPool2d) and (pool.kernel_size, pool.stride, pool.padding) == (3, 2, 1)


def test_v1_stride2_unit_concatenates_pooled_input(generator: torch.Generator) -> None:
    unit = ShuffleV1Unit(24, 240, 2, groups=3, first_groups=1).eval()
    x = torch.rand(1, 24, 8, 8, generator=generator)  # non-negative, as after the stem and every unit
    with torch.inference_mode():
        out = unit(x)
        branch = torch.relu(unit.expand(unit.depthwise(unit.shuffle(unit.compress(x)))))
    assert out.shape == (1, 240, 4, 4)
    torch.testing.assert_close(out[:, :24], nn.functional.avg_pool2d(x, 3, 2, 1))
    torch.testing.assert_close(out[:, 24:], branch)
    assert out.min() >= 0


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Tiny tensors: intra-op threads cost more than the work (seconds, not milliseconds, on a loaded 2-core box)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("name", ["shufflenet_v1_g1_x0_25", "shufflenet_v1_g8_x0_25", "shufflenet_v1_g3_x0_5"])
@pytest.mark.usefixtures("one_thread")
def test_v1_forward_and_backward_on_a_small_input(name: str, generator: torch.Generator) -> None:
    model = zoo.create_model(name, num_classes=10)
    out = model(torch.randn(2, 3, 64, 64, generator=generator))
    assert out.shape == (2, 10)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.eval()
    with torch.inference_mode():
        assert model(torch.randn(1, 3, 32, 32, generator=generator)).shape == (1, 10)


def test_v1_published_figures() -> None:
    """Top-1 = 100 − the paper's error (SN1 Tables 2, 5); params only where MobileNetV2 Table 4 lists them."""
    top1 = {n: zoo.model_info(n).published.top1 for n in zoo.list_models("shufflenet_v1_*")}
    assert top1["shufflenet_v1_g1_x1_0"] == 66.4  # err 33.6
    assert top1["shufflenet_v1_g8_x1_0"] == 67.6  # err 32.4
    assert top1["shufflenet_v1_g4_x0_5"] == 58.4  # err 41.6
    assert top1["shufflenet_v1_g8_x0_25"] == 47.3  # err 52.7
    assert top1["shufflenet_v1_g3_x1_5"] == 71.5  # err 28.5, Table 5
    assert top1["shufflenet_v1_g3_x2_0"] == 73.7  # err 26.3, Table 5
    without = [n for n, t in top1.items() if t is None]
    assert sorted(without) == sorted(f"shufflenet_v1_g{g}_x{s}" for g in (1, 2, 4, 8) for s in ("1_5", "2_0"))
    for name, params in (("shufflenet_v1_g3_x1_5", 3.4e6), ("shufflenet_v1_g3_x2_0", 5.4e6)):
        published = zoo.model_info(name).published
        assert published.params == params and "MobileNetV2" in published.source
        assert param_count(_meta_model(name)) == pytest.approx(params, rel=0.02)  # 3,442,168 and 5,450,776
    assert all(zoo.model_info(n).published.params is None for n in top1 if "g3_x1_5" not in n and "g3_x2_0" not in n)


def test_v1_stem_is_rounded_to_the_groups() -> None:
    """A stride-2 unit's branch gives out − in channels from a g-group conv: Stage2's input must split into g."""
    for g in GROUPS:
        for s in SCALES.values():
            spec = scale(SHUFFLENET_V1_1X[g], s.width, s.stem)
            assert spec.stem % g == 0 and spec.stem <= s.stem
            assert all(c % (4 * g) == 0 for c in (st.out for st in spec.stages))
    assert scale(SHUFFLENET_V1_1X[8], 0.5, 12).stem == 8


def test_v1_builder_rejects_unknown_members() -> None:
    with pytest.raises(ValueError, match="groups"):
        build_shufflenet_v1(5, "1_0")
    with pytest.raises(ValueError, match="width"):
        build_shufflenet_v1(3, "0_75")
    with pytest.raises(ValueError, match="groups"):
        ShuffleV1Unit(24, 100, 2, groups=8, first_groups=1)  # bottleneck 25 does not split into 8
    with pytest.raises(zoo.BadOverrideError):
        zoo.create_model("shufflenet_v1_g3_x1_0", groups=4)


# ---------------------------------------------------------------------------------------------------------------------
# ShuffleNetV2
# ---------------------------------------------------------------------------------------------------------------------

V2_WIDTHS = ["0_5", "1_0", "1_5", "2_0"]

# reference/torchvision_params_madds.csv: torchvision's num_params and conv + linear multiply-adds at 224, exact.
TORCHVISION_V2 = {
    "0_5": (1_366_792, 40_476_448),
    "1_0": (2_278_604, 144_907_992),
    "1_5": (3_503_624, 295_759_392),
    "2_0": (7_393_996, 583_253_464),
}
# SN2 Table 8: top-1 error %, as printed.
SN2_ERR = {"0_5": 39.7, "1_0": 30.6, "1_5": 27.4, "2_0": 25.1}


@pytest.mark.parametrize("width", V2_WIDTHS)
def test_v2_stage_table_equals_torchvision(width: str) -> None:
    """SN2 Table 5 as transcribed against torchvision's stages_out_channels and repeats."""
    spec = SHUFFLENET_V2[width]
    with torch.device("meta"):
        theirs = getattr(torchvision.models, f"shufflenet_v2_x{width}")()
    assert [spec.stem, *(s.out for s in spec.stages), spec.conv5] == theirs._stage_out_channels
    assert [s.repeats for s in spec.stages] == [len(getattr(theirs, f"stage{i}")) for i in (2, 3, 4)] == [4, 8, 4]


@pytest.mark.parametrize("width", V2_WIDTHS)
def test_v2_params_and_multiply_adds(width: str) -> None:
    """Params equal torchvision's num_params; multiply-adds equal the CSV exactly, torchvision's ``_ops`` to its
    3 dp, and the paper's Table 8 within 5% (counted 40.5 / 144.9 / 295.8 / 583.3 M against 41 / 146 / 299 / 591)."""
    name = f"shufflenet_v2_x{width}"
    info = zoo.model_info(name)
    model = _meta_model(name)
    params, madds = TORCHVISION_V2[width]
    assert param_count(model) == params
    assert conv_linear_madds(model, 224) == madds
    figures = info.reference_figures
    assert figures is not None and figures.params == params and figures.flops is not None
    assert info.reference == f"torchvision:{name}"
    assert figures.resolution == 224
    assert round(madds / 1e9, 3) == pytest.approx(figures.flops / 1e9, abs=1e-9)
    assert info.published.flops is not None and info.published.params is not None
    assert madds == pytest.approx(info.published.flops, rel=0.05)
    assert params == pytest.approx(info.published.params, rel=0.05)
    assert info.published.top1 == pytest.approx(100 - SN2_ERR[width])


def test_v2_initialisation_equals_torchvision_given_the_same_seed() -> None:
    """torchvision's ShuffleNetV2 keeps PyTorch's default initialisation; ours builds the same layers in the same
    order, so the same seed gives the same weights."""
    with torch.random.fork_rng():  # leaves the global generator as other tests found it
        torch.manual_seed(0)
        ours = zoo.create_model("shufflenet_v2_x0_5").state_dict()
        torch.manual_seed(0)
        theirs = torchvision.models.shufflenet_v2_x0_5().state_dict()
    assert list(ours) == list(theirs)
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)


def test_v2_builder_and_unit_reject_bad_input() -> None:
    with pytest.raises(ValueError, match="width"):
        build_shufflenet_v2("0_75")
    assert _meta_model("shufflenet_v2_x1_0").fc.out_features == 1000
    with torch.device("meta"):
        assert zoo.create_model("shufflenet_v2_x1_0", num_classes=10).fc.out_features == 10
    with pytest.raises(ValueError, match="even"):
        ShuffleV2Unit(24, 57, 2)
    with pytest.raises(ValueError, match="keeps its width"):
        ShuffleV2Unit(24, 48, 1)
