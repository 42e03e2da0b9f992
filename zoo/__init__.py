"""zoo: the models that cnnbench measures, written in this repo and registered by name.

>>> from zoo import create_model, list_models, model_info
>>> list_models("efficientnet_b[0-2]")
['efficientnet_b0', 'efficientnet_b1', 'efficientnet_b2']

Families register on import, one line each below.
"""

# Families, one line each; importing a family file registers its models.
from . import (
    alexnet,  # noqa: F401
    efficientnet,  # noqa: F401
    googlenet,  # noqa: F401
    mobilenetv1,  # noqa: F401
    mobilenetv2,  # noqa: F401
    mobilenetv3,  # noqa: F401
    resnet,  # noqa: F401
    shufflenetv1,  # noqa: F401
    shufflenetv2,  # noqa: F401
    squeezenet,  # noqa: F401
    vgg,  # noqa: F401
)
from ._errors import BadOverrideError, CnnbenchError, UnknownModelError
from ._layers import IMAGENET_MEAN, IMAGENET_STD
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
    "IMAGENET_MEAN",
    "IMAGENET_STD",
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
