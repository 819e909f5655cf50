"""Which frames of a clip a model sees: the three samplers video papers use.

- `uniform`: split the clip into n equal segments and take the centre frame of each
  (TSN's test-time sampling; Video-LLaVA spreads 8 frames over the whole clip the same
  way). Deterministic and covers the whole clip, so it suits captioning and evaluation.
  A clip shorter than n repeats frames in place (0, 0, 1, 1, ...): time is stretched,
  never frozen at the end.
- `random_window`: n consecutive frames from a random start (augmentation for
  clip-level training, and the only choice that keeps the true motion speed).
- `stride`: every `stride`-th frame from a random start (SlowFast/X3D style: more
  temporal extent for the same number of frames).
For the two windowed modes a clip too short for the window starts at frame 0 and is
padded by repeating its last sampled frame, so a batch always has n frames per clip.
"""

from __future__ import annotations

import torch

MODES = ("uniform", "random_window", "stride")


def sample_indices(num_frames: int, n: int, mode: str = "uniform", stride: int = 1,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """n frame indices (int64, sorted, each in [0, num_frames)) for a clip of `num_frames` frames."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}: choose one of {', '.join(MODES)}")
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    if num_frames <= 0:
        raise ValueError(f"num_frames must be positive, got {num_frames}")
    if stride <= 0:
        raise ValueError(f"stride must be positive, got {stride}")
    if mode == "uniform":
        # Integer arithmetic: floor((i + 0.5) * num_frames / n) without float round-off.
        return (2 * torch.arange(n) + 1) * num_frames // (2 * n)
    step = 1 if mode == "random_window" else stride
    span = (n - 1) * step + 1
    start = 0
    if num_frames > span:
        start = int(torch.randint(num_frames - span + 1, (1,), generator=generator))
    indices = start + step * torch.arange(n)
    last_valid = start + step * ((num_frames - 1 - start) // step)
    return indices.clamp(max=last_valid)
