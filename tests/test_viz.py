import numpy as np
import pytest
import torch

from tinyvid.viz import as_uint8, gif_bytes, grid, video_grid


def test_float_images_map_to_uint8():
    x = torch.tensor([[-1.0, 0.0, 1.0, 3.0]])
    assert as_uint8(x).tolist() == [[0, 128, 255, 255]]


def test_grid_tiles_with_padding():
    g = grid(np.full((5, 1, 4, 4), 255, np.uint8), nrow=3, pad=1)
    assert g.shape == (2 * 5 + 1, 3 * 5 + 1)
    assert g[1:5, 1:5].min() == 255 and g[0].max() == 0  # images inside, padding black
    with pytest.raises(ValueError, match="grid expects"):
        grid(np.zeros((4, 4)))


def test_gif_is_animated_and_sized():
    frames = np.random.default_rng(0).integers(0, 255, (6, 8, 8), dtype=np.uint8)
    data = gif_bytes(frames, fps=4, scale=2)
    assert data[:6] == b"GIF89a"
    from PIL import Image
    import io

    im = Image.open(io.BytesIO(data))
    assert im.size == (16, 16) and im.n_frames == 6
    with pytest.raises(ValueError, match="gif_bytes expects"):
        gif_bytes(np.zeros((2, 3, 4, 5), np.uint8))


def test_video_grid_keeps_time():
    v = video_grid(np.zeros((4, 7, 8, 8), np.uint8), nrow=2, pad=0)
    assert v.shape == (7, 16, 16)
