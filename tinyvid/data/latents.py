"""Latent pre-encoding: run the video VAE over a clip set once, so DiT training never runs the encoder.

This is how latent video models are trained at scale (Open-Sora, CogVideoX and Wan pre-extract
VAE latents and text features): the encoder costs as much as the denoiser per clip, and
its output for a clip never changes. A `LatentSet` holds the posterior mean and standard
deviation of every clip with its caption, digits and directions; it is saved as one
compressed .npz (a course-sized set) or as WebDataset shards (`latent.npy`, `std.npy`, `json`
per sample, streamed the way `tinyvid.data.shards` streams videos), and comes back as tensors
for `tinyvid.train.TensorBatches`.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from tinyvid.data.moving_mnist import Clips, to_model_layout


@dataclass
class LatentSet:
    mean: torch.Tensor  # (N, C, F, h, w) posterior means
    std: torch.Tensor  # (N, C, F, h, w) posterior standard deviations
    captions: list[str]
    digits: np.ndarray  # (N, 2), NO_DIGIT for empty slots
    directions: np.ndarray  # (N, 2)
    meta: dict = field(default_factory=dict)  # e.g. the VAE's config

    def __post_init__(self):
        self.meta = json.loads(json.dumps(self.meta))  # as it will read back from a file (tuples become lists)
        n = len(self.mean)
        sizes = {"std": len(self.std), "captions": len(self.captions), "digits": len(self.digits),
                 "directions": len(self.directions)}
        if self.std.shape != self.mean.shape or any(v != n for v in sizes.values()):
            raise ValueError(f"a LatentSet of {n} means ({tuple(self.mean.shape)}) got std {tuple(self.std.shape)} "
                             f"and lengths {sizes}")

    def __len__(self) -> int:
        return len(self.mean)

    def latents(self, sample: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
        """The means, or one draw mean + std * eps from every posterior (deterministic under `generator`)."""
        if not sample:
            return self.mean
        return self.mean + self.std * torch.randn(self.mean.shape, generator=generator, dtype=self.mean.dtype)

    def __getitem__(self, index) -> "LatentSet":
        """A subset by slice, index array or boolean mask (e.g. `held_out` clips)."""
        idx = np.atleast_1d(np.arange(len(self))[index])
        rows = torch.from_numpy(idx)
        return LatentSet(self.mean[rows], self.std[rows], [self.captions[i] for i in idx], self.digits[idx],
                         self.directions[idx], dict(self.meta))

    # --- one compressed .npz ---
    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, mean=self.mean.numpy(), std=self.std.numpy(), captions=np.array(self.captions),
                            digits=self.digits, directions=self.directions, meta=np.array(json.dumps(self.meta)))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "LatentSet":
        if not Path(path).is_file():
            raise FileNotFoundError(f"no latent cache at {path}")
        with np.load(path) as f:
            return cls(torch.from_numpy(f["mean"]), torch.from_numpy(f["std"]), f["captions"].tolist(), f["digits"],
                       f["directions"], json.loads(str(f["meta"])))

    # --- WebDataset shards: the same samples as tar members, read sequentially ---
    def write_shards(self, out_dir: str | os.PathLike, shard_size: int = 1000) -> list[Path]:
        from tinyvid.data.shards import _import_wds

        wds = _import_wds()
        if shard_size <= 0:
            raise ValueError(f"shard_size must be positive, got {shard_size}")
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = []
        for start in range(0, len(self), shard_size):
            paths.append(out_dir / f"shard-{len(paths):06d}.tar")
            with wds.TarWriter(str(paths[-1])) as writer:
                for i in range(start, min(start + shard_size, len(self))):
                    info = {"caption": self.captions[i], "digits": self.digits[i].tolist(),
                            "directions": self.directions[i].tolist(), "meta": self.meta}
                    writer.write({"__key__": f"{i:09d}", "latent.npy": _npy(self.mean[i]), "std.npy": _npy(self.std[i]),
                                  "json": json.dumps(info).encode()})
        return paths

    @classmethod
    def read_shards(cls, pattern_or_paths: str | os.PathLike | Sequence[str | os.PathLike]) -> "LatentSet":
        """All samples of the shards, in order, as one in-memory set."""
        from tinyvid.data.shards import _import_wds, _shard_list

        wds = _import_wds()
        urls = _shard_list(pattern_or_paths)
        means, stds, infos = [], [], []
        for sample in wds.WebDataset(urls, shardshuffle=False, empty_check=False):
            means.append(np.load(io.BytesIO(sample["latent.npy"])))
            stds.append(np.load(io.BytesIO(sample["std.npy"])))
            infos.append(json.loads(sample["json"]))
        if not infos:
            raise ValueError(f"no samples in {urls}")
        return cls(torch.from_numpy(np.stack(means)), torch.from_numpy(np.stack(stds)), [i["caption"] for i in infos],
                   np.array([i["digits"] for i in infos]), np.array([i["directions"] for i in infos]), infos[0]["meta"])


def _npy(x: torch.Tensor) -> bytes:
    buf = io.BytesIO()
    np.save(buf, x.numpy())
    return buf.getvalue()


@torch.no_grad()
def encode_clips(vae, clips: Clips, batch_size: int = 64, device: torch.device | str | None = None,
                 progress: bool = True, meta: dict | None = None) -> LatentSet:
    """Posterior means and stds of every clip, batched, without gradients; uint8 clips are converted a
    batch at a time (a float copy of 10,000 contract clips would take 2.6 GB)."""
    vae.eval()
    device = device or next(vae.parameters()).device
    means, stds = [], []
    for i in tqdm(range(0, len(clips), batch_size), desc="encoding latents", disable=not progress, leave=False):
        dist = vae.encode(to_model_layout(clips.videos[i : i + batch_size]).to(device)).latent_dist
        means.append(dist.mean.float().cpu())
        stds.append(dist.std.float().cpu())
    vae_meta = {"vae": vae.config.to_dict()} if hasattr(vae.config, "to_dict") else {}
    return LatentSet(torch.cat(means), torch.cat(stds), list(clips.captions), np.asarray(clips.digits),
                     np.asarray(clips.directions), {**vae_meta, **(meta or {})})
