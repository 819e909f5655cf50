"""A small transformer text encoder with padding masks (the course's stand-in for CLIP/T5 text towers)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from tinyvid.models.blocks import TransformerBlock


@dataclass
class TextEncoderConfig:
    vocab_size: int
    dim: int = 128
    depth: int = 2
    heads: int = 4
    max_len: int = 32
    mlp_ratio: float = 4.0

    def to_dict(self) -> dict:
        return asdict(self)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of x (B, L, D) over the positions where mask (B, L) is True: (B, D)."""
    weights = mask.unsqueeze(-1).to(x.dtype)
    return (x * weights).sum(1) / weights.sum(1).clamp(min=1)


class TextEncoder(nn.Module):
    """ids (B, L) + mask (B, L, True on real tokens) -> token features (B, L, D) and a pooled (B, D).

    Pooling is the mean over real tokens, so padding never changes the result (tested).
    """

    def __init__(self, config: TextEncoderConfig | None = None, **overrides):
        super().__init__()
        cfg = self.config = config or TextEncoderConfig(**overrides)
        self.embed = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.pos = nn.Parameter(torch.randn(1, cfg.max_len, cfg.dim) * 0.02)
        self.blocks = nn.ModuleList(TransformerBlock(cfg.dim, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.dim)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if ids.shape[1] > self.config.max_len:
            raise ValueError(f"{ids.shape[1]} tokens exceed max_len={self.config.max_len}")
        if not mask.any(1).all():
            raise ValueError("every text needs at least one real token (a row of the mask is all False)")
        x = self.embed(ids) + self.pos[:, : ids.shape[1]]
        for block in self.blocks:
            x = block(x, key_mask=mask)
        x = self.norm(x)
        return x, masked_mean(x, mask)
