"""The video side of the course's video-language model: a per-frame ViT and three temporal aggregators.

The ViT embeds every sampled frame as patch tokens and attends within the frame (no time yet),
like the image tower Video-LLaVA runs on each of its 8 frames. An aggregator then turns the
(B, T, N, D) frame tokens into the M visual tokens the language model reads:

- `mean`: average each patch over time (Video-ChatGPT's temporal pooling): cheap, but the mean of
  a moving digit is a streak, so *which way* it moved is lost.
- `temporal`: attention across the T frames at each patch position (AnimateDiff's motion module,
  TimeSformer's divided attention), then the mean over time: the order of frames now counts.
- `qformer`: BLIP-2's Q-Former: M learned queries attend to each other and cross-attend to all
  T x N frame tokens (with time and space positions); the number of visual tokens is M, whatever
  the clip length.
- `concat`: every frame's tokens, in order (T x N tokens): what Video-LLaVA itself feeds its LM;
  too long for CPU training here, kept for the parity test with transformers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn

from tinyvid.data.frame_sampling import sample_indices
from tinyvid.data.moving_mnist import DIRECTION_STEPS, NO_DIGIT, SPEED
from tinyvid.models.blocks import TransformerBlock

NO_DIGIT_CLASS = 10  # the detection head's class for "no digit centred in this patch" (digits are 0-9)
NUM_DIRECTIONS = len(DIRECTION_STEPS)
AGGREGATORS = ("mean", "temporal", "qformer", "concat")
STEMS = ("patch", "conv")


@dataclass
class VisionConfig:
    frames: int = 8  # frames sampled from each clip (uniformly, `tinyvid.data.frame_sampling`)
    size: int = 64
    patch: int = 16
    stem: str = "conv"  # "patch": one strided conv (plain ViT); "conv": two stride-2 3x3 convs first
    # frames are average-pooled by this factor before the stem: a 28-pixel MNIST digit stays legible at 14
    # pixels, the stem does a quarter of the work and the patch grid (size / patch) is unchanged
    pool: int = 1
    dim: int = 96
    depth: int = 2  # spatial (per-frame) transformer blocks
    heads: int = 4
    aggregator: str = "qformer"
    aggregator_depth: int = 1  # temporal / Q-Former blocks
    queries: int = 16  # Q-Former only
    feature_norm: str = "batch"  # "batch": standardise the visual tokens over the batch; "none"
    motion: bool = False  # a second input channel per frame: the next frame minus this one (two-stream)
    # with motion: the change is to the frame `motion_gap` frames later (2 px of motion a frame, halved by
    # pool=2: a gap of 1 moves a stroke by one pooled pixel); the sampled frames move earlier to leave room
    motion_gap: int = 1
    detection: bool = False  # a per-token head for the auxiliary detection loss (`frame_detection_targets`)
    # with motion: the frame and its change go through two ViTs of half width (`TwoStreamViT`), so what a
    # digit looks like is encoded apart from how it moves, and digits are read from the appearance half only
    two_stream: bool = False

    def __post_init__(self):
        if self.size % self.patch:
            raise ValueError(f"size={self.size} must divide by patch={self.patch}")
        if self.stem not in STEMS:
            raise ValueError(f"stem must be one of {STEMS}, got {self.stem!r}")
        if self.pool < 1 or self.patch % self.pool:
            raise ValueError(f"pool={self.pool} must be a positive divisor of patch={self.patch}")
        if self.stem == "conv" and (self.patch // self.pool) % 4:
            raise ValueError(f"the conv stem downsamples by 4 first: patch / pool = {self.patch}/{self.pool} must divide by 4")
        if self.feature_norm not in ("batch", "none"):
            raise ValueError(f"feature_norm must be 'batch' or 'none', got {self.feature_norm!r}")
        if self.aggregator not in AGGREGATORS:
            raise ValueError(f"aggregator must be one of {AGGREGATORS}, got {self.aggregator!r}")
        if self.motion_gap < 1:
            raise ValueError(f"motion_gap must be at least 1 frame, got {self.motion_gap}")
        if self.two_stream and not self.motion:
            raise ValueError("two_stream=True splits the frame from its motion channel: it needs motion=True")
        if self.two_stream and (self.dim % 2 or self.heads % 2):
            raise ValueError(f"two_stream=True halves dim={self.dim} and heads={self.heads} per stream: both must be even")

    @property
    def in_channels(self) -> int:
        return 2 if self.motion else 1

    @property
    def grid(self) -> int:
        """Patches per side of a frame."""
        return self.size // self.patch

    @property
    def patches(self) -> int:
        return self.grid ** 2

    @property
    def num_tokens(self) -> int:
        """Visual tokens per clip that the aggregator emits."""
        return {"qformer": self.queries, "concat": self.frames * self.patches}.get(self.aggregator, self.patches)

    def to_dict(self) -> dict:
        return asdict(self)


def patch_embedding(cfg: VisionConfig) -> nn.Module:
    """Frames (B, 1, H, W) -> (B, D, H/p, W/p). A few convolutions before the patches make a small
    ViT learn much faster from scratch (Xiao et al., 2021, "Early convolutions help transformers see better")."""
    p = cfg.patch // cfg.pool  # the patch size at the pooled resolution
    if cfg.stem == "patch":
        stem = [nn.Conv2d(cfg.in_channels, cfg.dim, p, stride=p)]
    else:
        stem = [nn.Conv2d(cfg.in_channels, cfg.dim // 4, 3, stride=2, padding=1), nn.GELU(),
                nn.Conv2d(cfg.dim // 4, cfg.dim // 2, 3, stride=2, padding=1), nn.GELU(),
                nn.Conv2d(cfg.dim // 2, cfg.dim, p // 4, stride=p // 4)]
    if cfg.pool > 1:
        stem.insert(0, nn.AvgPool2d(cfg.pool))
    # a lone convolution stays bare, so checkpoints of the plain-ViT stem keep their `patchify.weight` names
    return stem[0] if len(stem) == 1 else nn.Sequential(*stem)


class FrameViT(nn.Module):
    """Frames (B, T, 1, H, W) in [-1, 1] -> patch tokens (B, T, N, D); frames never see each other."""

    def __init__(self, cfg: VisionConfig):
        super().__init__()
        self.config = cfg
        self.patchify = patch_embedding(cfg)
        self.pos = nn.Parameter(torch.randn(1, cfg.patches, cfg.dim) * 0.02)
        self.blocks = nn.ModuleList(TransformerBlock(cfg.dim, cfg.heads) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.dim)
        # per token: which digit is centred in this patch (10 = none) and, with motion input, which way it moves
        self.detector = nn.Linear(cfg.dim, NO_DIGIT_CLASS + 1 + NUM_DIRECTIONS) if cfg.detection else None

    def detect(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Frame tokens (B, T, N, D) -> digit logits (B, T, N, 11) and direction logits (B, T, N, 8)."""
        if self.detector is None:
            raise ValueError("this encoder has no detection head: build it with VisionConfig(detection=True)")
        out = self.detector(tokens)
        return out[..., : NO_DIGIT_CLASS + 1], out[..., NO_DIGIT_CLASS + 1 :]

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        b = frames.shape[0]
        x = rearrange(self.patchify(rearrange(frames, "b t c h w -> (b t) c h w")), "bt d h w -> bt (h w) d")
        x = x + self.pos
        for block in self.blocks:
            x = block(x)
        return rearrange(self.norm(x), "(b t) n d -> b t n d", b=b)


