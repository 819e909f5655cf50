import numpy as np
import pytest
import torch

from tinyvid.data.curation import caption_ok, clip_hash, filter_by_motion, motion_score, near_duplicates


def moving_square(t=12, h=32, w=32, start=(2, 3), step=(1, 2), size=8, value=220):
    frames = np.zeros((t, h, w), np.uint8)
    for i in range(t):
        y, x = start[0] + step[0] * i, start[1] + step[1] * i
        frames[i, y:y + size, x:x + size] = value
    return frames


def test_motion_score_static_moving_and_flicker():
    assert motion_score(np.full((8, 16, 16), 90, np.uint8)) == 0.0
    assert motion_score(np.full((1, 16, 16), 90, np.uint8)) == 0.0
    slow, fast = moving_square(step=(0, 1)), moving_square(step=(1, 2))
    assert 0 < motion_score(slow) < motion_score(fast) < 1
    flicker = np.zeros((6, 8, 8), np.uint8)
    flicker[::2] = 255
    assert motion_score(flicker) == pytest.approx(1.0)
    # uint8, float in [0, 1], torch and RGB all measure the same thing
    expected = np.abs(np.diff(fast.astype(float), axis=0)).mean() / 255
    assert motion_score(fast) == pytest.approx(expected)
    assert motion_score(torch.from_numpy(fast).float() / 255) == pytest.approx(expected)
    assert motion_score(np.repeat(fast[..., None], 3, axis=-1)) == pytest.approx(expected)
    with pytest.raises(ValueError, match="shape"):
        motion_score(np.zeros((16, 16), np.uint8))


def test_filter_by_motion_returns_kept_indices():
    static = np.full((8, 32, 32), 50, np.uint8)
    noise = np.random.default_rng(0).integers(0, 256, (8, 32, 32), dtype=np.uint8)
    videos = [static, moving_square(), noise, moving_square(step=(0, 1))]
    assert filter_by_motion(videos, low=0.005, high=0.2) == [1, 3]
    assert filter_by_motion(videos) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="low"):
        filter_by_motion(videos, low=0.5, high=0.1)


def test_near_duplicates_finds_noised_copy_not_other_clips():
    rng = np.random.default_rng(0)
    clip = moving_square()
    noised = np.clip(clip + rng.normal(0, 6, clip.shape), 0, 255).astype(np.uint8)
    assert np.abs(noised.astype(int) - clip).max() > 10  # really noised
    others = [
        moving_square(start=(20, 3), step=(-1, 2)),  # other path
        moving_square(start=(22, 20), step=(-1, -1)),
        moving_square(start=(12, 12), step=(0, 0)),  # static square
    ]
    videos = [others[0], clip, others[1], noised, others[2], clip[:, :, ::-1].copy()]  # last: mirrored
    assert near_duplicates(videos) == [(1, 3)]
    assert near_duplicates(videos, chunk=2) == [(1, 3)]  # chunking changes nothing
    assert (0, 1) in near_duplicates(videos, threshold=0.99)
    assert near_duplicates(videos[:1]) == []


def test_clip_hash_bits():
    h = clip_hash(moving_square(), num_frames=4, size=8)
    assert h.dtype == torch.bool and h.shape == (256,)
    assert 0 < h.sum() < 256
    torch.testing.assert_close(clip_hash(moving_square(t=24, h=64, w=64)).shape, h.shape)


@pytest.mark.parametrize("caption", [
    "the digit 3 is moving left",
    "the digit 3 is moving left and the digit 7 is moving up",
    "A dog's well-kept ball, rolling.",
])
def test_good_captions(caption):
    assert caption_ok(caption) == (True, "ok")


@pytest.mark.parametrize("caption,reason", [
    ("", "empty"),
    ("   ", "empty"),
    (None, "empty"),
    ("the digit <unk> is moving", "characters"),
    ("the digit 3 🙂", "characters"),
    ("see http://spam.example", "characters"),
    ("word " * 40, "too long"),
    ("the digit digit 3 is moving", "repeated"),
    ("the digit 3 is moving is moving left", "repeated"),
    ("...", "no words"),
])
def test_bad_captions(caption, reason):
    ok, why = caption_ok(caption, max_words=32)
    assert not ok and reason in why


def test_vocab_check():
    vocab = "the digit 0 1 2 3 4 5 6 7 8 9 is moving up down left right and".split()
    assert caption_ok("The digit 3 is moving up", vocab=vocab) == (True, "ok")
    ok, why = caption_ok("the digit 3 is moving sideways and quickly", vocab=vocab)
    assert not ok and "sideways" in why and "quickly" in why
    assert caption_ok("one two three", max_words=2)[1] == "too long: 3 words > 2"
