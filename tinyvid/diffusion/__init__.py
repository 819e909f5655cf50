"""Diffusion: schedules, the forward process, parameterisations, samplers."""

from tinyvid.diffusion.schedules import (
    Schedule, q_sample, posterior_mean_variance, x0_from_eps, eps_from_x0, v_from_x0_eps,
    x0_from_v, eps_from_v, to_eps_and_x0, training_target,
)
from tinyvid.diffusion.training import diffusion_loss
from tinyvid.diffusion.samplers import ddpm_step, ddim_step, ddim_timesteps, sample, with_guidance
from tinyvid.diffusion import flow
from tinyvid.diffusion.flow import euler_sample, flow_matching_loss, flow_sample, heun_sample

__all__ = [
    "Schedule", "q_sample", "posterior_mean_variance", "x0_from_eps", "eps_from_x0", "v_from_x0_eps",
    "x0_from_v", "eps_from_v", "to_eps_and_x0", "training_target",
    "diffusion_loss", "ddpm_step", "ddim_step", "ddim_timesteps", "sample", "with_guidance",
    "flow", "flow_matching_loss", "flow_sample", "euler_sample", "heun_sample",
]
