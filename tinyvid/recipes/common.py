"""What every recipe shares: global batches that any number of processes cut the same way,
sharded checkpoints that resume on a different number of processes, and the command line.

A recipe's randomness (timesteps, noise, caption dropout) is drawn *with the batch*, for the
whole global batch, from a generator seeded by (seed, step); each process then takes its own
contiguous rows. So one process and N processes see exactly the same global batch and the
same noise, DDP's averaged gradient is the gradient of the same global loss, and a run can
stop on 2 processes and resume on 1 as if nothing happened.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import save_file

from tinyvid.train import TensorBatches, TrainConfig, Trainer
from tinyvid.train.trainer import rng_state, set_rng_state

Draws = Callable[[tuple, torch.Generator], tuple]


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the number of processes (0, 1 outside a distributed run)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class GlobalBatches(TensorBatches):
    """Batch k of `batch_size` rows (the global batch), plus `draws(rows, generator)` made for all of
    its rows from a generator seeded by (seed, k), cut into this process's contiguous part.

    Rank and world size are read when a batch is asked for, so the batches can be built before the
    Trainer starts the process group.
    """

    def __init__(self, *tensors: torch.Tensor, batch_size: int, seed: int = 0, draws: Draws | None = None):
        super().__init__(*tensors, batch_size=batch_size, seed=seed)
        self.draws = draws

    def global_batch(self, step: int) -> tuple[torch.Tensor, ...]:
        rows = super().batch(step)
        if self.draws is None:
            return rows
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        return (*rows, *self.draws(rows, g))

    def batch(self, step: int) -> tuple[torch.Tensor, ...]:
        return shard_rows(self.global_batch(step), *rank_and_world())


def shard_rows(tensors: tuple[torch.Tensor, ...], rank: int, world: int) -> tuple[torch.Tensor, ...]:
    """Process `rank`'s part of a global batch: its contiguous block of len / world rows."""
    n = len(tensors[0])
    if n % world:
        raise ValueError(f"the global batch of {n} does not split over {world} processes")
    per = n // world
    return tuple(t[rank * per : (rank + 1) * per] for t in tensors)


# --- sharded checkpoints: torch.distributed.checkpoint (DCP) writes each process's shards and reshards on load ---

@contextlib.contextmanager
def _single_process_is_fine():
    """DCP warns when it runs without a process group; one process is a case this module means to support."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        yield


def sharded_state(model, optimizer=None, ema_model=None) -> dict:
    """The DCP state dict of a model (plain, DDP or FSDP-sharded), its optimizer and an EMA copy."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_state_dict

    if optimizer is None:
        state = {"model": get_model_state_dict(model)}
    else:
        model_state, optim_state = get_state_dict(model, optimizer)
        state = {"model": model_state, "optim": optim_state}
    if ema_model is not None:
        state["ema"] = get_model_state_dict(ema_model)
    return state


def load_sharded_state(path: str | Path, model, optimizer=None, ema_model=None) -> None:
    """Read a DCP checkpoint into the model (and optimizer, EMA), resharded to this run's processes."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import set_model_state_dict, set_state_dict

    state = sharded_state(model, optimizer, ema_model)
    with _single_process_is_fine():
        dcp.load(state, checkpoint_id=str(path))  # in place
    if optimizer is None:
        set_model_state_dict(model, state["model"])
    else:
        set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])
    if ema_model is not None:
        set_model_state_dict(ema_model, state["ema"])


def save_sharded(trainer: Trainer, path: str | Path) -> Path:
    """Model, optimizer and EMA weights as a DCP checkpoint (every process writes its own shards: under
    FSDP each holds a slice, under DDP the replicated tensors are spread over the writers), the rest
    of the trainer's state (scheduler, step, history, RNG) beside it. `load_sharded` reads it back on
    any number of processes."""
    import torch.distributed.checkpoint as dcp

    path = Path(path)
    ema = trainer.ema.model if trainer.ema else None
    with _single_process_is_fine():
        dcp.save(sharded_state(trainer.unwrapped, trainer.optimizer.optimizer, ema), checkpoint_id=str(path / "sharded"))
    if trainer.accelerator.is_main_process:
        torch.save({"scheduler": trainer.scheduler.state_dict(), "ema": trainer.ema.state_dict() if trainer.ema else None,
                    "step": trainer.step, "seconds": trainer.seconds, "history": trainer.history,
                    "world_size": trainer.accelerator.num_processes,
                    "rng": rng_state()},
                   path / "trainer_state.pt")
    trainer.accelerator.wait_for_everyone()
    return path


def load_sharded(trainer: Trainer, path: str | Path) -> Trainer:
    path = Path(path)
    if not (path / "sharded" / ".metadata").is_file() or not (path / "trainer_state.pt").is_file():
        raise FileNotFoundError(f"no sharded checkpoint at {path} (expected sharded/.metadata and trainer_state.pt)")
    load_sharded_state(path / "sharded", trainer.unwrapped, trainer.optimizer.optimizer,
                       trainer.ema.model if trainer.ema else None)
    rest = torch.load(path / "trainer_state.pt", weights_only=False)
    if trainer.ema:
        trainer.ema.load_state_dict(rest["ema"])
    trainer.scheduler.load_state_dict(rest["scheduler"])
    trainer.step, trainer.seconds, trainer.history = rest["step"], rest["seconds"], rest["history"]
    set_rng_state(rest["rng"])
    return trainer


def save_full_weights(trainer: Trainer, path: str | Path) -> Path | None:
    """The whole (unsharded) model and EMA weights in one safetensors file each, from the main process."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    full = StateDictOptions(full_state_dict=True, cpu_offload=True)
    states = {"model": get_model_state_dict(trainer.unwrapped, options=full)}
    if trainer.ema:
        states["ema"] = get_model_state_dict(trainer.ema.model, options=full)
    if not trainer.accelerator.is_main_process:
        return None
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for name, state in states.items():
        save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, path / f"{name}.safetensors")
    return path


