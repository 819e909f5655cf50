"""One Trainer for every model of the course, on accelerate.

It does the heavy lifting the notebooks should not repeat: mixed precision (bf16 where
the hardware has it, fp16 with loss scaling on older GPUs, else fp32), gradient
accumulation, clipping, warm-up + cosine learning rate, EMA, safetensors checkpoints
that resume to the same state, a tqdm bar and a metrics log.

The speed levers of notebook 09 are options, each off by default and measurable on its own:
`compile` (torch.compile through accelerate), `activation_checkpointing` (recompute every
block of a `blocks` ModuleList in the backward pass), `fused_adamw`, `channels_last`
(convolution weights and image/video batches in NHWC / NDHWC) and `sdpa_backend`
(flash, efficient, math or cudnn attention kernels via `torch.nn.attention.sdpa_kernel`).
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm

from tinyvid.course.device import pick_device, pick_precision
from tinyvid.train.batches import TensorBatches
from tinyvid.train.ema import EMA


@dataclass
class TrainConfig:
    steps: int = 1000
    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    warmup: int = 100
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio
    grad_accum: int = 1
    clip: float | None = 1.0
    ema_decay: float | None = 0.999
    precision: str = "auto"
    device: str = "auto"
    seed: int = 0
    # a wall-clock budget: training stops when it is spent, and the cosine schedule runs on
    # whichever of steps or time is further along, so a slower machine still ends annealed
    max_minutes: float | None = None
    log_every: int = 50
    checkpoint_every: int | None = None
    out_dir: str | None = None
    progress: bool = True
    # speed levers (notebook 09): each off by default
    compile: bool | str = False  # True: inductor; or a backend name (aot_eager, eager: tracing without code generation)
    activation_checkpointing: bool = False
    fused_adamw: bool = False
    channels_last: bool = False
    sdpa_backend: str | None = None  # flash, efficient, math or cudnn; None lets PyTorch choose

    def __post_init__(self):
        if self.sdpa_backend is not None and self.sdpa_backend not in SDPA_BACKENDS:
            raise ValueError(f"unknown sdpa_backend {self.sdpa_backend!r}: choose one of {', '.join(SDPA_BACKENDS)} or None")


SDPA_BACKENDS = {"flash": "FLASH_ATTENTION", "efficient": "EFFICIENT_ATTENTION", "math": "MATH", "cudnn": "CUDNN_ATTENTION"}


def sdpa_context(backend: str | None):
    """The attention kernel every `F.scaled_dot_product_attention` call uses inside the block (None: PyTorch's choice)."""
    if backend is None:
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel(getattr(SDPBackend, SDPA_BACKENDS[backend]))


def checkpoint_blocks(model: nn.Module) -> int:
    """Activation checkpointing: every element of a ModuleList named `blocks` (the DiT's transformer
    blocks, the U-Net's ResBlocks) keeps only its inputs for the backward pass and recomputes the rest.
    The forward is wrapped in place, so parameter names (and checkpoints) stay as they were."""
    from torch.utils.checkpoint import checkpoint

    wrapped = 0
    for name, module in model.named_modules():
        if name.split(".")[-1] == "blocks" and isinstance(module, nn.ModuleList):
            for block in module:
                block.forward = partial(checkpoint, block.forward, use_reentrant=False)
                wrapped += 1
    if not wrapped:
        raise ValueError(f"activation_checkpointing found no `blocks` ModuleList in {type(model).__name__}")
    return wrapped


def to_channels_last(x):
    """4-D tensors to NHWC, 5-D to NDHWC; anything else unchanged."""
    if not torch.is_tensor(x) or not x.is_floating_point() or x.ndim not in (4, 5):
        return x
    return x.contiguous(memory_format=torch.channels_last if x.ndim == 4 else torch.channels_last_3d)


def lr_lambda(cfg: TrainConfig, clock: Callable[[], float] | None = None) -> Callable[[int], float]:
    """Linear warm-up, then cosine to lr * min_lr_ratio; `clock()` gives seconds trained so far."""

    def f(step: int) -> float:
        if step < cfg.warmup:
            return (step + 1) / cfg.warmup
        progress = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
        if cfg.max_minutes and clock is not None:
            progress = max(progress, min(1.0, clock() / (60 * cfg.max_minutes)))
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return f


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """The torch, numpy and python generators' states, as a checkpoint stores them."""
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def set_rng_state(state: dict) -> None:
    """Restore what `rng_state()` returned."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


class Trainer:
    """Train `model` by minimising `loss_fn(model, batch) -> loss` (or (loss, dict of logs)).

    `data` is a TensorBatches (deterministic, exact resume) or any iterable of batches.
    """

    def __init__(self, model: nn.Module, loss_fn: Callable, data, config: TrainConfig | None = None, **overrides):
        from accelerate import Accelerator
        from accelerate.state import AcceleratorState

        cfg = self.config = config or TrainConfig(**overrides)
        seed_everything(cfg.seed)
        device = pick_device(cfg.device)
        self.precision = pick_precision(device, cfg.precision)
        # accelerate keeps one process-wide state: start it afresh, so that a notebook can build a bf16 or a
        # compiled Trainer after an fp32 one (the process group, if any, is kept). The newest Trainer's
        # precision is then the process's: train Trainers of different precisions one after the other.
        AcceleratorState._reset_state()
        self.accelerator = Accelerator(
            mixed_precision={"fp32": "no"}.get(self.precision, self.precision),
            gradient_accumulation_steps=cfg.grad_accum,
            cpu=device.type == "cpu",
            step_scheduler_with_optimizer=False,
            dynamo_backend=("inductor" if cfg.compile is True else cfg.compile) if cfg.compile else None,
        )
        self.loss_fn, self.data = loss_fn, data
        decay, no_decay = [], []
        for p in model.parameters():
            if p.requires_grad:
                (decay if p.ndim >= 2 else no_decay).append(p)
        groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        if cfg.channels_last:
            for p in model.parameters():
                p.data = to_channels_last(p.data)
        if cfg.activation_checkpointing:
            checkpoint_blocks(model)
        # fused: one kernel updates every parameter (CPU and CUDA), instead of a loop of small ops
        optimizer = torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, **({"fused": True} if cfg.fused_adamw else {}))
        self.seconds = 0.0  # time spent in training steps, restored on resume
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg, lambda: self.seconds))
        self.model, self.optimizer, self.scheduler = self.accelerator.prepare(model, optimizer, scheduler)
        self.ema = EMA(self.unwrapped, cfg.ema_decay) if cfg.ema_decay else None
        self.step = 0
        self.history: list[dict] = []
        self.out_dir = Path(cfg.out_dir) if cfg.out_dir else None
        self._iter = None

    @property
    def unwrapped(self) -> nn.Module:
        return self.accelerator.unwrap_model(self.model)

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    def eval_model(self) -> nn.Module:
        """The model to sample from: the EMA copy when there is one."""
        return (self.ema.model if self.ema else self.unwrapped).eval()

    def next_batch(self, micro: int):
        if isinstance(self.data, TensorBatches):
            batch = self.data.batch(self.step * self.config.grad_accum + micro)
        else:
            if self._iter is None:
                self._iter = iter(self.data)
            try:
                batch = next(self._iter)
            except StopIteration:
                self._iter = iter(self.data)
                batch = next(self._iter)
        batch = tuple(b.to(self.device) if torch.is_tensor(b) else b for b in batch)
        return tuple(map(to_channels_last, batch)) if self.config.channels_last else batch

    def train_step(self) -> dict:
        self.model.train()
        logs: dict = {}
        total = 0.0
        for micro in range(self.config.grad_accum):
            with self.accelerator.accumulate(self.model), self.accelerator.autocast(), sdpa_context(self.config.sdpa_backend):
                out = self.loss_fn(self.model, self.next_batch(micro))
                loss, extra = out if isinstance(out, tuple) else (out, {})
                self.accelerator.backward(loss)
                if self.accelerator.sync_gradients and self.config.clip:
                    logs["grad_norm"] = float(self.accelerator.clip_grad_norm_(self.model.parameters(), self.config.clip))
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
            total += float(loss.detach()) / self.config.grad_accum
            logs.update({k: float(v) for k, v in extra.items()})
        if self.accelerator.num_processes > 1:  # log the loss of the global batch, not of this process's part
            total = float(self.accelerator.reduce(torch.tensor(total, device=self.device), "mean"))
        self.scheduler.step()
        if self.ema:
            self.ema.update(self.unwrapped)
        self.step += 1
        return {"step": self.step, "loss": total, "lr": self.scheduler.get_last_lr()[0], **logs}

    def fit(self, steps: int | None = None, callback: Callable[["Trainer", dict], None] | None = None) -> list[dict]:
        """Train until `steps` (default: config.steps) optimizer steps have been taken in total,
        or until the time budget `max_minutes` is spent."""
        cfg = self.config
        until = steps or cfg.steps
        budget = 60 * cfg.max_minutes if cfg.max_minutes else float("inf")
        bar = tqdm(total=None if cfg.max_minutes else until, initial=self.step,  # a time budget: count steps, no ETA
                   desc=f"training ({cfg.max_minutes:g} min budget)" if cfg.max_minutes else "training",
                   disable=not cfg.progress or not self.accelerator.is_main_process)
        running = None
        while self.step < until and self.seconds < budget:
            start = time.perf_counter()
            logs = self.train_step()
            self.seconds += time.perf_counter() - start
            running = logs["loss"] if running is None else 0.98 * running + 0.02 * logs["loss"]
            bar.update(1)
            if self.step % cfg.log_every == 0 or self.step == until or self.seconds >= budget:
                logs.update(seconds=round(self.seconds, 2), loss_avg=running)
                self.history.append(logs)
                bar.set_postfix(loss=f"{running:.4f}", lr=f"{logs['lr']:.1e}")
                self._log(logs)
                if callback:
                    callback(self, logs)
            if cfg.checkpoint_every and self.out_dir and self.step % cfg.checkpoint_every == 0:
                self.save_checkpoint(self.out_dir / "checkpoint")
        bar.close()
        return self.history

    def _log(self, logs: dict) -> None:
        if self.out_dir and self.accelerator.is_main_process:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            with open(self.out_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(logs) + "\n")

    # --- checkpoints: weights in safetensors, optimizer/scheduler/RNG state beside them ---
    def save_checkpoint(self, path: str | Path) -> Path:
        path = Path(path)
        if not self.accelerator.is_main_process:
            return path
        path.mkdir(parents=True, exist_ok=True)
        save_file(_cpu_state(self.unwrapped), path / "model.safetensors")
        if self.ema:
            save_file(_cpu_state(self.ema.model), path / "ema.safetensors")
        torch.save(
            {
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "ema": self.ema.state_dict() if self.ema else None,
                "step": self.step,
                "seconds": self.seconds,
                "history": self.history,
                "rng": rng_state(),
            },
            path / "trainer_state.pt",
        )
        (path / "train_config.json").write_text(json.dumps(asdict(self.config), indent=1))
        return path

    def load_checkpoint(self, path: str | Path) -> "Trainer":
        path = Path(path)
        if not (path / "model.safetensors").is_file():
            raise FileNotFoundError(f"no checkpoint at {path} (expected model.safetensors and trainer_state.pt)")
        self.unwrapped.load_state_dict(load_file(path / "model.safetensors"))
        state = torch.load(path / "trainer_state.pt", weights_only=False)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.ema:
            self.ema.model.load_state_dict(load_file(path / "ema.safetensors"))
            self.ema.load_state_dict(state["ema"])
        self.step, self.seconds, self.history = state["step"], state["seconds"], state["history"]
        set_rng_state(state["rng"])
        return self


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
