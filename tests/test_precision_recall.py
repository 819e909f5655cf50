"""Improved precision/recall and density/coverage: a brute-force reference, limiting cases, mode collapse, MNIST features."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tinyvid.eval.precision_recall import density_coverage, in_manifold, knn_radii, precision_recall


def brute_force(real: np.ndarray, fake: np.ndarray, k: int) -> dict[str, float]:
    """Kynkäänniemi et al.'s definitions and Naeem et al.'s, written with loops over every pair."""
    def radius(points, i):
        d = sorted(np.linalg.norm(points[i] - points[j]) for j in range(len(points)) if j != i)
        return d[k - 1]

    def inside(x, points, radii):
        return any(np.linalg.norm(x - p) <= r for p, r in zip(points, radii))

    real_r = [radius(real, i) for i in range(len(real))]
    fake_r = [radius(fake, i) for i in range(len(fake))]
    precision = np.mean([inside(x, real, real_r) for x in fake])
    recall = np.mean([inside(x, fake, fake_r) for x in real])
    counts = [sum(np.linalg.norm(x - p) <= r for p, r in zip(real, real_r)) for x in fake]
    coverage = np.mean([any(np.linalg.norm(x - p) <= r for x in fake) for p, r in zip(real, real_r)])
    return {"precision": precision, "recall": recall, "density": np.mean(counts) / k, "coverage": coverage}


@pytest.mark.parametrize("k", [1, 3, 5])
def test_matches_brute_force_with_any_block_size(k):
    rng = np.random.default_rng(k)
    real = rng.normal(size=(40, 6))
    fake = rng.normal(loc=0.4, scale=1.3, size=(35, 6))
    expected = brute_force(real, fake, k)
    for batch_size in (7, 1024):  # blocks of the distance matrix must not change anything
        got = {**precision_recall(real, fake, k=k, batch_size=batch_size),
               **density_coverage(real, fake, k=k, batch_size=batch_size)}
        assert got == pytest.approx(expected, abs=1e-12)


def test_radii_exclude_the_point_itself_and_accept_torch():
    x = torch.tensor([[0.0], [1.0], [3.0], [7.0]])
    torch.testing.assert_close(knn_radii(x, k=1), torch.tensor([1.0, 1.0, 2.0, 4.0], dtype=torch.float64))
    torch.testing.assert_close(knn_radii(x.numpy(), k=2), torch.tensor([3.0, 2.0, 3.0, 6.0], dtype=torch.float64))
    assert in_manifold(np.array([[-2.0], [12.0]]), x, knn_radii(x, k=1)).tolist() == [False, False]
    assert in_manifold(np.array([[-1.0], [11.0]]), x, knn_radii(x, k=1)).tolist() == [True, True]  # boundary counts


def test_identical_sets_score_one_and_distant_sets_zero():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(100, 8))
    assert precision_recall(real, real.copy()) == {"precision": 1.0, "recall": 1.0}
    assert density_coverage(real, real.copy())["coverage"] == 1.0
    assert precision_recall(real, real + 100.0) == {"precision": 0.0, "recall": 0.0}
    assert density_coverage(real, real + 100.0) == {"density": 0.0, "coverage": 0.0}


def test_mode_collapse_keeps_precision_and_loses_recall():
    rng = np.random.default_rng(1)
    centres = rng.normal(scale=10.0, size=(4, 4))
    real = np.concatenate([c + rng.normal(size=(100, 4)) for c in centres])
    healthy = np.concatenate([c + rng.normal(size=(100, 4)) for c in centres])  # the same four modes
    collapsed = centres[0] + rng.normal(size=(400, 4))  # every sample from one of the four
    good, bad = precision_recall(real, healthy), precision_recall(real, collapsed)
    assert good["precision"] > 0.8 and good["recall"] > 0.8
    assert abs(bad["precision"] - good["precision"]) < 0.1 and bad["recall"] < 0.3
    blurred = real.mean(0) + 0.1 * rng.normal(size=(400, 4))  # an "averaged" generator: between the modes
    assert precision_recall(real, blurred)["precision"] < 0.05


def test_bad_inputs_raise_clearly():
    x = np.zeros((5, 3))
    with pytest.raises(ValueError, match="k must be between 1 and N - 1 = 4"):
        precision_recall(x, x, k=5)
    with pytest.raises(ValueError, match="differ in dimension"):
        precision_recall(x, np.zeros((5, 4)))
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        precision_recall(np.zeros(5), x)
    with pytest.raises(ValueError, match="NaN"):
        density_coverage(x, np.full((5, 3), np.nan))


def test_mnist_features_tell_a_full_set_from_a_single_digit():
    from tinyvid.data.mnist import load_mnist
    from tinyvid.eval import image_features

    train, train_labels = load_mnist("train")
    test, _ = load_mnist("test")
    real = image_features(test[:600])
    other_real = image_features(train[:600])
    threes = image_features(train[np.flatnonzero(train_labels == 3)[:600]])
    both_real = precision_recall(real, other_real)
    assert both_real["precision"] > 0.7 and both_real["recall"] > 0.7
    only_threes = precision_recall(real, threes)
    assert only_threes["precision"] > 0.7 and only_threes["recall"] < 0.25
