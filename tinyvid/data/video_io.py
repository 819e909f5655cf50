"""Video files <-> uint8 arrays: PyAV (FFmpeg) by default, decord when asked.

Frames are numpy uint8, (T, H, W, 3) RGB or (T, H, W) grayscale: the layout every
decoder hands back and the one `tinyvid.data` clips use; models permute later.

Lossless writing matters for the course: the captioned Moving MNIST clips are
written to disk and to shards, and a model trained on them should see exactly
the pixels the generator made. H.264 at qp=0 is lossless *in the codec's colour
space*, so the colour space is chosen to make the whole round trip exact:
  - grayscale -> full-range (JPEG) yuv444p: Y = the gray value, chroma = 128;
  - RGB       -> libx264rgb (H.264 coded directly in GBR planes).
Both decode back bit-exactly with PyAV and decord. They are High 4:4:4 streams,
which browsers do not play: `lossless=False` writes yuv420p (crf 18, even sizes
only, `+faststart` for files), the format to serve to a web page.
"""

from __future__ import annotations

import io
import os
from fractions import Fraction
from pathlib import Path
from typing import Any, NamedTuple, Sequence, Union

import numpy as np
import torch

BACKENDS = ("auto", "pyav", "decord")
# H.264 muxes into these; WebM only takes VP8/VP9/AV1, so it is refused rather than written broken.
CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".avi": "avi"}
LOSSY_CRF = 18  # visually lossless for 8-bit content, ~5-10x smaller than qp=0

Indices = Union[Sequence[int], np.ndarray, torch.Tensor]


class VideoInfo(NamedTuple):
    frames: int
    fps: float
    height: int
    width: int


# libswscale's pixel-format conversion runs single-threaded. With PyAV's default (a pool of slice
# threads) a forked DataLoader worker of the test suite waited forever in avpriv_slicethread_execute
# (CI, three runs out of three); for 64x64 frames the threads only cost time anyway.
SCALER_THREADS = 1


def _import_av():
    try:
        import av
    except ImportError as e:
        raise ImportError("PyAV is needed for video I/O: pip install 'tinyvid[video]' (or pip install av)") from e
    return av


def _import_decord():
    try:
        import decord
    except ImportError as e:
        raise ImportError(
            "backend='decord' needs decord: pip install decord (wheels exist for Linux x86_64 and "
            "Windows only; elsewhere use backend='pyav')"
        ) from e
    return decord


def _as_uint8_frames(frames: Any) -> np.ndarray:
    """Validate at the boundary so a float or channels-first tensor fails here, not inside FFmpeg."""
    if isinstance(frames, torch.Tensor):
        frames = frames.detach().cpu().numpy()
    frames = np.asarray(frames)
    if frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 in [0, 255], got dtype {frames.dtype}; "
                         "scale floats with (x * 255).round().clip(0, 255) and cast to uint8")
    if frames.ndim not in (3, 4) or (frames.ndim == 4 and frames.shape[-1] != 3):
        raise ValueError(f"frames must be (T, H, W) grayscale or (T, H, W, 3) RGB, got shape {tuple(frames.shape)}")
    if min(frames.shape[:3]) == 0:
        raise ValueError(f"frames are empty: shape {tuple(frames.shape)}")
    return np.ascontiguousarray(frames)


def _encode(target: str | io.BytesIO, container_format: str, frames: np.ndarray, fps: float, lossless: bool) -> None:
    av = _import_av()
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    t, h, w = frames.shape[:3]
    gray = frames.ndim == 3
    if not lossless and (h % 2 or w % 2):
        raise ValueError(f"lossless=False writes yuv420p, which needs even height and width; got {h}x{w} "
                         "(crop or pad a pixel, or keep lossless=True, which takes any size)")
    if lossless:
        codec, pix_fmt, options = ("libx264" if gray else "libx264rgb"), ("yuv444p" if gray else "rgb24"), {"qp": "0"}
    else:
        codec, pix_fmt, options = "libx264", "yuv420p", {"crf": str(LOSSY_CRF)}
    full_range = 2  # AVCOL_RANGE_JPEG: 0..255, so gray values pass through unscaled
    # moov atom first so a browser starts playing before the download ends; FFmpeg does it by
    # rewriting the finished file, which an in-memory buffer cannot be reopened for.
    faststart = isinstance(target, str) and container_format in ("mp4", "mov")
    container_options = {"movflags": "+faststart"} if faststart else {}
    with av.open(target, mode="w", format=container_format, options=container_options) as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt, stream.options = w, h, pix_fmt, options
        if gray and lossless:
            stream.codec_context.color_range = full_range
        for frame in frames:
            vf = av.VideoFrame.from_ndarray(frame, format="gray" if gray else "rgb24")
            if gray and lossless:
                vf = vf.reformat(format="yuv444p", src_color_range=full_range, dst_color_range=full_range,
                                 threads=SCALER_THREADS)
                vf.color_range = full_range
            container.mux(stream.encode(vf))
        container.mux(stream.encode())


def write_video(path: str | os.PathLike, frames: Any, fps: float = 8, lossless: bool = True) -> Path:
    """Write uint8 frames, (T, H, W) or (T, H, W, 3), as H.264; the container follows the suffix (.mp4 default).

    `lossless=True` round-trips exactly (see the module docstring); `lossless=False` is for browsers.
    """
    path = Path(path)
    suffix = path.suffix.lower() or ".mp4"
    if suffix not in CONTAINERS:
        raise ValueError(f"cannot write H.264 into {suffix!r}: use one of {', '.join(CONTAINERS)}")
    frames = _as_uint8_frames(frames)
    path.parent.mkdir(parents=True, exist_ok=True)
    _encode(str(path), CONTAINERS[suffix], frames, fps, lossless)
    return path


