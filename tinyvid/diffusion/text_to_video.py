"""From a prompt to a contract clip: tokenizer -> frozen text encoder -> latent denoiser with CFG -> VAE decoder.

One pipeline for every text-to-video model of the course (and for 04's text-to-image model, a clip of one frame) (05's inflated U-Net and (2+1)D
baseline, 06's DiT): the denoiser is called as `denoiser(x, t, ids, mask)`
(`tinyvid.models.conditioning.TextConditioned`), the latents are decoded frame by frame by an
image VAE or as a clip by a video VAE, and the output is always uint8 (N, 16, 64, 64).
Saved as one safetensors bundle (denoiser + text encoder + VAE + tokenizer + sampler settings),
which `tinyvid sample t2v --checkpoint PATH` loads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from tinyvid.diffusion.samplers import sample, with_guidance
from tinyvid.diffusion.schedules import Schedule
from tinyvid.models.conditioning import TextConditioned, caption_tokens
from tinyvid.models.vae import VAE, decode_frames, decode_latents, encode_frames, encode_latents
from tinyvid.viz import as_uint8


def encode_video(vae: nn.Module, videos: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """(N, 1, T, H, W) clips -> latents: an image VAE per frame, a video VAE as a clip."""
    if isinstance(vae, VAE) and videos.ndim == 5:
        return encode_frames(vae, videos, batch_size)
    return encode_latents(vae, videos, batch_size)


def decode_video(vae: nn.Module, latents: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Latents -> clips (N, 1, T, H, W); an image model's (N, C, h, w) latents -> images (N, 1, H, W)."""
    if isinstance(vae, VAE) and latents.ndim == 5:
        return decode_frames(vae, latents, batch_size)
    return decode_latents(vae, latents, batch_size)


