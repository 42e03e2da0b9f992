"""EfficientNet B0–B7 against torchvision (params, checkpoint format, outputs) and the paper (Tables 1–2, §3.3)."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision
from conftest import conv_linear_madds, param_count

import zoo
from zoo._layers import StochasticDepth, make_divisible
from zoo.efficientnet import EFFICIENTNET_B0, EFFICIENTNET_VARIANTS, compound_coefficients, scale

VARIANTS = [f"b{i}" for i in range(8)]

# torchvision 0.29 num_params of efficientnet_bN (its weights' meta), an independent reference.
TORCHVISION_PARAMS = {
    "b0": 5_288_548,
    "b1": 7_794_184,
    "b2": 9_109_994,
    "b3": 12_233_232,
    "b4": 19_341_616,
    "b5": 30_389_784,
    "b6": 43_040_704,
    "b7": 66_347_960,
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_params_equal_torchvision_num_params(variant: str) -> None:
    """Output and checkpoint parity run for every referenced model in test_parity.py; here the weights' meta."""
    with torch.device("meta"):
        assert param_count(zoo.create_model(f"efficientnet_{variant}")) == TORCHVISION_PARAMS[variant]
    figures = zoo.model_info(f"efficientnet_{variant}").reference_figures
    assert figures is not None and figures.params == TORCHVISION_PARAMS[variant]


@pytest.mark.parametrize("variant", VARIANTS)
def test_regularisation_matches_torchvision(variant: str) -> None:
    """Dropout before the classifier and the per-block stochastic-depth probabilities (linear in depth)."""
    name = f"efficientnet_{variant}"
    with torch.device("meta"):
        ours = zoo.create_model(name)
        theirs = getattr(torchvision.models, name)()
    assert ours.classifier[0].p == theirs.classifier[0].p
    ours_p = [m.p for m in ours.modules() if isinstance(m, StochasticDepth)]
    theirs_p = [m.p for m in theirs.modules() if type(m).__name__ == "StochasticDepth"]
    assert ours_p == pytest.approx(theirs_p)


@pytest.mark.parametrize("variant", VARIANTS)
def test_published_params_within_5_percent(variant: str) -> None:
    info = zoo.model_info(f"efficientnet_{variant}")
    with torch.device("meta"):
        params = param_count(zoo.create_model(info.name))
    assert info.published.params is not None
    assert params == pytest.approx(info.published.params, rel=0.05)
    assert info.reference == f"torchvision:{info.name}"


def test_published_coefficients() -> None:
    """EfficientNet Table 2 / TPU efficientnet_params, read off the paper."""
    table = {v: (c.width, c.depth, c.resolution, c.dropout) for v, (c, _) in EFFICIENTNET_VARIANTS.items()}
    assert table["b0"] == (1.0, 1.0, 224, 0.2)
    assert table["b3"] == (1.2, 1.4, 300, 0.3)
    assert table["b7"] == (2.0, 3.1, 600, 0.5)
    assert [zoo.model_info(f"efficientnet_{v}").resolution for v in VARIANTS] == [
        224, 240, 260, 300, 380, 456, 528, 600,
    ]


def test_make_divisible_by_hand() -> None:
    assert make_divisible(32 * 1.1) == 32  # 35.2 → 32 (within 10%)
    assert make_divisible(16 * 1.4) == 24  # 22.4 → 24
    assert make_divisible(40 * 1.8) == 72
    assert make_divisible(24 * 1.8) == 40  # 43.2 → 40 (nearest multiple of 8; 40 ≥ 0.9·43.2)
    assert make_divisible(10) == 16  # nearest is 8, but 8 < 0.9·10, so one step up
    assert make_divisible(3) == 8  # never below the divisor


