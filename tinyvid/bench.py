"""`tinyvid bench`: measured comparisons that print JSON (speed and quality live here, not in tests).

`tinyvid bench ddpm-baseline --minutes M`: tinyvid's U-Net (the `cpu` profile of notebook 01)
against a diffusers `UNet2DModel` of similar size, each trained for the same wall-clock budget
with the same Trainer, loss, batch, learning rate and EMA, and sampled with the same DDIM
sampler; FID of each beside the real-data floor at the same sample count.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch
from torch import nn


class DiffusersUNet(nn.Module):
    """diffusers' UNet2DModel behind tinyvid's model(x, t) call."""

    def __init__(self, block_out_channels=(32, 64, 64), layers_per_block=1):
        super().__init__()
        from diffusers import UNet2DModel

        self.unet = UNet2DModel(
            sample_size=28, in_channels=1, out_channels=1, layers_per_block=layers_per_block,
            block_out_channels=block_out_channels, norm_num_groups=8, attention_head_dim=16,
            down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
            up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        )

    def forward(self, x, t):
        return self.unet(x, t).sample


def ddpm_baseline(minutes: float, n_samples: int, sample_steps: int | None = None, seed: int = 0,
                  progress: bool = True) -> dict:
    from tinyvid.course.configs import config
    from tinyvid.data import mnist_tensors
    from tinyvid.diffusion import Schedule, diffusion_loss
    from tinyvid.diffusion.pipeline import sample_images, to_uint8
    from tinyvid.eval import class_histogram, fid, real_data_floor
    from tinyvid.models import UNet, UNetConfig
    from tinyvid.train import TensorBatches, Trainer

    cfg = config("01_ddpm_mnist", "cpu")
    sample_steps = sample_steps or cfg.sample_steps
    x, _ = mnist_tensors("train")
    schedule = Schedule("linear")
    models = {"tinyvid": lambda: UNet(UNetConfig(**cfg.unet)), "diffusers_UNet2DModel": DiffusersUNet}
    out = {"bench": "ddpm-baseline", "minutes_each": minutes, "n_samples": n_samples, "sampler": f"DDIM {sample_steps} steps, eta {cfg.sample_eta:g}",
           "batch_size": cfg.batch_size, "lr": cfg.lr, "machine": f"{platform.processor() or platform.machine()}, "
           f"{torch.get_num_threads()} threads, torch {torch.__version__}", "models": {}}
    for name, make in models.items():
        torch.manual_seed(seed)
        model = make()
        trainer = Trainer(model, diffusion_loss(schedule, min_snr_gamma=cfg.min_snr_gamma),
                          TensorBatches(x, batch_size=cfg.batch_size, seed=seed), steps=10**9, max_minutes=minutes,
                          lr=cfg.lr, warmup=cfg.warmup, ema_decay=cfg.ema_decay, seed=seed, progress=progress)
        trainer.fit()
        start = time.perf_counter()
        samples = to_uint8(sample_images(trainer.eval_model(), schedule, n_samples, "ddim", sample_steps, cfg.sample_eta, seed=seed,
                                         progress=progress))
        hist = class_histogram(samples)
        out["models"][name] = {
            "params_millions": round(sum(p.numel() for p in model.parameters()) / 1e6, 3),
            "steps": trainer.step,
            "train_images_per_s": round(trainer.step * cfg.batch_size / trainer.seconds, 1),
            "sample_seconds": round(time.perf_counter() - start, 1),
            "fid": round(fid(samples), 3),
            "class_fraction_min_max": [round(float(hist.min()), 3), round(float(hist.max()), 3)],
        }
    out["fid_floor"] = round(real_data_floor(n_samples, seed=seed), 3)
    return out


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="measured comparisons, printed as JSON")
    kinds = p.add_subparsers(dest="bench", required=True, metavar="BENCH")
    d = kinds.add_parser("ddpm-baseline", help="tinyvid U-Net vs diffusers UNet2DModel at the same CPU budget")
    d.add_argument("--minutes", type=float, default=5.0, help="training budget for each model")
    d.add_argument("--samples", type=int, default=2000)
    d.add_argument("--sample-steps", type=int, default=None, help="default: notebook 01's cpu sampler")
    d.add_argument("--seed", type=int, default=0)
    d.set_defaults(func=lambda a: print(json.dumps(ddpm_baseline(a.minutes, a.samples, a.sample_steps, a.seed), indent=1)))
    from tinyvid import bench_scaling

    bench_scaling.register(kinds)  # notebook 09: dit, unet, levers, memory, loader, onnx
