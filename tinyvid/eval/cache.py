"""Evaluation models trained on first use and cached in $TINYVID_CACHE (the MNIST classifier, the video judge).

Parallel first calls train once (a file lock); files are written under a temporary name and
renamed, metadata first, so the weights file appearing is what marks the cache complete.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Callable, Iterator


def train_once(path: Path, meta_path: Path, train: Callable) -> None:
    """Make sure `path` holds weights: if missing, `train() -> (model, meta dict)` and save both."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_file():
        return
    with _file_lock(path.with_name(path.name + ".lock")):
        if not path.is_file():  # another process may have trained it while we waited
            import torch

            with torch.enable_grad():  # the first use may come from inside a no_grad evaluation
                model, meta = train()
            _atomic_write(meta_path, lambda p: p.write_text(json.dumps(meta, indent=2)))
            _atomic_write(path, lambda p: save_file(model.state_dict(), str(p)))


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Exclusive lock so parallel first calls train once; a no-op where fcntl is missing (Windows).

    Correctness never depends on it: files are written to a temp name and renamed atomically.
    """
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
