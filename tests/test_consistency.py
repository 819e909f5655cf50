"""Temporal consistency (per-frame digit identity, frame-to-frame feature similarity) and two-reader agreement."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tinyvid.data.moving_mnist import generate
from tinyvid.eval.consistency import (agreement, consecutive_similarity, frame_consistency, frame_digits,
                                      identity_agreement, identity_consistency)


@pytest.fixture(scope="module")
def one_digit():
    return generate(24, "test", seed=3, num_digits=1)


def test_identity_agreement_counts_the_majority_reading():
    readings = np.array([[3, 3, 8, 8, 8], [1, 1, 1, 1, 1], [0, 1, 2, 3, 4]])
    np.testing.assert_allclose(identity_agreement(readings), [0.6, 1.0, 0.2])
    with pytest.raises(ValueError, match="integer readings"):
        identity_agreement(np.array([[0.5, 1.0]]))


def test_real_one_digit_clips_are_read_as_their_digit_on_every_frame(one_digit):
    digits = frame_digits(one_digit.videos)
    assert digits.shape == (24, 16) and digits.dtype == np.int64
    assert (digits == one_digit.digits[:, :1]).mean() > 0.9  # the classifier misreads a few MNIST digits
    assert identity_consistency(one_digit.videos).mean() > 0.95


def test_a_digit_that_turns_into_another_halfway_scores_one_half(one_digit):
    digits = frame_digits(one_digit.videos)
    steady = np.flatnonzero((digits == one_digit.digits[:, :1]).all(1))
    a = steady[0]
    b = next(i for i in steady if one_digit.digits[i, 0] != one_digit.digits[a, 0])
    morph = np.concatenate([one_digit.videos[a, :8], one_digit.videos[b, 8:]])[None]
    assert identity_consistency(morph).tolist() == [0.5]
    assert frame_consistency(morph)[0] < frame_consistency(one_digit.videos[[a]])[0]


def test_frame_similarity_is_one_for_a_still_clip_and_high_for_real_motion(one_digit):
    still = np.repeat(one_digit.videos[:4, :1], 16, axis=1)
    torch.testing.assert_close(frame_consistency(still), torch.ones(4), atol=1e-5, rtol=0)
    # a real digit translates by whole pixels, so its centred crops are the same on every frame
    assert frame_consistency(one_digit.videos).mean() > 0.99
    shuffled = one_digit.videos.copy()
    shuffled[:, 1::2] = one_digit.videos[np.roll(np.arange(24), 1), 1::2]  # every other frame from another clip
    assert frame_consistency(shuffled).mean() < frame_consistency(one_digit.videos).mean() - 0.1


def test_consecutive_similarity_of_known_features():
    f = torch.zeros(2, 4, 3)
    f[0] = torch.tensor([1.0, 0.0, 0.0])  # the same direction on every frame: 1
    f[1, ::2, 0], f[1, 1::2, 1] = 1.0, 2.0  # alternating orthogonal directions: 0
    torch.testing.assert_close(consecutive_similarity(f), torch.tensor([1.0, 0.0]))
    with pytest.raises(ValueError, match="T >= 2"):
        consecutive_similarity(torch.zeros(2, 1, 3))


def test_bad_clips_raise_clearly():
    with pytest.raises(ValueError, match="uint8 clips"):
        frame_digits(np.zeros((2, 16, 64, 64), dtype=np.float32))
    with pytest.raises(ValueError, match="T >= 2"):
        frame_consistency(np.zeros((2, 1, 64, 64), dtype=np.uint8))


def test_agreement_table_and_kappa():
    # the textbook example: 50 items, both right 20, a right b wrong 5, a wrong b right 10, both wrong 15
    a = np.array([True] * 25 + [False] * 25)
    b = np.array([True] * 20 + [False] * 5 + [True] * 10 + [False] * 15)
    table, kappa = agreement(a, b)
    assert table.tolist() == [[20, 5], [10, 15]]
    assert kappa == pytest.approx(0.4)  # p_o = 0.7, p_e = 0.5 * 0.6 + 0.5 * 0.4 = 0.5
    assert agreement(a, a)[1] == pytest.approx(1.0)
    assert agreement(a, ~a)[1] == pytest.approx(-1.0)
    rng = np.random.default_rng(0)
    assert abs(agreement(rng.random(20_000) < 0.7, rng.random(20_000) < 0.4)[1]) < 0.03  # independent readers
    assert np.isnan(agreement([True, True], [True, True])[1])  # one verdict for everything: chance agreement is 1
    with pytest.raises(ValueError, match="equal-length"):
        agreement([True, False], [True])
