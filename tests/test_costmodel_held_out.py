"""The cost model on what it has not seen: the held-out sets (outside the zoo, split by family, all countable), the
interval every prediction carries (its ranks by hand, its coverage on synthetic truths), the refusal of a fit that
misses its own networks, ``calibrate --held-out`` and ``pick --predicted``'s overlaps. No timing is asserted."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import fixed_model, synthetic_suite

import zoo
from cnnbench import costmodel
from cnnbench.choose import interval_overlaps, pick
from cnnbench.cli import main
from cnnbench.costmodel import held_out, networks
from cnnbench.costmodel.fit import MAX_NETWORK_ERROR, interval_ratios
from cnnbench.errors import CnnbenchError
from cnnbench.measure.latency import QUICK_TIMING
from cnnbench.measure.profiling import profile
from cnnbench.models import resolve
from cnnbench.target import Target


def test_the_held_out_sets_are_outside_the_zoo_split_by_family_and_countable() -> None:
    """No family has a member in both sets, no model is a zoo model (by name or by family), each set holds the four
    designs, and every model counts on the meta device with no unknown op (what ``predict`` needs of it)."""
    validation, test = held_out.VALIDATION, held_out.TEST
    assert not {m.family for m in validation} & {m.family for m in test}
    zoo_families = {zoo.model_info(name).family for name in zoo.list_models()}
    for model in (*validation, *test):
        assert model.spec.split(":")[1] not in zoo.list_models() and model.family not in zoo_families, model
        counted = profile(resolve(model.spec, None, device="meta").model, resolution=224, training_memory=False)
        assert counted.totals.unknown_ops == "", (model.spec, counted.totals.unknown_ops)
    designs = {"NAS", "re-parameterised", "densely connected", "recent"}
    assert {m.design for m in validation} == designs == {m.design for m in test}
    chosen = held_out.held_out_models(["validation", "timm:mixnet_s", "timm:resnet10t"])
    assert [m.spec for m in chosen] == [*(m.spec for m in validation), "timm:resnet10t"]  # each once, in order
    with pytest.raises(CnnbenchError, match="--held-out takes validation or test"):
        held_out.held_out_models([])


def test_interval_ratios_take_split_conformal_ranks_by_hand() -> None:
    """Nine ratios and a 20% share: ranks ⌊10 × 0.1⌋ = 1 and ⌈10 × 0.9⌉ = 9, the smallest and the largest; 99
    ratios 1..99 (shuffled): the 10th and the 90th; two ratios: both ends."""
    nine = np.array([1.3, 0.9, 1.0, 1.1, 0.8, 1.05, 0.95, 1.2, 1.02])
    assert interval_ratios(nine) == (0.8, 1.3)
    ratios = np.random.default_rng(0).permutation(np.arange(1, 100, dtype=float))
    assert interval_ratios(ratios) == (10.0, 90.0)
    assert interval_ratios(np.array([1.1, 0.9])) == (0.9, 1.1)


def _true_times(layers: pd.DataFrame, truth: costmodel.CostModel, rng: np.random.Generator) -> np.ndarray:
    """Each op's time under ``truth``, times a log-normal op noise of 5%."""
    _, terms = truth.terms_of(layers)
    return terms.time_ms * np.exp(rng.normal(0, 0.05, len(layers)))


def test_the_interval_covers_synthetic_truths_at_its_share() -> None:
    """Networks whose ops cost what a known cost model says (5% noise per op) and whose whole time is 1.1 × their
    sum times a log-normal network noise of 12%: fitted on 20 of them, the 80% interval of 40 others holds between
    62% and 95% of their true times (a binomial 80% of 40 lies in 70-90% eight times in ten); an interval of width 0
    would hold none, one that is too wide all."""
    rng = np.random.default_rng(3)
    truth = fixed_model("cpu-t1-fp32-nchw-eager")

    def draw(drawn: Sequence[networks.Network]) -> tuple[pd.DataFrame, pd.DataFrame]:
        ops, timed = [], []
        for network in drawn:
            layers = network.layers.assign(network=network.name)
            time_ms = _true_times(layers, truth, rng)
            ops.append(layers.assign(time_ms=time_ms))
            timed.append({"network": network.name, "measured_ms": 1.1 * time_ms.sum() * math.exp(rng.normal(0, 0.12))})
        return pd.concat(ops, ignore_index=True), pd.DataFrame(timed)

    suite = synthetic_suite()
    fitted = costmodel.fit_cost_model(*draw(suite[:20]), Target(threads=1))
    low, high = fitted.interval
    assert low < 1 < high
    fresh_ops, fresh = draw(suite[20:60])
    _, terms = fitted.terms_of(fresh_ops)
    predicted = pd.Series(terms.time_ms).groupby(fresh_ops["network"].to_numpy()).sum() * fitted.network_scale
    measured = fresh.set_index("network")["measured_ms"].reindex(predicted.index)
    inside = ((predicted * low <= measured) & (measured <= predicted * high)).mean()
    print(f"inside {inside:.3f}, interval × {low:.3f} to × {high:.3f}")
    assert 0.62 <= inside <= 0.95, (inside, low, high)


