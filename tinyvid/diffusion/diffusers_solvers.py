"""Sample a tinyvid denoiser with a diffusers scheduler (the "solver swap").

A trained noise predictor does not care which ODE/SDE solver integrates it: any
diffusers scheduler built on the same beta schedule and prediction type can drive it.
`diffusers_scheduler` builds one from a tinyvid `Schedule`; `sample_with_scheduler`
runs diffusers' standard loop around a tinyvid `denoise(x, t)` function.
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from tinyvid.diffusion.samplers import Denoiser
from tinyvid.diffusion.schedules import Schedule

BETA_SCHEDULES = {"linear": "linear", "cosine": "squaredcos_cap_v2"}
SOLVERS = ("dpmsolver++", "ddim", "euler", "unipc")


def diffusers_scheduler(solver: str, schedule: Schedule, prediction_type: str = "epsilon", clip: bool = True):
    """A diffusers scheduler on tinyvid's beta schedule: 'dpmsolver++' (multistep, 2nd order),
    'ddim' (eta 0; `clip` is its clip_sample), 'euler' or 'unipc'; trailing spacing like tinyvid's DDIM."""
    import diffusers

    common = dict(num_train_timesteps=schedule.T, beta_schedule=BETA_SCHEDULES[schedule.name],
                  prediction_type=prediction_type, timestep_spacing="trailing")
    if solver == "dpmsolver++":
        return diffusers.DPMSolverMultistepScheduler(algorithm_type="dpmsolver++", solver_order=2, **common)
    if solver == "ddim":
        return diffusers.DDIMScheduler(clip_sample=clip, set_alpha_to_one=True, **common)
    if solver == "euler":
        return diffusers.EulerDiscreteScheduler(**common)
    if solver == "unipc":
        return diffusers.UniPCMultistepScheduler(**common)
    raise ValueError(f"unknown solver {solver!r}: choose one of {', '.join(SOLVERS)}")


@torch.no_grad()
def sample_with_scheduler(
    denoise: Denoiser,
    shape: tuple[int, ...],
    scheduler,
    steps: int,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> torch.Tensor:
    """diffusers' sampling loop: scale the input, call the model, `scheduler.step`."""
    if steps < 1:
        raise ValueError(f"steps must be positive, got {steps}")
    scheduler.set_timesteps(steps, device=device)
    x = torch.randn(shape, generator=generator, device=device) * scheduler.init_noise_sigma
    for t in tqdm(scheduler.timesteps, desc=type(scheduler).__name__, disable=not progress, leave=False):
        out = denoise(scheduler.scale_model_input(x, t), t.expand(shape[0]).long()).float()
        x = scheduler.step(out, t, x, generator=generator).prev_sample
    return x
