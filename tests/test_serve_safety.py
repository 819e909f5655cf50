"""Safety checks: the prompt filter, and the output check on known real / blank / noise / flicker clips."""

import numpy as np
import pytest

from tinyvid.data.moving_mnist import generate
from tinyvid.serve.safety import (OutputThresholds, blocklist_check, charset_check, clip_statistics,
                                  default_output_checks, default_prompt_checks, first_refusal, judge_check,
                                  length_check, statistics_check)


@pytest.fixture(scope="module")
def real_clips():
    return generate(300, "test", seed=0).videos


def test_prompt_checks():
    checks = default_prompt_checks(max_chars=40)
    assert first_refusal(checks, "the digit 3 is moving up-left.") is None
    assert "limit is 40" in first_refusal(checks, "x" * 41)
    assert "empty" in first_refusal(checks, " \t")
    assert "U+200B" in first_refusal(checks, "the digit\u200b 3")  # invisible characters bypass filters
    assert "'bomb'" in first_refusal(checks, "a BOMB moving left")
    assert blocklist_check(["bomb"])("bombastic digits") is None  # whole words only
    assert blocklist_check([])("anything") is None
    assert length_check(5)("12345") is None and charset_check()("é") is not None


def test_every_real_clip_passes(real_clips):
    check = statistics_check()
    refused = [(i, check(c)) for i, c in enumerate(real_clips) if check(c)]
    assert not refused, refused[:3]


def test_blank_noise_and_flicker_are_refused(real_clips):
    check = default_output_checks()[0]
    rng = np.random.default_rng(0)
    clip = real_clips[0]
    blank = np.full_like(clip, 17)
    noise = rng.integers(0, 256, clip.shape, dtype=np.uint8)
    inverted = clip.copy()
    inverted[1::2] = 255 - inverted[1::2]  # every other frame negated
    strobe = clip.copy()
    strobe[::3] = 255  # white flashes
    # the same digit jumping to a random place every frame: steady brightness, no continuity
    jumping = np.stack([np.roll(clip[0], tuple(rng.integers(-20, 20, 2)), axis=(0, 1)) for _ in clip])
    assert check(blank).startswith("blank")
    assert check(noise).startswith("noise")
    assert check(inverted).startswith("flicker")
    assert check(strobe).startswith("flicker")
    assert check(jumping).startswith("flicker") and "do not continue" in check(jumping)


def test_statistics_and_thresholds(real_clips):
    s = clip_statistics(real_clips[0])
    assert set(s) == {"std", "spatial_correlation", "brightness_jump", "motion_residual"}
    assert statistics_check(OutputThresholds(min_std=1000))(real_clips[0]).startswith("blank")
    assert clip_statistics(np.zeros((1, 8, 8), np.uint8))["motion_residual"] == 0.0
    with pytest.raises(ValueError, match=r"\(T, H, W\)"):
        clip_statistics(real_clips[:2])


def test_judge_check_reads_the_prompt_digits(real_clips):
    from tinyvid.eval.video_judge import VideoJudge

    judge = VideoJudge(width=4).eval()  # untrained: presence ~0.5 for every digit
    clip = real_clips[0]
    assert judge_check(judge, min_presence=0.0)(clip, "the digit 3 is moving left") is None
    reason = judge_check(judge, min_presence=1.0)(clip, "the digit 3 is moving left and the digit 5 is moving up")
    assert "digit(s) [3, 5]" in reason
    assert judge_check(judge, min_presence=1.0)(clip, "a free-form prompt") is None  # off-grammar: not judged
