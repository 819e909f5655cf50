"""MNIST from the four original IDX files, checksum-verified.

Looked up, in order: `$TINYVID_DATA` (the folder holding the files, or its `mnist/`
sub-folder), `../shared/data/mnist` beside the repository or the working directory,
then a cache folder (`$TINYVID_CACHE`, default `~/.cache/tinyvid/mnist`) where a
learner's copy is downloaded once and verified (the d2l `DATA_HUB` habit).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import urllib.request
from pathlib import Path

import numpy as np
import torch

FILES = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
REPO_ROOT = Path(__file__).resolve().parents[2]


class MNISTNotFoundError(FileNotFoundError):
    pass


def cache_dir() -> Path:
    return Path(os.environ.get("TINYVID_CACHE", Path.home() / ".cache" / "tinyvid"))


def candidate_dirs() -> list[Path]:
    dirs = []
    if env := os.environ.get("TINYVID_DATA"):
        dirs += [Path(env) / "mnist", Path(env)]
    for base in (REPO_ROOT, Path.cwd(), Path.cwd().parent):
        dirs.append(base.parent / "shared" / "data" / "mnist")
    dirs.append(cache_dir() / "mnist")
    return list(dict.fromkeys(d.resolve() for d in dirs))


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def find_mnist_dir(download: bool = True) -> Path:
    """The first folder that holds all four files; raises, naming every place looked at."""
    looked = candidate_dirs()
    for d in looked:
        if all((d / name).is_file() for name in FILES):
            verify(d)
            return d
    if download:
        return download_mnist(cache_dir() / "mnist")
    raise MNISTNotFoundError(
        "MNIST not found. Looked for " + ", ".join(FILES) + " in:\n  "
        + "\n  ".join(map(str, looked))
        + "\nSet TINYVID_DATA to the folder holding them, or allow the download."
    )


def verify(folder: Path) -> None:
    for name, expected in FILES.items():
        got = md5(folder / name)
        if got != expected:
            raise ValueError(
                f"{folder / name} is corrupt: md5 {got}, expected {expected}. "
                "Delete it and download again (or fix TINYVID_DATA)."
            )


def download_mnist(folder: Path) -> Path:
    """Idempotent, verified download into `folder`; a failure raises with every URL tried."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, expected in FILES.items():
        target = folder / name
        if target.is_file() and md5(target) == expected:
            continue
        errors = []
        for mirror in MIRRORS:
            tmp = target.with_suffix(".part")
            try:
                urllib.request.urlretrieve(mirror + name, tmp)
            except OSError as e:
                errors.append(f"{mirror + name}: {e}")
                continue
            if md5(tmp) == expected:
                tmp.replace(target)
                break
            errors.append(f"{mirror + name}: checksum mismatch")
            tmp.unlink(missing_ok=True)
        else:
            raise MNISTNotFoundError(f"could not download {name}:\n  " + "\n  ".join(errors))
    return folder


def read_idx(path: Path) -> np.ndarray:
    """IDX format: magic (0, 0, dtype code, ndim), big-endian dims, then the data."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    if raw[:2] != b"\x00\x00" or raw[2] != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


_CACHE: dict[str, tuple[np.ndarray, np.ndarray]] = {}


def load_mnist(split: str = "train", download: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 (N, 28, 28) and labels uint8 (N,), from `train` (60k) or `test` (10k)."""
    if split not in SPLIT_FILES:
        raise ValueError(f"unknown MNIST split {split!r}: choose 'train' or 'test'")
    if split not in _CACHE:
        folder = find_mnist_dir(download=download)
        images, labels = (read_idx(folder / name) for name in SPLIT_FILES[split])
        _CACHE[split] = (images, labels)
    return _CACHE[split]


def mnist_tensors(split: str = "train", download: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Images float (N, 1, 28, 28) in [-1, 1] (the diffusion convention) and int64 labels."""
    images, labels = load_mnist(split, download)
    x = torch.from_numpy(images.astype(np.float32)).div_(127.5).sub_(1.0).unsqueeze(1)
    return x, torch.from_numpy(labels.astype(np.int64))
