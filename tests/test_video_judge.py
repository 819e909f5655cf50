import numpy as np
import pytest
import torch

from tinyvid.data.moving_mnist import NO_DIGIT, generate
from tinyvid.eval.video_judge import (VideoJudge, clip_pairs, judge_loss, judge_predict, judge_scores,
                                      judge_targets)
from tinyvid.train import TensorBatches, Trainer


def test_targets_mark_present_digits_and_ignore_absent_directions():
    digits = np.array([[3, NO_DIGIT], [7, 1]])
    directions = np.array([[2, NO_DIGIT], [0, 5]])
    presence, direction = judge_targets(digits, directions)
    assert presence[0].nonzero().flatten().tolist() == [3] and presence[1].nonzero().flatten().tolist() == [1, 7]
    assert direction[0, 3] == 2 and direction[1, 7] == 0 and direction[1, 1] == 5
    assert (direction[0, [0, 1, 2, 4, 5, 6, 7, 8, 9]] == -100).all()
    assert clip_pairs(digits, directions) == [[(3, 2)], [(1, 5), (7, 0)]]


def test_scores_count_clip_digit_and_direction_accuracy():
    expected = [[(3, 2)], [(1, 5), (7, 0)], [(4, 4)]]
    predicted = [[(3, 2)], [(1, 5), (7, 1)], [(5, 4)]]
    s = judge_scores(predicted, expected)
    assert s.clip_accuracy == pytest.approx(1 / 3) and s.digit_accuracy == pytest.approx(2 / 3)
    assert s.direction_accuracy == pytest.approx(2 / 3)  # 3 digits found, 2 with the right direction
    with pytest.raises(ValueError, match="predictions for"):
        judge_scores(predicted[:2], expected)


def test_judge_learns_a_tiny_moving_mnist_set():
    torch.manual_seed(0)
    clips = generate(64, "train", seed=1, num_digits=1, frames=8, size=48, speed=2)
    videos = clips.tensors()
    presence, direction = judge_targets(clips.digits, clips.directions)
    model = VideoJudge(width=8)
    before = float(judge_loss(model, (videos, presence, direction))[0].detach())
    Trainer(model, judge_loss, TensorBatches(videos, presence, direction, batch_size=16), steps=80, lr=3e-3,
            warmup=5, ema_decay=None, progress=False).fit()
    after = float(judge_loss(model.eval(), (videos, presence, direction))[0].detach())
    assert after < 0.5 * before
    predicted = judge_predict(model, videos, clips.num_digits)
    assert len(predicted) == 64 and all(len(p) == 1 for p in predicted)
    assert model.features(videos[:2]).shape == (2, model.feature_dim)
    with pytest.raises(ValueError, match="expected videos"):
        model.features(torch.zeros(2, 8, 32, 32))
