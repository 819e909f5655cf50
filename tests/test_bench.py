"""`tinyvid bench t2i-conditioning`: both conditionings are trained and scored in one run."""

import pytest

from tinyvid.bench import t2i_conditioning


def test_t2i_conditioning_trains_and_scores_both_caption_models_and_the_label_model():
    out = t2i_conditioning(None, clips=4, n_samples=10, steps=2, progress=False)
    assert out["frames"] == 4 * 16
    assert 0.0 <= out["committed_t2i_mnist_digit_accuracy"] <= 1.0
    assert len(out["models"]) == 3
    for row in out["models"].values():
        assert row["steps"] == 2
        assert row["train_frames_per_s"] > 0
        assert 0.0 <= row["digit_accuracy"] <= 1.0


def test_t2i_conditioning_needs_a_sample_per_digit():
    with pytest.raises(ValueError, match="at least 10 samples"):
        t2i_conditioning(None, clips=4, n_samples=5, steps=1, progress=False)
