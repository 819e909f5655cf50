"""Curation filters of the kind real video-text pipelines run before training
(Panda-70M, Open-Sora, Stable Video Diffusion's data curation): drop static or
chaotic clips, drop near-duplicate clips, drop broken captions.

They are deliberately cheap heuristics: each is a number or a bit-string per clip,
so a whole dataset is filtered in seconds on a CPU.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Sequence

import einops
import numpy as np
import torch
import torch.nn.functional as F

from tinyvid.data.frame_sampling import sample_indices


def _as_float_video(video: Any) -> torch.Tensor:
    """(T, H, W) or (T, H, W, C) as float in [0, 1]; uint8 is scaled, floats are taken as already in [0, 1]."""
    video = video if isinstance(video, torch.Tensor) else torch.from_numpy(np.asarray(video))
    if video.ndim not in (3, 4) or video.shape[0] == 0:
        raise ValueError(f"video must be non-empty (T, H, W) or (T, H, W, C), got shape {tuple(video.shape)}")
    video = video.float() / 255 if video.dtype == torch.uint8 else video.float()
    return video if video.ndim == 3 else video.mean(-1)  # motion and hashes only need luminance


def motion_score(video: Any) -> float:
    """Mean |frame[t+1] - frame[t]| in [0, 1]: 0 for a still clip (or a single frame), 1 for black/white flicker."""
    video = _as_float_video(video)
    if video.shape[0] < 2:
        return 0.0
    return float((video[1:] - video[:-1]).abs().mean())


def filter_by_motion(videos: Iterable[Any], low: float = 0.0, high: float = 1.0) -> list[int]:
    """Indices of clips with low <= motion_score <= high (indices, so captions can be filtered alongside).

    `low` drops slideshows and frozen frames; `high` drops scene cuts and noise.
    """
    if low > high:
        raise ValueError(f"low ({low}) must be <= high ({high})")
    return [i for i, video in enumerate(videos) if low <= motion_score(video) <= high]


def clip_hash(video: Any, num_frames: int = 4, size: int = 8) -> torch.Tensor:
    """num_frames * size * size bits: a few frames evenly spread over the clip, each area-averaged to
    size x size and thresholded at the frame's mean (an average hash per frame).

    The mean rather than the median: on black-background clips (Moving MNIST) the median
    cell is background, so thresholding at it would turn sensor noise into hash bits.
    """
    video = _as_float_video(video)
    frames = video[sample_indices(video.shape[0], num_frames, "uniform")]
    cells = F.adaptive_avg_pool2d(frames, size)  # (n, size, size)
    bits = cells > cells.mean(dim=(1, 2), keepdim=True)
    return einops.rearrange(bits, "n h w -> (n h w)")


def near_duplicates(videos: Sequence[Any], threshold: float = 0.05, num_frames: int = 4, size: int = 8,
                    chunk: int = 1024) -> list[tuple[int, int]]:
    """Pairs (i, j), i < j, whose clip hashes differ in at most `threshold` of their bits.

    0.05 is strict on purpose: sparse clips (a digit on black) share most background bits,
    so genuinely different Moving MNIST clips are only ~10-25% apart, while a re-encoded or
    noised copy is ~0-2% away.
    """
    if not 0 <= threshold < 1:
        raise ValueError(f"threshold is a fraction of differing bits in [0, 1), got {threshold}")
    if len(videos) < 2:
        return []
    hashes = torch.stack([clip_hash(v, num_frames, size) for v in videos]).float()  # (N, bits)
    pairs: list[tuple[int, int]] = []
    # Hamming distance as two matmuls, in row chunks so N x N never has to fit at once.
    for start in range(0, len(hashes), chunk):
        rows = hashes[start:start + chunk]
        distance = (rows @ (1 - hashes).T + (1 - rows) @ hashes.T) / hashes.shape[1]
        i, j = torch.nonzero(distance <= threshold, as_tuple=True)
        i = i + start
        keep = i < j
        pairs += list(zip(i[keep].tolist(), j[keep].tolist()))
    return pairs


_WORD = re.compile(r"[^\W_]+(?:['-][^\W_]+)*")  # letters/digits, inner apostrophes and hyphens
_ALLOWED = re.compile(r"[^\W_]|['\-\s.,!?;:]")


def caption_ok(caption: Any, max_words: int = 32, vocab: Iterable[str] | None = None) -> tuple[bool, str]:
    """(True, "ok") or (False, reason): empty, odd characters (digits are fine: "the digit 3"), too long, a repeat loop
    ("moving moving", "is moving is moving": the classic failure of a small captioner),
    or words outside `vocab` (compared in lower case)."""
    if not isinstance(caption, str) or not caption.strip():
        return False, "empty caption"
    bad = sorted({ch for ch in caption if not _ALLOWED.match(ch)})
    if bad:
        return False, f"characters other than letters, digits and basic punctuation: {' '.join(repr(ch) for ch in bad)}"
    words = [w.lower() for w in _WORD.findall(caption)]
    if not words:
        return False, "no words, only punctuation"
    if len(words) > max_words:
        return False, f"too long: {len(words)} words > {max_words}"
    for n in (1, 2, 3):
        for i in range(len(words) - 2 * n + 1):
            if words[i:i + n] == words[i + n:i + 2 * n]:
                return False, f"repeated words: {' '.join(words[i:i + 2 * n])!r}"
    if vocab is not None:
        known = {w.lower() for w in vocab}
        unknown = [w for w in dict.fromkeys(words) if w not in known]
        if unknown:
            return False, f"out-of-vocabulary words: {', '.join(unknown)}"
    return True, "ok"
