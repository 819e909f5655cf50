"""Samplers: DDPM ancestral and DDIM (eta), with classifier-free guidance as a wrapper.

A sampler only needs `denoise(x_t, t) -> model output`; guidance, conditioning and
autocast are composed around that function, so one loop serves every model.
"""

from __future__ import annotations

from typing import Callable

import torch
from tqdm.auto import tqdm

from tinyvid.diffusion.schedules import Schedule, gather, posterior_mean_variance, to_eps_and_x0

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
SPACINGS = ("leading", "trailing", "linspace")


def ddpm_step(schedule, model_output, t: int, xt, generator=None, prediction_type="epsilon", clip=True, noise=None):
    """One ancestral step x_t -> x_{t-1} with sigma_t^2 = beta-tilde_t (diffusers' 'fixed_small')."""
    tt = torch.full((xt.shape[0],), t, dtype=torch.long)
    _, x0 = to_eps_and_x0(schedule, xt, tt, model_output, prediction_type, clip)
    mean, var = posterior_mean_variance(schedule, x0, xt, tt)
    if t == 0:
        return mean
    if noise is None:
        noise = torch.randn(xt.shape, generator=generator, device=xt.device, dtype=xt.dtype)
    return mean + var.clamp(min=1e-20).sqrt() * noise


def ddim_timesteps(T: int, steps: int, spacing: str = "trailing") -> list[int]:
    """Decreasing timesteps, equal to diffusers' `timestep_spacing` options."""
    if not 0 < steps <= T:
        raise ValueError(f"steps must be in 1..{T}, got {steps}")
    if spacing == "leading":
        ts = [i * (T // steps) for i in range(steps)]
    elif spacing == "trailing":
        ts = [round(T - i * T / steps) - 1 for i in range(steps)][::-1]
    elif spacing == "linspace":
        ts = torch.linspace(0, T - 1, steps).round().long().tolist()
    else:
        raise ValueError(f"unknown spacing {spacing!r}: choose one of {', '.join(SPACINGS)}")
    return sorted(set(ts), reverse=True)


def ddim_step(schedule, model_output, t: int, t_prev: int, xt, eta=0.0, generator=None,
              prediction_type="epsilon", clip=True, noise=None, refit_eps=True):
    """x_t -> x_{t_prev} (Song et al., 2021, eq. 12); eta=0 is deterministic, eta=1 is DDPM-like.

    refit_eps=False reproduces diffusers' DDIMScheduler (clipped x0 with the raw eps).
    """
    tt = torch.full((xt.shape[0],), t, dtype=torch.long)
    eps, x0 = to_eps_and_x0(schedule, xt, tt, model_output, prediction_type, clip, refit_eps)
    abar = gather(schedule.alphas_cumprod, tt, xt)
    abar_prev = (
        gather(schedule.alphas_cumprod, torch.full_like(tt, t_prev), xt) if t_prev >= 0 else torch.ones_like(abar)
    )
    sigma = eta * ((1 - abar_prev) / (1 - abar) * (1 - abar / abar_prev)).sqrt()
    direction = (1 - abar_prev - sigma**2).clamp(min=0).sqrt() * eps
    x_prev = abar_prev.sqrt() * x0 + direction
    if eta > 0:
        if noise is None:
            noise = torch.randn(xt.shape, generator=generator, device=xt.device, dtype=xt.dtype)
        x_prev = x_prev + sigma * noise
    return x_prev


def with_guidance(denoise_cond: Callable, cond, uncond, scale: float) -> Denoiser:
    """Classifier-free guidance: out = u + w (c - u), with one batched call for both."""
    if scale == 1.0:
        return lambda x, t: denoise_cond(x, t, cond)

    def denoise(x, t):
        both = denoise_cond(torch.cat([x, x]), torch.cat([t, t]), _cat(cond, uncond))
        c, u = both.chunk(2)
        return u + scale * (c - u)

    return denoise


def _cat(a, b):
    if isinstance(a, dict):
        return {k: _cat(a[k], b[k]) for k in a}
    if isinstance(a, tuple):  # several condition tensors, e.g. a caption's ids and mask
        return tuple(_cat(x, y) for x, y in zip(a, b))
    return torch.cat([a, b])


@torch.no_grad()
def sample(
    denoise: Denoiser,
    shape: tuple[int, ...],
    schedule: Schedule,
    method: str = "ddim",
    steps: int | None = None,
    eta: float = 0.0,
    spacing: str = "trailing",
    prediction_type: str = "epsilon",
    clip: bool = True,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    progress: bool = True,
    return_trajectory: bool = False,
    x_start: torch.Tensor | None = None,
    timesteps: list[int] | None = None,
    after_step: Callable[[torch.Tensor, int], torch.Tensor] | None = None,
):
    """Draw samples of `shape` starting from pure noise.

    method 'ddpm': all T ancestral steps (steps must be None or T).
    method 'ddim': `steps` timesteps (default 50) with the given spacing and eta.
    Deterministic under `generator`. With return_trajectory, also returns the list of
    (t, x_t, predicted x0) along the way, for the denoising animation.
    Editing (tinyvid.diffusion.editing) starts from `x_start` at the first of `timesteps`
    instead of noise at T-1, and `after_step(x, t_prev)` may replace x after every step.
    """
    x = torch.randn(shape, generator=generator, device=device) if x_start is None else x_start
    if timesteps is not None:
        ts = list(timesteps)
    elif method == "ddpm":
        if steps not in (None, schedule.T):
            raise ValueError("ddpm sampling runs all T steps; use method='ddim' for fewer")
        ts = list(range(schedule.T - 1, -1, -1))
    elif method == "ddim":
        ts = ddim_timesteps(schedule.T, steps or 50, spacing)
    else:
        raise ValueError(f"unknown method {method!r}: choose 'ddpm' or 'ddim'")
    trajectory = []
    for i, t in enumerate(tqdm(ts, desc=f"{method} sampling", disable=not progress, leave=False)):
        out = denoise(x, torch.full((shape[0],), t, device=device, dtype=torch.long)).float()
        if return_trajectory:
            tt = torch.full((shape[0],), t, dtype=torch.long)
            trajectory.append((t, x.cpu(), to_eps_and_x0(schedule, x, tt, out, prediction_type, clip)[1].cpu()))
        t_prev = ts[i + 1] if i + 1 < len(ts) else -1
        if method == "ddpm":
            x = ddpm_step(schedule, out, t, x, generator, prediction_type, clip)
        else:
            x = ddim_step(schedule, out, t, t_prev, x, eta, generator, prediction_type, clip)
        if after_step is not None:
            x = after_step(x, t_prev)
    return (x, trajectory) if return_trajectory else x
