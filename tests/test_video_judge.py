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


def test_load_judge_trains_once_caches_and_scores(tmp_path, monkeypatch):
    from tinyvid.eval.video_judge import fvd, load_judge

    monkeypatch.setenv("TINYVID_CACHE", str(tmp_path))
    tiny = dict(n_clips=64, epochs=1, width=8, frames=8, size=48, n_test=32, batch_size=16)
    judge = load_judge(progress=False, **tiny)
    assert list(tmp_path.glob("video_judge*.safetensors")) and list(tmp_path.glob("video_judge*.json"))
    again = load_judge(progress=False, **tiny)  # from the cache: same weights
    for a, b in zip(judge.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    clips = generate(16, "test", seed=3, frames=8, size=48, speed=2).tensors()
    assert fvd(judge, clips, clips) == pytest.approx(0.0, abs=1e-3)


def test_judge_training_clips_may_hold_out_pairs_only_as_an_evaluator():
    with pytest.raises(ValueError, match="seen compositions only"):
        generate(4, "train", compositions="any", frames=8, size=48)
    clips = generate(400, "train", compositions="any", evaluator=True, frames=8, size=48)
    assert clips.held_out.any()
