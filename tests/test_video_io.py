import sys

import numpy as np
import pytest
import torch

from tinyvid.data.video_io import (decode_mp4_bytes, encode_mp4_bytes, read_video, rgb_to_gray, video_info,
                                   write_video)


def moving_square(t=12, h=32, w=32, rgb=False, step=(1, 2), size=8, start=(2, 3)):
    """A bright square moving diagonally over a dim gradient: every frame differs, and the order matters."""
    frames = np.zeros((t, h, w), np.uint8) + (np.arange(w, dtype=np.uint8) * 2)[None, None, :]
    for i in range(t):
        y, x = start[0] + step[0] * i, start[1] + step[1] * i
        frames[i, y:y + size, x:x + size] = 200 + i
    if rgb:
        frames = np.stack([frames, 255 - frames, frames // 2], axis=-1)
    return frames


@pytest.mark.parametrize("h,w", [(32, 32), (33, 31)])
def test_gray_round_trip_is_exact(tmp_path, h, w):
    frames = moving_square(h=h, w=w)
    path = write_video(tmp_path / "clip.mp4", frames, fps=8)
    out = read_video(path, gray=True)
    assert out.dtype == np.uint8 and out.shape == frames.shape
    np.testing.assert_array_equal(out, frames)
    rgb = read_video(path)  # gray read as RGB: three equal channels
    assert rgb.shape == (*frames.shape, 3)
    np.testing.assert_array_equal(rgb, np.repeat(frames[..., None], 3, axis=-1))


def test_rgb_round_trip_is_exact_and_takes_torch(tmp_path):
    frames = moving_square(t=8, h=33, w=35, rgb=True)
    path = write_video(tmp_path / "clip.mp4", torch.from_numpy(frames))
    np.testing.assert_array_equal(read_video(path), frames)
    np.testing.assert_array_equal(read_video(path, gray=True), rgb_to_gray(frames))


@pytest.mark.parametrize("suffix", [".mkv", ".avi", ".mov"])
def test_other_containers(tmp_path, suffix):
    frames = moving_square(t=6)
    path = write_video(tmp_path / f"clip{suffix}", frames, fps=10)
    np.testing.assert_array_equal(read_video(path, gray=True), frames)
    assert video_info(path) == (6, 10.0, 32, 32)


def test_lossy_is_close_and_needs_even_size(tmp_path):
    frames = moving_square(t=8, h=32, w=32)
    out = read_video(write_video(tmp_path / "web.mp4", frames, lossless=False), gray=True)
    assert out.shape == frames.shape
    assert np.abs(out.astype(int) - frames).mean() < 3
    with pytest.raises(ValueError, match="even height and width"):
        write_video(tmp_path / "odd.mp4", moving_square(h=33), lossless=False)


def test_indices_pick_and_order_frames(tmp_path):
    frames = moving_square()
    path = write_video(tmp_path / "clip.mp4", frames)
    idx = [9, 0, 0, 4]
    np.testing.assert_array_equal(read_video(path, indices=idx, gray=True), frames[idx])
    np.testing.assert_array_equal(read_video(path, indices=torch.tensor(idx), gray=True), frames[idx])
    with pytest.raises(IndexError, match="12 frames"):
        read_video(path, indices=[3, 12])
    with pytest.raises(ValueError, match=">= 0"):
        read_video(path, indices=[-1])


def test_video_info(tmp_path):
    path = write_video(tmp_path / "clip.mp4", moving_square(t=10, h=24, w=40), fps=30000 / 1001)
    info = video_info(path)
    assert (info.frames, info.height, info.width) == (10, 24, 40)
    assert info.fps == pytest.approx(29.97, abs=1e-2)


def test_bytes_round_trip():
    frames = moving_square(t=5)
    data = encode_mp4_bytes(frames, fps=8)
    assert data[4:8] == b"ftyp"  # an MP4 file
    np.testing.assert_array_equal(decode_mp4_bytes(data, gray=True), frames)
    with pytest.raises(ValueError, match="no bytes"):
        decode_mp4_bytes(b"")
    with pytest.raises(ValueError, match="not a readable video"):
        decode_mp4_bytes(b"definitely not an mp4 file" * 10)


@pytest.mark.parametrize("bad,match", [
    (np.zeros((4, 8, 8), np.float32), "uint8"),
    (np.zeros((8, 8), np.uint8), "shape"),
    (np.zeros((4, 3, 8, 8), np.uint8), "shape"),
    (np.zeros((0, 8, 8), np.uint8), "empty"),
])
def test_write_rejects_bad_frames(tmp_path, bad, match):
    with pytest.raises(ValueError, match=match):
        write_video(tmp_path / "bad.mp4", bad)


def test_write_rejects_webm(tmp_path):
    with pytest.raises(ValueError, match="webm"):
        write_video(tmp_path / "clip.webm", moving_square())


def test_read_errors(tmp_path, monkeypatch):
    missing = tmp_path / "nope.mp4"
    with pytest.raises(FileNotFoundError, match="nope.mp4"):
        read_video(missing)
    with pytest.raises(FileNotFoundError, match="nope.mp4"):
        video_info(missing)
    junk = tmp_path / "junk.mp4"
    junk.write_text("this is a text file, not a video\n" * 20)
    with pytest.raises(ValueError, match="junk.mp4"):
        read_video(junk)
    with pytest.raises(ValueError, match="junk.mp4"):
        video_info(junk)
    path = write_video(tmp_path / "clip.mp4", moving_square(t=4))
    with pytest.raises(ValueError, match="unknown backend"):
        read_video(path, backend="opencv")
    monkeypatch.setitem(sys.modules, "decord", None)  # makes `import decord` fail, installed or not
    with pytest.raises(ImportError, match="pip install decord"):
        read_video(path, backend="decord")


def test_decord_matches_pyav(tmp_path):
    pytest.importorskip("decord", reason="decord not installed (pip install decord; Linux x86_64/Windows only)")
    for name, frames in [("gray.mp4", moving_square(h=33, w=31)), ("rgb.mkv", moving_square(rgb=True))]:
        path = write_video(tmp_path / name, frames)
        via_pyav, via_decord = read_video(path, backend="pyav"), read_video(path, backend="decord")
        np.testing.assert_array_equal(via_decord, via_pyav)
        idx = [11, 2, 5]
        np.testing.assert_array_equal(read_video(path, backend="decord", indices=idx, gray=True),
                                      read_video(path, backend="pyav", indices=idx, gray=True))
        with pytest.raises(IndexError):
            read_video(path, backend="decord", indices=[12])
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(ValueError, match="junk.mp4"):
        read_video(junk, backend="decord")


def test_auto_backend_is_pyav_and_explains_when_nothing_is_installed(monkeypatch):
    from tinyvid.data.video_io import resolve_backend

    assert resolve_backend("auto") == "pyav"
    monkeypatch.setitem(sys.modules, "av", None)
    monkeypatch.setitem(sys.modules, "decord", None)
    with pytest.raises(ImportError, match="no video decoder"):
        resolve_backend("auto")
