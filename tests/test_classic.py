"""The classic families (AlexNet, VGG, GoogLeNet, ResNet, SqueezeNet): counts against torchvision's own figures, and
the structural facts the benchmark's story rests on, each against a hand computation.

Checkpoint format and output parity with torchvision run for every one of these models in test_parity.py.
"""

from __future__ import annotations

import copy
import csv
from pathlib import Path

import pytest
import torch
import torchvision
from conftest import conv_linear_madds, param_count, randomize_bn_stats
from torch import nn

import zoo
from zoo.googlenet import GOOGLENET_INCEPTIONS, GoogLeNet, GoogLeNetOutputs
from zoo.resnet import RESNET_DEPTHS, ResNet
from zoo.vgg import VGG_CONFIGS, VGG_DEPTHS

CLASSIC = zoo.list_models(["alexnet", "vgg*", "googlenet", "resnet*", "squeezenet*"])
# torchvision rows of reference/torchvision_params_madds.csv (params, conv+linear multiply-adds at 224), transcribed so
# that the tests run without the shared folder; test_transcription_equals_csv checks them against the file.
CSV_PATH = Path("/work/shared/reference/torchvision_params_madds.csv")
CSV: dict[str, tuple[int, int]] = {
    "alexnet": (61_100_840, 714_188_480),
    "vgg11": (132_863_336, 7_609_090_048),
    "vgg13": (133_047_848, 11_308_466_176),
    "vgg16": (138_357_544, 15_470_264_320),
    "vgg19": (143_667_240, 19_632_062_464),
    "vgg16_bn": (138_365_992, 15_470_264_320),
    "googlenet": (6_624_904, 1_498_376_192),
    "resnet18": (11_689_512, 1_814_073_344),
    "resnet34": (21_797_672, 3_663_761_408),
    "resnet50": (25_557_032, 4_089_184_256),
    "resnet101": (44_549_160, 7_801_405_440),
    "resnet152": (60_192_808, 11_513_626_624),
    "squeezenet1_0": (1_248_424, 818_924_576),
    "squeezenet1_1": (1_235_496, 349_151_936),
}


@pytest.mark.skipif(not CSV_PATH.exists(), reason=f"{CSV_PATH} not available")
def test_transcription_equals_csv() -> None:
    with CSV_PATH.open() as f:
        rows = {
            r["name"]: (int(r["params"]), int(r["madds_conv_linear"]))
            for r in csv.DictReader(f)
            if r["source"] == "torchvision" and r["name"] in CSV
        }
    assert rows == CSV


def _meta(name: str, **overrides: object) -> nn.Module:
    with torch.device("meta"):
        return zoo.create_model(name, **overrides)


def test_every_classic_model_is_registered() -> None:
    assert CLASSIC == [
        "alexnet", "googlenet",
        "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
        "squeezenet1_0", "squeezenet1_1",
        "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn",
    ]  # fmt: skip


def _bn_params(name: str) -> int:
    """Affine BN parameters a ``_bn`` VGG adds: weight and bias per conv output channel (Table 1 widths)."""
    config = VGG_CONFIGS[VGG_DEPTHS[int(name.removeprefix("vgg").removesuffix("_bn"))]]
    return 2 * sum(stage.width * stage.convs for stage in config)


@pytest.mark.parametrize("name", CLASSIC)
def test_params_and_madds_equal_torchvision(name: str) -> None:
    """Params and conv+linear multiply-adds at 224 equal the CSV's torchvision row, exactly.

    GoogLeNet's row counts the network without its auxiliary heads (they are removed when torchvision loads its
    weights, and never run in eval). The CSV has no row for vgg11_bn/13_bn/19_bn: BN adds its affine parameters and
    no conv/linear work to the plain row.
    """
    model = _meta(name, aux_logits=False) if name == "googlenet" else _meta(name)
    if name in CSV:
        params, madds = CSV[name]
    else:
        assert name.endswith("_bn"), f"no CSV row for {name}"
        params, madds = CSV[name.removesuffix("_bn")]
        params += _bn_params(name)
    assert param_count(model) == params
    assert conv_linear_madds(model, 224) == madds