@dataclass
class TextToVideo:
    denoiser: TextConditioned
    vae: nn.Module
    tokenizer: object  # a `tokenizers.Tokenizer`
    latent_shape: tuple[int, ...]  # (C, F, h, w) of one clip's latents
    latent_scale: float = 1.0  # diffusion runs on latents * latent_scale (unit variance)
    max_len: int = 24
    # how to sample: {"kind": "diffusion", "schedule", "prediction_type"} or {"kind": "flow", "shift"}
    sampler: dict = field(default_factory=lambda: {"kind": "diffusion", "schedule": "linear",
                                                   "prediction_type": "v_prediction"})

    def __post_init__(self):
        self.latent_shape = tuple(self.latent_shape)
        if self.sampler.get("kind") not in ("diffusion", "flow"):
            raise ValueError(f"sampler kind must be 'diffusion' or 'flow', got {self.sampler.get('kind')!r}")

    @property
    def device(self) -> torch.device:
        return next(self.denoiser.denoiser.parameters()).device

    def tokens(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(prompts, str) or not prompts:
            raise ValueError("prompts must be a non-empty list of strings")
        ids, mask = caption_tokens(self.tokenizer, prompts, self.max_len)
        return ids.to(self.device), mask.to(self.device)

    def initial_noise(self, seeds: list[int]) -> torch.Tensor:
        """One generator per clip: a prompt's video depends on its seed, not on what it was batched with."""
        return torch.stack([torch.randn(self.latent_shape, generator=torch.Generator().manual_seed(int(s)))
                            for s in seeds]).to(self.device)

    def guided(self, prompts: list[str], guidance: float):
        """The denoiser (x, t) -> prediction for these prompts, with classifier-free guidance."""
        model = self.denoiser.eval()
        ids, mask = self.tokens(prompts)
        null_ids, null_mask = self.tokens([""] * len(prompts))
        return with_guidance(lambda x, t, c: model(x, t, *c), (ids, mask), (null_ids, null_mask), guidance)

    def _seeds(self, prompts, seeds, steps):
        seeds = list(range(len(prompts))) if seeds is None else list(seeds)
        if len(seeds) != len(prompts):
            raise ValueError(f"{len(seeds)} seeds for {len(prompts)} prompts")
        if steps < 1:
            raise ValueError(f"steps must be positive, got {steps}")
        return seeds

    @torch.no_grad()
    def generate_latents(self, prompts: list[str], steps: int = 25, guidance: float = 3.0, seeds=None,
                         eta: float = 0.0, method: str | None = None, progress: bool = False) -> torch.Tensor:
        seeds = self._seeds(prompts, seeds, steps)
        denoise = self.guided(prompts, guidance)
        x = self.initial_noise(seeds)
        if self.sampler["kind"] == "flow":
            from tinyvid.diffusion import flow

            solve = getattr(flow, f"{method or 'euler'}_sample")
            z = solve(denoise, x.shape, steps=steps, shift=self.sampler.get("shift", 1.0), x_start=x, progress=progress)
        else:
            g = torch.Generator(device=self.device).manual_seed(int(seeds[0]))  # only used when eta > 0
            z = sample(denoise, x.shape, Schedule(self.sampler.get("schedule", "linear")), method or "ddim", steps, eta,
                       prediction_type=self.sampler.get("prediction_type", "epsilon"), clip=False, generator=g,
                       device=self.device, progress=progress, x_start=x)
        return z / self.latent_scale

    @torch.no_grad()
    def edit_latents(self, latents: torch.Tensor, prompts: list[str], strength: float, steps: int = 25,
                     guidance: float = 3.0, seeds=None, method: str | None = None) -> torch.Tensor:
        """SDEdit: the VAE latents of real clips (N, *latent_shape), noised to `strength` (0 keeps them,
        1 is plain generation from seed i's noise) and denoised under the prompts; returns latents."""
        seeds = self._seeds(prompts, seeds, steps)
        if tuple(latents.shape) != (len(prompts), *self.latent_shape):
            raise ValueError(f"latents must be (N, *{self.latent_shape}) for {len(prompts)} prompts, got "
                             f"{tuple(latents.shape)}")
        denoise = self.guided(prompts, guidance)
        x0 = latents.to(self.device) * self.latent_scale
        if self.sampler["kind"] == "flow":
            from tinyvid.diffusion.flow import flow_img2img

            z = flow_img2img(denoise, x0, strength, steps, method or "euler", self.sampler.get("shift", 1.0),
                             noise=self.initial_noise(seeds))
        else:
            from tinyvid.diffusion.editing import img2img

            g = torch.Generator(device=self.device).manual_seed(int(seeds[0]))
            z = img2img(denoise, x0, Schedule(self.sampler.get("schedule", "linear")), strength, steps, generator=g,
                        prediction_type=self.sampler.get("prediction_type", "epsilon"), clip=False)
        return z / self.latent_scale

    def generate(self, prompts: list[str], steps: int = 25, guidance: float = 3.0, seeds=None, eta: float = 0.0,
                 method: str | None = None, batch_size: int = 64, progress: bool = True) -> np.ndarray:
        """uint8 clips (N, T, H, W) for the prompts (images (N, H, W) for a text-to-image model, whose
        latent_shape is (C, h, w)); prompt i uses seeds[i] (default: i)."""
        seeds = list(range(len(prompts))) if seeds is None else list(seeds)
        out = []
        for start in tqdm(range(0, len(prompts), batch_size), desc="text-to-video", disable=not progress):
            part = slice(start, start + batch_size)
            out.append(self.to_clips(self.generate_latents(prompts[part], steps, guidance, seeds[part], eta, method)))
        return np.concatenate(out)

    @torch.no_grad()
    def to_clips(self, latents: torch.Tensor) -> np.ndarray:
        """VAE latents -> uint8 clips (N, T, H, W) (images (N, H, W) for a text-to-image model)."""
        return as_uint8(decode_video(self.vae, latents).clamp(-1, 1).cpu())[:, 0]

    # --- one file: every component with its config, the tokenizer and the sampler settings ---
    def save(self, path: str | Path, dtype: torch.dtype | None = None, **extra) -> Path:
        from tinyvid.models.registry import save_bundle

        return save_bundle(path, {"denoiser": self.denoiser.denoiser, "text_encoder": self.denoiser.text_encoder,
                                  "vae": self.vae}, dtype=dtype, tokenizer=self.tokenizer.to_str(),
                           latent_shape=list(self.latent_shape), latent_scale=self.latent_scale,
                           max_len=self.max_len, sampler=self.sampler, **extra)

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> "TextToVideo":
        from tokenizers import Tokenizer

        from tinyvid.models.registry import load_bundle

        parts, extra = load_bundle(path, device)
        missing = {"denoiser", "text_encoder", "vae"} - set(parts)
        if missing:
            raise ValueError(f"{path} is not a text-to-video bundle: it lacks {sorted(missing)}")
        return cls(TextConditioned(parts["denoiser"], parts["text_encoder"]), parts["vae"],
                   Tokenizer.from_str(extra["tokenizer"]), tuple(extra["latent_shape"]), extra["latent_scale"],
                   extra["max_len"], extra["sampler"])


def load_t2v(name_or_path: str, device: str | torch.device = "cpu") -> TextToVideo:
    """A committed reference T2V bundle by name (book/results/<name>.safetensors) or a path."""
    from tinyvid.models.registry import RESULTS_DIR

    path = Path(name_or_path)
    if not path.is_file():
        path = RESULTS_DIR / f"{name_or_path}.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"no text-to-video checkpoint at {name_or_path} (nor {path})")
    return TextToVideo.load(path, device)
