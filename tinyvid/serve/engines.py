"""The two model interfaces the service runs, tiny engines that implement them, and a registry by name.

The service knows models only through `VideoGenerator` and `VideoCaptioner`; everything else
(queue, batching, safety, media) is model-agnostic. The tiny engines are real networks of the
course, freshly initialised so tests and the embedded default start in a second:
  - `TinyTextToVideo`: the word tokenizer + `TextEncoder` + a text-conditioned `UNet`, sampled with
    DDIM frame by frame at 32x32 and upsampled to the contract's 64x64;
  - `RetrievalCaptioner`: a `VideoTextCLIP` that picks the nearest caption of the grammar.
Untrained, their outputs are noise and guesses; a trained checkpoint of the same engine loads with
`load_generator(path)` / `load_captioner(path)`, and any other model joins by adding a factory to
`GENERATORS` / `CAPTIONERS` (`make_generator("name")` then builds it).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn

from tinyvid.data.moving_mnist import DIRECTIONS, SIZE, caption_for, parse_caption, to_model_layout

OUT_SIZE = SIZE  # every engine emits and consumes the data contract's 64x64 frames


@runtime_checkable
class VideoGenerator(Protocol):
    def generate(self, prompts: list[str], steps: int, guidance: float, seeds: list[int],
                 frames: int) -> np.ndarray:
        """One batch: uint8 (N, frames, 64, 64), video i from prompts[i] under seeds[i]."""
        ...


@runtime_checkable
class VideoCaptioner(Protocol):
    def caption(self, videos: np.ndarray) -> list[str]:
        """uint8 (N, T, 64, 64) -> one caption per video."""
        ...

    def answer(self, videos: np.ndarray, questions: list[str]) -> list[str]:
        """uint8 (N, T, 64, 64) and one question per video -> one short answer per video."""
        ...


def grammar_captions(two_digits: bool = False) -> list[str]:
    """Every caption of the Moving MNIST grammar: 80 with one digit, 6,480 with up to two."""
    singles = [(d, k) for d in range(10) for k in range(len(DIRECTIONS))]
    captions = [caption_for([d], [k]) for d, k in singles]
    if two_digits:
        captions += [caption_for([a, b], [ka, kb]) for a, ka in singles for b, kb in singles]
    return captions


def _word_tokenizer():
    from tinyvid.data.tokenizer import train_word_tokenizer

    return train_word_tokenizer(grammar_captions())


def _unzero(module: nn.Module, std: float = 0.02) -> nn.Module:
    """Zero-initialised output layers make an untrained network ignore its inputs; small random
    weights let the prompt and the seed both reach the pixels, which the service tests check."""
    for p in module.parameters():
        if p.ndim > 1 and not p.detach().any():
            nn.init.normal_(p, std=std)
    return module


@dataclass
class TinyTextToVideoConfig:
    size: int = 32  # the U-Net's resolution; frames are upsampled to 64x64
    unet: dict = field(default_factory=lambda: dict(patch=4, channels=(8, 16), attention_levels=(1,), heads=2, groups=4))
    text: dict = field(default_factory=lambda: dict(dim=32, depth=1, heads=2))
    max_len: int = 24
    schedule: str = "linear"
    prediction_type: str = "epsilon"

    def to_dict(self) -> dict:
        return asdict(self)


class TinyTextToVideo(nn.Module):
    """Text-conditioned U-Net applied to every frame; frames of a video share the prompt and the seed.

    Each video's starting noise comes from its own seed, and DDIM with eta=0 adds no noise after
    that, so a video does not depend on which other requests it was batched with (tested).
    """

    def __init__(self, config: TinyTextToVideoConfig | None = None, tokenizer=None):
        super().__init__()
        from tinyvid.diffusion import Schedule
        from tinyvid.models.text_encoder import TextEncoder, TextEncoderConfig
        from tinyvid.models.unet import UNet, UNetConfig

        cfg = self.config = config or TinyTextToVideoConfig()
        self.tokenizer = tokenizer or _word_tokenizer()
        self.text_encoder = TextEncoder(TextEncoderConfig(vocab_size=self.tokenizer.get_vocab_size(),
                                                          max_len=cfg.max_len, **cfg.text))
        self.unet = UNet(UNetConfig(context_dim=cfg.text["dim"], **cfg.unet))
        self.schedule = Schedule(cfg.schedule)

    def encode(self, prompts: list[str]) -> dict:
        from tinyvid.data.tokenizer import encode_batch

        # fixed length, so a prompt's features never depend on the longest prompt of its batch
        ids, mask = encode_batch(self.tokenizer, prompts, self.config.max_len)
        return dict(context=self.text_encoder(ids, mask)[0], context_mask=mask)

    @torch.no_grad()
    def generate(self, prompts: list[str], steps: int, guidance: float, seeds: list[int], frames: int) -> np.ndarray:
        from tinyvid.diffusion import sample, with_guidance

        if len(prompts) != len(seeds):
            raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
        if not prompts or frames <= 0 or steps <= 0:
            raise ValueError(f"need at least one prompt, frame and step (got {len(prompts)}, {frames}, {steps})")
        self.eval()
        s = self.config.size
        noise = torch.cat([torch.randn(frames, 1, s, s, generator=torch.Generator().manual_seed(int(seed)))
                           for seed in seeds])
        cond = {k: repeat(v, "n ... -> (n f) ...", f=frames) for k, v in self.encode(list(prompts)).items()}
        uncond = {k: repeat(v, "n ... -> (n f) ...", f=frames) for k, v in self.encode([""] * len(prompts)).items()}

        def denoise_cond(x, t, c):
            return self.unet(x, t, context=c["context"], context_mask=c["context_mask"])

        x = sample(with_guidance(denoise_cond, cond, uncond, guidance), noise.shape, self.schedule, steps=steps,
                   prediction_type=self.config.prediction_type, x_start=noise, progress=False)
        x = F.interpolate(x, size=(OUT_SIZE, OUT_SIZE), mode="bilinear", align_corners=False)
        x = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        return rearrange(x, "(n f) 1 h w -> n f h w", f=frames).numpy()


@dataclass
class RetrievalCaptionerConfig:
    clip: dict = field(default_factory=lambda: dict(
        video=dict(frames=8, size=32, patch=8, dim=32, spatial_depth=1, temporal_depth=1, heads=2),
        text=dict(dim=32, depth=1, heads=2, max_len=24), embed_dim=32))
    two_digits: bool = False  # caption bank: the 80 one-digit captions, or all 6,480

    def to_dict(self) -> dict:
        return asdict(self)


class RetrievalCaptioner(nn.Module):
    """Caption = the grammar caption whose CLIP text embedding is nearest the video's; answers are
    read off that caption (which digit, which direction, how many digits)."""

    def __init__(self, config: RetrievalCaptionerConfig | None = None, tokenizer=None):
        super().__init__()
        from tinyvid.models.clip import CLIPConfig, VideoTextCLIP

        cfg = self.config = config or RetrievalCaptionerConfig()
        self.tokenizer = tokenizer or _word_tokenizer()
        clip = dict(cfg.clip)
        clip["text"] = dict(clip["text"], vocab_size=self.tokenizer.get_vocab_size())
        self.clip = VideoTextCLIP(CLIPConfig(**clip))
        self.captions = grammar_captions(cfg.two_digits)
        self._bank: torch.Tensor | None = None

    def bank(self) -> torch.Tensor:
        """Text embeddings of every caption, computed once (they do not depend on the video)."""
        if self._bank is None:
            from tinyvid.data.tokenizer import encode_batch

            ids, mask = encode_batch(self.tokenizer, self.captions, self.clip.config.text.max_len)
            with torch.no_grad():
                self._bank = torch.cat([self.clip.encode_text(ids[i:i + 512], mask[i:i + 512])
                                        for i in range(0, len(ids), 512)])
        return self._bank

    def video_tensor(self, videos: np.ndarray) -> torch.Tensor:
        """uint8 (N, T, H, W) of any T -> the CLIP's (N, 1, frames, size, size) in [-1, 1]."""
        from tinyvid.data.frame_sampling import sample_indices

        videos = np.asarray(videos)
        if videos.dtype != np.uint8 or videos.ndim != 4:
            raise ValueError(f"expected uint8 videos (N, T, H, W), got {videos.dtype} {videos.shape}")
        vcfg = self.clip.config.video
        x = to_model_layout(videos[:, sample_indices(videos.shape[1], vcfg.frames).numpy()])
        x = rearrange(x, "n c t h w -> (n t) c h w")
        x = F.interpolate(x, size=(vcfg.size, vcfg.size), mode="area")
        return rearrange(x, "(n t) c h w -> n c t h w", n=len(videos))

    @torch.no_grad()
    def caption(self, videos: np.ndarray) -> list[str]:
        self.eval()
        scores = self.clip.encode_video(self.video_tensor(videos)) @ self.bank().t()
        return [self.captions[i] for i in scores.argmax(1).tolist()]

    def answer(self, videos: np.ndarray, questions: list[str]) -> list[str]:
        if len(videos) != len(questions):
            raise ValueError(f"{len(videos)} videos but {len(questions)} questions")
        return [answer_from_caption(c, q) for c, q in zip(self.caption(videos), questions)]