@pytest.mark.parametrize("name", CLASSIC)
def test_reference_figures_are_torchvision_counts(name: str) -> None:
    """The metadata's torchvision figures: params exact, GFLOPS (``_ops``) equal our count to 3 dp."""
    info = zoo.model_info(name)
    assert info.reference == f"torchvision:{name}" and info.resolution == 224
    figures = info.reference_figures
    assert figures is not None and figures.source.startswith("torchvision 0.29, ")
    if figures.params is not None:
        assert figures.params == CSV[name][0]
    if figures.flops is not None:
        assert figures.flops == pytest.approx(CSV[name][1], abs=0.0005e9)
    # No figure was transcribed from these papers themselves (reference/papers.md has none).
    assert info.published.params is None and info.published.flops is None and info.published.top1 is None


@pytest.mark.parametrize("name", CLASSIC)
def test_num_classes_override(name: str) -> None:
    with torch.device("meta"):
        model = zoo.create_model(name, num_classes=10).eval()
        assert model(torch.empty(1, 3, 224, 224)).shape == (1, 10)


# --- VGG and AlexNet: the fully connected layers hold the parameters, the convs the work -----------------------------


def _linear_params(model: nn.Module) -> int:
    return sum(param_count(m) for m in model.modules() if isinstance(m, nn.Linear))


def test_vgg16_fc_layers_hold_89_percent_of_params() -> None:
    model = _meta("vgg16")
    fc_params = (512 * 7 * 7 * 4096 + 4096) + (4096 * 4096 + 4096) + (4096 * 1000 + 1000)  # = 123,642,856
    fc_madds = 512 * 7 * 7 * 4096 + 4096 * 4096 + 4096 * 1000  # one multiply-add per weight, batch 1
    assert _linear_params(model) == fc_params
    share = fc_params / param_count(model)
    assert 0.89 < share < 0.90  # 89.4%
    assert fc_madds / conv_linear_madds(model, 224) < 0.01  # but under 1% of the multiply-adds (0.8%)


def test_alexnet_fc_layers_hold_96_percent_of_params() -> None:
    model = _meta("alexnet")
    fc_params = (256 * 6 * 6 * 4096 + 4096) + (4096 * 4096 + 4096) + (4096 * 1000 + 1000)  # = 58,631,144
    assert _linear_params(model) == fc_params
    assert 0.95 < fc_params / param_count(model) < 0.97  # 96.0%


@pytest.mark.parametrize("depth", sorted(VGG_DEPTHS))
def test_vgg_depth_counts_weight_layers(depth: int) -> None:
    """VGG-N has N weight layers: the Table 1 convs plus three fully connected ones."""
    for name in (f"vgg{depth}", f"vgg{depth}_bn"):
        model = _meta(name)
        convs = sum(isinstance(m, nn.Conv2d) for m in model.modules())
        linears = sum(isinstance(m, nn.Linear) for m in model.modules())
        assert (convs, linears) == (depth - 3, 3)


# --- ResNet ----------------------------------------------------------------------------------------------------------


def test_resnet50_bottleneck_widths() -> None:
    """Stage s (0–3): inner width 64·2^s, output 256·2^s; stages 1–3 open with a stride-2 3×3 conv (v1.5)."""
    model = _meta("resnet50")
    for s, blocks in enumerate((3, 4, 6, 3)):
        stage = getattr(model, f"layer{s + 1}")
        assert len(stage) == blocks
        for j, block in enumerate(stage):
            inner, out = 64 * 2**s, 256 * 2**s
            assert (block.conv1.out_channels, block.conv2.out_channels, block.conv3.out_channels) == (inner, inner, out)
            assert block.conv2.stride == ((2, 2) if s > 0 and j == 0 else (1, 1))
            assert block.conv1.stride == (1, 1)
            assert (block.downsample is not None) == (j == 0)  # projection: 64 → 256 in stage 0, stride after
    assert model.fc.in_features == 2048


