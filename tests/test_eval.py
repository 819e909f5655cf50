"""tinyvid.eval: Fréchet distance against closed forms, FID sanity, the cached classifier, input checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tinyvid.data.mnist import load_mnist
from tinyvid.eval import (
    class_histogram,
    feature_stats,
    fid,
    frechet_distance,
    image_features,
    load_classifier,
    predicted_classes,
    real_data_floor,
    sample_accuracy,
    to_model_input,
)
from tinyvid.eval.classifier import MNISTClassifier, random_shift


def random_spd(d: int, rng: np.random.Generator) -> np.ndarray:
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def test_frechet_identical_gaussians_is_zero():
    rng = np.random.default_rng(0)
    mu, sigma = rng.normal(size=16), random_spd(16, rng)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-8)


def test_frechet_diagonal_matches_closed_form():
    # for commuting covariances: |mu1 - mu2|^2 + sum_i (sqrt(s1_i) - sqrt(s2_i))^2
    rng = np.random.default_rng(1)
    d = 32
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = rng.uniform(0.1, 3.0, d), rng.uniform(0.1, 3.0, d)
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(s1) - np.sqrt(s2)) ** 2).sum()
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, rel=1e-10)
    # the same Gaussians in a rotated basis: the distance is rotation invariant
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    rotated = frechet_distance(q @ mu1, q @ np.diag(s1) @ q.T, q @ mu2, q @ np.diag(s2) @ q.T)
    assert rotated == pytest.approx(expected, rel=1e-8)


def test_frechet_accepts_torch_and_singular_covariances():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(5, 8))  # 5 samples in 8-d: rank-deficient covariance
    mu, sigma = feature_stats(torch.from_numpy(x))
    value = frechet_distance(torch.from_numpy(mu), torch.from_numpy(sigma), mu, 2 * sigma)
    expected = (1 + 2 - 2 * np.sqrt(2)) * np.trace(sigma)
    assert value == pytest.approx(expected, rel=1e-8)
    with pytest.raises(ValueError, match="covariances"):
        frechet_distance(mu, sigma, mu, sigma[:4, :4])


def test_feature_stats_matches_numpy():
    x = np.random.default_rng(3).normal(size=(100, 6))
    mu, sigma = feature_stats(x)
    np.testing.assert_allclose(mu, x.mean(0))
    np.testing.assert_allclose(sigma, np.cov(x.T))


def test_to_model_input_conventions_and_errors():
    u8 = np.zeros((3, 28, 28), dtype=np.uint8)
    u8[:, 10, 10] = 255
    x = to_model_input(u8)
    assert x.shape == (3, 1, 28, 28) and x.dtype == torch.float32
    assert x.min() == -1.0 and x.max() == 1.0
    torch.testing.assert_close(to_model_input(x), x)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        to_model_input(torch.rand(4, 1, 28, 28))
    with pytest.raises(ValueError, match=r"\[0, 255\]"):
        to_model_input(torch.rand(4, 1, 28, 28) * 255)
    with pytest.raises(ValueError, match="shape"):
        to_model_input(torch.zeros(4, 3, 28, 28))
    with pytest.raises(ValueError, match="shape"):
        to_model_input(torch.zeros(4, 1, 32, 32))


def test_random_shift_moves_whole_digits():
    x = to_model_input(load_mnist("test")[0][:8])
    gen = torch.Generator().manual_seed(0)
    shifted = random_shift(x, 2, gen)
    assert shifted.shape == x.shape
    assert not torch.equal(shifted, x)
    # MNIST digits sit in a 20x20 box with a 4 px margin: a 2 px shift loses no ink
    torch.testing.assert_close((shifted + 1).sum((1, 2, 3)), (x + 1).sum((1, 2, 3)))
    torch.testing.assert_close(random_shift(x, 0, gen), x)


def test_tiny_classifier_shapes():
    model = MNISTClassifier(width=4, feature_dim=8).eval()
    x = torch.zeros(2, 1, 28, 28)
    assert model.features(x).shape == (2, 8) and model(x).shape == (2, 10)


@pytest.fixture(scope="module")
def classifier() -> MNISTClassifier:
    return load_classifier()  # trains once (about a minute) if the cache is empty


@pytest.fixture(scope="module")
def test_subset() -> tuple[np.ndarray, np.ndarray]:
    images, labels = load_mnist("test")
    return images[:2000], labels[:2000]


def test_classifier_accuracy_on_test_subset(classifier, test_subset):
    images, labels = test_subset
    assert sample_accuracy(images, labels, classifier) >= 0.98
    hist = class_histogram(images, classifier)
    assert hist.sum() == pytest.approx(1.0) and (hist > 0.05).all()
    assert predicted_classes(images[:5], classifier).shape == (5,)


def test_float_and_uint8_inputs_give_the_same_features(classifier, test_subset):
    images = test_subset[0][:64]
    floats = torch.tensor(images).float().div(127.5).sub(1).unsqueeze(1)
    torch.testing.assert_close(image_features(images, classifier), image_features(floats, classifier))


def test_fid_same_set_is_zero_and_noise_is_far(classifier, test_subset):
    images = test_subset[0]
    assert fid(images, reference=images, classifier=classifier) == pytest.approx(0.0, abs=1e-6)
    noise = np.random.default_rng(0).integers(0, 256, size=(2000, 28, 28), dtype=np.uint8)
    noise_fid = fid(noise, classifier=classifier)
    floor = real_data_floor(2000, classifier=classifier)
    assert 0 < floor < noise_fid / 20


def test_fid_rejects_zero_one_images(classifier):
    with pytest.raises(ValueError, match=r"\[0, 1\].*x \* 2 - 1"):
        fid(torch.rand(10, 1, 28, 28), classifier=classifier)
