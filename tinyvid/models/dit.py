"""A video diffusion transformer (DiT) for rectified flow, after DiT (Peebles & Xie, 2023) and Wan2.1.

Latents (B, C, F, H, W) are cut into 3D patches (pt, ph, pw) and flattened to tokens in (f h w)
order; every block is self-attention with 3D RoPE (the head split over t, h and w, Wan's way),
then the text, then an MLP. The timestep modulates every block through adaLN-Zero: LayerNorms
without parameters, whose shift, scale and residual gate are regressed from the timestep
embedding by a zero-initialised layer, so each block starts as the identity and the network
as the zero function (the final layer is zero-initialised too).

Two ways to read the text (`text_mode`):
- "cross" (Wan, PixArt-α): the video tokens cross-attend to the caption after self-attention;
- "joint" (CogVideoX, SD3's MM-DiT): caption and video tokens form one sequence in self-attention
  and share the MLP, each stream with its own adaLN modulation; RoPE rotates only the video
  tokens (a caption has no place in the clip).
Padding tokens of the caption are masked out of every attention, so they never change the output.

Image-to-video (`image_to_video=True`): the clean latent of the first frame is concatenated
along channels with a mask channel marking it, as Wan-I2V and CogVideoX-I2V do.
`WanVideoTransformer` wraps diffusers' `WanTransformer3DModel` behind the same call.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from tinyvid.models.blocks import Attention, TimestepMLP, grid_positions, rope_3d_angles, zero_init

TEXT_MODES = ("cross", "joint")


@dataclass
class VideoDiTConfig:
    in_channels: int = 8  # latent channels (the output has as many)
    patch: tuple[int, int, int] = (1, 2, 2)  # (pt, ph, pw)
    dim: int = 256
    depth: int = 6
    heads: int = 4
    mlp_ratio: float = 4.0
    context_dim: int = 128  # width of the text encoder's token features
    text_mode: str = "cross"
    freq_dim: int = 256  # sinusoidal features of the timestep
    timestep_scale: float = 1000.0  # t in [0, 1] is embedded as t * 1000, the range the sinusoids resolve
    rope_theta: float = 10000.0
    qk_norm: bool = True
    image_to_video: bool = False

    def __post_init__(self):
        self.patch = tuple(self.patch)
        if self.text_mode not in TEXT_MODES:
            raise ValueError(f"unknown text_mode {self.text_mode!r}: choose one of {', '.join(TEXT_MODES)}")
        if self.dim % self.heads or (self.dim // self.heads) % 2:
            raise ValueError(f"dim={self.dim} must split into {self.heads} heads of even width")
        if len(self.patch) != 3 or min(self.patch) < 1:
            raise ValueError(f"patch is (pt, ph, pw) >= 1, got {self.patch}")

    @property
    def head_dim(self) -> int:
        return self.dim // self.heads

    @property
    def input_channels(self) -> int:
        """Channels the patch embedding reads: x_t, plus the first-frame latent and its mask for I2V."""
        return 2 * self.in_channels + 1 if self.image_to_video else self.in_channels

    def to_dict(self) -> dict:
        return asdict(self)


# named sizes: `tiny` for tests; XS / cpu-sized; S about DiT-S (~30M) for the full profile
VIDEO_DIT_SIZES: dict[str, dict] = {
    "tiny": dict(dim=32, depth=2, heads=2, context_dim=16, freq_dim=32),
    "XS": dict(dim=192, depth=6, heads=3),
    "S": dict(dim=384, depth=9, heads=6),
}


def video_dit_config(size: str, **overrides) -> VideoDiTConfig:
    if size not in VIDEO_DIT_SIZES:
        raise KeyError(f"unknown VideoDiT size {size!r}: choose one of {', '.join(VIDEO_DIT_SIZES)}")
    return VideoDiTConfig(**{**VIDEO_DIT_SIZES[size], **overrides})


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


def layer_norm(dim: int) -> nn.LayerNorm:
    """adaLN's norm: no parameters of its own, the timestep supplies shift and scale."""
    return nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)