def encode_mp4_bytes(frames: Any, fps: float = 8, lossless: bool = True) -> bytes:
    """The bytes of an MP4 file, without touching disk: what shards store and a web service returns."""
    frames = _as_uint8_frames(frames)
    buffer = io.BytesIO()
    _encode(buffer, "mp4", frames, fps, lossless)
    return buffer.getvalue()


def rgb_to_gray(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma in integer arithmetic: exact on gray frames (R = G = B), identical for every backend."""
    weights = np.array([299, 587, 114], dtype=np.uint32)
    return ((rgb.astype(np.uint32) @ weights + 500) // 1000).astype(np.uint8)


def _check_indices(indices: Indices | None) -> np.ndarray | None:
    if indices is None:
        return None
    indices = np.asarray(indices.cpu() if isinstance(indices, torch.Tensor) else indices, dtype=np.int64).reshape(-1)
    if indices.size == 0:
        raise ValueError("indices is empty: ask for at least one frame")
    if indices.min() < 0:
        raise ValueError(f"indices must be >= 0, got {indices.min()}")
    return indices


def _out_of_range(source: str, indices: np.ndarray, count: int) -> IndexError:
    return IndexError(f"frame index {int(indices.max())} out of range: {source} has {count} frames")


def _decode_pyav(source: str | io.BytesIO, name: str, indices: np.ndarray | None) -> np.ndarray:
    av = _import_av()
    try:
        container = av.open(source)
    except av.error.FFmpegError as e:
        raise ValueError(f"{name} is not a readable video file ({e})") from e
    with container:
        if not container.streams.video:
            raise ValueError(f"{name} has no video stream")
        stop = None if indices is None else int(indices.max()) + 1
        kept: dict[int, np.ndarray] = {}
        wanted = None if indices is None else set(indices.tolist())
        count = 0
        try:
            # Decoding is sequential anyway; stopping after the last wanted frame is the one saving.
            for count, frame in enumerate(container.decode(video=0), start=1):
                if wanted is None or count - 1 in wanted:
                    kept[count - 1] = frame.to_ndarray(format="rgb24", threads=SCALER_THREADS)
                if stop is not None and count >= stop:
                    break
        except av.error.FFmpegError as e:
            raise ValueError(f"{name} is corrupt: decoding stopped after {count} frames ({e})") from e
    if count == 0:
        raise ValueError(f"{name} has a video stream but no decodable frames")
    order = range(count) if indices is None else indices
    if indices is not None and stop > count:
        raise _out_of_range(name, indices, count)
    return np.stack([kept[i] for i in order])


def _decode_decord(path: Path, indices: np.ndarray | None) -> np.ndarray:
    decord = _import_decord()
    try:
        reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
    except Exception as e:  # decord raises its own DECORDError (a RuntimeError) for unreadable files
        raise ValueError(f"{path} is not a readable video file ({str(e).splitlines()[0]})") from e
    if indices is None:
        indices = np.arange(len(reader))
    elif indices.max() >= len(reader):
        raise _out_of_range(str(path), indices, len(reader))
    return reader.get_batch(indices.tolist()).asnumpy()


def resolve_backend(backend: str = "auto") -> str:
    """`auto` means PyAV: it installs everywhere (decord has no macOS/ARM wheels) and decodes exactly.
    decord pays off only for random access into long videos, so it is opt-in."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    if backend == "auto":
        for name, load in (("pyav", _import_av), ("decord", _import_decord)):
            try:
                load()
                return name
            except ImportError:
                pass
        raise ImportError("no video decoder installed: pip install 'tinyvid[video]' (PyAV)")
    return backend


def read_video(path: str | os.PathLike, backend: str = "auto", indices: Indices | None = None,
               gray: bool = False) -> np.ndarray:
    """Decode to uint8 (T, H, W, 3) RGB, or (T, H, W) with `gray=True`; `indices` picks (and orders) frames."""
    backend = resolve_backend(backend)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no video file at {path}")
    indices = _check_indices(indices)
    frames = _decode_pyav(str(path), str(path), indices) if backend == "pyav" else _decode_decord(path, indices)
    return rgb_to_gray(frames) if gray else frames


def decode_mp4_bytes(data: bytes, gray: bool = False) -> np.ndarray:
    """Inverse of `encode_mp4_bytes` (PyAV): uint8 (T, H, W, 3), or (T, H, W) with `gray=True`."""
    if not data:
        raise ValueError("no bytes to decode")
    frames = _decode_pyav(io.BytesIO(data), f"<{len(data)} bytes>", None)
    return rgb_to_gray(frames) if gray else frames


def video_info(path: str | os.PathLike) -> VideoInfo:
    """Frame count, fps and size from the container, decoding nothing (counts packets where the header has no count)."""
    av = _import_av()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no video file at {path}")
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as e:
        raise ValueError(f"{path} is not a readable video file ({e})") from e
    with container:
        if not container.streams.video:
            raise ValueError(f"{path} has no video stream")
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or 0
        frames = stream.frames  # Matroska and some AVIs leave this 0
        if frames == 0:
            frames = sum(1 for packet in container.demux(stream) if packet.size)
        return VideoInfo(frames=int(frames), fps=float(rate), height=stream.height, width=stream.width)
