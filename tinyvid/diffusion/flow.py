"""Rectified flow / flow matching (Liu et al. 2022; Lipman et al. 2022), the objective of SD3, Wan and Open-Sora.

Data x0 and noise eps are joined by a straight line, x_t = (1 - t) x0 + t eps, t in [0, 1]
(t = 1 is pure noise). The model learns its velocity v = dx_t/dt = eps - x0, and sampling
integrates the ODE dx/dt = v(x, t) from t = 1 down to 0. A straight path is integrated
exactly by one Euler step, so the fewer the curves the learned field has, the fewer steps
sampling needs.

Training draws t from a logit-normal (SD3: more weight on the middle, where the velocity is
hardest to predict) and may shift it towards noise, t' = s t / (1 + (s - 1) t): more pixels
(tokens) keep more signal at the same t, so large videos need more noise (SD3 §5.3.2, Wan's
`shift`). Sampling uses the same shift on its time grid.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from tqdm.auto import tqdm

Velocity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
TIMESTEP_SAMPLING = ("logit_normal", "uniform")
METHODS = ("euler", "heun")


def _per_sample(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """t (B,) -> (B, 1, ..., 1) to broadcast against x."""
    return t.to(x.dtype).view(-1, *[1] * (x.ndim - 1))


def interpolate(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """x_t = (1 - t) x0 + t eps, t (B,) in [0, 1]."""
    t = _per_sample(t, x0)
    return (1 - t) * x0 + t * noise


def velocity_target(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """v = d x_t / dt = eps - x0, the same at every t on the straight path."""
    return noise - x0


def shift_timesteps(t: torch.Tensor, shift: float) -> torch.Tensor:
    """t' = s t / (1 + (s - 1) t): s > 1 moves every t towards noise, keeping 0 and 1 fixed."""
    if shift <= 0:
        raise ValueError(f"shift must be positive, got {shift}")
    return shift * t / (1 + (shift - 1) * t)


def resolution_shift(tokens: int, base_tokens: int = 256) -> float:
    """SD3's rule s = sqrt(tokens / base_tokens): n pixels of a flat image under noise sigma give its value
    away to within sigma / sqrt(n), so n times more tokens need a sqrt(n) times larger noise-to-signal
    ratio t / (1 - t) for the same uncertainty, which is exactly what the shift multiplies it by."""
    return math.sqrt(tokens / base_tokens)


def sample_timesteps(n: int, sampling: str = "logit_normal", mean: float = 0.0, std: float = 1.0, shift: float = 1.0,
                     generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """n training times in (0, 1): sigmoid(N(mean, std)) (SD3's logit-normal) or uniform, then shifted."""
    if sampling == "logit_normal":
        t = torch.sigmoid(mean + std * torch.randn(n, generator=generator, device=device))
    elif sampling == "uniform":
        t = torch.rand(n, generator=generator, device=device)
    else:
        raise ValueError(f"unknown timestep sampling {sampling!r}: choose one of {', '.join(TIMESTEP_SAMPLING)}")
    return shift_timesteps(t, shift)


def drop_condition(cond: list, null: tuple, p: float) -> list:
    """Classifier-free guidance dropout: with probability p per sample, replace every condition tensor's row
    by the null condition's (e.g. a caption's ids and mask by the empty caption's), the same rows for all."""
    if p <= 0:
        return list(cond)
    if len(null) > len(cond):
        raise ValueError(f"{len(null)} null conditions for {len(cond)} condition tensors")
    drop = torch.rand(cond[0].shape[0], device=cond[0].device) < p
    out = list(cond)
    for i, n in enumerate(null):
        n = torch.as_tensor(n, device=cond[i].device, dtype=cond[i].dtype)
        out[i] = torch.where(drop.view(-1, *[1] * (cond[i].ndim - 1)), n, cond[i])
    return out


def flow_matching_loss(sampling: str = "logit_normal", logit_mean: float = 0.0, logit_std: float = 1.0,
                       shift: float = 1.0, text_dropout: float = 0.0, null_cond: tuple | None = None,
                       image_to_video: bool = False):
    """loss_fn(model, batch) for the Trainer: the mean squared error of the predicted velocity.

    batch = (x0, *cond): latents and what the model takes after (x_t, t), e.g. (latents, ids, mask)
    for a `TextConditioned` model or (latents, context, mask) for a VideoDiT on pre-encoded text.
    text_dropout: replace cond by `null_cond` (one null row per condition tensor: the empty caption)
      with this probability, so the model also learns the unconditional velocity that CFG needs.
    image_to_video: also pass the clean first latent frame, `model(..., first_frame=x0[:, :, :1])`.
    """
    if text_dropout > 0 and null_cond is None:
        raise ValueError("text_dropout needs null_cond (the empty caption's condition tensors)")

    def loss_fn(model, batch):
        x0, *cond = batch
        t = sample_timesteps(x0.shape[0], sampling, logit_mean, logit_std, shift, device=x0.device)
        noise = torch.randn_like(x0)
        xt = interpolate(x0, noise, t)
        cond = drop_condition(cond, null_cond or (), text_dropout)
        extra = {"first_frame": x0[:, :, :1]} if image_to_video else {}
        pred = model(xt, t, *cond, **extra)
        return (pred.float() - velocity_target(x0, noise).float()).pow(2).mean()

    return loss_fn


def flow_timesteps(steps: int, shift: float = 1.0, start: float = 1.0) -> torch.Tensor:
    """steps + 1 decreasing times from 1 (noise) to 0 (data): a uniform grid, shifted as in training.
    start < 1 (an edit, SDEdit): the tail of that grid below `start`, with `start` itself first."""
    if steps < 1:
        raise ValueError(f"steps must be positive, got {steps}")
    if not 0.0 <= start <= 1.0:
        raise ValueError(f"start must be in [0, 1], got {start}")
    ts = shift_timesteps(torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64), shift)
    if start < 1.0:
        ts = torch.cat([ts.new_tensor([start]), ts[ts < start]]) if start > 0 else ts.new_zeros(1)
    return ts.float()