def mlp(dim: int, ratio: float) -> nn.Sequential:
    hidden = int(dim * ratio)
    return nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim))


class CrossDiTBlock(nn.Module):
    """adaLN-Zero self-attention (3D RoPE) -> cross-attention to the text -> adaLN-Zero MLP (Wan's block)."""

    def __init__(self, cfg: VideoDiTConfig):
        super().__init__()
        d = cfg.dim
        self.norm1, self.attn = layer_norm(d), Attention(d, cfg.heads, qk_norm=cfg.qk_norm)
        self.norm_cross, self.cross = nn.LayerNorm(d, eps=1e-6), Attention(d, cfg.heads, qk_norm=cfg.qk_norm)
        zero_init(self.cross.out)  # the ungated text branch: zero so the block starts as the identity
        self.norm2, self.mlp = layer_norm(d), mlp(d, cfg.mlp_ratio)
        self.adaLN = nn.Sequential(nn.SiLU(), zero_init(nn.Linear(d, 6 * d)))

    def forward(self, x, c, rope, text, text_mask):
        # x (B, N, D) video tokens, c (B, D) timestep embedding, rope (N, hd/2), text (B, L, D), text_mask (B, L)
        shift1, scale1, gate1, shift2, scale2, gate2 = self.adaLN(c).unsqueeze(1).chunk(6, dim=-1)  # (B, 1, D)
        x = x + gate1 * self.attn(modulate(self.norm1(x), shift1, scale1), rope=rope)
        x = x + self.cross(self.norm_cross(x), text, text_mask)
        x = x + gate2 * self.mlp(modulate(self.norm2(x), shift2, scale2))
        return x, text


class JointDiTBlock(nn.Module):
    """CogVideoX's block: one self-attention and one MLP over [text; video] tokens, each stream
    modulated and gated by its own adaLN-Zero ("expert adaLN"); RoPE only on the video part."""

    def __init__(self, cfg: VideoDiTConfig):
        super().__init__()
        d = cfg.dim
        self.norm1, self.attn = layer_norm(d), Attention(d, cfg.heads, qk_norm=cfg.qk_norm)
        self.norm2, self.mlp = layer_norm(d), mlp(d, cfg.mlp_ratio)
        self.adaLN = nn.Sequential(nn.SiLU(), zero_init(nn.Linear(d, 12 * d)))

    def forward(self, x, c, rope, text, text_mask):
        # rope (L + N, hd/2) with zero angles on the L text positions
        video_mod, text_mod = self.adaLN(c).unsqueeze(1).chunk(2, dim=-1)
        v_shift1, v_scale1, v_gate1, v_shift2, v_scale2, v_gate2 = video_mod.chunk(6, dim=-1)
        t_shift1, t_scale1, t_gate1, t_shift2, t_scale2, t_gate2 = text_mod.chunk(6, dim=-1)
        n_text = text.shape[1]
        keys = torch.cat([text_mask, text_mask.new_ones(x.shape[:2])], dim=1)  # (B, L + N)
        h = torch.cat([modulate(self.norm1(text), t_shift1, t_scale1), modulate(self.norm1(x), v_shift1, v_scale1)], 1)
        a_text, a_video = self.attn(h, key_mask=keys, rope=rope).split([n_text, x.shape[1]], dim=1)
        text, x = text + t_gate1 * a_text, x + v_gate1 * a_video
        h = torch.cat([modulate(self.norm2(text), t_shift2, t_scale2), modulate(self.norm2(x), v_shift2, v_scale2)], 1)
        m_text, m_video = self.mlp(h).split([n_text, x.shape[1]], dim=1)
        return x + v_gate2 * m_video, text + t_gate2 * m_text