def answer_from_caption(caption: str, question: str) -> str:
    """A short answer to a question about a clip, read from its caption."""
    pairs = parse_caption(caption)
    q = question.lower()
    if re.search(r"\bhow many\b", q):
        return str(len(pairs))
    if re.search(r"\b(directions?|where|which way)\b", q):
        return " and ".join(DIRECTIONS[k] for _, k in pairs)
    if re.search(r"\b(digits?|numbers?)\b", q):
        return " and ".join(str(d) for d, _ in pairs)
    return caption


# -- saving, loading and the registry ---------------------------------------------------------------

ENGINE_CLASSES = {"TinyTextToVideo": (TinyTextToVideo, TinyTextToVideoConfig),
                  "RetrievalCaptioner": (RetrievalCaptioner, RetrievalCaptionerConfig)}


def save_engine(engine: nn.Module, path: str | Path) -> Path:
    """One safetensors file: weights, the engine class, its config and its tokenizer."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    name = type(engine).__name__
    if name not in ENGINE_CLASSES:
        raise ValueError(f"{name} is not a serve engine: {sorted(ENGINE_CLASSES)}")
    state = {k: v.detach().cpu().contiguous() for k, v in engine.state_dict().items()}
    meta = {"engine": name, "config": json.dumps(engine.config.to_dict()), "tokenizer": engine.tokenizer.to_str()}
    save_file(state, str(path), metadata=meta)
    return path


def load_engine(path: str | Path) -> nn.Module:
    from safetensors import safe_open
    from safetensors.torch import load_file
    from tokenizers import Tokenizer

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no engine checkpoint at {path}")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if meta.get("engine") not in ENGINE_CLASSES:
        raise ValueError(f"{path} is not a serve engine checkpoint (engine={meta.get('engine')!r}); "
                         f"known: {sorted(ENGINE_CLASSES)}")
    cls, config_cls = ENGINE_CLASSES[meta["engine"]]
    engine = cls(config_cls(**json.loads(meta["config"])), Tokenizer.from_str(meta["tokenizer"]))
    engine.load_state_dict(load_file(str(path)))
    return engine.eval()


def load_generator(checkpoint: str | Path) -> VideoGenerator:
    engine = load_engine(checkpoint)
    if not isinstance(engine, VideoGenerator):
        raise ValueError(f"{checkpoint} holds a {type(engine).__name__}, which does not generate videos")
    return engine


def load_captioner(checkpoint: str | Path) -> VideoCaptioner:
    engine = load_engine(checkpoint)
    if not isinstance(engine, VideoCaptioner):
        raise ValueError(f"{checkpoint} holds a {type(engine).__name__}, which does not caption videos")
    return engine


def tiny_generator(seed: int = 0, **config) -> TinyTextToVideo:
    torch.manual_seed(seed)
    return _unzero(TinyTextToVideo(TinyTextToVideoConfig(**config))).eval()


def tiny_captioner(seed: int = 0, **config) -> RetrievalCaptioner:
    torch.manual_seed(seed)
    return RetrievalCaptioner(RetrievalCaptionerConfig(**config)).eval()


class BundleGenerator:
    """A course text-to-video bundle (`TextToVideo`: 05's AnimateDiff, 06's DiT) as a `VideoGenerator`.
    The course's models draw the contract's 16 frames; a request for fewer gets the first `frames`."""

    def __init__(self, pipe):
        self.pipe = pipe

    def generate(self, prompts: list[str], steps: int, guidance: float, seeds: list[int], frames: int) -> np.ndarray:
        videos = self.pipe.generate(list(prompts), steps=steps, guidance=guidance, seeds=list(seeds), progress=False)
        if videos.ndim != 4:
            raise ValueError(f"{type(self.pipe.denoiser).__name__} draws images, not videos")
        if frames > videos.shape[1]:
            raise ValueError(f"this model draws {videos.shape[1]} frames; {frames} were asked for")
        return np.ascontiguousarray(videos[:, :frames])


class LLaVACaptioner:
    """Notebook 07's `VideoLLaVA` captioner (greedy decoding with a KV cache) as a `VideoCaptioner`."""

    def __init__(self, model, tokenizer, num_beams: int = 1):
        self.model, self.tokenizer, self.num_beams = model, tokenizer, num_beams

    def caption(self, videos: np.ndarray) -> list[str]:
        from tinyvid.models.vlm import caption

        return caption(self.model, self.tokenizer, videos, num_beams=self.num_beams)

    def answer(self, videos: np.ndarray, questions: list[str]) -> list[str]:
        from tinyvid.models.vlm import answer

        return answer(self.model, self.tokenizer, videos, list(questions), num_beams=self.num_beams)