def test_a_fit_that_misses_its_own_networks_is_not_published(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A calibration made while the machine changed speed misses its own networks (97% here): ``calibrate`` says
    so in one line, exits 2 and writes nothing."""
    missing = costmodel.CostModel(**{**fixed_model().__dict__, "network_error": 0.97})
    with pytest.raises(CnnbenchError, match="misses its own calibration networks by 97%"):
        costmodel.check_publishable(missing)
    assert costmodel.check_publishable(fixed_model()) is not None and MAX_NETWORK_ERROR < 0.97
    monkeypatch.setenv("CNNBENCH_CACHE", str(tmp_path))
    monkeypatch.setattr(costmodel, "calibrate", lambda *args, **kwargs: (missing, pd.DataFrame(), pd.DataFrame()))
    out = tmp_path / "cm.json"
    assert main(["calibrate", "--threads", "1", "--out", str(out)]) == 2
    said = capsys.readouterr().err.strip().splitlines()
    assert len(said) == 1 and "calibrate again on a quiet machine" in said[0] and not out.exists()


@pytest.mark.slow  # two networks and one model, each measured in a process of its own
def test_calibrate_held_out_measures_models_between_the_networks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One model, two rounds, two networks: the model is measured once per round, its median kept beside the
    prediction, the interval and the errors against the prediction and the two baselines."""
    order: list[str] = []
    measured = held_out._measured
    monkeypatch.setattr(held_out, "_measured", lambda spec, *a: (order.append(spec), measured(spec, *a))[1])
    step = networks.NetworkTimer.step
    monkeypatch.setattr(networks.NetworkTimer, "step", lambda self, n=1: (order.append(f"step {n}"), step(self, n)))
    models = held_out.held_out_models(["timm:lcnet_050"])
    fitted, table, ops, timed = held_out.calibrate_and_check(
        models, Target(threads=1), network_count=2, timing=QUICK_TIMING, rounds=2
    )
    assert order == ["timm:lcnet_050", "step 1", "timm:lcnet_050", "step 1"]
    row = table.iloc[0]
    assert row["model"] == "timm:lcnet_050" and row["family"] == "PP-LCNet" and row["measured_ms"] > 0
    assert row["low_ms"] <= row["predicted_ms"] <= row["high_ms"]
    assert row["error_pct"] == pytest.approx((row["predicted_ms"] / row["measured_ms"] - 1) * 100)
    assert row["inside"] == (row["low_ms"] <= row["measured_ms"] <= row["high_ms"]) and row["spread_pct"] >= 0
    assert len(timed) == 2 and fitted.networks == int((~timed["disturbed"].astype(bool)).sum())


def test_pick_predicted_names_the_models_whose_intervals_overlap(tmp_path: Path) -> None:
    """Intervals 10-12, 11-13 and 20-24 ms: the first two overlap (their order is uncertain), the third overlaps
    neither; a model that does not fit lists none, and is listed by none."""
    ranked = pd.DataFrame({"model": ["a", "b", "c", "d"], "rank": [1, 2, 3, None],
                           "latency_ms": [11.0, 12.0, 22.0, 11.5], "low_ms": [10.0, 11.0, 20.0, 10.5],
                           "high_ms": [12.0, 13.0, 24.0, 12.5]})  # fmt: skip
    assert interval_overlaps(ranked) == ["b", "a", "", ""]
    many = pd.DataFrame({"model": list("pqrst"), "rank": [1, 2, 3, 4, 5], "latency_ms": [10.0, 10.1, 10.3, 10.2, 9.85],
                         "low_ms": [9.0] * 5, "high_ms": [11.0] * 5})  # fmt: skip
    assert interval_overlaps(many, shown=2)[0] == "q, t +2"  # nearest prediction first
    path = costmodel.save(fixed_model(), tmp_path / "cm.json")
    ranked = pick(None, models=("mobilenet_v3_small", "resnet18"), results=tmp_path / "results", predicted=path)
    low, high = fixed_model().interval
    assert (ranked["low_ms"] == ranked["latency_ms"] * low).all() and (ranked["high_ms"] > ranked["latency_ms"]).all()
