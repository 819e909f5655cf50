"""Improved precision and recall of samples (Kynkäänniemi et al., 2019), and density and coverage (Naeem et al., 2020).

Each set of features is taken as a sample of a manifold: the union of balls around its points,
each ball reaching the point's k-th nearest neighbour in its own set. Precision is the share of
generated points inside the real manifold (quality); recall the share of real points inside the
generated manifold (coverage). Works in any feature space: the MNIST classifier's 128-d features
(`image_features`) for digits, the video judge's (`judge_features`) for clips. Compare only sets of
equal size: the balls shrink as a set grows.
"""

from __future__ import annotations

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor


def _features(x: ArrayLike, name: str) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x), dtype=torch.float64)
    if t.ndim != 2 or len(t) == 0:
        raise ValueError(f"{name} features must be (N, D) with N >= 1, got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} features contain NaN or inf")
    return t


def _distances(a: torch.Tensor, b: torch.Tensor, batch_size: int):
    """Row blocks of the Euclidean distance matrix (|a|, |b|), in float64, so N x N never has to fit at once."""
    for i in range(0, len(a), batch_size):
        yield i, torch.cdist(a[i:i + batch_size], b)


def knn_radii(features: ArrayLike, k: int = 3, batch_size: int = 1024) -> torch.Tensor:
    """(N,) distance of each point to its k-th nearest neighbour in the same set (itself excluded)."""
    f = _features(features, "the")
    if not 1 <= k < len(f):
        raise ValueError(f"k must be between 1 and N - 1 = {len(f) - 1}, got {k}")
    radii = torch.empty(len(f), dtype=torch.float64)
    for i, d in _distances(f, f, batch_size):
        radii[i:i + len(d)] = d.kthvalue(k + 1, dim=1).values  # the 1st smallest is the point itself
    return radii


def in_manifold(query: ArrayLike, support: ArrayLike, radii: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """(M,) bool: does each query point fall inside some ball (support_j, radii_j)? Boundary included."""
    q, s = _features(query, "query"), _features(support, "support")
    if q.shape[1] != s.shape[1] or len(radii) != len(s):
        raise ValueError(f"query {tuple(q.shape)}, support {tuple(s.shape)} and {len(radii)} radii do not fit together")
    return torch.cat([(d <= radii[None]).any(1) for _, d in _distances(q, s, batch_size)])


def precision_recall(real: ArrayLike, fake: ArrayLike, k: int = 3, batch_size: int = 1024) -> dict[str, float]:
    """{'precision', 'recall'} of generated features `fake` (M, D) against real features `real` (N, D)."""
    real, fake = _features(real, "real"), _features(fake, "generated")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"real and generated features differ in dimension: {real.shape[1]} vs {fake.shape[1]}")
    real_radii, fake_radii = knn_radii(real, k, batch_size), knn_radii(fake, k, batch_size)
    precision = in_manifold(fake, real, real_radii, batch_size).double().mean()
    recall = in_manifold(real, fake, fake_radii, batch_size).double().mean()
    return {"precision": float(precision), "recall": float(recall)}


def density_coverage(real: ArrayLike, fake: ArrayLike, k: int = 5, batch_size: int = 1024) -> dict[str, float]:
    """{'density', 'coverage'} (Naeem et al.): density counts the real balls holding each generated
    point (divided by k; 1 on average when the sets match, so one outlier's big ball matters little);
    coverage is the share of real balls that hold at least one generated point."""
    real, fake = _features(real, "real"), _features(fake, "generated")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"real and generated features differ in dimension: {real.shape[1]} vs {fake.shape[1]}")
    radii = knn_radii(real, k, batch_size)
    counts = torch.zeros(len(fake), dtype=torch.float64)
    covered = torch.zeros(len(real), dtype=torch.bool)
    for i, d in _distances(fake, real, batch_size):
        inside = d <= radii[None]  # (fake block, real)
        counts[i:i + len(d)] = inside.sum(1)
        covered |= inside.any(0)
    return {"density": float(counts.mean() / k), "coverage": float(covered.double().mean())}
