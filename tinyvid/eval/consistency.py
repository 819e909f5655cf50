"""Temporal consistency of clips, and the agreement of two readers that judge the same clips.

- Identity consistency (chapter 05, `anim-consistency`): the MNIST classifier reads the digit on every
  frame of a one-digit clip (each frame cropped around its centre of mass, `crop_digit`), and a clip
  scores the share of its frames that agree with its most common reading. A 3 that turns into an 8
  halfway scores 0.5, whatever the judge says about the clip as a whole.
- Frame-to-frame feature similarity (chapter 08, `eval-frame-consistency`): the mean cosine between
  consecutive frames' features; here the classifier's 128-d features of the cropped frames, so a digit
  that moves but keeps its shape scores near 1. A still clip is perfectly consistent too: read both
  beside a motion measure (`tinyvid.data.curation.motion_score`) or the judge's direction accuracy.
- Agreement (chapter 08, `eval-kappa`): the 2x2 table of two readers' right/wrong verdicts on the same
  clips (the judge and the captioner, say) and Cohen's kappa, their agreement beyond chance.

Videos are uint8 clips (N, T, H, W), T >= 2.
"""

from __future__ import annotations

import numpy as np
import torch
from einops import rearrange

from tinyvid.eval.classifier import MNISTClassifier
from tinyvid.eval.fid import crop_digit, image_features, predicted_classes


def _clips(videos) -> np.ndarray:
    v = np.asarray(videos.cpu() if isinstance(videos, torch.Tensor) else videos)
    if v.dtype != np.uint8 or v.ndim != 4 or v.shape[1] < 2 or len(v) == 0:
        raise ValueError(f"expected uint8 clips (N, T, H, W) with N >= 1 and T >= 2, got {v.dtype} {v.shape}")
    return v


def _frames(videos) -> tuple[np.ndarray, int]:
    v = _clips(videos)
    return crop_digit(rearrange(v, "n t h w -> (n t) h w")), v.shape[1]


def frame_digits(videos, classifier: MNISTClassifier | None = None) -> np.ndarray:
    """The classifier's digit on every frame, int64 (N, T); meaningful for one-digit clips."""
    crops, frames = _frames(videos)
    return predicted_classes(crops, classifier).numpy().reshape(-1, frames)


def identity_agreement(digits: np.ndarray) -> np.ndarray:
    """Per clip (N,): the share of frames whose reading equals the clip's most common one."""
    d = np.asarray(digits)
    if d.ndim != 2 or d.shape[1] == 0 or not np.issubdtype(d.dtype, np.integer) or d.min(initial=0) < 0:
        raise ValueError(f"expected non-negative integer readings (N, T), got {d.dtype} {d.shape}")
    counts = np.stack([np.bincount(row, minlength=10) for row in d])
    return counts.max(1) / d.shape[1]


def identity_consistency(videos, classifier: MNISTClassifier | None = None) -> np.ndarray:
    """Per one-digit clip (N,): the share of frames read as the clip's majority digit."""
    return identity_agreement(frame_digits(videos, classifier))


def frame_features(videos, classifier: MNISTClassifier | None = None) -> torch.Tensor:
    """The classifier's penultimate features of every cropped frame, float32 (N, T, 128)."""
    crops, frames = _frames(videos)
    return rearrange(image_features(crops, classifier), "(n t) d -> n t d", t=frames)


def consecutive_similarity(features: torch.Tensor) -> torch.Tensor:
    """Per clip (N,): mean cosine similarity between the features of frames t and t + 1, of (N, T, D)."""
    f = torch.as_tensor(features).float()
    if f.ndim != 3 or f.shape[1] < 2:
        raise ValueError(f"expected frame features (N, T, D) with T >= 2, got {tuple(f.shape)}")
    return torch.nn.functional.cosine_similarity(f[:, 1:], f[:, :-1], dim=-1).mean(1)


def frame_consistency(videos, classifier: MNISTClassifier | None = None) -> torch.Tensor:
    """Per clip (N,): `consecutive_similarity` of the classifier features of the cropped frames."""
    return consecutive_similarity(frame_features(videos, classifier))


def agreement(a, b) -> tuple[np.ndarray, float]:
    """(table, kappa) of two readers' boolean verdicts on the same items.

    table[i, j] counts the items reader a judged `i == 0: right, 1: wrong` and reader b judged j
    (rows: a, columns: b). kappa = (p_o - p_e) / (1 - p_e) with p_o the share of items on which they
    agree and p_e the agreement expected by chance from their rates; 1 when they always agree, 0 at
    chance. NaN when p_e = 1 (both readers give one verdict to everything: agreement is then certain).
    """
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError(f"expected two equal-length 1-d verdict arrays, got shapes {a.shape} and {b.shape}")
    table = np.array([[np.sum(a & b), np.sum(a & ~b)], [np.sum(~a & b), np.sum(~a & ~b)]])
    p_o = float((a == b).mean())
    rate_a, rate_b = float(a.mean()), float(b.mean())
    p_e = rate_a * rate_b + (1 - rate_a) * (1 - rate_b)
    kappa = float("nan") if p_e == 1.0 else (p_o - p_e) / (1 - p_e)
    return table, kappa
