"""Pictures and videos in notebooks and in the built book: grids, inline GIFs, loss curves.

Videos are embedded as small GIFs (an <img> with a data URI): they play in JupyterLab,
Colab and the static HTML of the book without any extension, and stay a few hundred kB.
"""

from __future__ import annotations

import base64
import io
import math

import numpy as np
import torch


def as_uint8(images) -> np.ndarray:
    """uint8 arrays pass through; float tensors/arrays in [-1, 1] are mapped to [0, 255]."""
    if torch.is_tensor(images):
        images = images.detach().cpu().numpy()
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images
    return ((np.clip(images, -1, 1) + 1) * 127.5).round().astype(np.uint8)


def without_channel(x, axes: str, name: str) -> np.ndarray:
    """uint8 batch with the axes `axes` (e.g. "N H W"), accepting a single channel axis after N."""
    x = as_uint8(x)
    ndim = len(axes.split())
    if x.ndim == ndim + 1:
        x = x[:, 0]
    if x.ndim != ndim:
        with_c = axes.replace("N ", "N, 1, ").replace(" ", ", ").replace(",,", ",")
        raise ValueError(f"{name} expects ({axes.replace(' ', ', ')}) or ({with_c}), got shape {x.shape}")
    return x


def grid(images, nrow: int | None = None, pad: int = 2) -> np.ndarray:
    """Tile (N, H, W) or (N, 1, H, W) images into one uint8 (H', W') mosaic."""
    x = without_channel(images, "N H W", "grid")
    n, h, w = x.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / nrow)
    out = np.zeros((rows * (h + pad) + pad, nrow * (w + pad) + pad), dtype=np.uint8)
    for i, img in enumerate(x):
        r, c = divmod(i, nrow)
        out[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = img
    return out


def show_grid(images, nrow: int | None = None, title: str | None = None, scale: float = 0.35) -> None:
    """Show a grid of images with matplotlib (one PNG in the notebook, nothing returned to echo)."""
    import matplotlib.pyplot as plt

    g = grid(images, nrow)
    fig, ax = plt.subplots(figsize=(max(2, g.shape[1] * scale / 10), max(2, g.shape[0] * scale / 10)))
    ax.imshow(g, cmap="gray", vmin=0, vmax=255)
    ax.axis("off")
    if title:
        ax.set_title(title)
    plt.show()


def gif_bytes(frames, fps: int = 8, scale: int = 2, loop: int = 0) -> bytes:
    """Encode (T, H, W) uint8 frames (or floats in [-1, 1]) as an animated GIF."""
    from PIL import Image

    x = as_uint8(frames)
    if x.ndim != 3:
        raise ValueError(f"gif_bytes expects (T, H, W) frames, got shape {x.shape}")
    if scale > 1:
        x = x.repeat(scale, axis=1).repeat(scale, axis=2)
    images = [Image.fromarray(f, mode="L") for f in x]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=loop)
    return buf.getvalue()


def video_grid(videos, nrow: int | None = None, pad: int = 2) -> np.ndarray:
    """(N, T, H, W) clips -> (T, H', W') frames of a mosaic, to show many clips as one GIF."""
    v = without_channel(videos, "N T H W", "video_grid")
    return np.stack([grid(v[:, t], nrow, pad) for t in range(v.shape[1])])


def show_video(frames, fps: int = 8, scale: int = 2, caption: str | None = None):
    """Display (T, H, W) frames, or (N, T, H, W) clips as a mosaic, as an inline looping GIF."""
    from IPython.display import HTML, display

    x = as_uint8(frames)
    if x.ndim >= 4:
        x = video_grid(x)
    data = base64.b64encode(gif_bytes(x, fps, scale)).decode()
    text = f"<figcaption>{caption}</figcaption>" if caption else ""
    display(HTML(f'<figure style="margin:0"><img src="data:image/gif;base64,{data}"/>{text}</figure>'))


def plot_curves(history: list[dict], keys=("loss", "loss_avg"), x: str = "step", log: bool = True,
                title: str | None = None) -> None:
    """Training curves from a Trainer's history (shown, not returned, so the PNG appears once)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2))
    for k in keys:
        pts = [(h[x], h[k]) for h in history if k in h]
        if pts:
            ax.plot(*zip(*pts), label=k)
    ax.set_xlabel(x)
    if log:
        ax.set_yscale("log")
    ax.legend()
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    plt.show()
