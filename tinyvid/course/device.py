"""Device and precision choice, one rule for every notebook and recipe."""

from __future__ import annotations

import torch

PRECISIONS = ("fp32", "bf16", "fp16")


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(name)


def cpu_has_native_bf16() -> bool:
    """bf16 autocast only pays on CPUs with AVX-512 BF16 or AMX; on AVX2 it is emulated and slower."""
    capability = torch.backends.cpu.get_cpu_capability()
    if capability not in ("AVX512", "AMX"):
        return False
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def pick_precision(device: torch.device | str, name: str = "auto") -> str:
    """`auto`: bf16 where the hardware runs it natively, fp16 (with loss scaling) on older GPUs, else fp32."""
    device = torch.device(device)
    if name != "auto":
        if name not in PRECISIONS:
            raise ValueError(f"unknown precision {name!r}: choose one of auto, {', '.join(PRECISIONS)}")
        return name
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp16"
    if device.type == "cpu":
        return "bf16" if cpu_has_native_bf16() else "fp32"
    return "fp32"


def autocast_dtype(precision: str) -> torch.dtype | None:
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
