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
from torch.overrides import TorchFunctionMode

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

    @property
    def step_peak_bytes(self) -> int:
        """The peak of a step that frees gradients between steps (`zero_grad(set_to_none=True)`).

        The backward pass frees each saved activation as it makes the gradients that need it, so the
        two never peak together; the optimizer step then holds the gradients and a temporary of their
        size (foreach AdamW's sqrt of the second moment). So a step needs weights + optimizer states +
        max(activations, 2 x gradients). `total_bytes`, everything at once, is the safe bound for
        choosing a card."""
        return self.weights_bytes + self.optimizer_bytes + max(self.activations_bytes, 2 * self.grads_bytes)

    def __str__(self) -> str:
        parts = ("weights", "grads", "optimizer", "activations")
        return f"{self.total_gib:.2f} GiB (" + ", ".join(
            f"{p} {getattr(self, p + '_bytes') / GIB:.2f}" for p in parts) + ")"


class AssumeInputChecksPass(TorchFunctionMode):
    """Meta tensors have shapes but no values: a model that checks its inputs on the way in
    (`if not mask.any(1).all(): raise ...`) gets True from `bool()` and 1 from `.item()` of a meta
    tensor instead of an error, as if the check passed on real data.

    With `fused_attention`, `F.scaled_dot_product_attention` on meta tensors saves for the backward
    pass what a fused kernel (FlashAttention, memory-efficient attention) saves: q, k, v, the mask,
    the output and a log-sum-exp per query row, never the (N, N) attention matrix that the `math`
    kernel keeps (meta tensors would otherwise take the math path).
    """

    def __init__(self, fused_attention: bool = False):
        super().__init__()
        self.fused_attention = fused_attention

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        meta = bool(args) and getattr(args[0], "is_meta", False)
        if meta and func in (torch.Tensor.__bool__, torch.Tensor.item):
            return True if func is torch.Tensor.__bool__ else 1
        if meta and self.fused_attention and func is torch.nn.functional.scaled_dot_product_attention:
            mask = kwargs.get("attn_mask", args[3] if len(args) > 3 else None)
            return _FusedAttentionSaves.apply(*args[:3], mask)
        return func(*args, **kwargs)


class _FusedAttentionSaves(torch.autograd.Function):
    """Shapes and saved tensors of a fused attention kernel (forward only: the estimate never runs backward)."""

    @staticmethod
    def forward(ctx, q, k, v, mask):
        out = q.new_empty(*q.shape[:-1], v.shape[-1])
        logsumexp = q.new_empty(q.shape[:-1], dtype=torch.float32)
        ctx.save_for_backward(q, k, v, out, logsumexp, *([] if mask is None else [mask]))
        return out

    @staticmethod
    def backward(ctx, grad):  # pragma: no cover - meta estimates stop after the forward pass
        raise RuntimeError("_FusedAttentionSaves only measures what a fused kernel saves")


def estimate_training_memory(
    make_model: Callable[[], nn.Module],
    make_batch: Callable[[], tuple],
    loss_fn: Callable[[nn.Module, tuple], torch.Tensor],
    activation_dtype: torch.dtype = torch.float32,
    fused_attention: bool = False,
) -> MemoryEstimate:
    """Estimate peak training memory for one step of `loss_fn(model, batch)` with AdamW.

    make_model / make_batch are called under the meta device, so any size is free to probe.
    Activations are counted at `activation_dtype` (fp16/bf16 autocast halves them), once per
    storage (a saved view keeps its whole storage alive; views of the weights cost nothing extra).
    fused_attention: count attention as a fused kernel (flash / memory-efficient) saves it, the
      way SDPA runs on GPUs and on CPUs for unmasked fp32 attention; else as the math kernel.
    """
    with torch.device("meta"):
        model = make_model()
        batch = make_batch()
    params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    seen: set[int] = {t.untyped_storage()._cdata for t in (*model.parameters(), *model.buffers())}
    saved = 0
    activation_bytes = torch.finfo(activation_dtype).bits // 8

    def pack(t: torch.Tensor):
        nonlocal saved
        storage = t.untyped_storage()
        if storage._cdata not in seen:
            seen.add(storage._cdata)
            saved += storage.nbytes() * min(1.0, activation_bytes / t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), AssumeInputChecksPass(fused_attention):
        loss_fn(model, batch)
    return MemoryEstimate(
        params=params,
        weights_bytes=4 * params,
        grads_bytes=4 * trainable,
        optimizer_bytes=8 * trainable,  # AdamW: exp_avg and exp_avg_sq in fp32
        activations_bytes=int(saved),
    )
