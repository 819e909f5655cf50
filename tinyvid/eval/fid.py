"""FID and classifier scores for MNIST-sized samples, in the course classifier's feature space.

FID here is the Fréchet distance between Gaussians fitted to 128-d penultimate features
of `MNISTClassifier`, not Inception-v3's: numbers are comparable within this course,
not with papers. FID is biased upwards at small sample counts, so compare a model's
FID with `real_data_floor(n)` at the same n: that is what a perfect generator scores.

Accepted images everywhere: uint8 (N, 28, 28) in [0, 255], or float (N, 1, 28, 28)
in [-1, 1] (see `to_model_input`).
"""

from __future__ import annotations

import weakref

import numpy as np
import torch

from tinyvid.data.mnist import load_mnist
from tinyvid.eval.classifier import MNISTClassifier, load_classifier, to_model_input

ArrayLike = np.ndarray | torch.Tensor


def _float64(a: ArrayLike) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=np.float64)


def _clean_eigenvalues(w: np.ndarray) -> np.ndarray:
    """Zero the eigenvalues that are round-off (numpy's matrix_rank tolerance), negative ones included.

    A rank-deficient covariance (fewer samples than dimensions) has exact zeros that eigh
    returns as +-1e-17; their square roots (3e-9 each) would otherwise add up.
    """
    tol = max(w.max(initial=0.0), 0.0) * len(w) * np.finfo(np.float64).eps
    return np.where(w > tol, w, 0.0)


def _psd_sqrt(sigma: np.ndarray) -> np.ndarray:
    """Symmetric square root of a covariance."""
    w, v = np.linalg.eigh((sigma + sigma.T) / 2)
    return (v * np.sqrt(_clean_eigenvalues(w))) @ v.T


def frechet_distance(mu1: ArrayLike, sigma1: ArrayLike, mu2: ArrayLike, sigma2: ArrayLike) -> float:
    """||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^1/2), in float64.

    tr((S1 S2)^1/2) is computed as the sum of square roots of the eigenvalues of the
    symmetric PSD matrix S1^1/2 S2 S1^1/2 (similar to S1 S2): eigh on a symmetric matrix
    never yields the complex parts that scipy's sqrtm on S1 S2 does for singular covariances.
    """
    mu1, mu2, sigma1, sigma2 = map(_float64, (mu1, mu2, sigma1, sigma2))
    if mu1.shape != mu2.shape or mu1.ndim != 1:
        raise ValueError(f"means must be 1-d of equal length, got {mu1.shape} and {mu2.shape}")
    d = mu1.shape[0]
    if sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(f"covariances must be ({d}, {d}), got {sigma1.shape} and {sigma2.shape}")
    root1 = _psd_sqrt(sigma1)
    middle = root1 @ sigma2 @ root1
    eig = np.linalg.eigvalsh((middle + middle.T) / 2)
    tr_covmean = np.sqrt(_clean_eigenvalues(eig)).sum()
    diff = mu1 - mu2
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean
    return float(max(value, 0.0))  # round-off can leave -1e-12 for identical inputs


def feature_stats(features: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D), float64, of features (N, D)."""
    f = _float64(features)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"features must be (N, D) with N >= 2, got shape {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def _classifier(classifier: MNISTClassifier | None) -> MNISTClassifier:
    return load_classifier() if classifier is None else classifier


@torch.no_grad()
def _batched(images: ArrayLike, fn, classifier: MNISTClassifier | None, batch_size: int) -> torch.Tensor:
    model = _classifier(classifier)
    device = next(model.parameters()).device
    x = to_model_input(images)  # validates the whole set once, with a clear error
    was_training = model.training  # a learner's own classifier may be mid-training
    model.eval()
    try:
        return torch.cat([fn(model, x[i : i + batch_size].to(device)).cpu() for i in range(0, len(x), batch_size)])
    finally:
        model.train(was_training)


def image_features(
    images: ArrayLike, classifier: MNISTClassifier | None = None, batch_size: int = 500
) -> torch.Tensor:
    """Penultimate classifier features, float32 (N, 128), of accepted images."""
    return _batched(images, lambda m, x: m.features(x), classifier, batch_size)


def image_logits(images: ArrayLike, classifier: MNISTClassifier | None = None, batch_size: int = 500) -> torch.Tensor:
    """Classifier logits, float32 (N, 10)."""
    return _batched(images, lambda m, x: m(x), classifier, batch_size)


# per classifier, (split, n, seed) -> (mu, sigma): test-set features cost a few seconds to recompute
_STATS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _subset(n_total: int, n: int | None, seed: int) -> np.ndarray:
    if n is None:
        return np.arange(n_total)
    if not 2 <= n <= n_total:
        raise ValueError(f"n must be between 2 and {n_total}, got {n}")
    return np.sort(np.random.default_rng(seed).choice(n_total, size=n, replace=False))


def reference_stats(
    split: str = "test", n: int | None = None, seed: int = 0, classifier: MNISTClassifier | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Feature mean and covariance of MNIST `split` (all of it, or n images drawn with `seed`); cached in memory."""
    model = _classifier(classifier)
    cache = _STATS.setdefault(model, {})
    key = (split, n, seed)
    if key not in cache:
        images, _ = load_mnist(split)
        cache[key] = feature_stats(image_features(images[_subset(len(images), n, seed)], model))
    return cache[key]


