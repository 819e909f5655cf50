"""Training throughput of a model on one batch: images/s over a few timed AdamW steps."""

from __future__ import annotations

import time
from typing import Callable

import torch
from torch import nn


def training_throughput(model: nn.Module, loss_fn: Callable, batch: tuple, steps: int = 10, warmup: int = 2) -> float:
    """Images (batch rows) per second of forward + backward + AdamW step, after `warmup` untimed steps.

    The model's weights change (it is trained on the batch); pass a fresh or copied model.
    """
    if steps < 1:
        raise ValueError(f"steps must be positive, got {steps}")
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    start = 0.0
    for i in range(warmup + steps):
        if i == warmup:
            start = time.perf_counter()
        out = loss_fn(model, batch)
        loss = out[0] if isinstance(out, tuple) else out
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return steps * len(batch[0]) / (time.perf_counter() - start)
