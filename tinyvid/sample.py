"""`tinyvid sample ddpm`: draw a sample set from a trained checkpoint into an .npz file."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from tinyvid.diffusion.diffusers_solvers import SOLVERS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sample", help="draw samples from a trained model into an .npz file")
    kinds = p.add_subparsers(dest="kind", required=True, metavar="KIND")
    d = kinds.add_parser("ddpm", help="images from a DDPM checkpoint: writes x uint8 (N,28,28) [+ y]")
    d.add_argument("--checkpoint", required=True, help="a .safetensors file written by tinyvid (or a reference name)")
    d.add_argument("--n", type=int, default=2000, help="number of samples (default 2000)")
    d.add_argument("--out", required=True, help="output .npz (compressed)")
    d.add_argument("--method", default="ddim", choices=["ddim", "ddpm", *(f"diffusers:{s}" for s in SOLVERS)],
                   help="tinyvid's ddim/ddpm, or a diffusers solver driving the same model")
    d.add_argument("--steps", type=int, default=50, help="sampling steps (ignored for ddpm, which runs all T)")
    d.add_argument("--eta", type=float, default=0.0)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--batch-size", type=int, default=500)
    d.add_argument("--labels", action="store_true", help="class-conditional: n/10 of each digit, written as y")
    d.add_argument("--guidance", type=float, default=1.0, help="classifier-free guidance scale (with --labels)")
    d.add_argument("--device", default="auto")
    d.set_defaults(func=sample_ddpm)


def resolve_checkpoint(name_or_path: str) -> Path:
    from tinyvid.models.registry import RESULTS_DIR

    path = Path(name_or_path)
    if path.is_file():
        return path
    named = RESULTS_DIR / f"{name_or_path}.safetensors"
    if named.is_file():
        return named
    raise SystemExit(f"error: no checkpoint at {name_or_path} (nor {named})")


def sample_ddpm(args) -> int:
    from tinyvid.course.device import pick_device
    from tinyvid.diffusion import Schedule
    from tinyvid.diffusion.pipeline import sample_images, to_uint8
    from tinyvid.models import load_model

    if args.n <= 0:
        raise SystemExit("error: --n must be positive")
    device = pick_device(args.device)
    model, extra = load_model(resolve_checkpoint(args.checkpoint), device)
    labels = None
    if args.labels:
        if not model.config.num_classes:
            raise SystemExit("error: --labels needs a class-conditional checkpoint (this one has no num_classes)")
        labels = torch.arange(args.n) % model.config.num_classes
    x = sample_images(
        model, Schedule(extra.get("schedule", "linear")), args.n, args.method, args.steps, args.eta, args.seed,
        args.batch_size, labels, args.guidance, extra.get("prediction_type", "epsilon"), device=device,
    )
    arrays = {"x": to_uint8(x)}
    if labels is not None:
        arrays["y"] = labels.numpy().astype(np.uint8)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays)
    print(f"wrote {out}: " + ", ".join(f"{k} {v.dtype} {v.shape}" for k, v in arrays.items()))
    return 0
