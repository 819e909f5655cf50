"""CLIP for video and captions: a factorised video encoder, the text encoder, symmetric InfoNCE.

The video encoder cuts the clip into tubelets (`tubelet` frames x `patch` x `patch` pixels, ViViT's
tubelet embedding; tubelet=1 is per-frame patches) and then either
- "joint": attends over all space-time tokens at once (ViViT model 1): a digit's identity and its
  motion stay bound together, which two-digit captions need;
- "attention": factorised, spatial attention inside each time step, one vector per step, then
  temporal attention across steps (ViViT model 2, TimeSformer-like);
- "mean": the same spatial attention, then an average over time: blind to frame order (the baseline).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from tinyvid.models.blocks import TransformerBlock
from tinyvid.models.text_encoder import TextEncoder, TextEncoderConfig

POOLING = ("joint", "attention", "mean")
MAX_LOGIT_SCALE = math.log(100.0)  # CLIP caps 1 / temperature at 100


@dataclass
class VideoEncoderConfig:
    frames: int = 16
    size: int = 64
    patch: int = 16
    tubelet: int = 1  # frames per token
    # a small convolutional stem per frame before the tubelets ("early convolutions help transformers
    # see better", Xiao et al. 2021): 4x4 pixel blocks as channels, then a 3x3 convolution; 0 = none
    stem_channels: int = 0
    dim: int = 128
    spatial_depth: int = 2
    temporal_depth: int = 2
    heads: int = 4
    temporal: str = "attention"  # "joint" space-time, "attention" across time steps, or "mean" (none)

    def __post_init__(self):
        if self.size % self.patch:
            raise ValueError(f"size={self.size} must divide by patch={self.patch}")
        if self.frames % self.tubelet:
            raise ValueError(f"frames={self.frames} must divide by tubelet={self.tubelet}")
        if self.temporal not in POOLING:
            raise ValueError(f"temporal must be one of {POOLING}, got {self.temporal!r}")


class VideoEncoder(nn.Module):
    """(B, 1, T, H, W) in [-1, 1] (the course's video layout, `Clips.tensors()`) -> (B, D)."""

    def __init__(self, cfg: VideoEncoderConfig):
        super().__init__()
        self.config = cfg
        tokens, steps = (cfg.size // cfg.patch) ** 2, cfg.frames // cfg.tubelet
        if cfg.stem_channels:
            if cfg.patch % 4:
                raise ValueError(f"a stem needs patch divisible by 4, got patch={cfg.patch}")
            self.stem = nn.Sequential(nn.PixelUnshuffle(4), nn.Conv2d(16, cfg.stem_channels, 3, padding=1), nn.GELU())
            cin, p = cfg.stem_channels, cfg.patch // 4
        else:
            self.stem, cin, p = None, 1, cfg.patch
        self.patchify = nn.Conv3d(cin, cfg.dim, (cfg.tubelet, p, p), stride=(cfg.tubelet, p, p))
        self.space_pos = nn.Parameter(torch.randn(1, 1, tokens, cfg.dim) * 0.02)
        self.time_pos = nn.Parameter(torch.randn(1, steps, 1, cfg.dim) * 0.02)
        joint = cfg.temporal == "joint"
        self.spatial = nn.ModuleList(TransformerBlock(cfg.dim, cfg.heads)
                                     for _ in range(cfg.spatial_depth + (cfg.temporal_depth if joint else 0)))
        depth = cfg.temporal_depth if cfg.temporal == "attention" else 0
        self.temporal = nn.ModuleList(TransformerBlock(cfg.dim, cfg.heads) for _ in range(depth))
        self.norm = nn.LayerNorm(cfg.dim)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        if video.shape[1:] != (1, cfg.frames, cfg.size, cfg.size):
            raise ValueError(f"expected videos (B, 1, {cfg.frames}, {cfg.size}, {cfg.size}), got {tuple(video.shape)}")
        if self.stem is not None:
            frames = self.stem(rearrange(video, "b 1 t h w -> (b t) 1 h w"))
            video = rearrange(frames, "(b t) c h w -> b c t h w", t=cfg.frames)
        x = rearrange(self.patchify(video), "b d t h w -> b t (h w) d")
        if cfg.temporal == "joint":  # every token sees every other: where a digit is and how it moves stay bound
            x = rearrange(x + self.space_pos + self.time_pos, "b t s d -> b (t s) d")
            for block in self.spatial:
                x = block(x)
            return self.norm(x.mean(1))
        b, steps = x.shape[:2]
        x = rearrange(x + self.space_pos, "b t s d -> (b t) s d")
        for block in self.spatial:
            x = block(x)
        x = rearrange(x.mean(1), "(b t) d -> b t d", b=b) + self.time_pos[:, :, 0]
        for block in self.temporal:
            x = block(x)
        return self.norm(x.mean(1))


@dataclass
class CLIPConfig:
    video: VideoEncoderConfig = field(default_factory=VideoEncoderConfig)
    text: TextEncoderConfig = field(default_factory=lambda: TextEncoderConfig(vocab_size=32))
    embed_dim: int = 128
    init_temperature: float = 0.07

    def __post_init__(self):
        if isinstance(self.video, dict):
            self.video = VideoEncoderConfig(**self.video)
        if isinstance(self.text, dict):
            self.text = TextEncoderConfig(**self.text)

    def to_dict(self) -> dict:
        return asdict(self)


class VideoTextCLIP(nn.Module):
    """Two towers and a learnable temperature; embeddings are L2-normalised."""

    def __init__(self, config: CLIPConfig | None = None, **overrides):
        super().__init__()
        cfg = self.config = config or CLIPConfig(**overrides)
        self.video_encoder = VideoEncoder(cfg.video)
        self.text_encoder = TextEncoder(cfg.text)
        self.video_proj = nn.Linear(cfg.video.dim, cfg.embed_dim, bias=False)
        self.text_proj = nn.Linear(cfg.text.dim, cfg.embed_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(float(-torch.log(torch.tensor(cfg.init_temperature)))))

    def encode_video(self, video: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.video_proj(self.video_encoder(video)), dim=-1)

    def encode_text(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text_proj(self.text_encoder(ids, mask)[1]), dim=-1)

    def forward(self, video, ids, mask):
        return self.encode_video(video), self.encode_text(ids, mask)


def clip_loss(video_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: torch.Tensor,
              positives: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE: row i of the batch is the positive pair, every other row a negative.

    The temperature is exp(-logit_scale), its scale capped at 100 as in CLIP. `positives` (N, N) bool
    marks every pair that is a true match (a batch often holds the same caption twice): the target
    then spreads evenly over them instead of calling a correct match a negative.
    """
    logits = logit_scale.clamp(max=MAX_LOGIT_SCALE).exp() * video_emb @ text_emb.t()
    if positives is None:
        target = torch.arange(len(logits), device=logits.device)
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))
    p = positives.float()
    return 0.5 * (F.cross_entropy(logits, p / p.sum(1, keepdim=True)) + F.cross_entropy(logits.t(), p.t() / p.t().sum(1, keepdim=True)))


def clip_training_loss(same_caption_positives: bool = True):
    """loss_fn(model, batch) for the Trainer; batch = (videos, ids, mask). Logs the temperature.
    Clips with identical caption tokens count as positives of each other."""

    def loss_fn(model, batch):
        video, ids, mask = batch
        v, t = model(video, ids, mask)
        scale = getattr(model, "module", model).logit_scale  # DDP wraps the model
        positives = (ids[:, None] == ids[None]).all(-1) if same_caption_positives else None
        return clip_loss(v, t, scale, positives), {"temperature": scale.detach().clamp(max=MAX_LOGIT_SCALE).exp().reciprocal()}

    return loss_fn


def retrieval_recall(similarity: torch.Tensor, relevant: torch.Tensor, ks=(1, 5)) -> dict[int, float]:
    """Recall@k of ranking the columns for each row: the fraction of rows whose top k contains a
    relevant column. `relevant` (R, C) bool marks every correct column (equal captions count)."""
    if similarity.shape != relevant.shape:
        raise ValueError(f"similarity {tuple(similarity.shape)} and relevant {tuple(relevant.shape)} differ")
    order = similarity.argsort(dim=1, descending=True)
    hits = relevant.gather(1, order)
    return {k: hits[:, :k].any(1).float().mean().item() for k in ks}
