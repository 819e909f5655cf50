"""Deterministic mini-batches from in-memory tensors: batch k is a pure function of (seed, k).

That makes resuming exact (the interrupted run and the uninterrupted one see the same
batches) and avoids DataLoader overhead, which matters on a 2-core CPU.
"""

from __future__ import annotations

import torch


class TensorBatches:
    def __init__(self, *tensors: torch.Tensor, batch_size: int, seed: int = 0, drop_last: bool = True):
        if not tensors:
            raise ValueError("TensorBatches needs at least one tensor")
        n = len(tensors[0])
        if any(len(t) != n for t in tensors):
            raise ValueError(f"tensors differ in length: {[len(t) for t in tensors]}")
        if not 0 < batch_size <= n:
            raise ValueError(f"batch_size must be in 1..{n}, got {batch_size}")
        self.tensors, self.batch_size, self.seed, self.n = tensors, batch_size, seed, n
        self.per_epoch = n // batch_size if drop_last else -(-n // batch_size)
        self._epoch, self._perm = None, None

    def epoch_of(self, step: int) -> float:
        return step / self.per_epoch

    def batch(self, step: int) -> tuple[torch.Tensor, ...]:
        epoch, i = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            self._epoch, self._perm = epoch, torch.randperm(self.n, generator=g)
        idx = self._perm[i * self.batch_size : (i + 1) * self.batch_size]
        return tuple(t[idx] for t in self.tensors)
