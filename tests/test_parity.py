"""Every zoo model against its reference implementation, parametrized over the registry.

A model registered with ``reference="torchvision:NAME"`` must have torchvision's parameter count, its state_dict keys
and shapes (its checkpoints load with ``strict=True``), and equal eval-mode outputs with the same weights. A model
whose reference is ``timm:NAME`` must have timm's parameter count (its key layout differs; the family's own test
maps it). A model is tested the day it is registered.
"""

from __future__ import annotations

import pytest
import timm
import torch
import torchvision
from conftest import param_count, randomize_bn_stats, shapes, slow_if_big
from torch import nn

import zoo

REFERENCED = [n for n in zoo.list_models() if zoo.model_info(n).reference]
TORCHVISION = [n for n in REFERENCED if zoo.model_info(n).reference.startswith("torchvision:")]  # type: ignore[union-attr]

# Per-model overrides: the input side for the output check (small keeps CI fast; some nets need more),
# and the keyword arguments that make the reference build the same network.
INPUT_SIDE: dict[str, int] = {}
DEFAULT_SIDE = 64
REFERENCE_KWARGS: dict[str, dict[str, object]] = {
    "googlenet": {"init_weights": True},  # silences torchvision's warning; weights are overwritten anyway
}


def build_reference(spec: str) -> nn.Module:
    library, name = spec.split(":", 1)
    if library == "torchvision":
        return torchvision.models.get_model(name, weights=None, **REFERENCE_KWARGS.get(name, {}))
    if library == "timm":
        return timm.create_model(name, pretrained=False)
    raise AssertionError(f"unknown reference library in {spec!r}")


@pytest.mark.parametrize("name", REFERENCED)
def test_param_count_equals_reference(name: str) -> None:
    with torch.device("meta"):
        ours = zoo.create_model(name)
        theirs = build_reference(zoo.model_info(name).reference)  # type: ignore[arg-type]
    assert param_count(ours) == param_count(theirs)


@pytest.mark.parametrize("name", slow_if_big(TORCHVISION))
def test_torchvision_checkpoint_loads_and_outputs_match(name: str, generator: torch.Generator) -> None:
    ours = zoo.create_model(name).eval()
    theirs = build_reference(zoo.model_info(name).reference).eval()  # type: ignore[arg-type]
    assert shapes(ours) == shapes(theirs)

    # He fan-in weights keep the signal alive through every layer; with some references' own small-std init
    # (GoogLeNet's 0.01) the logits hardly depend on the input, and a wrong layer would pass unseen.
    for m in theirs.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, generator=generator)
    randomize_bn_stats(theirs, generator)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    side = INPUT_SIDE.get(name, DEFAULT_SIDE)
    x = torch.randn(2, 3, side, side, generator=generator)
    with torch.inference_mode():
        expected, got = theirs(x), ours(x)
    assert (expected[0] - expected[1]).abs().max() > 1e-2, "outputs barely depend on the input: the check is blind"
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5 * expected.abs().max().item())
