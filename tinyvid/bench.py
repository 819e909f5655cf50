"""`tinyvid bench`: measured comparisons that print JSON (speed and quality live here, not in tests).

`tinyvid bench ddpm-baseline --minutes M`: tinyvid's U-Net (the `cpu` profile of notebook 01)
against a diffusers `UNet2DModel` of similar size, each trained for the same wall-clock budget
with the same Trainer, loss, batch, learning rate and EMA, and sampled with the same DDIM
sampler; FID of each beside the real-data floor at the same sample count.

`tinyvid bench t2i-conditioning --minutes M`: where notebook 04's text-to-image model loses the
prompted digit. Its U-Net (the `cpu` profile) is trained three times for the same budget on the latents
of single-digit frames (the committed `t2i_mnist` VAE): reading the caption through the frozen CLIP text
tower and cross-attention alone; with the caption's standardised pooled feature added to the timestep
vector as well, as 04 does (`UNetConfig.pooled_context`); and given the digit as a class label, as
notebook 03's latent model is. The digit accuracy of each model's samples (the MNIST classifier on a crop around the
digit) is printed beside the committed `t2i_mnist` model's.
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


def t2i_conditioning(minutes: float | None, clips: int = 20_000, n_samples: int = 300, steps: int = 10**9,
                     seed: int = 0, progress: bool = True) -> dict:
    """Digit accuracy of notebook 04's text-to-image U-Net conditioned by the caption vs by the digit
    label, each trained for `minutes` (or `steps`) on single-digit frames; see the module docstring."""
    import numpy as np
    from einops import rearrange, repeat

    from tinyvid.course.configs import config
    from tinyvid.data.moving_mnist import DIRECTIONS, generate
    from tinyvid.diffusion import Schedule, diffusion_loss
    from tinyvid.diffusion.pipeline import sample_images, to_uint8
    from tinyvid.diffusion.text_to_video import TextToVideo, encode_video, load_t2v
    from tinyvid.eval.fid import crop_digit, sample_accuracy
    from tinyvid.models import UNet, UNetConfig
    from tinyvid.models.conditioning import TextConditioned, caption_tokens, null_caption
    from tinyvid.models.vae import decode_latents
    from tinyvid.train import TensorBatches, Trainer

    if n_samples < 10 or clips < 1:
        raise ValueError(f"need at least 10 samples (one per digit) and one clip, got samples={n_samples}, clips={clips}")
    cfg = config("04_text_clip", "cpu")
    ref = load_t2v("t2i_mnist")
    ref.denoiser.float()
    vae, scale, schedule = ref.vae.float().eval(), ref.latent_scale, Schedule(ref.sampler.get("schedule", "linear"))
    train = generate(clips, "train", seed=seed, num_digits=1)
    with torch.no_grad():
        latents = rearrange(encode_video(vae, train.tensors()) * scale, "n c f h w -> (n f) c h w")
    frames = train.videos.shape[1]
    clip_tokens = caption_tokens(ref.tokenizer, train.captions, ref.max_len)  # (ids, mask), one caption per clip
    ids, mask = (repeat(x, "n l -> (n f) l", f=frames) for x in clip_tokens)
    labels = repeat(torch.as_tensor(train.digits[:, 0]).long(), "n -> (n f)", f=frames)
    batch = min(cfg.t2i_batch_size, len(latents))
    digits = np.arange(n_samples) % 10
    prompts = [f"the digit {d} is moving {DIRECTIONS[k]}" for d, k in zip(digits, np.arange(n_samples) // 10 % len(DIRECTIONS))]

    def accuracy(vae_latents: torch.Tensor) -> float:  # unscaled latents, as the VAE gives them
        with torch.no_grad():
            images = decode_latents(vae, vae_latents)  # (N, 1, H, W)
        return sample_accuracy(crop_digit(to_uint8(images)), digits)

    def caption_model(pooled: bool):
        unet = UNet(UNetConfig(in_channels=vae.config.latent_channels, context_dim=cfg.text["dim"],
                               **{**cfg.t2i_unet, "pooled_context": pooled}))
        model = TextConditioned(unet, ref.denoiser.text_encoder)
        if pooled:
            model.standardise_pooled(*clip_tokens)
        return model, (latents, ids, mask), null_caption(ref.tokenizer, ref.max_len)

    def caption_samples(model):
        pipe = TextToVideo(model, vae, ref.tokenizer, ref.latent_shape, latent_scale=scale, max_len=ref.max_len, sampler=ref.sampler)
        return pipe.generate_latents(prompts, steps=cfg.sample_steps, guidance=cfg.guidance, eta=1.0)

    def label_model():
        unet = UNet(UNetConfig(in_channels=vae.config.latent_channels, num_classes=10, **{**cfg.t2i_unet, "pooled_context": False}))
        return unet, (latents, labels), 10

    def label_samples(model):
        with torch.no_grad():
            z = sample_images(model, schedule, n_samples, "ddim", cfg.sample_steps, 1.0, seed=seed, labels=torch.as_tensor(digits),
                              guidance=cfg.guidance, prediction_type=ref.sampler["prediction_type"], shape=ref.latent_shape,
                              progress=False, clip=False)
        return z / scale

    out = {"bench": "t2i-conditioning", "minutes_each": minutes, "train_clips": clips, "frames": len(latents),
           "n_samples": n_samples, "sampler": f"DDIM {cfg.sample_steps} steps, eta 1, guidance {cfg.guidance:g}",
           "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
           "committed_t2i_mnist_digit_accuracy": round(accuracy(caption_samples(ref.denoiser)), 3), "models": {}}
    for name, make, draw in [("caption, cross-attention only", lambda: caption_model(False), caption_samples),
                             ("caption, cross-attention + standardised pooled feature (notebook 04)",
                              lambda: caption_model(True), caption_samples),
                             ("digit label (class embedding)", label_model, label_samples)]:
        torch.manual_seed(seed)
        model, data, null = make()
        loss = diffusion_loss(schedule, ref.sampler["prediction_type"], min_snr_gamma=5.0, label_dropout=0.1, null_label=null)
        trainer = Trainer(model, loss, TensorBatches(*data, batch_size=batch, seed=seed), steps=steps,
                          max_minutes=minutes, lr=cfg.t2i_lr, warmup=min(cfg.warmup, steps // 2 + 1), ema_decay=cfg.ema_decay,
                          seed=seed, progress=progress)
        trainer.fit()
        out["models"][name] = {"steps": trainer.step,
                               "train_frames_per_s": round(trainer.step * batch / trainer.seconds, 1),
                               "digit_accuracy": round(accuracy(draw(trainer.eval_model())), 3)}
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
    c = kinds.add_parser("t2i-conditioning", help="notebook 04's text-to-image U-Net: caption (with and without its pooled feature) vs digit label")
    c.add_argument("--minutes", type=float, default=4.0, help="training budget for each model")
    c.add_argument("--clips", type=int, default=20_000, help="single-digit training clips (16 frames each)")
    c.add_argument("--samples", type=int, default=300)
    c.add_argument("--seed", type=int, default=0)
    c.set_defaults(func=lambda a: print(json.dumps(t2i_conditioning(a.minutes, a.clips, a.samples, seed=a.seed), indent=1)))
    from tinyvid import bench_scaling

    bench_scaling.register(kinds)  # notebook 09: dit, unet, levers, memory, loader, onnx
