"""The video judge: it finds each digit of a Moving MNIST clip, reads it, and tells which way it moves.

It scores text-to-video samples against their prompts (per-clip accuracy: every digit and
direction right; digit accuracy; direction accuracy of the digits found) and gives the
feature space of the course's Fréchet video distance (FVD on judge features).

How it reads a clip: motion compensation first, then detection. For each of the 8 directions,
every frame is shifted back by the contract's motion (2 px per frame) and the frames are averaged
(`align_directions`). A digit moving that way lands on itself 16 times and comes out sharp, at its
position in the first frame; a digit moving any other way is smeared into a faint streak. A small
2D CNN, shared by the 8 aligned images, then works as a digit detector (CenterNet-style, Zhou et
al. 2019): every cell of an 8x8 grid says whether a *sharp* digit is centred there and which one.
The direction of a detection is the aligned image it was found in. With the number of digits known
from the prompt, the prediction is that many of the strongest detections. Two digits that overlap
in the frames usually move differently, so they are sharp in different aligned images and read
apart -- even two copies of the same digit.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from tinyvid.data.moving_mnist import DIRECTION_STEPS, NO_DIGIT, SPEED

NUM_DIRECTIONS = 8
STRIDE = 8  # pixels per grid cell


def align_directions(video: torch.Tensor, speed: int = SPEED) -> torch.Tensor:
    """(N, 1, T, H, W) in [-1, 1] -> (N, 8, H, W) in [0, 1]: per direction, the mean of the frames each
    shifted back by `speed * t` pixels along it (zeros shifted in), so that direction's digits are sharp."""
    n, _, frames, h, w = video.shape
    ink = (video[:, 0] + 1) / 2  # background 0
    reach = speed * (frames - 1)
    padded = F.pad(ink, (reach, reach, reach, reach))
    out = []
    for dr, dc in DIRECTION_STEPS.tolist():
        acc = torch.zeros(n, h, w, dtype=ink.dtype, device=ink.device)
        for t in range(frames):
            r, c = reach + dr * speed * t, reach + dc * speed * t
            acc += padded[:, t, r : r + h, c : c + w]
        out.append(acc / frames)
    return torch.stack(out, dim=1)


