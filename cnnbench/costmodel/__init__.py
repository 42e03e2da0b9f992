"""Predicting latency from the counts: a per-target cost model fitted on ops timed inside synthetic networks
(``cnnbench calibrate``) and applied to any model's meta-device counting pass (``cnnbench predict``).

- :mod:`.networks`: the synthetic networks (seeded, never a zoo model) and their timing, whole and op by op;
- :mod:`.features`: what the formula needs of each op of a counting pass (its cost key, work and sizes);
- :mod:`.model`: the formula, the fitted numbers (:class:`OpCost` per cost key, :class:`CostModel`), their JSON;
- :mod:`.fit`: calibration, timed ops in and a cost model out (:func:`calibrate`, :func:`fit_cost_model`);
- :mod:`.predict`: a cost model and a network in, the predicted latency out (:func:`predict_latency`);
- :mod:`.runtime`: a deployment runtime's cost model (ONNX Runtime): fusion rules read off its profile, costs per
  node and per kind (:func:`calibrate_runtime`);
- :mod:`.held_out`: architectures outside the zoo measured between a calibration's networks, against its predictions.
"""

from cnnbench.costmodel.fit import calibrate, check_publishable, fit_cost_model
from cnnbench.costmodel.model import (
    ANY,
    CostModel,
    OpCost,
    RuntimeCostModel,
    Terms,
    check_modelled,
    default_path,
    load,
    load_for,
    save,
)
from cnnbench.costmodel.predict import Prediction, accuracy_summary, predict_latency
from cnnbench.costmodel.runtime import calibrate_runtime

__all__ = [
    "ANY",
    "CostModel",
    "OpCost",
    "Prediction",
    "RuntimeCostModel",
    "Terms",
    "accuracy_summary",
    "calibrate",
    "calibrate_runtime",
    "check_publishable",
    "check_modelled",
    "default_path",
    "fit_cost_model",
    "load",
    "load_for",
    "predict_latency",
    "save",
]
