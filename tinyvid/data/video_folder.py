"""A class-per-folder video dataset, the UCF-101 / HMDB-51 / Kinetics layout.

    root/ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi
    root/Archery/v_Archery_g01_c01.avi

Each item is (video, label): video float32 (C, T, H, W) in [0, 1], the layout 3D
convolutions and the video models in `tinyvid.models` take (C = 1 with `gray=True`);
label the index of its folder in the sorted class list. Resizing uses
`torch.nn.functional.interpolate`, so torchvision is never needed.
"""

from __future__ import annotations

import os
from pathlib import Path

import einops
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from tinyvid.data.frame_sampling import sample_indices
from tinyvid.data.video_io import read_video, resolve_backend, video_info

EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm")


def resize_video(video: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Resize a float (C, T, H, W) clip frame by frame; antialiased so downscaling does not alias."""
    height, width = (size, size) if isinstance(size, int) else size
    frames = einops.rearrange(video, "c t h w -> t c h w")
    frames = F.interpolate(frames, size=(height, width), mode="bilinear", antialias=True, align_corners=False)
    return einops.rearrange(frames, "t c h w -> c t h w").clamp(0, 1)


class VideoFolderDataset(Dataset):
    """`root/<class_name>/<video>`; `classes` sorted, `class_to_idx` maps name -> label."""

    def __init__(self, root: str | os.PathLike, num_frames: int = 16, mode: str = "uniform",
                 size: int | tuple[int, int] | None = None, backend: str = "auto",
                 extensions: tuple[str, ...] = EXTENSIONS, gray: bool = False) -> None:
        self.root = Path(root)
        self.num_frames, self.mode, self.size, self.gray = num_frames, mode, size, gray
        self.backend = resolve_backend(backend)  # fail at construction, not in a DataLoader worker
        sample_indices(1, num_frames, mode)  # same: reject a bad mode or num_frames now
        self.extensions = tuple(e.lower() for e in extensions)
        if not self.root.is_dir():
            raise FileNotFoundError(f"video folder root {self.root} does not exist")
        self.classes = sorted(d.name for d in self.root.iterdir() if d.is_dir() and not d.name.startswith("."))
        if not self.classes:
            raise FileNotFoundError(f"no class folders in {self.root}: expected root/<class_name>/<video files>")
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}
        self.samples: list[tuple[Path, int]] = [
            (path, self.class_to_idx[name])
            for name in self.classes
            for path in sorted((self.root / name).rglob("*"))
            if path.is_file() and path.suffix.lower() in self.extensions
        ]
        # An empty class would silently shift every later label's meaning; say which one.
        empty = sorted(set(self.classes) - {self.classes[label] for _, label in self.samples})
        if empty:
            raise FileNotFoundError(f"no videos with extensions {self.extensions} in class folder(s) "
                                    f"{', '.join(empty)} under {self.root}")

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        indices = sample_indices(video_info(path).frames, self.num_frames, self.mode)
        frames = torch.from_numpy(read_video(path, backend=self.backend, indices=indices, gray=self.gray))
        pattern = "t h w -> 1 t h w" if self.gray else "t h w c -> c t h w"
        video = einops.rearrange(frames, pattern).float() / 255
        if self.size is not None:
            video = resize_video(video, self.size)
        return video, label