def reference_generator(name_or_path: str | Path) -> BundleGenerator:
    """A committed reference bundle by name (book/results/<name>.safetensors, e.g. "t2v_dit") or a bundle's path."""
    from tinyvid.diffusion.text_to_video import load_t2v

    return BundleGenerator(load_t2v(str(name_or_path)))


def reference_captioner(path: str | Path | None = None) -> LLaVACaptioner:
    """Notebook 07's committed captioner (book/results/video_llava.safetensors) or one at `path`."""
    from tinyvid.models.registry import RESULTS_DIR
    from tinyvid.models.vlm import load_captioner as load_vlm

    model, tokenizer, _ = load_vlm(Path(path) if path else RESULTS_DIR / "video_llava.safetensors")
    return LLaVACaptioner(model.eval(), tokenizer)


# name -> factory; the trained models of notebooks 05-07 are registered by name (their committed
# checkpoints under book/results/); any other model joins with one line here
GENERATORS: dict[str, Callable[[], VideoGenerator]] = {
    "tiny": tiny_generator,
    "dit": lambda: reference_generator("t2v_dit"),
    "animatediff": lambda: reference_generator("t2v_animatediff"),
}
CAPTIONERS: dict[str, Callable[[], VideoCaptioner]] = {"tiny": tiny_captioner, "video_llava": reference_captioner}


