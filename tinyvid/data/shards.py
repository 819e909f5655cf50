"""WebDataset shards of (MP4 bytes, caption JSON): how video-text corpora are stored at scale.

Each sample in `shard-000000.tar`, `shard-000001.tar`, ... is two tar members sharing a key:
`000000042.mp4` (the clip, lossless H.264 by default) and `000000042.json`
(`{"caption": ..., "shape": [T, H, W(, 3)], **extra}`). Tar files are read
sequentially, so a loader streams them from disk or object storage without random
access. Shards, not samples, are what get split between nodes and DataLoader workers:
every worker reads whole shards, so each sample is seen once per epoch.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from tinyvid.data.video_io import decode_mp4_bytes, encode_mp4_bytes


def _import_wds():
    try:
        import webdataset as wds
    except ImportError as e:
        raise ImportError("shards need webdataset: pip install 'tinyvid[data]' (or pip install webdataset)") from e
    return wds


def write_shards(videos: Iterable[Any], captions: Sequence[str], out_dir: str | os.PathLike, shard_size: int = 1000,
                 extra: Sequence[dict] | None = None, fps: float = 8, lossless: bool = True) -> list[Path]:
    """Write uint8 clips ((T, H, W) or (T, H, W, 3)) with their captions; returns the shard paths in order."""
    wds = _import_wds()
    if shard_size <= 0:
        raise ValueError(f"shard_size must be positive, got {shard_size}")
    captions = list(captions)
    if extra is not None and len(extra) != len(captions):
        raise ValueError(f"extra has {len(extra)} entries for {len(captions)} captions")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    writer = None
    written = 0
    try:
        for video in videos:
            if written == len(captions):
                raise ValueError(f"more videos than captions ({len(captions)})")
            if written % shard_size == 0:
                if writer is not None:
                    writer.close()
                paths.append(out_dir / f"shard-{len(paths):06d}.tar")
                writer = wds.TarWriter(str(paths[-1]))
            frames = video.detach().cpu().numpy() if isinstance(video, torch.Tensor) else np.asarray(video)
            meta = {"caption": captions[written], "shape": list(frames.shape), **(extra[written] if extra else {})}
            writer.write({"__key__": f"{written:09d}", "mp4": encode_mp4_bytes(frames, fps, lossless),
                          "json": json.dumps(meta).encode()})
            written += 1
    finally:
        if writer is not None:
            writer.close()
    if written != len(captions):
        raise ValueError(f"{written} videos for {len(captions)} captions")
    return paths


def _shard_list(pattern_or_paths: str | os.PathLike | Sequence[str | os.PathLike]) -> list[str]:
    """A brace pattern (`shard-{000000..000009}.tar`), a folder of `shard-*.tar`, or a list of paths."""
    if isinstance(pattern_or_paths, (str, os.PathLike)):
        path = Path(pattern_or_paths)
        if path.is_dir():
            urls = [str(p) for p in sorted(path.glob("shard-*.tar"))]
        else:
            import braceexpand  # a webdataset dependency

            urls = list(braceexpand.braceexpand(str(pattern_or_paths)))
    else:
        urls = [str(p) for p in pattern_or_paths]
    if not urls:
        raise FileNotFoundError(f"no shards found at {pattern_or_paths}")
    return urls


def _decode_sample(sample: dict) -> tuple[torch.Tensor, str]:
    meta = json.loads(sample["json"])
    frames = decode_mp4_bytes(sample["mp4"], gray=len(meta["shape"]) == 3)
    return torch.from_numpy(frames), meta["caption"]


def _collate(samples: list[tuple[torch.Tensor, str]]) -> tuple[torch.Tensor, list[str]]:
    videos, captions = zip(*samples)
    return torch.stack(videos), list(captions)


def shard_dataset(pattern_or_paths: str | os.PathLike | Sequence[str | os.PathLike], shuffle: int = 0,
                  seed: int | None = None):
    """An iterable webdataset pipeline yielding (uint8 video (T, H, W) or (T, H, W, 3), caption).

    `shuffle` > 0 shuffles shard order and a sample buffer of that size (training);
    0 streams in order. Shards are split by node (multi-GPU) and by DataLoader worker.
    """
    wds = _import_wds()
    urls = _shard_list(pattern_or_paths)
    missing = [u for u in urls if "://" not in u and not u.startswith("pipe:") and not Path(u).is_file()]
    if missing:
        raise FileNotFoundError(f"shard file(s) not found: {', '.join(missing)}")
    dataset = wds.WebDataset(urls, shardshuffle=len(urls) if shuffle else False, nodesplitter=wds.split_by_node,
                             workersplitter=wds.split_by_worker, empty_check=False, seed=seed)
    if shuffle:
        dataset = dataset.shuffle(shuffle)
    return dataset.map(_decode_sample)


def shard_loader(pattern_or_paths: str | os.PathLike | Sequence[str | os.PathLike], batch_size: int = 8,
                 num_workers: int = 0, shuffle: int = 0, seed: int | None = None) -> DataLoader:
    """A DataLoader of (uint8 videos (B, T, ...), captions list[str]) batches; the last batch may be short."""
    urls = _shard_list(pattern_or_paths)
    # Workers split shards, so a worker beyond the shard count would only idle.
    num_workers = min(num_workers, len(urls))
    dataset = shard_dataset(urls, shuffle=shuffle, seed=seed).batched(batch_size, collation_fn=_collate, partial=True)
    return DataLoader(dataset, batch_size=None, num_workers=num_workers, persistent_workers=False)
