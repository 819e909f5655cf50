"""Text conditioning: a frozen text encoder in front of a denoiser, as Stable Diffusion keeps its CLIP text tower.

`TextConditioned(denoiser, text_encoder)(x, t, ids, mask)` encodes the caption tokens without
gradients and calls `denoiser(x, t, context=token_features, context_mask=mask)`, so the training
loss (`tinyvid.diffusion.diffusion_loss`, flow matching) only ever sees (x, t, ids, mask) and
caption dropout for classifier-free guidance is a swap of ids and mask for the empty caption's.
"""

from __future__ import annotations

import torch
from torch import nn

from tinyvid.data.tokenizer import encode_batch


class TextConditioned(nn.Module):
    def __init__(self, denoiser: nn.Module, text_encoder: nn.Module):
        super().__init__()
        self.denoiser = denoiser
        self.text_encoder = text_encoder.eval().requires_grad_(False)

    @property
    def config(self):
        return self.denoiser.config

    def train(self, mode: bool = True):
        super().train(mode)
        self.text_encoder.eval()  # frozen: no dropout, whatever the trainer asks
        return self

    def encode_text(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.text_encoder(ids, mask)[0]

    def standardise_pooled(self, ids: torch.Tensor, mask: torch.Tensor, batch_size: int = 1024) -> None:
        """Statistics of the training captions for a denoiser with a pooled context path
        (`UNetConfig.pooled_context`), from the frozen text tower's pooled output in batches (only the
        (N, D) means are kept, never every caption's token features)."""
        device = next(self.text_encoder.parameters()).device
        with torch.no_grad():
            pooled = torch.cat([self.text_encoder(ids[i:i + batch_size].to(device), mask[i:i + batch_size].to(device))[1]
                                for i in range(0, len(ids), batch_size)])
        self.denoiser.standardise_pooled(pooled)

    def forward(self, x: torch.Tensor, t: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.denoiser(x, t, context=self.encode_text(ids, mask), context_mask=mask)


def caption_tokens(tokenizer, captions: list[str], max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """ids and mask padded to exactly max_len, so the empty caption stacks with any batch (CFG)."""
    ids, mask = encode_batch(tokenizer, list(captions), max_len=max_len)
    if not mask[:, -1].logical_not().all():
        longest = int(mask.sum(1).max())
        raise ValueError(f"a caption has {longest} or more tokens, more than max_len={max_len} allows (it must end in padding)")
    return ids, mask


def null_caption(tokenizer, max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The empty caption (<bos> <eos>): the unconditional input that caption dropout trains and CFG uses."""
    ids, mask = caption_tokens(tokenizer, [""], max_len)
    return ids[0], mask[0]
