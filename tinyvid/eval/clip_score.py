"""CLIPScore with the course's CLIP (chapter 04's `VideoTextCLIP`), and caption retrieval against hard distractors.

CLIP-S(c, v) = w * max(cos(E_t(c), E_v(v)), 0) with w = 2.5 (Hessel et al., 2021). The weight only
stretches the cosines of OpenAI's CLIP towards [0, 1]; for any other CLIP it is arbitrary, so report
the cosines too. A mean CLIPScore says little about *what* a video gets wrong, so `caption_retrieval`
asks a sharper question of the same model: does the clip's own caption beat the captions that differ
from it in one slot (another direction, another digit) or in the binding of two digits to their
directions?

Videos are uint8 clips (N, T, H, W) (what the sample sets hold) or float (N, 1, T, H, W) in [-1, 1].
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from tinyvid.data.moving_mnist import DIRECTIONS, caption_for, parse_caption, to_model_layout

CLIP_SCORE_WEIGHT = 2.5  # Hessel et al.'s w
DISTRACTOR_KINDS = ("direction", "digit", "swap")


def clip_score_from_embeddings(video_emb: torch.Tensor, text_emb: torch.Tensor,
                               w: float = CLIP_SCORE_WEIGHT) -> torch.Tensor:
    """Per pair (N,): w * max(cos(video_i, text_i), 0); the embeddings (N, D) need not be normalised."""
    if video_emb.shape != text_emb.shape or video_emb.ndim != 2:
        raise ValueError(f"expected two (N, D) embeddings of one shape, got {tuple(video_emb.shape)} "
                         f"and {tuple(text_emb.shape)}")
    cos = (F.normalize(video_emb.float(), dim=-1) * F.normalize(text_emb.float(), dim=-1)).sum(-1)
    return w * cos.clamp(min=0)


def _video_tensor(videos) -> torch.Tensor:
    if isinstance(videos, torch.Tensor) and videos.is_floating_point():
        if videos.ndim != 5 or videos.shape[1] != 1:
            raise ValueError(f"float videos must be (N, 1, T, H, W) in [-1, 1], got {tuple(videos.shape)}")
        return videos
    return to_model_layout(videos)  # uint8 (N, T, H, W); says clearly what is wrong with anything else


@dataclass
class CLIPScorer:
    """The course's CLIP with its tokenizer (a `tokenizers.Tokenizer`) and caption length."""

    model: torch.nn.Module
    tokenizer: object
    max_len: int
    batch_size: int = 128

    @torch.no_grad()
    def embed_videos(self, videos) -> torch.Tensor:
        """L2-normalised video embeddings (N, D), on the CPU."""
        x = _video_tensor(videos)
        device = next(self.model.parameters()).device
        self.model.eval()
        return torch.cat([self.model.encode_video(x[i:i + self.batch_size].to(device)).float().cpu()
                          for i in range(0, len(x), self.batch_size)])

    @torch.no_grad()
    def embed_captions(self, captions: list[str]) -> torch.Tensor:
        """L2-normalised caption embeddings (N, D), on the CPU."""
        from tinyvid.data.tokenizer import encode_batch

        if isinstance(captions, str):
            raise TypeError("embed_captions takes a list of captions, not a single string")
        if not captions:
            raise ValueError("no captions to embed")
        device = next(self.model.parameters()).device
        self.model.eval()
        out = []
        for i in range(0, len(captions), self.batch_size):
            ids, mask = encode_batch(self.tokenizer, list(captions[i:i + self.batch_size]), max_len=self.max_len)
            out.append(self.model.encode_text(ids.to(device), mask.to(device)).float().cpu())
        return torch.cat(out)

    def cosines(self, videos, captions: list[str]) -> torch.Tensor:
        """cos(E_v(video_i), E_t(caption_i)) per pair, (N,)."""
        v, t = self.embed_videos(videos), self.embed_captions(captions)
        if len(v) != len(t):
            raise ValueError(f"{len(v)} videos but {len(t)} captions")
        return (v * t).sum(-1)

    def scores(self, videos, captions: list[str], w: float = CLIP_SCORE_WEIGHT) -> torch.Tensor:
        """CLIP-S per pair, (N,); the corpus CLIPScore is its mean."""
        return w * self.cosines(videos, captions).clamp(min=0)


