import numpy as np
import pytest
import torch

from tinyvid.data.moving_mnist import NO_DIGIT, generate
from tinyvid.eval.video_judge import (VideoJudge, align_directions, clip_pairs, judge_loss, judge_predict, judge_scores,
                                      judge_targets)
from tinyvid.train import TensorBatches, Trainer


def test_targets_put_each_digit_at_its_direction_and_first_frame_cell():
    digits = np.array([[3, NO_DIGIT], [7, 7]])
    directions = np.array([[2, NO_DIGIT], [0, 5]])
    centers = np.array([[[20.0, 44.0], [np.nan, np.nan]], [[5.0, 5.0], [60.0, 33.0]]])
    objectness, digit = judge_targets(digits, directions, centers, size=64)
    assert objectness.shape == (2, 8, 64) and objectness.flatten(1).sum(1).tolist() == [1.0, 2.0]
    assert digit[0, 2, 2 * 8 + 5] == 3  # direction 2, row 20 // 8 = 2, col 44 // 8 = 5
    assert digit[1, 0, 0] == 7 and digit[1, 5, 7 * 8 + 4] == 7
    assert (digit[0] != -100).sum() == 1 and (digit[1] != -100).sum() == 2
    assert clip_pairs(digits, directions) == [[(3, 2)], [(7, 0), (7, 5)]]


def test_generated_centres_are_the_first_frame_box_centres():
    clips = generate(8, "train", seed=2, num_digits=1)
    for video, center in zip(clips.videos, clips.centers[:, 0]):
        rows, cols = np.indices(video[0].shape)
        frame = video[0].astype(float)
        mass = (frame * rows).sum() / frame.sum(), (frame * cols).sum() / frame.sum()
        assert np.abs(np.array(mass) - center).max() < 4  # a digit's mass sits near its box centre
    assert np.isnan(clips.centers[:, 1]).all()


def test_alignment_makes_only_the_true_direction_sharp():
    clips = generate(16, "train", seed=3, num_digits=1)
    aligned = align_directions(clips.tensors())  # (N, 8, H, W)
    sharpest = aligned.amax(dim=(2, 3)).argmax(1)
    assert sharpest.tolist() == clips.directions[:, 0].tolist()
    first = torch.as_tensor(clips.videos[:, 0]).float() / 255
    right = aligned[torch.arange(16), torch.as_tensor(clips.directions[:, 0])]
    torch.testing.assert_close(right, first, atol=1e-2, rtol=0)  # 16 copies land on the first frame


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
    targets = judge_targets(clips.digits, clips.directions, clips.centers, size=48)
    model = VideoJudge(width=8, frames=8)
    before = float(judge_loss(model, (videos, *targets))[0].detach())
    Trainer(model, judge_loss, TensorBatches(videos, *targets, batch_size=16), steps=80, lr=3e-3,
            warmup=5, ema_decay=None, progress=False).fit()
    after = float(judge_loss(model.eval(), (videos, *targets))[0].detach())
    assert after < 0.5 * before
    uint8 = float(judge_loss(model, (torch.from_numpy(clips.videos), *targets))[0].detach())
    assert uint8 == pytest.approx(after, rel=1e-5)  # uint8 clips are converted the same way
    predicted = judge_predict(model, videos, clips.num_digits)
    assert len(predicted) == 64 and all(len(p) == 1 for p in predicted)
    assert model.features(videos[:2]).shape == (2, model.feature_dim)
    assert model.presence(videos[:2]).shape == (2, 10)
    with pytest.raises(ValueError, match="expected videos"):
        model.features(torch.zeros(2, 8, 32, 32))


def test_predict_takes_peaks_so_two_copies_of_one_digit_are_read():
    class Fixed(torch.nn.Module):  # detections: digit 7 in direction 2 at cell 0, and in direction 5 at cell 63
        def forward(self, video):
            obj = torch.full((len(video), 8, 64), -5.0)
            obj[:, 2, 0], obj[:, 2, 1], obj[:, 5, 63] = 5.0, 4.0, 3.0  # (2, 1) is no peak: (2, 0) beside it is higher
            digit = torch.zeros(len(video), 8, 64, 10)
            digit[..., 7] = 1.0
            return obj, digit

    assert judge_predict(Fixed(), torch.zeros(1, 1, 16, 64, 64), [2]) == [[(7, 2), (7, 5)]]
    assert judge_predict(Fixed(), torch.zeros(1, 1, 16, 64, 64), [1]) == [[(7, 2)]]


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


def test_score_sample_set_splits_seen_held_out_and_digit_counts():
    from tinyvid.data.moving_mnist import t2v_test_clips
    from tinyvid.eval.video_judge import score_sample_set

    prompts = t2v_test_clips(40)
    judge = VideoJudge(8, 16)
    scores = score_sample_set(judge, prompts.videos, prompts)
    for key in ("seen", "held_out", "seen_1digit", "seen_2digit", "held_out_1digit", "held_out_2digit",
                "seen_digit", "held_out_direction"):
        assert 0.0 <= scores[key] <= 1.0 or np.isnan(scores[key])
    assert "fvd" not in scores
    # a sub-set of the prompts scores the same as scoring the sub-set's clips by hand
    part = prompts[:10]
    assert part.captions == prompts.captions[:10] and part.digits.shape == (10, 2)
    held = part.held_out
    expected = clip_pairs(part.digits[~held], part.directions[~held])
    by_hand = judge_scores(judge_predict(judge, part.tensors()[torch.from_numpy(~held)], part.num_digits[~held]), expected)
    assert score_sample_set(judge, part.videos, part)["seen"] == pytest.approx(by_hand.clip_accuracy)
    with pytest.raises(ValueError, match="9 videos for 10 prompts"):
        score_sample_set(judge, part.videos[:9], part)
