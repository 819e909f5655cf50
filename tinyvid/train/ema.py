"""Exponential moving average of weights, with the usual warm-up of the decay."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """Shadow copy of a model: w_ema <- d w_ema + (1 - d) w, d = min(decay, (1 + n) / (10 + n)).

    The warm-up matters for short CPU runs: with a fixed 0.999 the average would still
    remember the random init after 1,000 steps.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999):
        self.decay = decay
        self.updates = 0
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        ema_params = list(self.model.parameters())
        params = [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(ema_params, params, 1.0 - d)
        for b_ema, b in zip(self.model.buffers(), model.buffers()):
            b_ema.copy_(b)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.decay, self.updates = state["decay"], state["updates"]
