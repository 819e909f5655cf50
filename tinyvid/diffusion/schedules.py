"""Noise schedules and the closed-form algebra of the Gaussian forward process.

Everything is indexed by integer timesteps t in [0, T). `alphas_cumprod[t]` is
alpha-bar_t, so q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I).
"""

from __future__ import annotations

import math

import torch

SCHEDULES = ("linear", "cosine")


def linear_betas(T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """Ho et al. (2020): betas linear in t (diffusers' 'linear', scaled for T=1000)."""
    return torch.linspace(beta_start, beta_end, T, dtype=torch.float32)


def cosine_betas(T: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """Nichol & Dhariwal (2021): abar(t) = cos^2((t/T + s)/(1 + s) * pi/2); betas clipped at max_beta.
    Equals diffusers' 'squaredcos_cap_v2'."""
    def abar(u):
        return math.cos((u + s) / (1 + s) * math.pi / 2) ** 2

    betas = [min(1 - abar((i + 1) / T) / abar(i / T), max_beta) for i in range(T)]
    return torch.tensor(betas, dtype=torch.float64)


class Schedule:
    """Precomputed per-timestep coefficients, gathered to x's dtype.

    float32 from the betas on, as diffusers does: near t=0, 1 - abar is ~1e-4 and float64
    would differ from the reference by more than the parity tests' 1e-5.
    """

    def __init__(self, name: str = "linear", T: int = 1000):
        if name == "linear":
            betas = linear_betas(T)
        elif name == "cosine":
            betas = cosine_betas(T)
        else:
            raise ValueError(f"unknown schedule {name!r}: choose one of {', '.join(SCHEDULES)}")
        self.name, self.T = name, T
        self.betas = betas = betas.float()
        self.alphas = 1.0 - betas
        self.alphas_cumprod = torch.cumprod(self.alphas, 0)
        prev = torch.cat([torch.ones(1), self.alphas_cumprod[:-1]])
        self.alphas_cumprod_prev = prev
        # posterior q(x_{t-1} | x_t, x_0) = N(c0 x_0 + ct x_t, beta_tilde_t), written with
        # beta_t = 1 - abar_t / abar_{t-1} in the order diffusers uses, so float32 rounding agrees
        abar = self.alphas_cumprod
        beta_t = 1.0 - abar / prev
        self.posterior_variance = (1.0 - prev) / (1.0 - abar) * beta_t
        self.posterior_coef_x0 = prev**0.5 * beta_t / (1.0 - abar)
        self.posterior_coef_xt = (abar / prev) ** 0.5 * (1.0 - prev) / (1.0 - abar)

    def __repr__(self) -> str:
        return f"Schedule({self.name!r}, T={self.T})"

    def snr(self) -> torch.Tensor:
        return self.alphas_cumprod / (1.0 - self.alphas_cumprod)


def gather(coef: torch.Tensor, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """coef[t] shaped to broadcast against x: (B,) -> (B, 1, 1, ...)."""
    t = torch.as_tensor(t, device=coef.device).long()
    out = coef[t].to(device=x.device, dtype=x.dtype)
    return out.reshape(out.shape + (1,) * (x.ndim - out.ndim))


def q_sample(schedule: Schedule, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps."""
    abar = gather(schedule.alphas_cumprod, t, x0)
    return abar.sqrt() * x0 + (1 - abar).sqrt() * noise


def posterior_mean_variance(schedule: Schedule, x0, xt, t):
    """Mean and variance of q(x_{t-1} | x_t, x_0)."""
    mean = gather(schedule.posterior_coef_x0, t, xt) * x0 + gather(schedule.posterior_coef_xt, t, xt) * xt
    return mean, gather(schedule.posterior_variance, t, xt)


# conversions between the three parameterisations; abar is gathered per sample
def x0_from_eps(schedule, xt, t, eps):
    abar = gather(schedule.alphas_cumprod, t, xt)
    return (xt - (1 - abar).sqrt() * eps) / abar.sqrt()


def eps_from_x0(schedule, xt, t, x0):
    abar = gather(schedule.alphas_cumprod, t, xt)
    return (xt - abar.sqrt() * x0) / (1 - abar).sqrt()


def v_from_x0_eps(schedule, x0, t, eps):
    """v = sqrt(abar) eps - sqrt(1 - abar) x0 (Salimans & Ho, 2022)."""
    abar = gather(schedule.alphas_cumprod, t, x0)
    return abar.sqrt() * eps - (1 - abar).sqrt() * x0


def x0_from_v(schedule, xt, t, v):
    abar = gather(schedule.alphas_cumprod, t, xt)
    return abar.sqrt() * xt - (1 - abar).sqrt() * v


def eps_from_v(schedule, xt, t, v):
    abar = gather(schedule.alphas_cumprod, t, xt)
    return (1 - abar).sqrt() * xt + abar.sqrt() * v


def to_eps_and_x0(schedule, xt, t, prediction, prediction_type: str = "epsilon", clip: bool = True,
                  refit_eps: bool = True):
    """(eps, x0) from a model output of any parameterisation.

    clip: clamp x0 to [-1, 1] (images; never for latents). refit_eps: after clipping, recompute
    eps from the clipped x0 so that both describe the same x_t. diffusers' DDIMScheduler keeps the
    raw eps (refit_eps=False); the mismatch it leaves in every deterministic step is what made
    eta=0 DDIM get worse with more steps and strong guidance fall apart in notebook 02.
    """
    if prediction_type == "epsilon":
        eps, x0 = prediction, x0_from_eps(schedule, xt, t, prediction)
    elif prediction_type == "v_prediction":
        eps, x0 = eps_from_v(schedule, xt, t, prediction), x0_from_v(schedule, xt, t, prediction)
    elif prediction_type == "sample":
        eps, x0 = eps_from_x0(schedule, xt, t, prediction), prediction
    else:
        raise ValueError(f"unknown prediction_type {prediction_type!r}: epsilon, v_prediction or sample")
    if not clip:
        return eps, x0
    x0 = x0.clamp(-1, 1)
    return (eps_from_x0(schedule, xt, t, x0) if refit_eps else eps), x0


def training_target(schedule, x0, t, noise, prediction_type: str = "epsilon") -> torch.Tensor:
    if prediction_type == "epsilon":
        return noise
    if prediction_type == "v_prediction":
        return v_from_x0_eps(schedule, x0, t, noise)
    if prediction_type == "sample":
        return x0
    raise ValueError(f"unknown prediction_type {prediction_type!r}: epsilon, v_prediction or sample")
