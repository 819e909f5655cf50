"""CLIP for video and captions: a factorised video encoder, the text encoder, symmetric InfoNCE.

The video encoder embeds each frame as patches and runs spatial attention inside each frame,
pools every frame to one vector, then runs temporal attention across frames (or, as the
baseline, averages them): direction of motion is only visible across frames.
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

POOLING = ("attention", "mean")
MAX_LOGIT_SCALE = math.log(100.0)  # CLIP caps 1 / temperature at 100


@dataclass
class VideoEncoderConfig:
    frames: int = 16
    size: int = 64
    patch: int = 16
    dim: int = 128
    spatial_depth: int = 2
    temporal_depth: int = 2
    heads: int = 4
    temporal: str = "attention"  # "attention" across frames, or "mean" (no temporal modelling)

    def __post_init__(self):
        if self.size % self.patch:
            raise ValueError(f"size={self.size} must divide by patch={self.patch}")
        if self.temporal not in POOLING:
            raise ValueError(f"temporal must be one of {POOLING}, got {self.temporal!r}")


class VideoEncoder(nn.Module):
    """(B, 1, T, H, W) in [-1, 1] (the course's video layout, `Clips.tensors()`) -> (B, D)."""

    def __init__(self, cfg: VideoEncoderConfig):
        super().__init__()
        self.config = cfg
        tokens = (cfg.size // cfg.patch) ** 2
        self.patchify = nn.Conv2d(1, cfg.dim, cfg.patch, stride=cfg.patch)
        self.space_pos = nn.Parameter(torch.randn(1, tokens, cfg.dim) * 0.02)
        self.spatial = nn.ModuleList(TransformerBlock(cfg.dim, cfg.heads) for _ in range(cfg.spatial_depth))
        self.time_pos = nn.Parameter(torch.randn(1, cfg.frames, cfg.dim) * 0.02)
        depth = cfg.temporal_depth if cfg.temporal == "attention" else 0
        self.temporal = nn.ModuleList(TransformerBlock(cfg.dim, cfg.heads) for _ in range(depth))
        self.norm = nn.LayerNorm(cfg.dim)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        if video.shape[1:] != (1, cfg.frames, cfg.size, cfg.size):
            raise ValueError(f"expected videos (B, 1, {cfg.frames}, {cfg.size}, {cfg.size}), got {tuple(video.shape)}")
        b = video.shape[0]
        x = rearrange(self.patchify(rearrange(video, "b c t h w -> (b t) c h w")), "bt d h w -> bt (h w) d")
        x = x + self.space_pos
        for block in self.spatial:
            x = block(x)
        x = rearrange(x.mean(1), "(b t) d -> b t d", b=b) + self.time_pos
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


def clip_loss(video_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE: row i of the batch is the positive pair, every other row a negative.

    The temperature is exp(-logit_scale), its scale capped at 100 as in CLIP.
    """
    logits = logit_scale.clamp(max=MAX_LOGIT_SCALE).exp() * video_emb @ text_emb.t()
    target = torch.arange(len(logits), device=logits.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))


def clip_training_loss():
    """loss_fn(model, batch) for the Trainer; batch = (videos, ids, mask). Logs the temperature."""

    def loss_fn(model, batch):
        video, ids, mask = batch
        v, t = model(video, ids, mask)
        scale = getattr(model, "module", model).logit_scale  # DDP wraps the model
        return clip_loss(v, t, scale), {"temperature": scale.detach().clamp(max=MAX_LOGIT_SCALE).exp().reciprocal()}

    return loss_fn


def retrieval_recall(similarity: torch.Tensor, relevant: torch.Tensor, ks=(1, 5)) -> dict[int, float]:
    """Recall@k of ranking the columns for each row: the fraction of rows whose top k contains a
    relevant column. `relevant` (R, C) bool marks every correct column (equal captions count)."""
    if similarity.shape != relevant.shape:
        raise ValueError(f"similarity {tuple(similarity.shape)} and relevant {tuple(relevant.shape)} differ")
    order = similarity.argsort(dim=1, descending=True)
    hits = relevant.gather(1, order)
    return {k: hits[:, :k].any(1).float().mean().item() for k in ks}
