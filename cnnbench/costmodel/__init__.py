"""Predicting latency from the counts: a per-target cost model fitted on a kernel suite (``cnnbench calibrate``)
and applied to any model's meta-device counting pass (``cnnbench predict``).

- :mod:`.suite`: the kernels (single layers over a grid of shapes, never a zoo model) and their timing;
- :mod:`.model`: the per-kind formula, its fit, the prediction with its attribution, the baselines, the JSON.
"""

from cnnbench.costmodel.model import CostModel, KindCost, Prediction, calibrate, load, predict, save

__all__ = ["CostModel", "KindCost", "Prediction", "calibrate", "load", "predict", "save"]
