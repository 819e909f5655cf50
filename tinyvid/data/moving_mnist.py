"""Captioned Moving MNIST: the one data contract of the course's video notebooks.

A clip is T=16 frames of 64x64 uint8 (T, H, W), black background, 1 or 2 MNIST
digits combined by max. Each digit moves in a straight line in one of 8
directions, 2 px per frame on each moving axis, and stays fully inside the
canvas (no bounce, no wrap). Captions read `the digit 3 is moving left` or
`the digit 3 is moving left and the digit 7 is moving up`.

Compositional split: the pair (digit, direction index k) is held out of training
iff (3 * digit + k) % 8 == 0 -- one direction per digit, never seen in training.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch
from einops import rearrange

from tinyvid.data.mnist import load_mnist

DIRECTIONS = ("up", "down", "left", "right", "up-left", "up-right", "down-left", "down-right")
# (row step, column step) per frame in units of `speed`; up = decreasing row.
DIRECTION_STEPS = np.array(
    [(-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1)], dtype=np.int64
)
FRAMES, SIZE, SPEED, DIGIT = 16, 64, 2, 28
NO_DIGIT = -1


def to_model_layout(videos) -> torch.Tensor:
    """uint8 clips (N, T, H, W) -> float (N, C=1, T, H, W) in [-1, 1]."""
    v = torch.as_tensor(np.asarray(videos))
    if v.dtype != torch.uint8 or v.ndim != 4:
        raise ValueError(f"expected uint8 clips (N, T, H, W), got {v.dtype} {tuple(v.shape)}")
    return rearrange(v.float() / 127.5 - 1.0, "n t h w -> n 1 t h w")


def is_held_out(digit, direction):
    """True where the (digit, direction index) pair is held out of training. Works on arrays."""
    return (3 * np.asarray(digit) + np.asarray(direction)) % 8 == 0


def held_out_direction(digit: int) -> int:
    """The one direction index held out for `digit`."""
    return int((-3 * digit) % 8)


def caption_for(digits, directions) -> str:
    """Caption of one clip from its digit and direction indices (NO_DIGIT slots skipped)."""
    parts = [
        f"the digit {int(d)} is moving {DIRECTIONS[int(k)]}"
        for d, k in zip(digits, directions)
        if int(d) != NO_DIGIT
    ]
    if not parts:
        raise ValueError("a clip holds at least one digit")
    return " and ".join(parts)


_PART = re.compile(r"the digit (\d) is moving (" + "|".join(map(re.escape, DIRECTIONS)) + r")")


def parse_caption(caption: str) -> list[tuple[int, int]]:
    """Inverse of `caption_for`: [(digit, direction index), ...]; ValueError if off-grammar."""
    parts = caption.strip().split(" and ")
    pairs = []
    for part in parts:
        m = _PART.fullmatch(part)
        if m is None:
            raise ValueError(f"not a Moving MNIST caption: {caption!r} (bad part {part!r})")
        pairs.append((int(m.group(1)), DIRECTIONS.index(m.group(2))))
    if len(pairs) > 2:
        raise ValueError(f"at most 2 digits per caption: {caption!r}")
    return pairs


@dataclass
class Clips:
    """A batch of generated clips. `digits`/`directions` are (N, 2) with NO_DIGIT for empty slots."""

    videos: np.ndarray  # uint8 (N, T, H, W)
    digits: np.ndarray  # int64 (N, 2)
    directions: np.ndarray  # int64 (N, 2)
    captions: list[str]
    # where each digit starts: the centre of its 28x28 box in the first frame, (N, 2, 2) float
    # (row, col); NaN for empty slots. The video judge is trained to find digits there.
    centers: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.videos)

    @property
    def num_digits(self) -> np.ndarray:
        return (self.digits != NO_DIGIT).sum(1)

    @property
    def held_out(self) -> np.ndarray:
        """Per clip: does any of its (digit, direction) pairs belong to the held-out set?"""
        return (is_held_out(self.digits, self.directions) & (self.digits != NO_DIGIT)).any(1)

    def __getitem__(self, index) -> "Clips":
        """A sub-set: `clips[:100]`, `clips[mask]` or `clips[[3, 7]]`."""
        rows = np.arange(len(self))[index]
        rows = np.atleast_1d(rows)
        return Clips(self.videos[rows], self.digits[rows], self.directions[rows], [self.captions[i] for i in rows],
                     None if self.centers is None else self.centers[rows])

    def tensors(self) -> torch.Tensor:
        """Videos as float (N, 1, T, H, W) in [-1, 1], the layout the video models take."""
        return to_model_layout(self.videos)


def _draw_pairs(rng, n: int, compositions: str) -> tuple[np.ndarray, np.ndarray]:
    """Digit classes and directions for n slots, honouring the compositional split."""
    digits = rng.integers(0, 10, n)
    if compositions == "any":
        return digits, rng.integers(0, 8, n)
    held = (-3 * digits) % 8
    if compositions == "seen":  # any of the 7 other directions, uniformly
        return digits, (held + rng.integers(1, 8, n)) % 8
    if compositions == "held_out":
        return digits, held
    raise ValueError(f"unknown compositions {compositions!r}: choose 'seen', 'held_out' or 'any'")


def _start_positions(rng, steps: np.ndarray, frames: int, size: int, speed: int) -> np.ndarray:
    """Random top-left corners (.., 2) such that the whole path stays inside the canvas."""
    travel = (frames - 1) * speed
    room = size - DIGIT  # the largest top-left coordinate
    if travel > room:
        raise ValueError(f"{frames} frames at {speed} px/frame do not fit a {size}px canvas")
    low = np.where(steps < 0, travel, 0)
    high = np.where(steps > 0, room - travel, room)
    return low + (rng.random(steps.shape) * (high - low + 1)).astype(np.int64)


def generate(
    n: int,
    split: str = "train",
    seed: int = 0,
    num_digits: int | tuple[int, ...] = (1, 2),
    compositions: str | None = None,
    frames: int = FRAMES,
    size: int = SIZE,
    speed: int = SPEED,
    held_out_fraction: float | None = None,
    evaluator: bool = False,
) -> Clips:
    """Generate n clips, deterministic from `seed`.

    split: 'train' uses MNIST train digits and, by default, only seen compositions;
      'test' uses MNIST test digits and, by default, any composition.
    num_digits: 1, 2, or a tuple to draw from uniformly per clip.
    compositions: 'seen', 'held_out' or 'any' per digit slot (defaults above);
      training with held-out pairs is refused, since that would leak the test.
    held_out_fraction: for test sets, the fraction of clips forced to contain a held-out
      pair in their first slot (the rest use seen pairs only); overrides `compositions`.
    frames, size, speed: the smoke profile's smaller variants; the contract is 16, 64, 2.
    evaluator: training clips for an *evaluation* model (the video judge), which must know every
      composition to score held-out prompts: lifts the seen-only rule of the train split.
    """
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    if split not in ("train", "test"):
        raise ValueError(f"unknown split {split!r}: choose 'train' or 'test'")
    compositions = compositions or ("seen" if split == "train" else "any")
    if split == "train" and compositions != "seen" and not evaluator:
        raise ValueError("training clips use seen compositions only (held-out pairs are the test)")
    rng = np.random.default_rng(seed)
    choices = np.atleast_1d(np.asarray(num_digits))
    if not np.isin(choices, (1, 2)).all():
        raise ValueError(f"num_digits must be 1 or 2, got {num_digits}")
    counts = rng.choice(choices, n)

    digits, directions = _draw_pairs(rng, 2 * n, "seen" if held_out_fraction is not None else compositions)
    digits, directions = digits.reshape(n, 2), directions.reshape(n, 2)
    if held_out_fraction is not None:
        forced = rng.random(n) < held_out_fraction
        directions[forced, 0] = (-3 * digits[forced, 0]) % 8
    digits[counts == 1, 1] = NO_DIGIT
    directions[counts == 1, 1] = NO_DIGIT

    images, labels = load_mnist(split)
    # one MNIST image of the right class per slot
    by_class = [np.flatnonzero(labels == c) for c in range(10)]
    pick = np.zeros((n, 2), dtype=np.int64)
    for c in range(10):
        mask = digits == c
        pick[mask] = rng.choice(by_class[c], mask.sum())

    steps = DIRECTION_STEPS[np.maximum(directions, 0)]  # (n, 2, 2)
    start = _start_positions(rng, steps, frames, size, speed)  # (n, 2, 2)
    sprites = images[pick] * (digits != NO_DIGIT)[:, :, None, None]  # (n, 2, 28, 28), empty slots black
    videos = render(sprites, start, steps * speed, frames, size)
    captions = [caption_for(d, k) for d, k in zip(digits, directions)]
    centers = start + (DIGIT - 1) / 2.0
    centers[digits == NO_DIGIT] = np.nan
    return Clips(videos, digits, directions, captions, centers)


def render(sprites: np.ndarray, start: np.ndarray, velocity: np.ndarray, frames: int, size: int) -> np.ndarray:
    """Paste sprites (n, slots, h, w) at start + velocity * t (both (n, slots, 2) in (row, col)),
    combining overlaps by max; vectorised over clips, looped over slots and frames."""
    n, slots, h, w = sprites.shape
    videos = np.zeros((n, frames, size, size), dtype=np.uint8)
    clip = np.arange(n)[:, None, None]
    for slot in range(slots):
        for t in range(frames):
            y, x = (start[:, slot] + velocity[:, slot] * t).T
            rows = (y[:, None] + np.arange(h))[:, :, None]
            cols = (x[:, None] + np.arange(w))[:, None, :]
            frame = videos[:, t]
            frame[clip, rows, cols] = np.maximum(frame[clip, rows, cols], sprites[:, slot])
    return videos


class MovingMNIST(torch.utils.data.Dataset):
    """A generated clip set as a Dataset of (video float (1, T, H, W) in [-1, 1], caption)."""

    def __init__(self, clips: Clips):
        self.clips = clips

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int):
        return to_model_layout(self.clips.videos[i : i + 1])[0], self.clips.captions[i]


SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")
WORDS = ("the", "digit", "is", "moving", "and") + tuple(str(d) for d in range(10)) + DIRECTIONS


class WordTokenizer:
    """The caption grammar's word-level tokenizer: one id per word, `<pad>` = 0."""

    def __init__(self, words=WORDS):
        self.vocab = list(SPECIALS) + list(words)
        self.index = {w: i for i, w in enumerate(self.vocab)}
        self.pad_id, self.bos_id, self.eos_id, self.unk_id = range(4)

    def __len__(self) -> int:
        return len(self.vocab)

    def encode(self, text: str, add_special: bool = True) -> list[int]:
        ids = [self.index.get(w, self.unk_id) for w in text.lower().split()]
        return [self.bos_id, *ids, self.eos_id] if add_special else ids

    def decode(self, ids) -> str:
        words = [self.vocab[int(i)] for i in ids if int(i) >= len(SPECIALS)]
        return " ".join(words)

    def batch(self, texts: list[str], max_len: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded ids (B, L) and a bool mask (B, L), True on real tokens."""
        encoded = [self.encode(t) for t in texts]
        length = max_len or max(map(len, encoded))
        ids = torch.full((len(texts), length), self.pad_id, dtype=torch.long)
        for i, e in enumerate(encoded):
            e = e[:length]
            ids[i, : len(e)] = torch.tensor(e)
        return ids, ids != self.pad_id


T2V_TEST_SEED = 2025


def t2v_test_clips(n: int = 500, seed: int = T2V_TEST_SEED, held_out_fraction: float = 0.5, **variant) -> Clips:
    """The course's fixed text-to-video test set: MNIST test digits, 1 and 2 digits, about half the
    clips with a held-out (digit, direction) pair. Its captions are the prompts; its videos are the
    real clips that FVD compares samples with."""
    return generate(n, "test", seed=seed, held_out_fraction=held_out_fraction, **variant)


def write_prompts(path, captions: list[str]) -> None:
    """One prompt per line, the format `tinyvid sample t2v --prompts` reads."""
    from pathlib import Path

    Path(path).write_text("\n".join(captions) + "\n", encoding="utf-8")
