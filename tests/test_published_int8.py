"""torchvision's INT8 ImageNet figures as ``reference-int8`` rows, apart from the papers' and the fp32 reference's.

The expected figures are transcribed by hand from torchvision 0.29.1's quantized weights metadata (the DEFAULT
member of each ``*_QuantizedWeights`` enum), not read back from torchvision.
"""

from __future__ import annotations

import pandas as pd
import pytest

from cnnbench.accuracy.published import PUBLISHED_COLUMNS, published_accuracy

# model: (int8 top-1, the float weights' top-1 it was quantized from, backend or None where not transcribed)
INT8 = {
    "mobilenet_v2": (71.658, 71.878, "qnnpack"),
    "mobilenet_v3_large": (73.004, 74.042, "qnnpack"),
    "shufflenet_v2_x0_5": (57.972, 60.552, "fbgemm"),
    "shufflenet_v2_x1_0": (68.360, 69.362, "fbgemm"),
    "shufflenet_v2_x1_5": (72.052, 72.996, None),
    "shufflenet_v2_x2_0": (75.354, 76.230, None),
    "googlenet": (69.826, 69.778, None),
    "resnet18": (69.494, 69.758, None),
    "resnet50": (80.282, 80.858, "fbgemm"),  # DEFAULT is IMAGENET1K_FBGEMM_V2, from ResNet50_Weights.IMAGENET1K_V2
}
# The zoo's resnet50 reference row is ResNet50_Weights.IMAGENET1K_V1 (76.130), not the V2 weights quantized above.
NOT_THE_REFERENCE_WEIGHTS = {"resnet50": 76.130}


@pytest.fixture(scope="module")
def everything() -> pd.DataFrame:
    return published_accuracy()


def test_int8_rows_match_torchvision_figures(everything: pd.DataFrame) -> None:
    int8 = everything[everything["origin"] == "reference-int8"]
    assert sorted(int8["model"]) == sorted(INT8)
    assert not int8.duplicated("model").any()
    rows = int8.set_index("model")
    for model, (top1, _, backend) in INT8.items():
        row = rows.loc[model]
        assert row["top1"] == pytest.approx(top1, abs=5e-4), model
        assert row["dtype"] == "int8", model
        assert row["resolution"] == 224, model
        assert row["reference"] == f"torchvision:quantized_{model}", model
        assert row["source"].startswith("torchvision 0.29.1 ") and "_QuantizedWeights.IMAGENET1K_" in row["source"]
        assert row["quantization"].startswith("torchvision quantized weights"), model
        assert row["quantization"].endswith((" fbgemm backend", " qnnpack backend")), model
        if backend is not None:
            assert row["quantization"].endswith(f" {backend} backend"), model
            assert backend.upper() in row["source"], model
    assert "IMAGENET1K_FBGEMM_V2" in rows.loc["resnet50", "source"]
    assert "(QAT)" in rows.loc["mobilenet_v2", "quantization"]


def test_float_baseline_is_named_and_matches_the_reference_row(everything: pd.DataFrame) -> None:
    reference = everything[everything["origin"] == "reference"].set_index("model")
    int8 = everything[everything["origin"] == "reference-int8"].set_index("model")
    for model, (_, fp32_top1, _) in INT8.items():
        assert f"fp32 top-1 {fp32_top1:.3f})" in int8.loc[model, "source"], model
        if model not in reference.index or pd.isna(reference.loc[model, "top1"]):
            continue
        expected = NOT_THE_REFERENCE_WEIGHTS.get(model, fp32_top1)
        assert reference.loc[model, "top1"] == pytest.approx(expected, abs=5e-4), model
    # every listed model has a fp32 reference row with a top-1 to compare against
    assert set(INT8) <= set(reference.index[reference["top1"].notna()])


def test_int8_false_leaves_only_fp32_rows(everything: pd.DataFrame) -> None:
    fp32 = published_accuracy(int8=False)
    assert list(fp32.columns) == PUBLISHED_COLUMNS
    assert set(fp32["origin"]) == {"paper", "reference"} and set(fp32["dtype"]) == {"fp32"}
    assert fp32["quantization"].isna().all()
    # the same fp32 rows as with int8 rows included, in the same order
    kept = everything[everything["origin"] != "reference-int8"].reset_index(drop=True)
    pd.testing.assert_frame_equal(kept, fp32)


def test_paper_and_reference_rows_are_fp32(everything: pd.DataFrame) -> None:
    assert list(everything.columns) == PUBLISHED_COLUMNS
    assert PUBLISHED_COLUMNS[-2:] == ["dtype", "quantization"]
    fp32 = everything[everything["origin"].isin(["paper", "reference"])]
    assert len(fp32) and (fp32["dtype"] == "fp32").all()
    assert (everything.loc[everything["origin"] == "reference-int8", "dtype"] == "int8").all()


def test_patterns_select_int8_rows_too() -> None:
    frame = published_accuracy(["resnet50", "mobilenet_v3_small"])
    assert list(zip(frame["model"], frame["origin"], strict=True)) == [
        ("resnet50", "paper"), ("resnet50", "reference"), ("resnet50", "reference-int8"),
        ("mobilenet_v3_small", "paper"), ("mobilenet_v3_small", "reference"),  # torchvision has no int8 V3-Small
    ]  # fmt: skip
