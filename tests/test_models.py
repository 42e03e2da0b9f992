"""``models.resolve``, the one place a model object or a name becomes a network, a name and an input side."""

from __future__ import annotations

import pytest
from torch import nn

import zoo
from cnnbench.models import DEFAULT_RESOLUTION, resolve


def test_a_name_is_built_at_its_own_resolution() -> None:
    resolved = resolve("mobilenet_v2")
    assert resolved.name == resolved.spec == "mobilenet_v2" and resolved.built
    assert resolved.resolution == zoo.model_info("mobilenet_v2").resolution
    assert next(resolved.model.parameters()).is_meta and not resolved.model.training
    assert resolve("mobilenet_v2", 160, name="mine").resolution == 160
    assert resolve("mobilenet_v2", name="mine").name == "mine"


@pytest.mark.parametrize(("attribute", "side"), [(None, DEFAULT_RESOLUTION), (96, 96)])
def test_a_module_is_taken_as_it_is(attribute: int | None, side: int) -> None:
    net = nn.Conv2d(3, 8, 3)
    if attribute is not None:
        net.resolution = attribute  # type: ignore[assignment]
    resolved = resolve(net, device="cpu")
    assert resolved.model is net and not resolved.built and resolved.spec is None
    assert (resolved.name, resolved.resolution) == ("Conv2d", side)
    assert resolve(net, 0).resolution == 0  # an explicit side is kept, even a bad one: the measurement refuses it
