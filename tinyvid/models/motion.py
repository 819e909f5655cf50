"""Temporal layers that turn an image U-Net into a video U-Net (AnimateDiff, Guo et al. 2023).

A motion module attends over the frames at each spatial position: features (b f) c h w are
reshaped to (b h w) f c, get a sinusoidal frame-position encoding, pass a temporal transformer
block and come back as a residual whose output projection is zero-initialised, so an inflated
model starts exactly as the image model applied to every frame.

On Moving MNIST the direction of motion exists only in the caption (a still frame does not show
it), so the motion module may also cross-attend to the caption tokens (`context_dim`). AnimateDiff's
motion modules are text-free because on real footage the appearance already implies the motion.

`TemporalConv` is the (2+1)D baseline's temporal layer: a 1D convolution over frames at each
spatial position (R(2+1)D, Make-A-Video), residual and zero-initialised the same way.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn

from tinyvid.models.blocks import TransformerBlock, timestep_embedding, zero_init

MOTION_KINDS = ("attention", "conv")


def frames_to_sequences(x: torch.Tensor, frames: int) -> torch.Tensor:
    """(b f) c h w -> (b h w) f c: one sequence of frames per spatial position."""
    return rearrange(x, "(b f) c h w -> (b h w) f c", f=frames)


def sequences_to_frames(seq: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(b h w) f c -> (b f) c h w, the inverse of `frames_to_sequences`."""
    return rearrange(seq, "(b h w) f c -> (b f) c h w", h=h, w=w)


def frame_positions(frames: int, dim: int, device=None) -> torch.Tensor:
    """Sinusoidal encoding of frame indices 0..frames-1: (frames, dim), as AnimateDiff's PositionalEncoding."""
    return timestep_embedding(torch.arange(frames, device=device), dim)


class MotionModule(nn.Module):
    """Temporal self-attention (+ optional cross-attention to text) over the frames at each pixel."""

    def __init__(self, channels: int, heads: int, context_dim: int | None = None, groups: int = 8):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        self.proj_in = nn.Linear(channels, channels)
        self.block = TransformerBlock(channels, heads, context_dim=context_dim)
        self.proj_out = zero_init(nn.Linear(channels, channels))

    def forward(self, x: torch.Tensor, frames: int, context: torch.Tensor | None = None,
                context_mask: torch.Tensor | None = None) -> torch.Tensor:
        bf, c, h, w = x.shape
        tokens = frames_to_sequences(self.norm(x), frames)
        pos = frame_positions(frames, c, x.device).to(tokens.dtype)
        tokens = self.proj_in(tokens) + pos  # frame order is only known through this encoding
        if self.block.cross is not None:
            context = repeat(context, "b l d -> (b hw) l d", hw=h * w)
            context_mask = None if context_mask is None else repeat(context_mask, "b l -> (b hw) l", hw=h * w)
            tokens = self.block(tokens, context=context, context_mask=context_mask)
        else:
            tokens = self.block(tokens)
        return x + sequences_to_frames(self.proj_out(tokens), h, w)


class TemporalConv(nn.Module):
    """(2+1)D: GroupNorm, SiLU, a kernel-3 convolution across frames at each pixel; zero-init residual."""

    def __init__(self, channels: int, groups: int = 8, kernel: int = 3):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        self.conv = zero_init(nn.Conv1d(channels, channels, kernel, padding=kernel // 2))

    def forward(self, x: torch.Tensor, frames: int, context=None, context_mask=None) -> torch.Tensor:
        h, w = x.shape[-2:]
        seq = rearrange(F.silu(self.norm(x)), "(b f) c h w -> (b h w) c f", f=frames)
        return x + rearrange(self.conv(seq), "(b h w) c f -> (b f) c h w", h=h, w=w)


def motion_layer(kind: str, channels: int, heads: int, context_dim: int | None, groups: int) -> nn.Module:
    if kind == "attention":
        return MotionModule(channels, heads, context_dim, groups)
    if kind == "conv":
        return TemporalConv(channels, groups)
    raise ValueError(f"unknown motion kind {kind!r}: choose one of {', '.join(MOTION_KINDS)}")


def is_motion_parameter(name: str) -> bool:
    return ".motion." in f".{name}"


def inflate(image_unet: nn.Module, kind: str = "attention", text_in_motion: bool = True) -> nn.Module:
    """A video U-Net with the image U-Net's weights and fresh motion layers (identity at init)."""
    from dataclasses import replace

    from tinyvid.models.unet import UNet

    if image_unet.config.motion is not None:
        raise ValueError("this U-Net already has motion layers")
    cfg = replace(image_unet.config, motion=kind, motion_text=text_in_motion)
    video = UNet(cfg)
    missing, unexpected = video.load_state_dict(image_unet.state_dict(), strict=False)
    if unexpected or not all(is_motion_parameter(k) for k in missing):
        raise RuntimeError(f"inflation mismatch: missing {missing[:3]}, unexpected {unexpected[:3]}")
    return video.to(next(image_unet.parameters()).device)


def freeze_spatial(video_unet: nn.Module) -> int:
    """Train only the motion layers (AnimateDiff); returns the number of trainable parameters."""
    for name, p in video_unet.named_parameters():
        p.requires_grad_(is_motion_parameter(name))
    return sum(p.numel() for p in video_unet.parameters() if p.requires_grad)