def load_clip_scorer(path: str | Path = "clip_mnist", device: str | torch.device = "cpu") -> CLIPScorer:
    """A CLIPScorer from a CLIP checkpoint saved as notebook 04 does (`save_model(model, path,
    tokenizer=tok.to_str(), max_len=...)`): a path, or a reference name under book/results/."""
    from tokenizers import Tokenizer

    from tinyvid.models.clip import VideoTextCLIP
    from tinyvid.models.registry import load_model, load_pretrained

    path = Path(path)
    model, extra = load_model(path, device) if path.suffix == ".safetensors" else load_pretrained(str(path), device)
    if not isinstance(model, VideoTextCLIP) or "tokenizer" not in extra:
        raise ValueError(f"{path} is not a CLIP checkpoint with its tokenizer (notebook 04's clip_mnist)")
    max_len = int(extra.get("max_len", model.config.text.max_len))
    return CLIPScorer(model.requires_grad_(False), Tokenizer.from_str(extra["tokenizer"]), max_len)


def distractor_captions(caption: str, kind: str) -> list[str]:
    """Captions that are wrong about the clip in one way, in the caption's own part order:
    'direction': one part's direction replaced by each other direction; 'digit': one part's digit
    replaced by each other digit; 'swap': two parts' directions exchanged (binding; two-digit
    captions only). Any candidate that describes the same (digit, direction) pairs is dropped."""
    if kind not in DISTRACTOR_KINDS:
        raise ValueError(f"unknown distractor kind {kind!r}: choose from {', '.join(DISTRACTOR_KINDS)}")
    pairs = parse_caption(caption)
    candidates = []
    for slot, (digit, direction) in enumerate(pairs):
        if kind == "direction":
            candidates += [pairs[:slot] + [(digit, k)] + pairs[slot + 1:] for k in range(len(DIRECTIONS)) if k != direction]
        elif kind == "digit":
            candidates += [pairs[:slot] + [(d, direction)] + pairs[slot + 1:] for d in range(10) if d != digit]
    if kind == "swap" and len(pairs) == 2:
        (d0, k0), (d1, k1) = pairs
        candidates.append([(d0, k1), (d1, k0)])
    truth = sorted(pairs)
    out = []
    for c in candidates:
        text = caption_for(*zip(*c))
        if sorted(c) != truth and text not in out:
            out.append(text)
    return out


def caption_retrieval(scorer: CLIPScorer, videos, captions: list[str], kind: str = "direction",
                      video_emb: torch.Tensor | None = None) -> np.ndarray:
    """Per clip, 1.0 if its own caption is strictly closer to it than every distractor of `kind`,
    else 0.0; NaN for a clip that has no such distractor (a one-digit caption has nothing to swap).

    Each distinct caption is embedded once; pass `video_emb` (from `scorer.embed_videos`, with
    videos=None) to score several kinds without embedding the clips again."""
    captions = list(captions)
    distractors = [distractor_captions(c, kind) for c in captions]
    texts = sorted(set(captions) | {d for ds in distractors for d in ds})
    index = {t: i for i, t in enumerate(texts)}
    if (videos is None) == (video_emb is None):
        raise ValueError("give videos or video_emb, not both or neither")
    video_emb = scorer.embed_videos(videos) if video_emb is None else F.normalize(video_emb.float(), dim=-1)
    if len(video_emb) != len(captions):
        raise ValueError(f"{len(video_emb)} videos but {len(captions)} captions")
    sims = video_emb @ scorer.embed_captions(texts).T  # (N, distinct captions)
    wins = np.full(len(captions), np.nan)
    for i, (caption, ds) in enumerate(zip(captions, distractors)):
        if ds:
            wins[i] = float(sims[i, index[caption]] > sims[i, [index[d] for d in ds]].max())
    return wins


def retrieval_accuracy(wins: np.ndarray) -> float:
    """Mean of `caption_retrieval`'s verdicts over the clips that had distractors."""
    wins = np.asarray(wins, dtype=np.float64)
    if np.isnan(wins).all():
        raise ValueError("no clip had a distractor of this kind (e.g. 'swap' on one-digit captions only)")
    return float(np.nanmean(wins))
