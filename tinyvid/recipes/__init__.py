"""Training recipes: modules that run unchanged under `python -m`, `torchrun` and `accelerate launch`.

- `tinyvid.recipes.t2v_dit`: the flow-matching video DiT (notebook 09's settings);
- `tinyvid.recipes.ddpm_mnist`: the DDPM U-Net on MNIST (notebook 01's settings).

Each takes the notebook's settings as `--key value` overrides of `config(notebook, profile)`, the
speed levers as flags, and writes sharded checkpoints (resumable on another number of
processes), the full weights, `metrics.jsonl` and `run.json` under `--out-dir`. The accelerate
configs for DDP and FSDP are in `tinyvid/recipes/accelerate/` (`accelerate_config("fsdp")`).
"""

from pathlib import Path

ACCELERATE_DIR = Path(__file__).resolve().parent / "accelerate"


def accelerate_config(name: str) -> Path:
    """The path of an accelerate config shipped with the recipes: `ddp` or `fsdp`."""
    path = ACCELERATE_DIR / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in ACCELERATE_DIR.glob("*.yaml"))
        raise FileNotFoundError(f"no accelerate config {name!r}: choose one of {', '.join(known)}")
    return path


__all__ = ["ACCELERATE_DIR", "accelerate_config"]