# --- the command line: the notebook's config keys, the training levers, the run's plumbing ---

LEVERS = ("precision", "grad_accum", "compile", "activation_checkpointing", "fused_adamw", "channels_last", "sdpa_backend")


def literal(text: str):
    """A command-line value as a Python literal where it reads as one (10, 1e-3, None, (16, 32), {'size': 'S'}), else the string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def recipe_parser(notebook: str, keys: tuple[str, ...], description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--profile", default="auto", help="smoke, cpu, gpu or full (auto: $TINYVID_PROFILE, else gpu/cpu)")
    p.add_argument("--out-dir", required=True, help="checkpoints, metrics.jsonl and run.json go here")
    p.add_argument("--resume", default=None, help="a checkpoint folder written by this recipe (any number of processes)")
    p.add_argument("--checkpoint-every", type=int, default=None, help="also checkpoint every N steps (always at the end)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto (GPU if any), cpu, cuda, ...")
    p.add_argument("--expect-world-size", type=int, default=None, help="fail unless the run has this many processes")
    p.add_argument("--no-progress", action="store_true")
    group = p.add_argument_group(f"settings of {notebook} (default: the profile's; values are Python literals)")
    for key in keys:
        group.add_argument(f"--{key.replace('_', '-')}", dest=key, type=literal, default=None)
    levers = p.add_argument_group("speed levers (notebook 09)")
    levers.add_argument("--precision", default="auto", help="auto, fp32, bf16 or fp16")
    levers.add_argument("--grad-accum", type=int, default=1)
    levers.add_argument("--compile", nargs="?", const="inductor", default=False,
                        help="torch.compile the model (optionally: the backend, e.g. aot_eager)")
    levers.add_argument("--activation-checkpointing", action="store_true")
    levers.add_argument("--fused-adamw", action="store_true")
    levers.add_argument("--channels-last", action="store_true")
    levers.add_argument("--sdpa-backend", default=None, help="flash, efficient, math or cudnn")
    return p


def parse_recipe_args(notebook: str, keys: tuple[str, ...], description: str, argv: list[str] | None = None):
    """(args, config overrides, lever options) from the command line; `keys`: the notebook settings the recipe reads."""
    args = recipe_parser(notebook, keys, description).parse_args(argv)
    overrides = {k: getattr(args, k) for k in keys}
    levers = {k: getattr(args, k) for k in LEVERS}
    return args, overrides, levers


def run_trainer(trainer: Trainer, args, extra: dict | None = None) -> dict:
    """Resume if asked, train to the end with checkpoints, write run.json; returns its contents."""
    world = trainer.accelerator.num_processes
    if args.expect_world_size is not None and world != args.expect_world_size:
        raise RuntimeError(f"expected {args.expect_world_size} processes, this run has {world}")
    out = Path(args.out_dir)
    if args.resume:
        load_sharded(trainer, args.resume)
    every = args.checkpoint_every or trainer.config.steps
    while trainer.step < trainer.config.steps:
        trainer.fit(steps=min(trainer.config.steps, (trainer.step // every + 1) * every))
        save_sharded(trainer, out / f"checkpoint-{trainer.step}")
        if trainer.config.max_minutes and trainer.seconds >= 60 * trainer.config.max_minutes:
            break
    save_full_weights(trainer, out / "final")
    summary = {"world_size": world, "rank_of_writer": trainer.accelerator.process_index, "steps": trainer.step,
               "seconds": round(trainer.seconds, 3), "loss": trainer.history[-1]["loss"] if trainer.history else None,
               "resumed_from": args.resume, "precision": trainer.precision, "launcher": launcher(), **(extra or {})}
    if trainer.accelerator.is_main_process:
        (out / "run.json").write_text(json.dumps(summary, indent=1))
    return summary


def train_config(cfg, args, levers: dict, **fields) -> TrainConfig:
    """The Trainer's config from the notebook's settings (lr, warmup, ema, steps, time budget) and the levers."""
    return TrainConfig(steps=cfg.steps, lr=cfg.lr, warmup=cfg.warmup, ema_decay=cfg.ema_decay, seed=args.seed,
                       max_minutes=cfg.train_minutes, log_every=cfg.log_every, out_dir=args.out_dir,
                       device=args.device, progress=not args.no_progress, **levers, **fields)


def launcher() -> str:
    """How this process was started, as the run log records it."""
    if "ACCELERATE_MIXED_PRECISION" in os.environ or "ACCELERATE_DYNAMO_BACKEND" in os.environ:
        return "accelerate launch"
    if "TORCHELASTIC_RUN_ID" in os.environ:
        return "torchrun"
    return f"python -m {Path(sys.argv[0]).stem}" if sys.argv and sys.argv[0] else "python"