def patchify(x: torch.Tensor, patch: tuple[int, int, int]) -> torch.Tensor:
    """(B, C, F, H, W) -> tokens (B, N, pt*ph*pw*C), N = (F/pt)(H/ph)(W/pw) in (f h w) order: a 3D patch is one token."""
    pt, ph, pw = patch
    return rearrange(x, "b c (f pf) (h ph) (w pw) -> b (f h w) (pf ph pw c)", pf=pt, ph=ph, pw=pw)


def unpatchify(tokens: torch.Tensor, grid: tuple[int, int, int], patch: tuple[int, int, int]) -> torch.Tensor:
    """Inverse of patchify: tokens (B, N, pt*ph*pw*C) on a (f, h, w) grid -> (B, C, f*pt, h*ph, w*pw)."""
    (f, h, w), (pt, ph, pw) = grid, patch
    return rearrange(tokens, "b (f h w) (pf ph pw c) -> b c (f pf) (h ph) (w pw)", f=f, h=h, w=w, pf=pt, ph=ph, pw=pw)


def first_frame_condition(x: torch.Tensor, first_frame: torch.Tensor) -> torch.Tensor:
    """Image-to-video input (Wan-I2V, CogVideoX-I2V): [x_t | clean first latent frame, zeros after |
    mask, 1 on frame 0] along channels: (B, C, F, H, W), (B, C, 1, H, W) -> (B, 2C + 1, F, H, W)."""
    if first_frame.shape != (*x.shape[:2], 1, *x.shape[3:]):
        raise ValueError(f"first_frame must be (B, C, 1, H, W) = {(*x.shape[:2], 1, *x.shape[3:])}, "
                         f"got {tuple(first_frame.shape)}")
    later = x.shape[2] - 1
    image = F.pad(first_frame, (0, 0, 0, 0, 0, later))
    mask = F.pad(torch.ones_like(first_frame[:, :1]), (0, 0, 0, 0, 0, later))
    return torch.cat([x, image.to(x.dtype), mask.to(x.dtype)], dim=1)


