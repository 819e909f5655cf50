"""`tinyvid sample ddpm`: draw a sample set from a trained checkpoint into an .npz file."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from tinyvid.data.sample_sets import BLACK_LEVEL, save_sample_set
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

    v = kinds.add_parser("t2v", help="clips from a text-to-video bundle: writes videos uint8 (N,16,64,64) + captions")
    v.add_argument("--checkpoint", required=True, help="a text-to-video .safetensors bundle (or a reference name)")
    v.add_argument("--prompts", required=True, help="a text file, one prompt per line (blank lines skipped)")
    v.add_argument("--out", required=True, help="output .npz (compressed)")
    v.add_argument("--steps", type=int, default=25, help="sampling steps (default 25)")
    v.add_argument("--guidance", type=float, default=None, help="classifier-free guidance (default: the bundle's)")
    v.add_argument("--method", default=None, help="sampler: ddim/ddpm for diffusion models, euler/heun for flow models")
    v.add_argument("--eta", type=float, default=None, help="DDIM eta (default: the bundle's)")
    v.add_argument("--seed", type=int, default=0, help="prompt i is drawn with seed + i")
    v.add_argument("--batch-size", type=int, default=64)
    v.add_argument("--black-level", type=int, default=BLACK_LEVEL,
                   help=f"values below it are written as 0, the background (default {BLACK_LEVEL}; 0 keeps the clips bit for bit)")
    v.add_argument("--device", default="auto")
    v.set_defaults(func=sample_t2v)


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


def read_prompts(path: str | Path) -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise SystemExit(f"error: no prompt file at {path}")
    prompts = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not prompts:
        raise SystemExit(f"error: {path} holds no prompts (one per line)")
    return prompts


def sample_t2v(args) -> int:
    from tinyvid.course.device import pick_device
    from tinyvid.diffusion.text_to_video import TextToVideo

    if not 0 <= args.black_level <= 255:
        raise SystemExit(f"error: --black-level must be in [0, 255], got {args.black_level}")
    prompts = read_prompts(args.prompts)
    pipe = TextToVideo.load(resolve_checkpoint(args.checkpoint), pick_device(args.device))
    defaults = pipe.sampler.get("defaults", {})
    videos = pipe.generate(prompts, steps=args.steps, guidance=args.guidance if args.guidance is not None else defaults.get("guidance", 3.0),
                           seeds=[args.seed + i for i in range(len(prompts))],
                           eta=args.eta if args.eta is not None else defaults.get("eta", 0.0),
                           method=args.method or defaults.get("method"), batch_size=args.batch_size)
    if videos.ndim != 4:
        raise SystemExit(f"error: {args.checkpoint} is not a video model (it draws {videos.shape[1:]} images)")
    out = save_sample_set(args.out, videos, prompts, black_level=args.black_level)
    print(f"wrote {out}: videos {videos.dtype} {videos.shape} (values below {args.black_level} as 0), captions ({len(prompts)},)")
    return 0
