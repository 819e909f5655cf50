"""The AnimateDiff recipe on diffusers' own models: `UNet2DConditionModel` + `MotionAdapter` -> `UNetMotionModel`.

Both wrappers take tinyvid's call `(x, t, context=..., context_mask=...)`, so the same
`TextConditioned`, `diffusion_loss`, `Trainer` and `TextToVideo` drive them. diffusers' cross-attention
has no key-padding mask here (`UNetMotionModel.forward` has no `encoder_attention_mask`), so the padded
token features are attended to, as Stable Diffusion attends to CLIP's padding; the frozen text
encoder computes those features with its own mask, so they still depend only on the caption.

diffusers initialises the motion modules' `proj_out` randomly (AnimateDiff's original code zeroes it):
`zero_motion_proj_out` zeroes it, so the inflated model starts as the image model on every frame.
"""

from __future__ import annotations

import torch
from einops import repeat
from torch import nn


def tiny_unet2d_condition(channels=(64, 128), in_channels: int = 4, sample_size: int = 8, context_dim: int = 128,
                          heads: int = 4, groups: int = 8):
    """A UNet2DConditionModel of about the size of tinyvid's latent text-to-image U-Net."""
    from diffusers import UNet2DConditionModel

    n = len(channels)
    return UNet2DConditionModel(
        sample_size=sample_size, in_channels=in_channels, out_channels=in_channels, layers_per_block=1,
        block_out_channels=tuple(channels), down_block_types=("CrossAttnDownBlock2D",) * n,
        up_block_types=("CrossAttnUpBlock2D",) * n, cross_attention_dim=context_dim,
        attention_head_dim=channels[0] // heads, norm_num_groups=groups,
    )


def motion_adapter_for(unet2d, heads: int = 4, groups: int = 8, frames: int = 16):
    from diffusers import MotionAdapter

    return MotionAdapter(block_out_channels=tuple(unet2d.config.block_out_channels), motion_layers_per_block=1,
                         motion_num_attention_heads=heads, motion_norm_num_groups=groups,
                         motion_max_seq_length=max(32, frames), use_motion_mid_block=True)


class DiffusersImageUNet(nn.Module):
    """UNet2DConditionModel behind tinyvid's denoiser call (images (B, C, H, W))."""

    def __init__(self, unet2d):
        super().__init__()
        self.unet = unet2d

    @property
    def config(self):
        return self.unet.config

    def forward(self, x, t, context=None, context_mask=None):
        return self.unet(x, t, encoder_hidden_states=context).sample


class DiffusersMotionUNet(DiffusersImageUNet):
    """UNetMotionModel behind tinyvid's video denoiser call (clips (B, C, F, H, W)); `.unet` and `.config` as above."""

    def forward(self, x, t, context=None, context_mask=None):
        # diffusers' AnimateDiff pipeline repeats the prompt embeddings once per frame
        context = repeat(context, "b l d -> (b f) l d", f=x.shape[2])
        return self.unet(x, t, encoder_hidden_states=context).sample


def inflate_diffusers(image: DiffusersImageUNet, heads: int = 4, groups: int = 8, frames: int = 16) -> DiffusersMotionUNet:
    """UNetMotionModel.from_unet2d with a fresh MotionAdapter; spatial weights frozen (freeze_unet2d_params)."""
    from diffusers import UNetMotionModel

    adapter = motion_adapter_for(image.unet, heads, groups, frames)
    motion = UNetMotionModel.from_unet2d(image.unet, adapter)
    motion.freeze_unet2d_params()
    return DiffusersMotionUNet(motion.to(image.unet.device))


def zero_motion_proj_out(model: DiffusersMotionUNet) -> int:
    """Zero every motion module's output projection (AnimateDiff's init); returns how many were zeroed."""
    count = 0
    for name, module in model.unet.named_modules():
        if name.endswith("proj_out") and "motion_modules" in name:
            for p in module.parameters():
                nn.init.zeros_(p)
            count += 1
    return count


def trainable_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@torch.no_grad()
def per_frame_gap(video_model: nn.Module, image_model: nn.Module, x: torch.Tensor, t: torch.Tensor,
                  context: torch.Tensor) -> float:
    """max |video_model(clip) - image_model(each frame)|: 0 when the motion layers start as the identity."""
    from einops import rearrange

    f = x.shape[2]
    per_frame = image_model(rearrange(x, "b c f h w -> (b f) c h w"), t.repeat_interleave(f),
                            context=context.repeat_interleave(f, 0))
    return float((video_model(x, t, context=context) - rearrange(per_frame, "(b f) c h w -> b c f h w", f=f)).abs().max())