def euler_step(v: torch.Tensor, x: torch.Tensor, t: float, t_next: float) -> torch.Tensor:
    """x_{t_next} = x_t + (t_next - t) v: one step along the current velocity (t_next < t)."""
    return x + (t_next - t) * v


@torch.no_grad()
def flow_sample(velocity: Velocity, shape: tuple[int, ...], steps: int = 25, method: str = "euler", shift: float = 1.0,
                x_start: torch.Tensor | None = None, generator: torch.Generator | None = None,
                device: torch.device | str = "cpu", progress: bool = True, return_trajectory: bool = False,
                t_start: float = 1.0):
    """Integrate dx/dt = velocity(x, t) from noise at t = 1 (or from `x_start` at `t_start`) to data at t = 0.

    euler: one velocity per step (steps evaluations). heun: the Euler guess, then the average of
    the velocities at both ends (2 * steps evaluations, second-order accurate). Deterministic
    under `generator` (only the starting noise is random), or start from `x_start`.
    With return_trajectory, also returns [(t, x_t, predicted x0 = x_t - t v)] per step.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: choose one of {', '.join(METHODS)}")
    x = torch.randn(shape, generator=generator, device=device) if x_start is None else x_start.to(device)
    ts = flow_timesteps(steps, shift, t_start).tolist()
    trajectory = []
    batch = x.shape[0]
    for t, t_next in tqdm(list(zip(ts[:-1], ts[1:])), desc=f"{method} sampling", disable=not progress, leave=False):
        v = velocity(x, torch.full((batch,), t, device=x.device)).float()
        if return_trajectory:
            trajectory.append((t, x.cpu(), (x - t * v).cpu()))
        x_next = euler_step(v, x, t, t_next)
        if method == "heun":
            v_next = velocity(x_next, torch.full((batch,), t_next, device=x.device)).float()
            x_next = euler_step(0.5 * (v + v_next), x, t, t_next)
        x = x_next
    return (x, trajectory) if return_trajectory else x


def euler_sample(velocity: Velocity, shape: tuple[int, ...], steps: int = 25, **kwargs):
    return flow_sample(velocity, shape, steps, "euler", **kwargs)


def heun_sample(velocity: Velocity, shape: tuple[int, ...], steps: int = 25, **kwargs):
    return flow_sample(velocity, shape, steps, "heun", **kwargs)


def flow_img2img(velocity: Velocity, x0: torch.Tensor, strength: float, steps: int = 25, method: str = "euler",
                 shift: float = 1.0, noise: torch.Tensor | None = None, generator: torch.Generator | None = None,
                 progress: bool = False) -> torch.Tensor:
    """SDEdit on the straight path: put x0 at time t = strength, x_t = (1 - t) x0 + t eps, and integrate from
    there on the tail of the sampling grid. strength 0 returns x0, strength 1 ignores it (plain sampling
    from `noise`). Used to ask at which noise level a model decides what a sample shows."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    if noise is None:
        noise = torch.randn(x0.shape, generator=generator, device=x0.device)
    if noise.shape != x0.shape:
        raise ValueError(f"noise {tuple(noise.shape)} and x0 {tuple(x0.shape)} differ")
    start = interpolate(x0, noise, torch.full((x0.shape[0],), strength, device=x0.device))
    return flow_sample(velocity, tuple(x0.shape), steps, method, shift, x_start=start, device=x0.device,
                       progress=progress, t_start=strength)
