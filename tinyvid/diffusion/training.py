"""The denoising training objective, for any model called as model(x_t, t, *cond)."""

from __future__ import annotations

import torch

from tinyvid.diffusion.schedules import Schedule, gather, q_sample, training_target


def diffusion_loss(
    schedule: Schedule,
    prediction_type: str = "epsilon",
    min_snr_gamma: float | None = None,
    label_dropout: float = 0.0,
    null_label=None,
):
    """Returns loss_fn(model, batch) for the Trainer; batch = (x0,) or (x0, *cond), e.g. (x0, labels)
    or (x0, token ids, token mask) for a text-conditioned model.

    min_snr_gamma: Min-SNR-gamma weighting (Hang et al., 2023): the per-timestep loss is
      weighted by min(SNR, gamma) / SNR (epsilon) or min(SNR, gamma) / (SNR + 1) (v), which
      stops the easy low-noise steps from dominating and converges several times faster.
    label_dropout: replace the condition by `null_label` with this probability (classifier-free
      guidance): an int for class labels, or a tuple with one null row per condition tensor
      (a caption's ids and mask: the empty caption).
    """
    nulls = null_label if isinstance(null_label, tuple) else (null_label,)
    snr = schedule.snr()

    def loss_fn(model, batch):
        x0, *cond = batch
        t = torch.randint(0, schedule.T, (x0.shape[0],), device=x0.device)
        noise = torch.randn_like(x0)
        xt = q_sample(schedule, x0, t, noise)
        if cond and label_dropout > 0:
            drop = torch.rand(x0.shape[0], device=x0.device) < label_dropout
            for i, null in enumerate(nulls):
                null = torch.as_tensor(null, device=x0.device, dtype=cond[i].dtype)
                cond[i] = torch.where(drop.view(-1, *[1] * (cond[i].ndim - 1)), null, cond[i])
        pred = model(xt, t, *cond)
        target = training_target(schedule, x0, t, noise, prediction_type)
        per_sample = (pred.float() - target).pow(2).flatten(1).mean(1)
        if min_snr_gamma is not None:
            s = gather(snr, t, per_sample)
            denom = s + 1 if prediction_type == "v_prediction" else s
            per_sample = per_sample * (s.clamp(max=min_snr_gamma) / denom)
        return per_sample.mean()

    return loss_fn
