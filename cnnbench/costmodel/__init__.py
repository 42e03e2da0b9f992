"""Predicting latency from the counts: a per-target cost model fitted on ops timed inside synthetic networks
(``cnnbench calibrate``) and applied to any model's meta-device counting pass (``cnnbench predict``).

- :mod:`.networks`: the synthetic networks (seeded, never a zoo model) and their timing, whole and op by op;
- :mod:`.model`: the per-key formula, its fit, the prediction with its attribution, the baselines, the JSON.
"""

from cnnbench.costmodel.model import CostModel, OpCost, Prediction, calibrate, load, predict, save

__all__ = ["CostModel", "OpCost", "Prediction", "calibrate", "load", "predict", "save"]
