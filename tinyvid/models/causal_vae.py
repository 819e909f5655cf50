"""A causal 3D VAE for clips, compressing time 4x and space 4x or 8x as Wan2.1's and CogVideoX's VAEs do.

Causal: every convolution pads only the past in time (the first frame replicated, as CogVideoX does;
Wan pads zeros), and the norms are per voxel (Wan's channel RMS norm; a GroupNorm would pool
statistics over all frames), so latent frame n depends only on the frames up to it. A long
video can then be encoded in chunks, and the first latent frame is an image's latent.

The first frame is encoded alone: a 16-frame clip is read as 1 + 16 frames (frame 0 repeated in
front), latent frame 0 holds frame 0 by itself and each later latent frame covers 4 frames:
1 + 16/4 = 5 latent frames. The decoder emits 1 + 16 frames and drops the copy. Every time
halving (the stem's space-to-depth, a strided causal convolution, a depth-to-space upsampling)
keeps that shape: 1 + 2n frames <-> 1 + n.

Same calling convention as `tinyvid.models.vae` (diffusers' AutoencoderKL): `encode(x).latent_dist`
(a `DiagonalGaussian`), `decode(z).sample`, so `encode_latents`/`decode_latents` work unchanged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from tinyvid.models.vae import DiagonalGaussian


@dataclass
class CausalVAE3DConfig:
    in_channels: int = 1
    latent_channels: int = 8
    # stem space-to-depth (time, space): no convolution ever runs at full resolution (CPU-lean)
    patch: tuple[int, int] = (2, 2)
    # one level per entry; between levels a strided causal convolution halves T, H and W
    channels: tuple[int, ...] = (32, 64)
    blocks_per_level: int = 1
    # (2+1)D convolutions (3x3 in space, then 3 causal in time) instead of 3x3x3: 27 -> 12 taps
    factorized: bool = False
    frames: int = 16  # the clip layout the model is built for (any multiple of the time compression works)
    size: int = 64

    def __post_init__(self):
        self.patch, self.channels = tuple(self.patch), tuple(self.channels)
        if len(self.patch) != 2 or min(self.patch) < 1:
            raise ValueError(f"patch is (time, space) factors >= 1, got {self.patch}")
        if not self.channels:
            raise ValueError("channels needs at least one level")
        if self.frames % self.temporal_compression or self.size % self.spatial_compression:
            raise ValueError(f"frames={self.frames} must divide by {self.temporal_compression} and size={self.size} "
                             f"by {self.spatial_compression} (the compression of patch={self.patch}, "
                             f"{len(self.channels)} levels)")

    @property
    def temporal_compression(self) -> int:
        return self.patch[0] * 2 ** (len(self.channels) - 1)

    @property
    def spatial_compression(self) -> int:
        return self.patch[1] * 2 ** (len(self.channels) - 1)

    @property
    def latent_shape(self) -> tuple[int, int, int, int]:
        """(C, 1 + T/4, H/s, W/s) of one clip's latents."""
        s = self.size // self.spatial_compression
        return (self.latent_channels, 1 + self.frames // self.temporal_compression, s, s)

    def to_dict(self) -> dict:
        return asdict(self)


class CausalConv3d(nn.Conv3d):
    """A 3D convolution that sees only the past in time: kt - 1 copies of the first frame are padded
    in front (none after), space is zero-padded as usual. Output frame n depends on input frames <= n
    (with a time stride s, output n depends on inputs <= s * n)."""

    def __init__(self, cin: int, cout: int, kernel=3, stride=1):
        kernel = (kernel,) * 3 if isinstance(kernel, int) else tuple(kernel)
        super().__init__(cin, cout, kernel, stride, padding=(0, kernel[1] // 2, kernel[2] // 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        past = self.kernel_size[0] - 1
        x = torch.cat([x[:, :, :1].expand(-1, -1, past, -1, -1), x], dim=2)
        return super().forward(x)


def space_to_depth(x: torch.Tensor, pt: int, ps: int) -> torch.Tensor:
    """(B, C, 1 + pt*n, H, W) -> (B, C*pt*ps*ps, 1 + n, H/ps, W/ps): frame 0 is padded with pt - 1 copies
    of itself, so it fills a time group of its own."""
    x = torch.cat([x[:, :, :1].expand(-1, -1, pt - 1, -1, -1), x], dim=2)
    return rearrange(x, "b c (t dt) (h dh) (w dw) -> b (c dt dh dw) t h w", dt=pt, dh=ps, dw=ps)


def depth_to_space(x: torch.Tensor, pt: int, ps: int) -> torch.Tensor:
    """Inverse of space_to_depth: (B, C*pt*ps*ps, 1 + n, h, w) -> (B, C, 1 + pt*n, h*ps, w*ps), the pt - 1
    extra frames that latent frame 0 unfolds to are dropped."""
    x = rearrange(x, "b (c dt dh dw) t h w -> b c (t dt) (h dh) (w dw)", dt=pt, dh=ps, dw=ps)
    return x[:, :, pt - 1 :]


class ChannelRMSNorm(nn.Module):
    """RMS norm over channels at every voxel (Wan's VAE norm): causal, and cheap on a CPU."""

    def __init__(self, channels: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(channels, 1, 1, 1))
        self.bias = nn.Parameter(torch.zeros(channels, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=1) * x.shape[1] ** 0.5 * self.gamma + self.bias


def conv3(cin: int, cout: int, factorized: bool) -> nn.Module:
    if factorized:
        return nn.Sequential(CausalConv3d(cin, cout, (1, 3, 3)), CausalConv3d(cout, cout, (3, 1, 1)))
    return CausalConv3d(cin, cout, 3)


class ResBlock3d(nn.Module):
    def __init__(self, cin: int, cout: int, factorized: bool):
        super().__init__()
        self.body = nn.Sequential(ChannelRMSNorm(cin), nn.SiLU(), conv3(cin, cout, factorized),
                                  ChannelRMSNorm(cout), nn.SiLU(), conv3(cout, cout, factorized))
        self.skip = CausalConv3d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.body(x)


class Upsample3d(nn.Module):
    """2x in T, H, W by depth-to-space (Wan's time_conv doubles channels, then unfolds them into frames)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = CausalConv3d(cin, cout * 8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return depth_to_space(self.conv(x), 2, 2)


class CausalVAE3D(nn.Module):
    """Clips (B, 1, T, H, W) in [-1, 1] <-> latents (B, C, 1 + T/4, H/s, W/s)."""

    def __init__(self, config: CausalVAE3DConfig | None = None, **overrides):
        super().__init__()
        cfg = self.config = config or CausalVAE3DConfig(**overrides)
        ch, fz, n = cfg.channels, cfg.factorized, cfg.blocks_per_level
        packed = cfg.in_channels * cfg.patch[0] * cfg.patch[1] ** 2
        enc: list[nn.Module] = [CausalConv3d(packed, ch[0], 3)]
        for i, c in enumerate(ch):
            if i > 0:
                enc.append(CausalConv3d(ch[i - 1], c, 3, stride=2))
            enc += [ResBlock3d(c, c, fz) for _ in range(n)]
        enc += [ChannelRMSNorm(ch[-1]), nn.SiLU(), CausalConv3d(ch[-1], 2 * cfg.latent_channels, 3)]
        self.encoder = nn.Sequential(*enc)
        dec: list[nn.Module] = [CausalConv3d(cfg.latent_channels, ch[-1], 3)]
        for i in reversed(range(len(ch))):
            dec += [ResBlock3d(ch[i], ch[i], fz) for _ in range(n)]
            if i > 0:
                dec.append(Upsample3d(ch[i], ch[i - 1]))
        dec += [ChannelRMSNorm(ch[0]), nn.SiLU(), CausalConv3d(ch[0], packed, 3)]
        self.decoder = nn.Sequential(*dec)

    @property
    def latent_shape(self) -> tuple[int, int, int, int]:
        return self.config.latent_shape

    def encode(self, x: torch.Tensor) -> SimpleNamespace:
        cfg = self.config
        ct, cs = cfg.temporal_compression, cfg.spatial_compression
        if x.ndim != 5 or x.shape[1] != cfg.in_channels or x.shape[2] % ct or x.shape[3] % cs or x.shape[4] % cs:
            raise ValueError(f"expected clips (B, {cfg.in_channels}, T, H, W) with T divisible by {ct} and H, W by {cs}, "
                             f"got {tuple(x.shape)}")
        x = torch.cat([x[:, :, :1], x], dim=2)  # 1 + T frames: latent frame 0 is frame 0 alone
        moments = self.encoder(space_to_depth(x, *cfg.patch))
        return SimpleNamespace(latent_dist=DiagonalGaussian(moments))

    def decode(self, z: torch.Tensor) -> SimpleNamespace:
        cfg = self.config
        if z.ndim != 5 or z.shape[1] != cfg.latent_channels:
            raise ValueError(f"expected latents (B, {cfg.latent_channels}, 1 + T/{cfg.temporal_compression}, h, w), "
                             f"got {tuple(z.shape)}")
        out = depth_to_space(self.decoder(z), *cfg.patch)
        return SimpleNamespace(sample=out[:, :, 1:])  # drop the copy of frame 0

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.decode(self.encode(x).latent_dist.sample(generator)).sample


def random_crop(x: torch.Tensor, frames: int, size: int) -> torch.Tensor:
    """One random (frames, size, size) window of a batch of clips (B, C, T, H, W), the same for the whole batch."""
    T, H, W = x.shape[2:]
    if frames > T or size > min(H, W):
        raise ValueError(f"crop ({frames}, {size}, {size}) is larger than the clips {tuple(x.shape[2:])}")
    t, h, w = (int(torch.randint(0, n - k + 1, ())) for n, k in ((T, frames), (H, size), (W, size)))
    return x[:, :, t : t + frames, h : h + size, w : w + size]


def video_vae_loss(beta: float, temporal_weight: float = 0.0, crop: tuple[int, int] | None = None):
    """loss_fn(vae, batch) for the Trainer, batch = (clips,): the negative beta-ELBO per pixel (as
    `tinyvid.models.vae_loss`) + temporal_weight * the squared error of frame-to-frame differences,
    which weighs the moving edges that a per-pixel loss averages away.

    crop=(frames, size): train on random windows of the clips. A convolutional VAE is local, so it
    learns as well from short, small windows at a fraction of the cost and still encodes whole clips
    (video VAEs are trained on low-resolution, short clips first); the window starts a new "first frame".
    """

    def loss_fn(vae, batch):
        x = batch[0] if crop is None else random_crop(batch[0], *crop)
        posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.sample()).sample.float()
        pixels = x[0].numel()
        rec = (recon - x).pow(2).flatten(1).sum(1)
        kl = posterior.kl().float()
        loss = (rec + beta * kl).mean() / pixels
        logs = {"mse": rec.detach().mean() / pixels, "kl_per_latent": kl.detach().mean() / posterior.mean[0].numel()}
        if temporal_weight:
            motion = (recon.diff(dim=2) - x.diff(dim=2)).pow(2).mean()
            loss = loss + temporal_weight * motion
            logs["temporal_mse"] = motion.detach()
        return loss, logs

    return loss_fn
