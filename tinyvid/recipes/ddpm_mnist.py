"""DDPM on MNIST (notebook 01's model and settings), launchable unchanged on 1 CPU or N GPUs:

    python -m tinyvid.recipes.ddpm_mnist --profile smoke --out-dir runs/ddpm
    torchrun --nproc_per_node 2 -m tinyvid.recipes.ddpm_mnist --profile smoke --out-dir runs/ddpm
    accelerate launch --config_file tinyvid/recipes/accelerate/ddp.yaml -m tinyvid.recipes.ddpm_mnist --profile gpu --out-dir runs/ddpm

The settings are notebook 01's (`config("01_ddpm_mnist", profile, ...)`): the U-Net, steps or time
budget, batch size, learning rate, EMA, Min-SNR weighting. Timesteps and noise are drawn with the
global batch, so 1 and N processes train the same model. The EMA weights are also written as
`ddpm_mnist.safetensors` (the registry's format), which `tinyvid sample` and notebook 02 load.
"""

from __future__ import annotations

from pathlib import Path

import torch

from tinyvid.diffusion.schedules import Schedule, gather, q_sample, training_target
from tinyvid.recipes.common import GlobalBatches, parse_recipe_args, run_trainer, train_config

NOTEBOOK = "01_ddpm_mnist"
KEYS = ("unet", "steps", "train_minutes", "batch_size", "lr", "warmup", "ema_decay", "min_snr_gamma", "log_every")


def ddpm_draws(schedule: Schedule):
    """The randomness of `diffusion_loss`, in its order: a timestep per row, then noise like x0."""

    def draws(rows, g):
        x0 = rows[0]
        t = torch.randint(0, schedule.T, (len(x0),), generator=g)
        return t, torch.randn(x0.shape, generator=g, dtype=x0.dtype)

    return draws


def presampled_diffusion_loss(schedule: Schedule, min_snr_gamma: float | None = None):
    """`diffusion_loss` (epsilon prediction, Min-SNR-gamma weights) with its draws from the batch: (x0, t, noise)."""
    snr = schedule.snr()

    def loss_fn(model, batch):
        x0, t, noise = batch
        pred = model(q_sample(schedule, x0, t, noise), t)
        per_sample = (pred.float() - training_target(schedule, x0, t, noise)).pow(2).flatten(1).mean(1)
        if min_snr_gamma is not None:
            s = gather(snr, t, per_sample)
            per_sample = per_sample * (s.clamp(max=min_snr_gamma) / s)
        return per_sample.mean()

    return loss_fn


def build_trainer(cfg, args, levers: dict, images: torch.Tensor | None = None):
    from tinyvid.data import mnist_tensors
    from tinyvid.models import UNet, UNetConfig
    from tinyvid.train import Trainer

    x = mnist_tensors("train")[0] if images is None else images
    schedule = Schedule("linear")
    torch.manual_seed(args.seed)
    model = UNet(UNetConfig(**cfg.unet))
    data = GlobalBatches(x, batch_size=cfg.batch_size, seed=args.seed, draws=ddpm_draws(schedule))
    trainer = Trainer(model, presampled_diffusion_loss(schedule, cfg.min_snr_gamma), data, train_config(cfg, args, levers))
    return trainer, {"params": sum(p.numel() for p in model.parameters()), "global_batch": cfg.batch_size}


def main(argv: list[str] | None = None) -> dict:
    from tinyvid.course.configs import config
    from tinyvid.models import save_model

    args, overrides, levers = parse_recipe_args(NOTEBOOK, KEYS, __doc__.split("\n\n")[0], argv)
    cfg = config(NOTEBOOK, args.profile, **overrides)
    trainer, info = build_trainer(cfg, args, levers)
    summary = run_trainer(trainer, args, {"recipe": "ddpm_mnist", "profile": cfg.profile, **info})
    if trainer.accelerator.is_main_process:
        save_model(trainer.eval_model(), Path(args.out_dir) / "ddpm_mnist.safetensors", schedule="linear",
                   prediction_type="epsilon", steps=trainer.step, batch_size=cfg.batch_size)
    return summary


if __name__ == "__main__":
    main()
