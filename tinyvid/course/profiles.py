"""Profiles: `smoke` proves the code path, `cpu` is the book's reference run,
`gpu` is sized for a free Colab T4, `full` for an H100 or a multi-GPU node."""

from __future__ import annotations

import os

PROFILES = ("smoke", "cpu", "gpu", "full")
ENV_VAR = "TINYVID_PROFILE"


def resolve_profile(name: str = "auto") -> str:
    """`auto` means $TINYVID_PROFILE if set, else `gpu` with a GPU, else `cpu` (never `full`)."""
    if name == "auto":
        env = os.environ.get(ENV_VAR, "").strip()
        if env:
            return _check(env, f"${ENV_VAR}")
        import torch

        return "gpu" if torch.cuda.is_available() else "cpu"
    return _check(name, "profile")


def _check(name: str, where: str) -> str:
    if name not in PROFILES:
        raise ValueError(f"unknown {where} {name!r}: choose one of auto, {', '.join(PROFILES)}")
    return name