def test_scale_rounds_like_the_reference() -> None:
    """Depth: ceil(repeats·d); width: make_divisible(c·w, 8). B7's repeats computed by hand from B0's table."""
    b7 = scale(EFFICIENTNET_B0, width=2.0, depth=3.1)
    assert [s.repeats for s in b7.stages] == [math.ceil(r * 3.1) for r in (1, 2, 2, 3, 3, 4, 1)] == [
        4, 7, 7, 10, 10, 13, 4,
    ]
    assert [s.out for s in b7.stages] == [32, 48, 80, 160, 224, 384, 640]
    assert (b7.stem, b7.head) == (64, 2560)
    assert scale(EFFICIENTNET_B0, 1.0, 1.0) == EFFICIENTNET_B0
    # the stage table is data: scaling returns a new value and leaves B0 untouched
    assert EFFICIENTNET_B0.stages[0].out == 16


def test_scaled_stage_depths_match_torchvision() -> None:
    with torch.device("meta"):
        ours = zoo.create_model("efficientnet_b7")
        theirs = torchvision.models.efficientnet_b7()
    assert [len(s) for s in ours.features[1:-1]] == [len(s) for s in theirs.features[1:-1]]


def test_compound_coefficients_follow_the_formula() -> None:
    c = compound_coefficients(1)
    assert (c.depth, c.width) == pytest.approx((1.2, 1.1))
    assert c.resolution == 256  # 224 · 1.15 = 257.6 → nearest multiple of 4
    c3 = compound_coefficients(3, alpha=1.3, beta=1.05, gamma=1.1)
    assert (c3.depth, c3.width) == pytest.approx((1.3**3, 1.05**3))
    assert c3.resolution == 4 * round(224 * 1.1**3 / 4) == 300
    assert compound_coefficients(0).dropout == 0.2
    assert compound_coefficients(7).dropout == 0.5
    assert compound_coefficients(12).dropout == 0.5
    assert 1.2 * 1.1**2 * 1.15**2 == pytest.approx(1.92, abs=1e-3)  # the paper's α·β²·γ² ≈ 2


def test_efficientnet_scaled_any_phi() -> None:
    with torch.device("meta"):
        b0 = zoo.create_model("efficientnet_b0")
        members = [zoo.efficientnet_scaled(phi) for phi in (0, 0.5, 1, 2, 8)]
    assert param_count(members[0]) == param_count(b0) == TORCHVISION_PARAMS["b0"]
    counts = [param_count(m) for m in members]
    assert counts == sorted(counts) and len(set(counts)) == len(counts)
    assert [m.resolution for m in members] == [compound_coefficients(p).resolution for p in (0, 0.5, 1, 2, 8)]


def test_efficientnet_scaled_rejects_bad_phi() -> None:
    with pytest.raises(ValueError, match="phi"):
        zoo.efficientnet_scaled(-1)


def test_stochastic_depth_is_identity_in_eval() -> None:
    layer = StochasticDepth(0.5).eval()
    x = torch.ones(8, 4, 2, 2)
    assert torch.equal(layer(x), x)
    layer.train()
    out = layer(torch.ones(4096, 1, 1, 1))
    kept = out != 0
    assert torch.all(out[kept] == 2.0)  # survivors scaled by 1 / (1 - p)
    assert 0.4 < kept.float().mean().item() < 0.6


@pytest.mark.parametrize("variant", VARIANTS)
def test_multiply_adds_match_torchvision_ops(variant: str) -> None:
    """torchvision's ``_ops`` (GFLOPS, multiply-adds at its weights' crop, to its 3 dp) and the paper's Table 2
    within 5% (the largest gap is B4: 4.39 B counted, 4.2 B printed)."""
    name = f"efficientnet_{variant}"
    info = zoo.model_info(name)
    figures = info.reference_figures
    assert figures is not None and figures.flops is not None and info.published.flops is not None
    crop = figures.resolution or info.resolution
    with torch.device("meta"):
        at_crop = conv_linear_madds(zoo.create_model(name), crop)
        at_paper_res = conv_linear_madds(zoo.create_model(name), info.resolution)
    assert round(at_crop / 1e9, 3) == pytest.approx(figures.flops / 1e9, abs=1e-9)
    assert at_paper_res == pytest.approx(info.published.flops, rel=0.05)
