"""Editing with a trained denoiser: img2img (SDEdit) and inpainting, in any space (pixels or latents).

SDEdit (Meng et al., 2022): noise an input to an intermediate step t = strength * T and
denoise from there; low strength keeps the input, strength 1 ignores it.
Inpainting (RePaint-style, Lugmayr et al., 2022, without resampling): after every step the
known region is replaced by the input noised to the new step, so the model only invents
the masked region and blends it with what is kept.
"""

from __future__ import annotations

import torch

from tinyvid.diffusion.samplers import Denoiser, ddim_timesteps, sample
from tinyvid.diffusion.schedules import Schedule, q_sample


def edit_timesteps(schedule: Schedule, steps: int, strength: float) -> list[int]:
    """The tail of the DDIM timesteps that an edit of `strength` runs (diffusers' img2img rule)."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    ts = ddim_timesteps(schedule.T, steps)
    keep = min(int(round(len(ts) * strength)), len(ts))
    return ts[len(ts) - keep:]


def img2img(denoise: Denoiser, x0: torch.Tensor, schedule: Schedule, strength: float, steps: int = 50,
            eta: float = 0.0, generator: torch.Generator | None = None, prediction_type: str = "epsilon",
            clip: bool = True, progress: bool = False) -> torch.Tensor:
    """SDEdit: x0 noised to step strength*T, then denoised with DDIM from there."""
    ts = edit_timesteps(schedule, steps, strength)
    if not ts:
        return x0.clone()
    noise = torch.randn(x0.shape, generator=generator, device=x0.device)
    start = q_sample(schedule, x0, torch.full((x0.shape[0],), ts[0], device=x0.device), noise)
    return sample(denoise, tuple(x0.shape), schedule, "ddim", eta=eta, prediction_type=prediction_type, clip=clip,
                  generator=generator, device=x0.device, progress=progress, x_start=start, timesteps=ts)


def inpaint(denoise: Denoiser, known: torch.Tensor, keep: torch.Tensor, schedule: Schedule, steps: int = 50,
            eta: float = 0.0, generator: torch.Generator | None = None, prediction_type: str = "epsilon",
            clip: bool = True, progress: bool = False) -> torch.Tensor:
    """Fill where `keep` is 0 (broadcastable to `known`, 1 = keep) so that it agrees with the kept part."""
    if keep.shape[-2:] != known.shape[-2:]:
        raise ValueError(f"mask {tuple(keep.shape)} and input {tuple(known.shape)} differ in height/width")
    keep = keep.to(known.dtype)

    def paste_known(x, t_prev):
        if t_prev < 0:
            return keep * known + (1 - keep) * x
        noise = torch.randn(known.shape, generator=generator, device=known.device)
        noised = q_sample(schedule, known, torch.full((known.shape[0],), t_prev, device=known.device), noise)
        return keep * noised + (1 - keep) * x

    return sample(denoise, tuple(known.shape), schedule, "ddim", steps, eta, prediction_type=prediction_type,
                  clip=clip, generator=generator, device=known.device, progress=progress, after_step=paste_known)
