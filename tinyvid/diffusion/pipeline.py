"""From a trained denoiser to a batch of images: batching, seeding, CFG, uint8 conversion."""

from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from tinyvid.diffusion.samplers import sample, with_guidance
from tinyvid.diffusion.schedules import Schedule


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """[-1, 1] floats (N, 1, H, W) -> uint8 (N, H, W)."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).squeeze(1).cpu().numpy()


@torch.no_grad()
def sample_images(
    model: torch.nn.Module,
    schedule: Schedule,
    n: int,
    method: str = "ddim",
    steps: int | None = 50,
    eta: float = 0.0,
    seed: int = 0,
    batch_size: int = 500,
    labels: torch.Tensor | None = None,
    guidance: float = 1.0,
    prediction_type: str = "epsilon",
    shape: tuple[int, ...] = (1, 28, 28),
    device: str | torch.device = "cpu",
    progress: bool = True,
    clip: bool = True,
) -> torch.Tensor:
    """n samples in [-1, 1], deterministic under `seed`; batch b uses seed + b.

    method: 'ddim' or 'ddpm' (tinyvid's samplers) or 'diffusers:<solver>' with a solver of
    `tinyvid.diffusion.diffusers_solvers.SOLVERS`, e.g. 'diffusers:dpmsolver++'.
    labels (n,) condition a class-conditional model; guidance > 1 applies classifier-free
    guidance against the model's null label. clip=False for latents, which are not in [-1, 1].
    """
    solver = method.removeprefix("diffusers:") if method.startswith("diffusers:") else None
    if solver is not None:
        from tinyvid.diffusion.diffusers_solvers import diffusers_scheduler, sample_with_scheduler

        scheduler = diffusers_scheduler(solver, schedule, prediction_type)
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    if labels is not None and len(labels) != n:
        raise ValueError(f"got {len(labels)} labels for {n} samples")
    model.eval()
    out = []
    batches = range(0, n, batch_size)
    for b, start in enumerate(tqdm(batches, desc="sampling batches", disable=not progress or len(batches) == 1)):
        size = min(batch_size, n - start)
        if labels is None:
            denoise = lambda x, t: model(x, t)  # noqa: E731
        else:
            y = labels[start : start + size].to(device)
            null = torch.full_like(y, model.config.num_classes)
            denoise = with_guidance(lambda x, t, c: model(x, t, c), y, null, guidance)
        g = torch.Generator(device=device).manual_seed(seed + b)
        bar = progress and len(batches) == 1
        if solver is not None:
            out.append(sample_with_scheduler(denoise, (size, *shape), scheduler, steps or 50, g, device, bar))
        else:
            out.append(sample(denoise, (size, *shape), schedule, method, None if method == "ddpm" else steps, eta,
                              prediction_type=prediction_type, clip=clip, generator=g, device=device, progress=bar))
    return torch.cat(out)
