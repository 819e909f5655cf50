"""A small convolutional VAE with diffusers' `AutoencoderKL` calling convention.

`vae.encode(x).latent_dist` is a diagonal Gaussian (`.sample(generator)`, `.mode()`,
`.kl()`), `vae.decode(z).sample` is the reconstruction: the same code (the loss, latent
diffusion, img2img) then runs on either this VAE or a diffusers `AutoencoderKL`.

Images are padded to a multiple of 2**(levels-1) (MNIST: 28 -> 32) and cropped back on decode.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


@dataclass
class VAEConfig:
    in_channels: int = 1
    latent_channels: int = 4
    # pixel-unshuffle by this factor first (as tinyvid's U-Net does): no full-resolution convolutions
    patch: int = 1
    channels: tuple[int, ...] = (32, 64, 128)  # one level per entry; each level after the first halves H, W
    groups: int = 8
    image_size: int = 28
    pad_to: int = 32  # images are padded (with -1, the background) to this size before encoding

    def __post_init__(self):
        self.channels = tuple(self.channels)
        if any(c % self.groups for c in self.channels):
            raise ValueError(f"every channel count in {self.channels} must divide by groups={self.groups}")
        if self.pad_to % self.downsampling or self.pad_to < self.image_size:
            raise ValueError(f"pad_to={self.pad_to} must be >= image_size and divide by {self.downsampling}")

    @property
    def margin(self) -> int:
        """Pixels of padding above and left of the image (the rest goes below and right)."""
        return (self.pad_to - self.image_size) // 2

    @property
    def downsampling(self) -> int:
        return self.patch * 2 ** (len(self.channels) - 1)

    @property
    def latent_size(self) -> int:
        return self.pad_to // self.downsampling

    def to_dict(self) -> dict:
        return asdict(self)


class DiagonalGaussian:
    """N(mean, exp(logvar)) per latent element; the posterior q(z | x) of the VAE."""

    def __init__(self, moments: torch.Tensor):
        self.mean, logvar = moments.chunk(2, dim=1)
        self.logvar = logvar.clamp(-30.0, 20.0)
        self.std = torch.exp(0.5 * self.logvar)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """The reparameterisation trick: mean + std * eps, differentiable in mean and std."""
        eps = torch.randn(self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype)
        return self.mean + self.std * eps

    def mode(self) -> torch.Tensor:
        return self.mean

    def kl(self) -> torch.Tensor:
        """KL(q(z|x) || N(0, I)) summed over latent elements: (B,)."""
        return 0.5 * (self.mean.pow(2) + self.logvar.exp() - 1.0 - self.logvar).flatten(1).sum(1)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, groups: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.GroupNorm(groups, cin), nn.SiLU(), nn.Conv2d(cin, cout, 3, padding=1),
            nn.GroupNorm(groups, cout), nn.SiLU(), nn.Conv2d(cout, cout, 3, padding=1),
        )
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.body(x)


class VAE(nn.Module):
    def __init__(self, config: VAEConfig | None = None, **overrides):
        super().__init__()
        cfg = self.config = config or VAEConfig(**overrides)
        ch = cfg.channels
        packed = cfg.in_channels * cfg.patch**2
        enc: list[nn.Module] = [nn.PixelUnshuffle(cfg.patch), nn.Conv2d(packed, ch[0], 3, padding=1)]
        for i, c in enumerate(ch):
            if i > 0:
                enc.append(nn.Conv2d(ch[i - 1], c, 3, stride=2, padding=1))
            enc.append(ResBlock(c, c, cfg.groups))
        enc += [nn.GroupNorm(cfg.groups, ch[-1]), nn.SiLU(), nn.Conv2d(ch[-1], 2 * cfg.latent_channels, 3, padding=1)]
        self.encoder = nn.Sequential(*enc)
        dec: list[nn.Module] = [nn.Conv2d(cfg.latent_channels, ch[-1], 3, padding=1)]
        for i in reversed(range(len(ch))):
            dec.append(ResBlock(ch[i], ch[i], cfg.groups))
            if i > 0:
                dec += [nn.Upsample(scale_factor=2.0, mode="nearest"), nn.Conv2d(ch[i], ch[i - 1], 3, padding=1)]
        dec += [nn.GroupNorm(cfg.groups, ch[0]), nn.SiLU(), nn.Conv2d(ch[0], packed, 3, padding=1), nn.PixelShuffle(cfg.patch)]
        self.decoder = nn.Sequential(*dec)

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        return (self.config.latent_channels, self.config.latent_size, self.config.latent_size)

    def encode(self, x: torch.Tensor) -> SimpleNamespace:
        cfg = self.config
        if x.shape[1:] != (cfg.in_channels, cfg.image_size, cfg.image_size):
            raise ValueError(f"expected images (B, {cfg.in_channels}, {cfg.image_size}, {cfg.image_size}), "
                             f"got {tuple(x.shape)}")
        extra = cfg.pad_to - cfg.image_size - cfg.margin
        x = F.pad(x, (cfg.margin, extra, cfg.margin, extra), value=-1.0)
        return SimpleNamespace(latent_dist=DiagonalGaussian(self.encoder(x)))

    def decode(self, z: torch.Tensor) -> SimpleNamespace:
        cfg = self.config
        if z.shape[1:] != self.latent_shape:
            raise ValueError(f"expected latents (B, {', '.join(map(str, self.latent_shape))}), got {tuple(z.shape)}")
        out = self.decoder(z)
        m = cfg.margin
        return SimpleNamespace(sample=out[..., m : m + cfg.image_size, m : m + cfg.image_size])

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.decode(self.encode(x).latent_dist.sample(generator)).sample


def vae_loss(beta: float):
    """loss_fn(vae, batch) for the Trainer: the negative beta-ELBO per pixel.

    Squared error summed over pixels + beta * KL summed over latent elements, divided by the
    number of pixels. With a Gaussian decoder of variance s^2 the ELBO is SE / (2 s^2) + KL, so
    beta = 2 s^2: small beta keeps reconstructions sharp, large beta collapses the posterior.
    Works for any model with the AutoencoderKL API (tinyvid's VAE or diffusers').
    """

    def loss_fn(vae, batch):
        x = batch[0]
        posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.sample()).sample
        pixels = x[0].numel()
        rec = (recon.float() - x).pow(2).flatten(1).sum(1)
        kl = posterior.kl().float()
        loss = (rec + beta * kl).mean() / pixels
        return loss, {"mse": rec.detach().mean() / pixels, "kl_per_latent": kl.detach().mean() / posterior.mean[0].numel()}

    return loss_fn


@torch.no_grad()
def encode_latents(vae, x: torch.Tensor, batch_size: int = 1000, sample: bool = False,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Latents of a dataset (posterior means, or samples), batched and without gradients."""
    vae.eval()
    out = []
    for i in range(0, len(x), batch_size):
        dist = vae.encode(x[i : i + batch_size]).latent_dist
        out.append(dist.sample(generator) if sample else dist.mode())
    return torch.cat(out)


@torch.no_grad()
def decode_latents(vae, z: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    vae.eval()
    return torch.cat([vae.decode(z[i : i + batch_size]).sample for i in range(0, len(z), batch_size)])


def latent_scaling_factor(latents: torch.Tensor) -> float:
    """1 / std of the latents, as Stable Diffusion computed its 0.18215: unit-variance latents
    make the diffusion schedule's noise levels mean the same thing as in pixel space."""
    return float(1.0 / latents.float().std())


@torch.no_grad()
def encode_frames(vae, videos: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """An image VAE applied to every frame (AnimateDiff's latent space): (N, 1, F, H, W) -> (N, C, F, h, w) means."""
    frames = videos.shape[2]
    z = encode_latents(vae, rearrange(videos, "n c f h w -> (n f) c h w"), batch_size)
    return rearrange(z, "(n f) c h w -> n c f h w", f=frames)


@torch.no_grad()
def decode_frames(vae, latents: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """(N, C, F, h, w) latents -> (N, 1, F, H, W) clips, frame by frame."""
    frames = latents.shape[2]
    x = decode_latents(vae, rearrange(latents, "n c f h w -> (n f) c h w"), batch_size)
    return rearrange(x, "(n f) c h w -> n c f h w", f=frames)
