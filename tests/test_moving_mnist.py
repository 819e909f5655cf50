import numpy as np
import pytest

from tinyvid.data.moving_mnist import (
    DIRECTION_STEPS, DIRECTIONS, NO_DIGIT, WordTokenizer, caption_for, generate, held_out_direction,
    is_held_out, parse_caption, render,
)


@pytest.fixture(scope="module")
def train_clips():
    return generate(300, "train", seed=0)


def test_clip_contract(train_clips):
    c = train_clips
    assert c.videos.shape == (300, 16, 64, 64) and c.videos.dtype == np.uint8
    assert set(c.num_digits.tolist()) == {1, 2}
    assert c.videos[:, :, 0, :].max() >= 0  # black background, digits inside
    assert DIRECTIONS == ("up", "down", "left", "right", "up-left", "up-right", "down-left", "down-right")


def test_generation_is_deterministic_from_the_seed():
    a, b, c = generate(20, seed=5), generate(20, seed=5), generate(20, seed=6)
    assert np.array_equal(a.videos, b.videos) and a.captions == b.captions
    assert not np.array_equal(a.videos, c.videos)


def test_single_digit_moves_two_pixels_per_frame_in_its_direction():
    c = generate(40, "train", seed=1, num_digits=1)
    for video, k in zip(c.videos, c.directions[:, 0]):
        rows, cols = np.arange(64), np.arange(64)
        mass = video.astype(float).sum((1, 2))
        cy = (video.sum(2) * rows).sum(1) / mass
        cx = (video.sum(1) * cols).sum(1) / mass
        dy, dx = np.diff(cy), np.diff(cx)  # exact: the sprite is shifted, never clipped
        np.testing.assert_allclose(dy, 2 * DIRECTION_STEPS[k][0], atol=1e-9)
        np.testing.assert_allclose(dx, 2 * DIRECTION_STEPS[k][1], atol=1e-9)
        assert video[0].sum() == video[-1].sum()  # stays fully inside the canvas


def test_overlapping_digits_are_combined_by_max():
    a = np.zeros((28, 28), np.uint8); a[:, :14] = 200
    b = np.zeros((28, 28), np.uint8); b[:, 7:] = 100
    sprites = np.stack([a, b])[None]  # (1 clip, 2 slots, 28, 28), same position
    start = np.zeros((1, 2, 2), np.int64)
    video = render(sprites, start, np.zeros_like(start), frames=2, size=32)
    np.testing.assert_array_equal(video[0, 0, :28, :28], np.maximum(a, b))
    assert (generate(30, "train", seed=2, num_digits=2).num_digits == 2).all()


def test_compositional_split(train_clips):
    assert not train_clips.held_out.any()
    for d in range(10):
        assert is_held_out(d, held_out_direction(d))
        assert sum(bool(is_held_out(d, k)) for k in range(8)) == 1
    test = generate(400, "test", seed=0, held_out_fraction=0.5)
    assert 0.4 < test.held_out.mean() < 0.6
    with pytest.raises(ValueError, match="seen compositions only"):
        generate(5, "train", compositions="held_out")


def test_caption_parser_inverts_the_builder(train_clips):
    for cap, d, k in zip(train_clips.captions, train_clips.digits, train_clips.directions):
        pairs = parse_caption(cap)
        assert pairs == [(int(a), int(b)) for a, b in zip(d, k) if a != NO_DIGIT]
        assert caption_for(*zip(*pairs)) == cap
    assert caption_for([3, 7], [2, 0]) == "the digit 3 is moving left and the digit 7 is moving up"
    with pytest.raises(ValueError, match="not a Moving MNIST caption"):
        parse_caption("the digit 3 is dancing")


def test_word_tokenizer_round_trip(train_clips):
    tok = WordTokenizer()
    ids, mask = tok.batch(train_clips.captions[:8])
    assert ids.shape == mask.shape and ids[:, 0].eq(tok.bos_id).all()
    for row, cap in zip(ids, train_clips.captions[:8]):
        assert tok.decode(row) == cap
    assert tok.encode("the digit 3 is flying", add_special=False)[-1] == tok.unk_id


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_digits"):
        generate(3, num_digits=3)
    with pytest.raises(ValueError, match="split"):
        generate(3, split="val")
    with pytest.raises(ValueError, match="do not fit"):
        generate(3, frames=40)