def fid(
    samples: ArrayLike,
    reference: str | ArrayLike = "test",
    n: int | None = None,
    classifier: MNISTClassifier | None = None,
) -> float:
    """FID of `samples` against MNIST `reference` ("test" or "train", or an image batch).

    n: how many reference images (drawn with seed 0); None uses the whole split (10,000
    test images). Compare the result with `real_data_floor(len(samples))`.
    """
    model = _classifier(classifier)
    mu1, sigma1 = feature_stats(image_features(samples, model))
    if isinstance(reference, str):
        mu2, sigma2 = reference_stats(reference, n, classifier=model)
    else:
        ref = reference if n is None else reference[: n]
        mu2, sigma2 = feature_stats(image_features(ref, model))
    return frechet_distance(mu1, sigma1, mu2, sigma2)


def real_data_floor(n: int, seed: int = 0, classifier: MNISTClassifier | None = None) -> float:
    """FID of n random MNIST train images against the MNIST test set.

    A perfect generator's samples are just more real digits, so this is the best FID
    reachable with n samples: the small-sample bias plus the train/test shift.
    """
    images, _ = load_mnist("train")
    return fid(images[_subset(len(images), n, seed)], "test", classifier=classifier)


def predicted_classes(samples: ArrayLike, classifier: MNISTClassifier | None = None) -> torch.Tensor:
    """The classifier's digit for each sample, int64 (N,)."""
    return image_logits(samples, classifier).argmax(dim=1)


def class_histogram(samples: ArrayLike, classifier: MNISTClassifier | None = None) -> np.ndarray:
    """Fraction of the samples the classifier assigns to each digit 0-9, float64 (10,), summing to 1.

    An unconditional generator should come out near uniform; a spike or a hole is mode
    collapse, which FID alone can hide.
    """
    counts = np.bincount(predicted_classes(samples, classifier).numpy(), minlength=10)
    return counts / counts.sum()


def sample_accuracy(samples: ArrayLike, labels: ArrayLike, classifier: MNISTClassifier | None = None) -> float:
    """Fraction of class-conditional samples the classifier reads as the digit they were asked to be."""
    labels = torch.as_tensor(np.array(labels, dtype=np.int64) if isinstance(labels, np.ndarray) else labels)
    labels = labels.long().flatten().cpu()
    predicted = predicted_classes(samples, classifier)
    if labels.shape != predicted.shape:
        raise ValueError(f"got {len(predicted)} samples but {len(labels)} labels")
    return float((predicted == labels).float().mean())


def crop_digit(frames: ArrayLike, size: int = 28) -> np.ndarray:
    """uint8 (N, H, W) canvases holding one digit -> uint8 (N, size, size) windows centred on each
    frame's centre of mass, the way MNIST centred its digits: the MNIST classifier then reads
    single-digit frames of Moving MNIST (or of a text-to-image model) as it reads MNIST."""
    x = np.asarray(frames)
    if x.ndim != 3 or x.dtype != np.uint8:
        raise ValueError(f"crop_digit expects uint8 frames (N, H, W), got {x.dtype} {x.shape}")
    n, h, w = x.shape
    mass = x.astype(np.float64)
    total = mass.sum((1, 2)).clip(min=1e-9)
    rows = (mass.sum(2) * np.arange(h)).sum(1) / total
    cols = (mass.sum(1) * np.arange(w)).sum(1) / total
    padded = np.pad(x, ((0, 0), (size, size), (size, size)))
    top = np.rint(rows - size / 2 + 0.5).astype(int) + size
    left = np.rint(cols - size / 2 + 0.5).astype(int) + size
    return np.stack([padded[i, t : t + size, l : l + size] for i, (t, l) in enumerate(zip(top, left))])