@pytest.mark.parametrize("depth", sorted(RESNET_DEPTHS))
def test_resnet_depth_counts_weight_layers(depth: int) -> None:
    """ResNet-N: stem conv + block convs + fc = N; the 1×1 projection shortcuts are not counted."""
    model = _meta(f"resnet{depth}")
    convs = sum(isinstance(m, nn.Conv2d) for m in model.modules())
    projections = sum(isinstance(m.downsample, nn.Sequential) for m in model.modules() if hasattr(m, "downsample"))
    assert convs - projections + 1 == depth
    assert projections == (3 if depth < 50 else 4)  # bottlenecks also project 64 → 256 at the start of stage 0


def test_resnet50_stride_placement_changes_madds_by_hand() -> None:
    """v1.5 (stride on the 3×3) vs the paper's stride on the first 1×1: only the three downsampling blocks' 1×1
    reduce convs differ; each runs at 4× the positions, c_in · width · (4 − 1) · side² more multiply-adds."""
    with torch.device("meta"):
        v15 = ResNet(RESNET_DEPTHS[50])
        v1 = ResNet(RESNET_DEPTHS[50], stride_in_3x3=False)
    extra = 256 * 128 * 3 * 28**2 + 512 * 256 * 3 * 14**2 + 1024 * 512 * 3 * 7**2  # 3 × 77,070,336
    assert conv_linear_madds(v15, 224) - conv_linear_madds(v1, 224) == extra == 231_211_008
    assert param_count(v15) == param_count(v1)


# --- SqueezeNet ------------------------------------------------------------------------------------------------------


def test_squeezenet_1_1_needs_under_45_percent_of_1_0s_madds() -> None:
    v10, v11 = _meta("squeezenet1_0"), _meta("squeezenet1_1")
    ratio = conv_linear_madds(v11, 224) / conv_linear_madds(v10, 224)
    assert ratio < 0.45  # 0.426: torchvision's "2.4x less computation"
    # The stems by hand: 7×7/2 of 96 at 109×109 outputs vs 3×3/2 of 64 at 111×111.
    assert conv_linear_madds(v10.features[0], 224) == 109 * 109 * 96 * (3 * 7 * 7) == 167_664_672
    assert conv_linear_madds(v11.features[0], 224) == 111 * 111 * 64 * (3 * 3 * 3) == 21_290_688
    # Parameters differ only in the stem and in fire2's squeeze (96 vs 64 input channels).
    stem_diff = (96 * 3 * 7 * 7 + 96) - (64 * 3 * 3 * 3 + 64)
    assert param_count(v10) - param_count(v11) == stem_diff + (96 - 64) * 16 == 12_928


def test_squeezenet_has_about_50x_fewer_params_than_alexnet() -> None:
    """The paper's title claim, against torchvision's single-tower AlexNet: 61,100,840 / 1,248,424 ≈ 48.9."""
    ratio = param_count(_meta("alexnet")) / param_count(_meta("squeezenet1_0"))
    assert 48 < ratio < 50


# --- GoogLeNet -------------------------------------------------------------------------------------------------------


def test_googlenet_table_and_aux_heads_by_hand() -> None:
    assert [row.out for row in GOOGLENET_INCEPTIONS] == [256, 480, 512, 512, 512, 528, 832, 832, 1024]
    model = _meta("googlenet")
    assert model.inception3a.branch3[1].conv.kernel_size == (3, 3)  # torchvision's 3×3 where the paper has 5×5
    assert (model.aux1.conv.conv.in_channels, model.aux2.conv.conv.in_channels) == (512, 528)  # after 4a, 4d
    head = 128 * 2 + 2048 * 1024 + 1024 + 1024 * 1000 + 1000  # BN affine, fc1, fc2
    aux = (512 * 128 + head) + (528 * 128 + head)  # = 6,379,984
    assert param_count(model) - param_count(_meta("googlenet", aux_logits=False)) == aux


GooglePair = tuple[GoogLeNet, nn.Module]