class TwoStreamViT(nn.Module):
    """Frames (B, T, 2, H, W) (frame, change to the next frame) -> tokens (B, T, N, D) = [appearance | motion].

    Two FrameViTs of half width, one per input channel: the two-stream network of Simonyan & Zisserman
    (2014) at patch level. One ViT over both channels learns digit features from the motion channel too,
    and those depend on the direction: on held-out (digit, direction) pairs such an encoder's own detection
    head named the digit right 27% of the time against 84% on seen pairs. Here the digit head reads only
    the appearance half, which never sees motion, and the direction head only the motion half.
    """

    def __init__(self, cfg: VisionConfig):
        super().__init__()
        self.config = cfg
        half = replace(cfg, dim=cfg.dim // 2, heads=cfg.heads // 2, motion=False, detection=False, two_stream=False)
        self.appearance, self.motion = FrameViT(half), FrameViT(half)
        self.half = half.dim
        self.digit_head = nn.Linear(half.dim, NO_DIGIT_CLASS + 1) if cfg.detection else None
        self.direction_head = nn.Linear(half.dim, NUM_DIRECTIONS) if cfg.detection else None

    def detect(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Frame tokens (B, T, N, D) -> digit logits (B, T, N, 11) from the appearance half and direction
        logits (B, T, N, 8) from the motion half."""
        if self.digit_head is None:
            raise ValueError("this encoder has no detection head: build it with VisionConfig(detection=True)")
        return self.digit_head(tokens[..., : self.half]), self.direction_head(tokens[..., self.half :])

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.appearance(frames[:, :, :1]), self.motion(frames[:, :, 1:])], dim=-1)


def vision_encoder(cfg: VisionConfig) -> nn.Module:
    """The per-frame encoder a VisionConfig asks for: `TwoStreamViT` or one `FrameViT`."""
    return TwoStreamViT(cfg) if cfg.two_stream else FrameViT(cfg)


def frame_times(cfg: VisionConfig, frames: int) -> torch.Tensor:
    """Which of a clip's `frames` frames the model sees: spread uniformly, and with motion input moved
    earlier (all by the same amount) so that every one has a frame `motion_gap` later."""
    idx = sample_indices(frames, cfg.frames, "uniform")
    if not cfg.motion:
        return idx
    if cfg.motion_gap >= frames:
        raise ValueError(f"motion_gap={cfg.motion_gap} needs clips of more than {cfg.motion_gap} frames, got {frames}")
    return (idx - max(0, int(idx.max()) + cfg.motion_gap - (frames - 1))).clamp(min=0)


def frame_detection_targets(clips, cfg: VisionConfig, frames: int = 16, speed: int | None = None):
    """Targets of the detection head from a Clips' labels: digit (N, T', N_p) long, NO_DIGIT_CLASS where no
    digit's centre lies in the patch at that sampled frame, and direction (N, T', N_p) long, -100 (ignored
    by cross-entropy) there. Digit and direction are separate classes, so held-out (digit, direction)
    pairs need no example: only their parts do."""
    speed = SPEED if speed is None else speed
    times = frame_times(cfg, frames).numpy()
    n, g = len(clips.digits), cfg.grid
    digit = np.full((n, cfg.frames, g * g), NO_DIGIT_CLASS, dtype=np.int64)
    direction = np.full((n, cfg.frames, g * g), -100, dtype=np.int64)
    for slot in range(clips.digits.shape[1]):
        rows = np.flatnonzero(clips.digits[:, slot] != NO_DIGIT)
        steps = DIRECTION_STEPS[clips.directions[rows, slot]]  # (n, 2) rows, cols per frame
        for j, t in enumerate(times):
            cell = np.clip((clips.centers[rows, slot] + steps * speed * t) // cfg.patch, 0, g - 1).astype(np.int64)
            index = cell[:, 0] * g + cell[:, 1]
            digit[rows, j, index] = clips.digits[rows, slot]
            direction[rows, j, index] = clips.directions[rows, slot]
    return torch.from_numpy(digit), torch.from_numpy(direction)


def detection_loss(digit_logits, direction_logits, digit, direction, background_weight: float = 0.3):
    """Cross-entropy of the detection head: every patch says its digit (the many empty patches weigh
    `background_weight`), and the patches with a digit say its direction."""
    weight = torch.ones(NO_DIGIT_CLASS + 1, device=digit_logits.device)
    weight[NO_DIGIT_CLASS] = background_weight
    digit_loss = F.cross_entropy(digit_logits.flatten(0, -2).float(), digit.flatten(), weight=weight)
    direction_loss = F.cross_entropy(direction_logits.flatten(0, -2).float(), direction.flatten(), ignore_index=-100)
    return digit_loss + direction_loss


def mean_pool(tokens: torch.Tensor) -> torch.Tensor:
    """(B, T, N, D) -> (B, N, D): each patch position averaged over time."""
    return tokens.mean(1)


class MeanPool(nn.Module):
    def __init__(self, cfg: VisionConfig | None = None):
        super().__init__()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return mean_pool(tokens)


class Concat(nn.Module):
    def __init__(self, cfg: VisionConfig | None = None):
        super().__init__()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return rearrange(tokens, "b t n d -> b (t n) d")


class TemporalAttention(nn.Module):
    """Attention across frames at each patch position, then the mean over time: (B, T, N, D) -> (B, N, D)."""

    def __init__(self, cfg: VisionConfig):
        super().__init__()
        self.time_pos = nn.Parameter(torch.randn(1, cfg.frames, cfg.dim) * 0.02)
        self.blocks = nn.ModuleList(TransformerBlock(cfg.dim, cfg.heads) for _ in range(cfg.aggregator_depth))
        self.norm = nn.LayerNorm(cfg.dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        n = tokens.shape[2]
        x = rearrange(tokens, "b t n d -> (b n) t d") + self.time_pos
        for block in self.blocks:
            x = block(x)
        return rearrange(self.norm(x).mean(1), "(b n) d -> b n d", n=n)


class QFormer(nn.Module):
    """BLIP-2's querying transformer: M learned queries read all frame tokens (B, T, N, D) -> (B, M, D).

    Each layer is a TransformerBlock with cross-attention: the queries attend to each other, then
    to the frame tokens, then an MLP (BLIP-2's Q-Former layer, without its text branch)."""

    def __init__(self, cfg: VisionConfig):
        super().__init__()
        self.queries = nn.Parameter(torch.randn(1, cfg.queries, cfg.dim) * 0.02)
        self.time_pos = nn.Parameter(torch.randn(1, cfg.frames, 1, cfg.dim) * 0.02)
        self.blocks = nn.ModuleList(TransformerBlock(cfg.dim, cfg.heads, context_dim=cfg.dim)
                                    for _ in range(cfg.aggregator_depth))
        self.norm = nn.LayerNorm(cfg.dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        # frames carry space positions from the ViT; time positions make the order of frames visible
        context = rearrange(tokens + self.time_pos, "b t n d -> b (t n) d")
        q = repeat(self.queries, "1 m d -> b m d", b=tokens.shape[0])
        for block in self.blocks:
            q = block(q, context=context)
        return self.norm(q)


class Aggregator(nn.Module):
    """Frame tokens (B, T, N, D) -> visual tokens (B, M, D): the chosen pooling, then BatchNorm.

    Why BatchNorm: a ViT trained from scratch starts with features that barely differ between
    clips (the black background dominates every token), and an LM reading near-constant visual
    tokens learns to ignore them before the encoder learns anything. Standardising each feature
    over the batch leaves only what differs between clips, so captioning learns from the first
    steps (without it, this course's models sat at the text-only loss). A pretrained encoder (CLIP
    in LLaVA, LanguageBind in Video-LLaVA) does not need it: `feature_norm="none"`.
    """

    def __init__(self, cfg: VisionConfig):
        super().__init__()
        pools = {"mean": MeanPool, "temporal": TemporalAttention, "qformer": QFormer, "concat": Concat}
        self.pool = pools[cfg.aggregator](cfg)
        self.norm = nn.BatchNorm1d(cfg.dim) if cfg.feature_norm == "batch" else nn.Identity()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.pool(tokens)
        return rearrange(self.norm(rearrange(x, "b m d -> b d m")), "b d m -> b m d")
