import pytest
import torch

from tinyvid.data.frame_sampling import sample_indices


def test_uniform_takes_segment_centres():
    assert sample_indices(16, 4).tolist() == [2, 6, 10, 14]
    assert sample_indices(10, 3).tolist() == [1, 5, 8]
    assert sample_indices(8, 8).tolist() == list(range(8))
    idx = sample_indices(300, 8)
    assert idx.dtype == torch.int64 and idx.shape == (8,)
    assert idx[0] < 300 // 8 and idx[-1] >= 300 - 300 // 8  # spans the whole clip


def test_uniform_short_clip_repeats_in_place():
    assert sample_indices(4, 8).tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert sample_indices(1, 3).tolist() == [0, 0, 0]


def test_random_window_is_consecutive_and_covers_every_start():
    g = torch.Generator().manual_seed(0)
    starts = set()
    for _ in range(200):
        idx = sample_indices(20, 5, "random_window", generator=g)
        assert torch.equal(idx.diff(), torch.ones(4, dtype=torch.int64))
        assert 0 <= idx[0] and idx[-1] < 20
        starts.add(int(idx[0]))
    assert starts == set(range(16))


def test_random_modes_follow_the_generator():
    a = sample_indices(1000, 4, "stride", stride=5, generator=torch.Generator().manual_seed(3))
    b = sample_indices(1000, 4, "stride", stride=5, generator=torch.Generator().manual_seed(3))
    c = sample_indices(1000, 4, "stride", stride=5, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_stride_steps_and_stays_inside():
    g = torch.Generator().manual_seed(1)
    for _ in range(100):
        idx = sample_indices(30, 4, "stride", stride=3, generator=g)
        assert idx.diff().tolist() == [3, 3, 3]
        assert 0 <= idx[0] <= 30 - 10 and idx[-1] < 30
    assert sample_indices(10, 4, "stride", stride=3).tolist() == [0, 3, 6, 9]  # exactly fits: start 0


def test_short_clip_pads_with_last_frame():
    assert sample_indices(3, 5, "random_window").tolist() == [0, 1, 2, 2, 2]
    assert sample_indices(10, 4, "stride", stride=4).tolist() == [0, 4, 8, 8]
    assert sample_indices(1, 2, "stride", stride=7).tolist() == [0, 0]


@pytest.mark.parametrize("kwargs,match", [
    (dict(num_frames=10, n=0), "n must be positive"),
    (dict(num_frames=10, n=-2), "n must be positive"),
    (dict(num_frames=0, n=4), "num_frames"),
    (dict(num_frames=10, n=4, mode="middle"), "unknown mode"),
    (dict(num_frames=10, n=4, mode="stride", stride=0), "stride"),
])
def test_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sample_indices(**kwargs)
