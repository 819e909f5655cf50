"""Building blocks shared by the course's models."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of (possibly fractional) timesteps: (B,) -> (B, dim), [cos | sin]."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return F.pad(emb, (0, dim % 2))


class TimestepMLP(nn.Module):
    """Sinusoidal features -> MLP, the conditioning vector every block receives."""

    def __init__(self, freq_dim: int, dim: int):
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(timestep_embedding(t, self.freq_dim))


def zero_init(module: nn.Module) -> nn.Module:
    """Zero a layer so the residual branch it closes starts as the identity."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class SelfAttention2d(nn.Module):
    """Multi-head self-attention over the pixels of a feature map, on SDPA."""

    def __init__(self, channels: int, heads: int = 4, groups: int = 8):
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = zero_init(nn.Conv2d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        q, k, v = rearrange(self.qkv(self.norm(x)), "b (three n d) h w -> three b n (h w) d", three=3, n=self.heads)
        out = F.scaled_dot_product_attention(q, k, v)
        return x + self.proj(rearrange(out, "b n (h w) d -> b (n d) h w", h=h, w=w))


class Attention(nn.Module):
    """Multi-head attention on SDPA: self-attention, or cross-attention to a `context`.

    `key_mask` (B, S) is True on the keys that may be attended to (padding is False).
    `qk_norm`: RMS-normalise queries and keys across heads (Wan, SD3), which keeps attention
    logits bounded as a DiT trains. `rope` (self-attention only): RoPE angles (N, head_dim / 2)
    of the N positions of x (`rope_3d_angles`), rotating queries and keys.
    """

    def __init__(self, dim: int, heads: int, context_dim: int | None = None, qk_norm: bool = False):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim={dim} must divide by heads={heads}")
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(context_dim or dim, 2 * dim)
        self.out = nn.Linear(dim, dim)
        self.norm_q = nn.RMSNorm(dim, eps=1e-6) if qk_norm else nn.Identity()
        self.norm_k = nn.RMSNorm(dim, eps=1e-6) if qk_norm else nn.Identity()

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None,
                key_mask: torch.Tensor | None = None, rope: torch.Tensor | None = None) -> torch.Tensor:
        if rope is not None and context is not None:
            raise ValueError("rope rotates the positions of x: it applies to self-attention only")
        context = x if context is None else context
        k, v = self.kv(context).chunk(2, dim=-1)
        q, k, v = (rearrange(a, "b n (h d) -> b h n d", h=self.heads) for a in (self.norm_q(self.q(x)), self.norm_k(k), v))
        if rope is not None:
            q, k = apply_rope(q, rope), apply_rope(k, rope)
        mask = None if key_mask is None else key_mask[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out(rearrange(out, "b h n d -> b n (h d)"))


class TransformerBlock(nn.Module):
    """Pre-LayerNorm transformer block: self-attention, optional cross-attention, MLP."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, context_dim: int | None = None):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), Attention(dim, heads)
        self.cross = Attention(dim, heads, context_dim) if context_dim else None
        self.norm_cross = nn.LayerNorm(dim) if context_dim else None
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x, key_mask=None, context=None, context_mask=None):
        x = x + self.attn(self.norm1(x), key_mask=key_mask)
        if self.cross is not None:
            x = x + self.cross(self.norm_cross(x), context, context_mask)
        return x + self.mlp(self.norm2(x))


class SpatialTransformer(nn.Module):
    """Self- then cross-attention over the pixels of a feature map, as Stable Diffusion's U-Net does
    (its Transformer2DModel): text tokens enter the image model here. Zero-initialised output, so a
    freshly added block is the identity."""

    def __init__(self, channels: int, heads: int, context_dim: int, groups: int = 8):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        self.proj_in = nn.Conv2d(channels, channels, 1)
        self.block = TransformerBlock(channels, heads, context_dim=context_dim)
        self.proj_out = zero_init(nn.Conv2d(channels, channels, 1))

    def forward(self, x: torch.Tensor, context: torch.Tensor, context_mask: torch.Tensor | None = None) -> torch.Tensor:
        h, w = x.shape[-2:]
        tokens = rearrange(self.proj_in(self.norm(x)), "b c h w -> b (h w) c")
        tokens = self.block(tokens, context=context, context_mask=context_mask)
        return x + self.proj_out(rearrange(tokens, "b (h w) c -> b c h w", h=h, w=w))


# --- rotary position embeddings (RoPE): 1D, and 3D split over (t, h, w) as in Wan2.1 ---

def rope_angles(positions: torch.Tensor, dim: int, theta: float = 10000.0) -> torch.Tensor:
    """Angles (N, dim / 2) by which RoPE turns the pairs of a dim-wide head at positions (N,):
    pair i turns by position * theta^(-2i / dim), fast pairs for fine offsets, slow for coarse."""
    if dim % 2:
        raise ValueError(f"RoPE needs an even dimension, got {dim}")
    freqs = theta ** (-torch.arange(0, dim, 2, dtype=torch.float64, device=positions.device) / dim)
    return (positions.double()[:, None] * freqs).float()


def rope_3d_angles(positions: torch.Tensor, head_dim: int, theta: float = 10000.0) -> torch.Tensor:
    """Angles (N, head_dim / 2) for (t, h, w) positions (N, 3): Wan's split of the head, 2 * (head_dim // 6)
    dims each for h and w, the rest for t, each axis an independent 1D RoPE."""
    hw = 2 * (head_dim // 6)
    dims = (head_dim - 2 * hw, hw, hw)
    if min(dims) < 2:
        raise ValueError(f"head_dim={head_dim} is too small to split over (t, h, w)")
    return torch.cat([rope_angles(positions[:, i], d, theta) for i, d in enumerate(dims)], dim=-1)


def grid_positions(frames: int, height: int, width: int, device=None) -> torch.Tensor:
    """(t, h, w) coordinates (N, 3) of a token grid, in the (f h w) order that patchify flattens to."""
    axes = [torch.arange(n, device=device) for n in (frames, height, width)]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, 3)


def apply_rope(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rotate consecutive pairs (x[2i], x[2i+1]) of x (..., N, D) by angles (N, D / 2): the pair is the
    complex number x[2i] + i x[2i+1] times e^(i angle), the convention of Wan and diffusers."""
    x1, x2 = rearrange(x.float(), "... (d two) -> two ... d", two=2)
    cos, sin = angles.cos(), angles.sin()
    return rearrange([x1 * cos - x2 * sin, x1 * sin + x2 * cos], "two ... d -> ... (d two)").type_as(x)
