"""A small time-conditioned U-Net for 28x28 images (DDPM, Ho et al. 2020, made lean for CPUs).

ResBlocks with GroupNorm and scale-shift timestep modulation, self-attention only at
the lowest resolution (7x7: 49 tokens), optional class conditioning by an embedding
added to the timestep vector (index `num_classes` is the "no label" token that
classifier-free guidance drops to).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn

from tinyvid.models.blocks import SelfAttention2d, SpatialTransformer, TimestepMLP, zero_init
from tinyvid.models.motion import MOTION_KINDS, motion_layer
from tinyvid.models.text_encoder import masked_mean


@dataclass
class UNetConfig:
    in_channels: int = 1
    # pixel-unshuffle the input by this factor first: 28x28x1 -> 14x14x4 with 2, so the
    # costly full-resolution convolutions disappear (the CPU lever; see the notebook)
    patch: int = 1
    channels: tuple[int, ...] = (32, 64, 128)  # one entry per resolution: 28, 14, 7
    blocks_per_level: int = 1
    attention_levels: tuple[int, ...] = (2,)
    heads: int = 4
    groups: int = 8
    dropout: float = 0.0
    num_classes: int | None = None
    # text conditioning: attention levels become self- + cross-attention to `context` tokens of this width
    context_dim: int | None = None
    # also add the caption's pooled feature (mean over its tokens), standardised with statistics of the
    # training captions (`UNet.standardise_pooled`), to the timestep vector, at a class embedding's
    # scale: cross-attention starts near-uniform, so at first it reads every word alike and the digit
    # is one word in six to fifteen; this path hands the model the whole caption at once (chapter 04)
    pooled_context: bool = False
    # video: a temporal layer after every block ("attention": AnimateDiff motion modules, "conv": (2+1)D);
    # the model then takes clips (B, C, F, H, W). motion_text: motion modules at the attention levels also
    # cross-attend to the text.
    motion: str | None = None
    motion_text: bool = True

    def __post_init__(self):
        self.channels = tuple(self.channels)
        self.attention_levels = tuple(self.attention_levels)
        if any(c % self.groups for c in self.channels):
            raise ValueError(f"every channel count in {self.channels} must divide by groups={self.groups}")
        if self.pooled_context and self.context_dim is None:
            raise ValueError("pooled_context needs text conditioning (context_dim)")
        if self.motion is not None and self.motion not in MOTION_KINDS:
            raise ValueError(f"unknown motion {self.motion!r}: choose one of {', '.join(MOTION_KINDS)} or None")

    def to_dict(self) -> dict:
        return asdict(self)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, emb_dim: int, groups: int, dropout: float):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * cout)
        self.norm2 = nn.GroupNorm(groups, cout)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = zero_init(nn.Conv2d(cout, cout, 3, padding=1))
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class Level(nn.Module):
    """The blocks of one resolution, optionally each followed by attention."""

    def __init__(self, cin, cout, n, emb_dim, cfg: UNetConfig, attention: bool):
        super().__init__()
        self.blocks = nn.ModuleList(
            ResBlock(cin if i == 0 else cout, cout, emb_dim, cfg.groups, cfg.dropout) for i in range(n)
        )
        self.cross = attention and cfg.context_dim is not None
        self.attn = nn.ModuleList(
            (SpatialTransformer(cout, cfg.heads, cfg.context_dim, cfg.groups) if self.cross
             else SelfAttention2d(cout, cfg.heads, cfg.groups)) if attention else nn.Identity()
            for _ in range(n)
        )
        if cfg.motion is not None:  # motion modules read the caption where the spatial blocks do (a third of the cost)
            text_dim = cfg.context_dim if cfg.motion_text and attention else None
            self.motion = nn.ModuleList(motion_layer(cfg.motion, cout, cfg.heads, text_dim, cfg.groups) for _ in range(n))

    def forward(self, x, emb, context=None, context_mask=None, frames=None, clip_context=None, clip_mask=None):
        """frames: clips were folded to (b f) c h w; the motion layers see the caption once per clip."""
        for i, (block, attn) in enumerate(zip(self.blocks, self.attn)):
            x = block(x, emb)
            x = attn(x, context, context_mask) if self.cross else attn(x)
            if frames is not None:
                x = self.motion[i](x, frames, clip_context, clip_mask)
        return x


class UNet(nn.Module):
    def __init__(self, config: UNetConfig | None = None, **overrides):
        super().__init__()
        cfg = self.config = config or UNetConfig(**overrides)
        ch = cfg.channels
        emb_dim = 4 * ch[0]
        self.time = TimestepMLP(ch[0], emb_dim)
        self.label = nn.Embedding(cfg.num_classes + 1, emb_dim) if cfg.num_classes else None
        if cfg.pooled_context:
            self.pooled = nn.Linear(cfg.context_dim, emb_dim)  # std 1/sqrt(d) weights: unit-scale output, as nn.Embedding
            nn.init.normal_(self.pooled.weight, std=cfg.context_dim**-0.5)
            nn.init.zeros_(self.pooled.bias)
            self.register_buffer("pooled_mean", torch.zeros(cfg.context_dim))
            self.register_buffer("pooled_std", torch.ones(cfg.context_dim))
        packed = cfg.in_channels * cfg.patch**2
        self.stem = nn.Sequential(nn.PixelUnshuffle(cfg.patch), nn.Conv2d(packed, ch[0], 3, padding=1))
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        for i, c in enumerate(ch):
            self.down.append(Level(ch[max(i - 1, 0)], c, cfg.blocks_per_level, emb_dim, cfg, i in cfg.attention_levels))
            if i < len(ch) - 1:
                self.downsample.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
        self.mid = Level(ch[-1], ch[-1], 1, emb_dim, cfg, attention=True)
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i in reversed(range(len(ch))):
            cout = ch[max(i - 1, 0)]
            self.up.append(Level(2 * ch[i], cout, cfg.blocks_per_level, emb_dim, cfg, i in cfg.attention_levels))
            if i > 0:
                self.upsample.append(nn.Conv2d(cout, cout, 3, padding=1))
        self.out = nn.Sequential(
            nn.GroupNorm(cfg.groups, ch[0]), nn.SiLU(),
            zero_init(nn.Conv2d(ch[0], packed, 3, padding=1)), nn.PixelShuffle(cfg.patch),
        )

    @torch.no_grad()
    def standardise_pooled(self, pooled: torch.Tensor) -> None:
        """Fix the pooled path's statistics from the training captions' pooled features (N, D), the
        masked means of their token features (the text tower's second output): every caption shares
        most of its words, so unstandardised means differ only slightly."""
        if not self.config.pooled_context:
            raise ValueError("this U-Net has no pooled context path (config.pooled_context=False)")
        pooled = pooled.float()
        if len(pooled) < 2:
            raise ValueError("need at least two captions to standardise the pooled feature")
        self.pooled_mean.copy_(pooled.mean(0))
        self.pooled_std.copy_(pooled.std(0).clamp(min=1e-4))

    def embed(self, t: torch.Tensor, labels: torch.Tensor | None, context: torch.Tensor | None = None,
              context_mask: torch.Tensor | None = None) -> torch.Tensor:
        emb = self.time(t)
        if self.config.pooled_context:
            mask = context_mask if context_mask is not None else context.new_ones(context.shape[:2], dtype=torch.bool)
            pooled = masked_mean(context, mask)
            emb = emb + self.pooled((pooled - self.pooled_mean) / self.pooled_std)
        if self.label is not None:
            if labels is None:  # unconditional: the extra "no label" token
                labels = torch.full_like(t, self.config.num_classes, dtype=torch.long)
            emb = emb + self.label(labels)
        elif labels is not None:
            raise ValueError("this U-Net has no class conditioning (num_classes=None) but labels were given")
        return emb

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None,
                context: torch.Tensor | None = None, context_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, C, H, W), t (B,) timesteps -> predicted noise (or v), same shape as x.

        A text-conditioned U-Net (config.context_dim) needs `context` (B, L, context_dim) token
        features, with `context_mask` (B, L) True on real tokens. A video U-Net (config.motion)
        takes clips x (B, C, F, H, W): the spatial layers run on every frame, the motion layers across them.
        """
        if (self.config.context_dim is None) != (context is None):
            raise ValueError("context must be given exactly when the U-Net has context_dim "
                             f"(context_dim={self.config.context_dim}, context {'given' if context is not None else 'missing'})")
        video = self.config.motion is not None
        if x.ndim != (5 if video else 4):
            raise ValueError(f"this U-Net takes {'clips (B, C, F, H, W)' if video else 'images (B, C, H, W)'}, "
                             f"got shape {tuple(x.shape)}" + ("" if video else "; inflate it for video (tinyvid.models.motion)"))
        frames = x.shape[2] if video else None
        clip_context, clip_mask = context, context_mask
        if video:  # fold frames into the batch; every frame gets its clip's timestep, label and caption
            x = rearrange(x, "b c f h w -> (b f) c h w")
            t, labels, context, context_mask = (None if v is None else repeat(v, "b ... -> (b f) ...", f=frames)
                                                for v in (t, labels, context, context_mask))
        emb = self.embed(t, labels, context, context_mask)
        h = self.stem(x)
        skips = []
        extra = (frames, clip_context, clip_mask)
        for i, level in enumerate(self.down):
            h = level(h, emb, context, context_mask, *extra)
            skips.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
        h = self.mid(h, emb, context, context_mask, *extra)
        for j, level in enumerate(self.up):
            h = level(torch.cat([h, skips.pop()], dim=1), emb, context, context_mask, *extra)
            if j < len(self.upsample):
                h = self.upsample[j](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        out = self.out(h)
        return rearrange(out, "(b f) c h w -> b c f h w", f=frames) if video else out