@pytest.fixture(scope="module")
def googlenet_pair() -> GooglePair:
    """Ours and torchvision's with the same weights, one real build each.

    torchvision's initialisation (std 0.01) with fixed BN statistics lets the signal vanish: two different inputs
    then change the logits by ~1e-8, so an output comparison would test nothing. He (fan-in) weights keep the signal
    alive; BN gets non-trivial statistics.
    """
    generator = torch.Generator().manual_seed(0)
    theirs = torchvision.models.googlenet(weights=None, init_weights=True)
    for m in theirs.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, generator=generator)
    randomize_bn_stats(theirs, generator)
    ours = zoo.create_model("googlenet")
    ours.load_state_dict(theirs.state_dict(), strict=True)
    return ours.eval(), theirs.eval()  # type: ignore[return-value]


def test_googlenet_aux_outputs_in_training_only(googlenet_pair: GooglePair) -> None:
    model = copy.deepcopy(googlenet_pair[0])  # training mode updates BN statistics: leave the shared pair alone
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = model.train()(x)
        assert isinstance(out, GoogLeNetOutputs)
        assert [t.shape for t in out] == [(2, 1000)] * 3
        logits = model.eval()(x)
        assert isinstance(logits, torch.Tensor) and logits.shape == (2, 1000)
        model.aux_logits = False
        assert isinstance(model.train()(x), torch.Tensor)


@pytest.mark.parametrize("transform_input", [False, True])
def test_googlenet_outputs_match_torchvision(googlenet_pair: GooglePair, transform_input: bool) -> None:
    """Eval logits equal torchvision's with the same weights, also with ``transform_input`` (which torchvision sets
    when it loads its ported weights); and they depend on the input, so the comparison means something."""
    ours, theirs = googlenet_pair
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(2, 3, 64, 64, generator=g), torch.randn(2, 3, 64, 64, generator=g)
    ours.transform_input = theirs.transform_input = transform_input
    try:
        with torch.inference_mode():
            got = ours(x)
            # Logits are of order 10 here; our transform_input folds torchvision's affine into one scale and shift,
            # which rounds differently in the 7th digit, so compare relative to the output's scale.
            scale = got.abs().max()
            torch.testing.assert_close(got / scale, theirs(x) / scale, rtol=0, atol=1e-5)
            assert (got - ours(y)).abs().max() > 1e-2
            ours.transform_input = not transform_input
            assert (got - ours(x)).abs().max() > 1e-2
    finally:
        ours.transform_input = theirs.transform_input = False


# --- Initialisation --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["resnet18", "squeezenet1_1", "googlenet"])
def test_initialisation_statistics_match_torchvision(name: str) -> None:
    """Each weight tensor's spread equals torchvision's for its family's initialisation (the small nets only; VGG
    and AlexNet are too big to build twice here and use init_weights / PyTorch's default)."""
    torch.manual_seed(0)
    ours = zoo.create_model(name)
    kwargs = {"init_weights": True} if name == "googlenet" else {}
    theirs = torchvision.models.get_model(name, weights=None, **kwargs)
    theirs_params = dict(theirs.named_parameters())
    for key, p in ours.named_parameters():
        q = theirs_params[key]
        if p.numel() >= 4096:
            assert p.std().item() == pytest.approx(q.std().item(), rel=0.15), key
            assert p.abs().max().item() <= 1.5 * q.abs().max().item() + 1e-6, key
        elif key.endswith(".bias") and not q.any():
            assert not p.any(), key  # zero biases stay zero


def test_zero_init_residual_zeroes_the_same_norms_as_torchvision() -> None:
    ours = zoo.create_model("resnet18", zero_init_residual=True)
    theirs = torchvision.models.resnet18(zero_init_residual=True)

    def zeroed(model: nn.Module) -> set[str]:
        return {k for k, v in model.state_dict().items() if k.endswith("bn2.weight") and not v.any()}

    assert zeroed(ours) == zeroed(theirs) == {f"layer{s}.{b}.bn2.weight" for s in range(1, 5) for b in range(2)}