def _checkpoint_kind(path: Path) -> str | None:
    """'engine', 'bundle' (a TextToVideo file) or 'model' (a registry model, e.g. the VideoLLaVA), from the metadata."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if "engine" in meta:
        return "engine"
    if meta.get("class") == "bundle":
        return "bundle"
    return "model" if "class" in meta else None


def _make(spec: str, registry: dict, load: Callable, kind: str):
    if spec in registry:
        return registry[spec]()
    path = Path(spec)
    if path.is_file():
        found = _checkpoint_kind(path)
        if found == "bundle" and kind == "generator":
            return reference_generator(path)
        if found == "model" and kind == "captioner":
            return reference_captioner(path)
        return load(spec)
    if path.suffix == ".safetensors":
        return load(spec)
    raise ValueError(f"unknown {kind} {spec!r}: give a registered name ({', '.join(sorted(registry))}) "
                     "or the path of a .safetensors engine checkpoint")


def make_generator(spec: str = "tiny") -> VideoGenerator:
    """A generator by registry name or checkpoint path."""
    return _make(spec, GENERATORS, load_generator, "generator")


def make_captioner(spec: str = "tiny") -> VideoCaptioner:
    """A captioner by registry name or checkpoint path."""
    return _make(spec, CAPTIONERS, load_captioner, "captioner")
