"""Shared helpers for the tests: building models on the meta device keeps counting fast and allocation-free."""

from __future__ import annotations

import pytest
import torch
from torch import nn


def param_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    """state_dict keys and shapes, the checkpoint format."""
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def randomize_bn_stats(model: nn.Module, generator: torch.Generator) -> None:
    """Give BatchNorm non-trivial running statistics, so that an eps or momentum mismatch shows in eval outputs."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.normal_(0.0, 0.1, generator=generator)
            m.running_var.uniform_(0.5, 1.5, generator=generator)
            m.weight.data.uniform_(0.5, 1.5, generator=generator)
            m.bias.data.normal_(0.0, 0.1, generator=generator)


@pytest.fixture
def generator() -> torch.Generator:
    return torch.Generator().manual_seed(0)
