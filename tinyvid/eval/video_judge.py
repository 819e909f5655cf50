"""The video judge: a small 3D CNN that reads which digits a Moving MNIST clip shows and where each moves.

It scores text-to-video samples against their prompts (per-clip accuracy: every digit and
direction right; digit accuracy; direction accuracy of the digits found) and gives the
feature space of the course's Fréchet video distance (FVD on judge features).

Targets per clip: presence of each digit class (10 sigmoid outputs) and, for each digit,
its direction (10 x 8 logits; only the present digits' rows are trained). With the number
of digits known from the prompt, the prediction is the top-k present digits with their
directions. Two copies of the same digit in one clip are not representable (the judge
reads one direction per digit class); `clip_pairs` keeps both, so such clips count as misses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tinyvid.data.moving_mnist import NO_DIGIT

NUM_DIRECTIONS = 8


class VideoJudge(nn.Module):
    """(N, 1, T, H, W) in [-1, 1] -> presence logits (N, 10) and direction logits (N, 10, 8)."""

    def __init__(self, width: int = 16):
        super().__init__()
        w = width

        def stage(cin, cout, stride):
            return nn.Sequential(nn.Conv3d(cin, cout, 3, stride=stride, padding=1), nn.BatchNorm3d(cout), nn.SiLU())

        self.body = nn.Sequential(
            stage(1, w, (1, 2, 2)), stage(w, 2 * w, (2, 2, 2)), stage(2 * w, 4 * w, (2, 2, 2)),
            stage(4 * w, 8 * w, (2, 2, 2)),
        )
        self.feature_dim = 8 * w
        self.presence = nn.Linear(self.feature_dim, 10)
        self.direction = nn.Linear(self.feature_dim, 10 * NUM_DIRECTIONS)

    def features(self, video: torch.Tensor) -> torch.Tensor:
        """(N, feature_dim): spatially and temporally max-pooled activations (the FVD space)."""
        if video.ndim != 5 or video.shape[1] != 1:
            raise ValueError(f"expected videos (N, 1, T, H, W), got {tuple(video.shape)}")
        return self.body(video).amax(dim=(2, 3, 4))

    def forward(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(video)
        return self.presence(f), self.direction(f).view(-1, 10, NUM_DIRECTIONS)


def judge_targets(digits: np.ndarray, directions: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """From Clips.digits/directions (N, 2), NO_DIGIT for empty slots: presence (N, 10) float and
    direction (N, 10) long, -100 (ignored by cross-entropy) where the digit is absent."""
    n = len(digits)
    presence = torch.zeros(n, 10)
    direction = torch.full((n, 10), -100, dtype=torch.long)
    for slot in range(digits.shape[1]):
        d, k = torch.as_tensor(digits[:, slot]), torch.as_tensor(directions[:, slot])
        rows = torch.nonzero(d != NO_DIGIT).squeeze(1)
        presence[rows, d[rows]] = 1.0
        direction[rows, d[rows]] = k[rows]
    return presence, direction


def judge_loss(model: VideoJudge, batch) -> tuple[torch.Tensor, dict]:
    """loss_fn(model, (videos, presence, direction)) for the Trainer."""
    video, presence, direction = batch
    p_logits, d_logits = model(video)
    bce = F.binary_cross_entropy_with_logits(p_logits, presence)
    ce = F.cross_entropy(d_logits.reshape(-1, NUM_DIRECTIONS), direction.reshape(-1), ignore_index=-100)
    return bce + ce, {"presence_bce": bce.detach(), "direction_ce": ce.detach()}


def clip_pairs(digits: np.ndarray, directions: np.ndarray) -> list[list[tuple[int, int]]]:
    """The (digit, direction) pairs of each clip, sorted, empty slots dropped."""
    return [sorted((int(d), int(k)) for d, k in zip(ds, ks) if d != NO_DIGIT) for ds, ks in zip(digits, directions)]


@torch.no_grad()
def judge_predict(model: VideoJudge, videos: torch.Tensor, num_digits, batch_size: int = 256) -> list[list[tuple[int, int]]]:
    """The top-`num_digits[i]` digits of each clip with their directions, as sorted pairs."""
    model.eval()
    counts = np.broadcast_to(np.asarray(num_digits), (len(videos),))
    out = []
    for start in range(0, len(videos), batch_size):
        p, d = model(videos[start : start + batch_size])
        for i in range(len(p)):
            k = int(counts[start + i])
            top = p[i].topk(k).indices.tolist()
            out.append(sorted((digit, int(d[i, digit].argmax())) for digit in top))
    return out


@dataclass
class JudgeScores:
    clip_accuracy: float  # every digit and every direction right
    digit_accuracy: float  # the set of digits right
    direction_accuracy: float  # direction right, over the digits that were found

    def as_dict(self) -> dict:
        return dict(clip_accuracy=self.clip_accuracy, digit_accuracy=self.digit_accuracy,
                    direction_accuracy=self.direction_accuracy)


def judge_scores(predicted: list[list[tuple[int, int]]], expected: list[list[tuple[int, int]]]) -> JudgeScores:
    if len(predicted) != len(expected):
        raise ValueError(f"{len(predicted)} predictions for {len(expected)} clips")
    if not expected:
        raise ValueError("no clips to score")
    clip = digit = found = right = 0
    for pred, true in zip(predicted, expected):
        clip += pred == true
        digit += sorted(d for d, _ in pred) == sorted(d for d, _ in true)
        true_dir = dict(true)
        for d, k in pred:
            if d in true_dir:
                found += 1
                right += k == true_dir[d]
    n = len(expected)
    return JudgeScores(clip / n, digit / n, right / found if found else 0.0)


JUDGE_NAME = "video_judge.safetensors"


def train_judge(n_clips: int = 20_000, epochs: int = 3, seed: int = 0, width: int = 16, batch_size: int = 64,
                lr: float = 3e-3, frames: int = 16, size: int = 64, speed: int = 2, n_test: int = 2000,
                progress: bool = True) -> tuple[VideoJudge, dict]:
    """Train on contract clips of every composition (MNIST train digits; 1 and 2 digits), score on
    test clips (MNIST test digits). Returns the model (eval mode) and metadata with its scores."""
    from tinyvid.data.moving_mnist import generate
    from tinyvid.train import TensorBatches, Trainer

    train = generate(n_clips, "train", seed=seed, compositions="any", evaluator=True, frames=frames, size=size, speed=speed)
    videos = train.tensors()
    presence, direction = judge_targets(train.digits, train.directions)
    model = VideoJudge(width)
    steps = epochs * (n_clips // batch_size)
    trainer = Trainer(model, judge_loss, TensorBatches(videos, presence, direction, batch_size=batch_size, seed=seed),
                      steps=steps, lr=lr, warmup=min(200, steps // 10), ema_decay=None, seed=seed, progress=progress,
                      log_every=max(1, steps // 20))
    trainer.fit()
    test = generate(n_test, "test", seed=seed + 1, frames=frames, size=size, speed=speed)
    scores = judge_scores(judge_predict(model, test.tensors(), test.num_digits), clip_pairs(test.digits, test.directions))
    meta = {**scores.as_dict(), "n_clips": n_clips, "epochs": epochs, "seed": seed, "width": width,
            "frames": frames, "size": size, "train_seconds": round(trainer.seconds, 1), "torch_version": torch.__version__}
    return model.eval(), meta


def load_judge(progress: bool = True, **train_kwargs) -> VideoJudge:
    """The course's video judge: trained on first use (minutes on a CPU), then cached in $TINYVID_CACHE
    beside a JSON of its test scores. Pass train_kwargs only to build a non-default judge (tests)."""
    import json

    from safetensors.torch import load_file

    from tinyvid.data.mnist import cache_dir
    from tinyvid.eval.cache import train_once

    tag = "" if not train_kwargs else "_" + "_".join(f"{k}{v}" for k, v in sorted(train_kwargs.items()))
    path = cache_dir() / JUDGE_NAME.replace(".safetensors", f"{tag}.safetensors")
    meta_path = path.with_suffix(".json")
    train_once(path, meta_path, lambda: train_judge(progress=progress, **train_kwargs))
    meta = json.loads(meta_path.read_text())
    model = VideoJudge(meta["width"])
    model.load_state_dict(load_file(str(path)))
    return model.eval().requires_grad_(False)


@torch.no_grad()
def judge_features(model: VideoJudge, videos: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    model.eval()
    return torch.cat([model.features(videos[i : i + batch_size]) for i in range(0, len(videos), batch_size)]).numpy()


def fvd(model: VideoJudge, videos_a: torch.Tensor, videos_b: torch.Tensor) -> float:
    """Fréchet video distance in the judge's feature space (report it beside the real-data floor:
    the same number of real clips against the reference set)."""
    from tinyvid.eval.fid import feature_stats, frechet_distance

    return frechet_distance(*feature_stats(judge_features(model, videos_a)), *feature_stats(judge_features(model, videos_b)))
