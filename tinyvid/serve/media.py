"""Video bytes in and out of the service: MP4 (PyAV, via tinyvid.data.video_io) and GIF (tinyvid.viz).

Served MP4s are yuv420p H.264 (`lossless=False`), the format browsers play; uploads are probed
before decoding, so a small file that claims thousands of frames or a huge picture is refused
before it is decoded into memory.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from tinyvid.data.video_io import encode_mp4_bytes, read_video, video_info
from tinyvid.serve.engines import OUT_SIZE
from tinyvid.viz import gif_bytes

FPS = 8


class UploadError(ValueError):
    """An upload the service will not take; `status` is the HTTP code that says why."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


def mp4_bytes(video: np.ndarray, fps: int = FPS) -> bytes:
    return encode_mp4_bytes(np.asarray(video), fps=fps, lossless=False)


def gif(video: np.ndarray, fps: int = FPS, scale: int = 1) -> bytes:
    return gif_bytes(np.asarray(video), fps=fps, scale=scale)


def resize_frames(frames: np.ndarray, size: int = OUT_SIZE) -> np.ndarray:
    """uint8 (T, H, W) -> (T, size, size), area-averaged (the contract's square frames)."""
    if frames.shape[1:] == (size, size):
        return frames
    x = torch.from_numpy(np.ascontiguousarray(frames)).float()[:, None]
    x = F.interpolate(x, size=(size, size), mode="area")
    return x[:, 0].round().clamp(0, 255).to(torch.uint8).numpy()


def _plain_message(error: Exception, path: Path) -> str:
    """FFmpeg's message without the temporary path and errno noise: "... (Invalid data found ...)"."""
    text = str(error).replace(f": '{path}'", "").replace(str(path), "the upload")
    return re.sub(r"\[Errno -?\d+\] ", "", text)


def decode_upload(data: bytes, max_frames: int = 256, max_side: int = 1024) -> np.ndarray:
    """An uploaded video file -> uint8 grayscale (T, 64, 64); UploadError with a clear message otherwise."""
    if not data:
        raise UploadError("the upload is empty")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "upload.mp4"
        path.write_bytes(data)
        try:
            info = video_info(path)
        except ValueError as e:
            raise UploadError(_plain_message(e, path)) from None
        if info.frames > max_frames:
            raise UploadError(f"the video has {info.frames} frames; the limit is {max_frames}", 413)
        if max(info.height, info.width) > max_side:
            raise UploadError(f"the video is {info.width}x{info.height}; the limit is {max_side} pixels a side", 413)
        try:
            frames = read_video(path, gray=True)
        except (ValueError, IndexError) as e:
            raise UploadError(f"corrupt video: {_plain_message(e, path)}") from None
    return resize_frames(frames[:max_frames])
