"""`tinyvid caption`: caption clips (or answer a question about them) with a trained video-language model.

    tinyvid caption --checkpoint video_llava --videos samples.npz --out captions.json [--question Q]

reads the `videos` array, uint8 (N, 16, 64, 64), of an .npz (what `tinyvid sample t2v` writes) and
writes a JSON list of N strings, one per clip, in input order.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("caption", help="caption clips from an .npz (or answer --question) into a JSON list")
    p.add_argument("--checkpoint", required=True, help="a video-language model .safetensors (or a reference name)")
    p.add_argument("--videos", required=True, help=".npz holding `videos` uint8 (N, 16, 64, 64)")
    p.add_argument("--out", required=True, help="output .json: a list of N strings")
    p.add_argument("--question", default=None, help="ask this instead of captioning, e.g. 'which digits are in the video?'")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--beams", type=int, default=1, help="1: greedy decoding; K > 1: beam search with K beams")
    p.add_argument("--max-new-tokens", type=int, default=20)
    p.add_argument("--device", default="auto")
    p.set_defaults(func=run_caption)


def load_videos(path: str | Path, size: int) -> np.ndarray:
    """The `videos` array of an .npz, checked: uint8 (N, T, size, size) with N, T >= 1."""
    path = Path(path)
    if not path.is_file():
        raise SystemExit(f"error: no file at {path}")
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise SystemExit(f"error: {path} is not an .npz archive ({e})") from None
    with archive:
        if not hasattr(archive, "files") or "videos" not in archive.files:
            held = ", ".join(getattr(archive, "files", [])) or "no named arrays"
            raise SystemExit(f"error: {path} has no 'videos' array (it holds: {held}); expected videos uint8 "
                             f"(N, 16, {size}, {size}) as `tinyvid sample t2v` writes")
        videos = archive["videos"]
    if videos.dtype != np.uint8 or videos.ndim != 4 or videos.shape[-2:] != (size, size) or 0 in videos.shape:
        raise SystemExit(f"error: {path}: videos must be uint8 (N, T, {size}, {size}) with N, T >= 1, "
                         f"got {videos.dtype} {videos.shape}")
    return videos


def run_caption(args) -> int:
    from tinyvid.course.device import pick_device
    from tinyvid.data.instructions import CAPTION_QUESTIONS
    from tinyvid.models.vlm import answer, load_captioner
    from tinyvid.sample import resolve_checkpoint

    if args.batch_size < 1 or args.beams < 1 or args.max_new_tokens < 1:
        raise SystemExit("error: --batch-size, --beams and --max-new-tokens must be positive")
    device = pick_device(args.device)
    try:
        model, tokenizer, _ = load_captioner(resolve_checkpoint(args.checkpoint), device)
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    videos = load_videos(args.videos, model.config.vision.size)
    texts = answer(model, tokenizer, videos, args.question or CAPTION_QUESTIONS[0], batch_size=args.batch_size,
                   num_beams=args.beams, max_new_tokens=args.max_new_tokens)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(texts, indent=1))
    print(f"wrote {out}: {len(texts)} {'answers' if args.question else 'captions'}")
    return 0