class VideoJudge(nn.Module):
    """(N, 1, T, H, W) in [-1, 1] -> objectness (N, 8, S) and digit logits (N, 8, S, 10): per direction
    and per grid cell (S = (H/8) * (W/8)), is a digit that moves this way centred here in frame 0, and which."""

    def __init__(self, width: int = 32, frames: int = 16):
        super().__init__()
        w = width
        self.frames = frames

        def conv(cin, cout, stride=1):
            return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.SiLU()]

        # 4x4 pixel blocks as channels first: no full-resolution convolutions (the CPU lever of the U-Net)
        self.body = nn.Sequential(
            nn.PixelUnshuffle(4), *conv(16, w), *conv(w, 2 * w, 2),  # 64 -> 16 -> 8: one cell per 8x8 pixels
            *conv(2 * w, 4 * w), *conv(4 * w, 4 * w),  # receptive field ~56 px: a whole digit and around it
        )
        self.feature_dim = 2 * 4 * w
        self.head = nn.Conv2d(4 * w, 1 + 10, 1)

    def feature_map(self, video: torch.Tensor) -> torch.Tensor:
        """(N, 8, C, h, w): the detector's features of each direction's aligned image."""
        if video.ndim != 5 or video.shape[1] != 1 or video.shape[2] != self.frames:
            raise ValueError(f"expected videos (N, 1, {self.frames}, H, W), got {tuple(video.shape)}")
        aligned = rearrange(align_directions(video), "n d h w -> (n d) 1 h w") * 2 - 1
        return rearrange(self.body(aligned), "(n d) c h w -> n d c h w", d=NUM_DIRECTIONS)

    def features(self, video: torch.Tensor) -> torch.Tensor:
        """(N, feature_dim): max and mean over directions and positions (the FVD space)."""
        f = self.feature_map(video)
        return torch.cat([f.amax(dim=(1, 3, 4)), f.mean(dim=(1, 3, 4))], dim=1)

    def forward(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.feature_map(video)
        out = rearrange(self.head(rearrange(f, "n d c h w -> (n d) c h w")), "(n d) k h w -> n d (h w) k", d=NUM_DIRECTIONS)
        return out[..., 0], out[..., 1:]

    @torch.no_grad()
    def presence(self, video: torch.Tensor) -> torch.Tensor:
        """(N, 10): probability that each digit is somewhere in the clip (max over directions and cells)."""
        obj, digit = self(video)
        return (obj.sigmoid()[..., None] * digit.softmax(-1)).amax(dim=(1, 2))


def judge_targets(digits: np.ndarray, directions: np.ndarray, centers: np.ndarray, size: int = 64):
    """Targets from Clips.digits/directions/centers: objectness (N, 8, S) float and digit (N, 8, S) long
    (-100, ignored by cross-entropy, where no digit is), at each digit's direction and frame-0 cell."""
    n, cells = len(digits), size // STRIDE
    objectness = torch.zeros(n, NUM_DIRECTIONS, cells * cells)
    digit = torch.full((n, NUM_DIRECTIONS, cells * cells), -100, dtype=torch.long)
    for slot in range(digits.shape[1]):
        rows = np.flatnonzero(digits[:, slot] != NO_DIGIT)
        cell = np.clip((centers[rows, slot] // STRIDE).astype(np.int64), 0, cells - 1)
        index = torch.as_tensor(cell[:, 0] * cells + cell[:, 1])
        d = torch.as_tensor(directions[rows, slot])
        rows_t = torch.as_tensor(rows)
        objectness[rows_t, d, index] = 1.0
        digit[rows_t, d, index] = torch.as_tensor(digits[rows, slot])
    return objectness, digit


def judge_loss(model: VideoJudge, batch) -> tuple[torch.Tensor, dict]:
    """loss_fn(model, (videos, objectness, digit)) for the Trainer; videos may be uint8 clips
    (N, T, H, W), converted per batch (a quarter of the memory of float clips)."""
    video, objectness, digit = batch
    if video.dtype == torch.uint8:
        video = rearrange(video.float() / 127.5 - 1.0, "n t h w -> n 1 t h w")
    obj, digit_logits = model(video)
    # positives are 1-2 of 8 x 64 candidates: weight them up so the maps do not learn "nothing anywhere"
    bce = F.binary_cross_entropy_with_logits(obj, objectness, pos_weight=torch.tensor(32.0, device=obj.device))
    ce = F.cross_entropy(digit_logits.reshape(-1, 10), digit.reshape(-1), ignore_index=-100)
    return bce + ce, {"objectness_bce": bce.detach(), "digit_ce": ce.detach()}


def clip_pairs(digits: np.ndarray, directions: np.ndarray) -> list[list[tuple[int, int]]]:
    """The (digit, direction) pairs of each clip, sorted, empty slots dropped."""
    return [sorted((int(d), int(k)) for d, k in zip(ds, ks) if d != NO_DIGIT) for ds, ks in zip(digits, directions)]


@torch.no_grad()
def judge_predict(model: VideoJudge, videos: torch.Tensor, num_digits, batch_size: int = 256) -> list[list[tuple[int, int]]]:
    """The `num_digits[i]` strongest detections of each clip as sorted (digit, direction) pairs.

    A detection is a peak of its direction's objectness map (the maximum of its 3x3 neighbourhood);
    if a clip has fewer peaks than digits asked for, the strongest other candidates fill in."""
    model.eval()
    counts = np.broadcast_to(np.asarray(num_digits), (len(videos),))
    out = []
    for start in range(0, len(videos), batch_size):
        obj, digit = model(videos[start : start + batch_size])
        cells = int(round(obj.shape[2] ** 0.5))
        grid = rearrange(obj, "n d (h w) -> (n d) 1 h w", h=cells)
        peak = rearrange(grid == F.max_pool2d(grid, 3, stride=1, padding=1), "(n d) 1 h w -> n (d h w)", d=NUM_DIRECTIONS)
        flat = rearrange(obj, "n d s -> n (d s)")
        ranked = torch.where(peak, flat, flat - 1e4).argsort(dim=1, descending=True)
        for i in range(len(obj)):
            pairs = []
            for candidate in ranked[i, : int(counts[start + i])].tolist():
                direction, cell = divmod(candidate, obj.shape[2])
                pairs.append((int(digit[i, direction, cell].argmax()), direction))
            out.append(sorted(pairs))
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
        clip += sorted(pred) == sorted(true)
        digit += sorted(d for d, _ in pred) == sorted(d for d, _ in true)
        # multisets, so a clip with two copies of one digit counts both
        found += sum((Counter(d for d, _ in pred) & Counter(d for d, _ in true)).values())
        right += sum((Counter(pred) & Counter(true)).values())
    n = len(expected)
    return JudgeScores(clip / n, digit / n, right / found if found else 0.0)


JUDGE_NAME = "video_judge.safetensors"


def train_judge(n_clips: int = 40_000, epochs: int = 4, seed: int = 0, width: int = 32, batch_size: int = 64,
                lr: float = 3e-3, frames: int = 16, size: int = 64, speed: int = 2, n_test: int = 2000,
                progress: bool = True) -> tuple[VideoJudge, dict]:
    """Train on contract clips of every composition (MNIST train digits; 1 and 2 digits), score on
    test clips (MNIST test digits). Returns the model (eval mode) and metadata with its scores."""
    from tinyvid.data.moving_mnist import generate
    from tinyvid.train import TensorBatches, Trainer

    train = generate(n_clips, "train", seed=seed, compositions="any", evaluator=True, frames=frames, size=size, speed=speed)
    videos = torch.from_numpy(train.videos)
    targets = judge_targets(train.digits, train.directions, train.centers, size)
    model = VideoJudge(width, frames)
    steps = epochs * (n_clips // batch_size)
    trainer = Trainer(model, judge_loss, TensorBatches(videos, *targets, batch_size=batch_size, seed=seed),
                      steps=steps, lr=lr, warmup=min(200, steps // 10), ema_decay=None, seed=seed, progress=progress,
                      log_every=max(1, steps // 20))
    trainer.fit()
    test = generate(n_test, "test", seed=seed + 1, frames=frames, size=size, speed=speed)
    scores = judge_scores(judge_predict(model, test.tensors(), test.num_digits), clip_pairs(test.digits, test.directions))
    meta = {**scores.as_dict(), "n_clips": n_clips, "epochs": epochs, "seed": seed, "width": width,
            "frames": frames, "size": size, "train_seconds": round(trainer.seconds, 1), "torch_version": torch.__version__}
    return model.eval(), meta


def load_judge(progress: bool = True, **train_kwargs) -> VideoJudge:
    """The course's video judge: the committed book/results/video_judge.safetensors, so every notebook,
    test and learner scores with identical weights; without that file it is trained on first use
    (minutes on a CPU) and cached in $TINYVID_CACHE beside a JSON of its test scores.
    Pass train_kwargs only to build a non-default judge (tests); those are always trained and cached."""
    import json

    from safetensors.torch import load_file

    from tinyvid.data.mnist import cache_dir
    from tinyvid.eval.cache import train_once
    from tinyvid.models.registry import RESULTS_DIR

    tag = "" if not train_kwargs else "_" + "_".join(f"{k}{v}" for k, v in sorted(train_kwargs.items()))
    path = RESULTS_DIR / JUDGE_NAME
    if train_kwargs or not path.is_file():
        path = cache_dir() / JUDGE_NAME.replace(".safetensors", f"{tag}.safetensors")
    meta_path = path.with_suffix(".json")
    train_once(path, meta_path, lambda: train_judge(progress=progress, **train_kwargs))
    meta = json.loads(meta_path.read_text())
    model = VideoJudge(meta["width"], meta["frames"])
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


SAMPLE_GROUPS = ("seen", "held_out", "seen_1digit", "seen_2digit", "held_out_1digit", "held_out_2digit")


def score_sample_set(model: VideoJudge, videos, prompts, reference: torch.Tensor | None = None) -> dict:
    """Every judge score of a text-to-video sample set: `videos` (N, F, H, W) uint8 drawn for the
    prompts of the `Clips` set `prompts` (e.g. `t2v_test_clips`), in the same order.

    Per-clip accuracy for seen / held-out compositions, each split by one and two digits; digit and
    direction accuracy for seen and held-out; with `reference` (real clips in model layout, other
    than the prompts' own) the FVD on judge features."""
    from tinyvid.data.moving_mnist import to_model_layout

    if len(videos) != len(prompts.captions):
        raise ValueError(f"{len(videos)} videos for {len(prompts.captions)} prompts")
    x = to_model_layout(videos)
    predicted = judge_predict(model, x, prompts.num_digits)
    expected = clip_pairs(prompts.digits, prompts.directions)
    held, two = np.asarray(prompts.held_out), np.asarray(prompts.num_digits) == 2
    rows = {"seen": ~held, "held_out": held, "seen_1digit": ~held & ~two, "seen_2digit": ~held & two,
            "held_out_1digit": held & ~two, "held_out_2digit": held & two}
    out = {}
    for group, sel in rows.items():
        idx = np.flatnonzero(sel)
        if not len(idx):
            out[group] = float("nan")
            continue
        s = judge_scores([predicted[i] for i in idx], [expected[i] for i in idx])
        out[group] = s.clip_accuracy
        if group in ("seen", "held_out"):
            out[group + "_digit"], out[group + "_direction"] = s.digit_accuracy, s.direction_accuracy
    if reference is not None:
        out["fvd"] = fvd(model, x, reference)
    return out


def describe_scores(name: str, scores: dict, floor: float | None = None) -> str:
    """One line for a `score_sample_set` dict."""
    text = (f"{name}: clip accuracy seen {scores['seen']:.1%} (1 digit {scores['seen_1digit']:.1%}, 2 digits "
            f"{scores['seen_2digit']:.1%}), held-out {scores['held_out']:.1%} (1 digit {scores['held_out_1digit']:.1%}, "
            f"2 digits {scores['held_out_2digit']:.1%})")
    if "fvd" in scores:
        text += f"; FVD {scores['fvd']:.2f}" + (f" (floor {floor:.2f})" if floor is not None else "")
    return text
