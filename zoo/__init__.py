"""zoo: the models that cnnbench measures, written in this repo and registered by name.

>>> from zoo import create_model, list_models, model_info
>>> list_models("efficientnet_b[0-2]")
['efficientnet_b0', 'efficientnet_b1', 'efficientnet_b2']

Families register on import, one line each below.
"""

from . import efficientnet  # noqa: F401  (registers efficientnet_b0..b7)
from ._errors import BadOverrideError, CnnbenchError, UnknownModelError
from ._registry import (
    ModelInfo,
    Paper,
    Published,
    accepted_overrides,
    create_model,
    list_models,
    model_builder,
    model_info,
    register_model,
)
from .efficientnet import compound_coefficients, efficientnet_scaled

__all__ = [
    "BadOverrideError",
    "CnnbenchError",
    "ModelInfo",
    "Paper",
    "Published",
    "UnknownModelError",
    "accepted_overrides",
    "compound_coefficients",
    "create_model",
    "efficientnet_scaled",
    "list_models",
    "model_builder",
    "model_info",
    "register_model",
]