class VideoDiT(nn.Module):
    """(x (B, C, F, H, W), t (B,) in [0, 1], context (B, L, context_dim), context_mask (B, L)) -> velocity."""

    def __init__(self, config: VideoDiTConfig | None = None, **overrides):
        super().__init__()
        cfg = self.config = config or VideoDiTConfig(**overrides)
        d, patch_volume = cfg.dim, math.prod(cfg.patch)
        self.patch_embed = nn.Linear(cfg.input_channels * patch_volume, d)
        self.time_embed = TimestepMLP(cfg.freq_dim, d)
        # Wan's text embedder: the caption features are projected once, every block reads them at width d
        self.text_proj = nn.Sequential(nn.Linear(cfg.context_dim, d), nn.GELU(approximate="tanh"), nn.Linear(d, d))
        block = CrossDiTBlock if cfg.text_mode == "cross" else JointDiTBlock
        self.blocks = nn.ModuleList(block(cfg) for _ in range(cfg.depth))
        self.norm_out = layer_norm(d)
        self.adaLN_out = nn.Sequential(nn.SiLU(), zero_init(nn.Linear(d, 2 * d)))
        self.proj_out = zero_init(nn.Linear(d, cfg.in_channels * patch_volume))

    def token_grid(self, x: torch.Tensor) -> tuple[int, int, int]:
        cfg = self.config
        if x.ndim != 5 or x.shape[1] != cfg.in_channels or any(n % p for n, p in zip(x.shape[2:], cfg.patch)):
            raise ValueError(f"expected latents (B, {cfg.in_channels}, F, H, W) with (F, H, W) divisible by "
                             f"patch={cfg.patch}, got {tuple(x.shape)}")
        return tuple(n // p for n, p in zip(x.shape[2:], cfg.patch))

    def forward(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor,
                context_mask: torch.Tensor | None = None, first_frame: torch.Tensor | None = None) -> torch.Tensor:
        cfg = self.config
        f, h, w = self.token_grid(x)
        if context_mask is None:
            context_mask = torch.ones(context.shape[:2], dtype=torch.bool, device=context.device)
        if not context_mask.any(1).all():
            raise ValueError("every caption needs at least one real token (a row of context_mask is all False)")
        if cfg.image_to_video != (first_frame is not None):
            raise ValueError(f"first_frame must be given exactly when image_to_video={cfg.image_to_video}")
        inp = first_frame_condition(x, first_frame) if cfg.image_to_video else x
        tokens = self.patch_embed(patchify(inp, cfg.patch))  # (B, N, D)
        c = self.time_embed(t * cfg.timestep_scale)  # (B, D)
        text = self.text_proj(context)  # (B, L, D)
        rope = rope_3d_angles(grid_positions(f, h, w, x.device), cfg.head_dim, cfg.rope_theta)  # (N, hd/2)
        if cfg.text_mode == "joint":  # zero angles: the caption tokens are not rotated
            rope = torch.cat([rope.new_zeros(text.shape[1], rope.shape[1]), rope])
        for block in self.blocks:
            tokens, text = block(tokens, c, rope, text, context_mask)
        shift, scale = self.adaLN_out(c).unsqueeze(1).chunk(2, dim=-1)
        out = self.proj_out(modulate(self.norm_out(tokens), shift, scale))  # (B, N, C * pt * ph * pw)
        return unpatchify(out, (f, h, w), cfg.patch)


# --- diffusers' WanTransformer3DModel behind the same call ---

class WanVideoTransformer(nn.Module):
    """diffusers `WanTransformer3DModel` called like `VideoDiT`: (x, t in [0, 1], context, context_mask).

    Wan's cross-attention has no mask: its pipeline zero-pads the text features to a fixed length
    (512 T5 tokens), so this wrapper zeroes the padding features the same way. The padded tokens
    still pass Wan's text embedder (biases) and are attended to, so unlike VideoDiT the output
    depends on how much padding there is.
    """

    def __init__(self, config: dict | None = None, **overrides):
        super().__init__()
        from diffusers import WanTransformer3DModel

        self.wan_config = {**(config or {}), **overrides}
        self.model = WanTransformer3DModel(**self.wan_config)
        cfg = self.model.config
        self.image_to_video = cfg.in_channels == 2 * cfg.out_channels + 1

    @property
    def config(self):
        return self.model.config

    def forward(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor,
                context_mask: torch.Tensor | None = None, first_frame: torch.Tensor | None = None) -> torch.Tensor:
        if context_mask is not None:
            context = context * context_mask.unsqueeze(-1).to(context.dtype)
        if self.image_to_video != (first_frame is not None):
            raise ValueError(f"first_frame must be given exactly when the model is image-to-video ({self.image_to_video})")
        inp = first_frame_condition(x, first_frame) if first_frame is not None else x
        return self.model(inp, t * 1000.0, context, return_dict=False)[0]  # Wan's timesteps are sigma * 1000


def wan_config_like(config: VideoDiTConfig, **overrides) -> dict:
    """A `WanTransformer3DModel` config with VideoDiT's width, depth, heads, patch and text width, whose
    feed-forward width is chosen so that both models have about the same number of parameters
    (Wan's blocks share one timestep projection, where adaLN-Zero has a modulation layer per block)."""
    from diffusers import WanTransformer3DModel

    wan = dict(patch_size=config.patch, num_attention_heads=config.heads, attention_head_dim=config.head_dim,
               in_channels=config.input_channels, out_channels=config.in_channels, text_dim=config.context_dim,
               freq_dim=config.freq_dim, num_layers=config.depth, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
               **overrides)
    if "ffn_dim" in wan:
        return wan
    with torch.device("meta"):  # count parameters without allocating them
        target = count_parameters(VideoDiT(config))
        # parameters are linear in ffn_dim: two probes give the slope
        a, b = (count_parameters(WanTransformer3DModel(**wan, ffn_dim=n)) for n in (config.dim, 2 * config.dim))
    slope = (b - a) / config.dim
    wan["ffn_dim"] = max(8, round((config.dim + (target - a) / slope) / 8) * 8)
    return wan

def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
