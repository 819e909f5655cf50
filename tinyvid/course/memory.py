"""Training-memory estimate: weights, gradients, AdamW states and saved activations.

The activations are measured, not guessed: one forward pass on PyTorch's `meta` device
(shapes only, no compute, no memory) with a saved-tensors hook that adds up every tensor
autograd keeps for the backward pass. That is what lets the test suite check, on a CPU,
that the `gpu` and `full` configs fit the cards they target.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

GIB = 1024**3
CARDS_GIB = {"T4": 16.0, "A100-40GB": 40.0, "H100-80GB": 80.0}


@dataclass
class MemoryEstimate:
    params: int
    weights_bytes: int
    grads_bytes: int
    optimizer_bytes: int
    activations_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.grads_bytes + self.optimizer_bytes + self.activations_bytes

    @property
    def total_gib(self) -> float:
        return self.total_bytes / GIB

    def __str__(self) -> str:
        parts = ("weights", "grads", "optimizer", "activations")
        return f"{self.total_gib:.2f} GiB (" + ", ".join(
            f"{p} {getattr(self, p + '_bytes') / GIB:.2f}" for p in parts) + ")"


def estimate_training_memory(
    make_model: Callable[[], nn.Module],
    make_batch: Callable[[], tuple],
    loss_fn: Callable[[nn.Module, tuple], torch.Tensor],
    activation_dtype: torch.dtype = torch.float32,
) -> MemoryEstimate:
    """Estimate peak training memory for one step of `loss_fn(model, batch)` with AdamW.

    make_model / make_batch are called under the meta device, so any size is free to probe.
    Activations are counted at `activation_dtype` (fp16/bf16 autocast halves them).
    """
    with torch.device("meta"):
        model = make_model()
        batch = make_batch()
    params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    seen: set[int] = set()
    saved = 0

    def pack(t: torch.Tensor):
        nonlocal saved
        key = id(t) if t.is_meta else t.untyped_storage().data_ptr()
        if key not in seen and not isinstance(t, nn.Parameter):
            seen.add(key)
            saved += t.numel() * min(t.element_size(), torch.finfo(activation_dtype).bits // 8)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss_fn(model, batch)
    return MemoryEstimate(
        params=params,
        weights_bytes=4 * params,
        grads_bytes=4 * trainable,
        optimizer_bytes=8 * trainable,  # AdamW: exp_avg and exp_avg_sq in fp32
        activations_bytes=saved,
    )
