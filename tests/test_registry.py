"""The registry: wildcards, natural sort, duplicates, unknown names and overrides."""

from __future__ import annotations

import pytest
from torch import nn

import zoo
from zoo._registry import natural_key


def test_wildcards_and_natural_sort() -> None:
    assert zoo.list_models("efficientnet_b[0-2]") == ["efficientnet_b0", "efficientnet_b1", "efficientnet_b2"]
    assert zoo.list_models(["efficientnet_b7", "efficientnet_b0"]) == ["efficientnet_b0", "efficientnet_b7"]
    assert zoo.list_models("nothing*") == []
    # b2 before b10, x0_5 before x1_0: digits compare as numbers
    assert sorted(["m_b10", "m_b2", "m_b1"], key=natural_key) == ["m_b1", "m_b2", "m_b10"]
    widths = ["s_x0_25", "s_x0_5", "s_x1_0", "s_x2_0"]  # width suffixes read as decimals
    assert sorted(reversed(widths), key=natural_key) == widths
    scales = ("0_25", "0_5", "1_0", "1_5", "2_0")
    assert zoo.list_models("shufflenet_v1_g3_*") == [f"shufflenet_v1_g3_x{s}" for s in scales]


def test_every_name_listed_once() -> None:
    names = zoo.list_models()
    assert len(names) == len(set(names))
    assert {f"efficientnet_b{i}" for i in range(8)} <= set(names)


def test_duplicate_registration_raises() -> None:
    info = zoo.model_info("efficientnet_b0")
    with pytest.raises(ValueError, match="registered twice"):
        zoo.register_model(info)(lambda: nn.Identity())


def test_unknown_name_suggests_closest() -> None:
    with pytest.raises(zoo.UnknownModelError) as err:
        zoo.create_model("efficientnet_b9")
    message = str(err.value)
    assert "efficientnet_b9" in message
    assert "closest: efficientnet_b" in message
    assert "\n" not in message
    assert isinstance(err.value, zoo.CnnbenchError)


def test_bad_override_names_accepted_ones() -> None:
    with pytest.raises(zoo.BadOverrideError) as err:
        zoo.create_model("efficientnet_b0", width=2.0)
    message = str(err.value)
    assert "width" in message
    for accepted in ("num_classes", "dropout", "stochastic_depth"):
        assert accepted in message


def test_override_reaches_the_model() -> None:
    model = zoo.create_model("efficientnet_b0", num_classes=10, dropout=0.0)
    assert model.classifier[1].out_features == 10
    assert model.classifier[0].p == 0.0


def test_metadata_is_complete() -> None:
    for name in zoo.list_models():
        info = zoo.model_info(name)
        assert info.name == name
        assert info.family and info.paper.title and info.paper.year > 2000
        assert info.paper.arxiv.count(".") == 1
        assert info.resolution >= 32
        assert info.published.source
        assert info.published.top1 is None or 40 < info.published.top1 < 100
