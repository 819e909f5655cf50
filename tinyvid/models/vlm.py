"""A Video-LLaVA-style video-language model: frames -> ViT -> temporal aggregator -> MLP projector -> Llama.

The language model is transformers' `LlamaForCausalLM`, built from a small `LlamaConfig` (nothing is
downloaded). The projector maps the M visual tokens to the LM's width and `place_visual_tokens`
writes them over the `<video>` placeholders of the prompt with `masked_scatter`, exactly as
transformers' `modeling_video_llava.py` does (tested for equal logits against
`VideoLlavaForConditionalGeneration`). Training follows LLaVA/Video-LLaVA in two stages
(`set_trainable`): alignment of the visual side with the LM frozen, then instruction tuning of
the LM (fully, or with LoRA adapters from peft: `add_lora`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from einops import rearrange
from torch import nn

from tinyvid.data.instructions import encode_prompts, tokenizer_from_json
from tinyvid.data.moving_mnist import to_model_layout
from tinyvid.models.vision import Aggregator, VisionConfig, detection_loss, frame_times, vision_encoder

# LlamaConfig settings of the course's LM; `VLMConfig.lm` overrides any of them
TINY_LLAMA = dict(hidden_size=128, intermediate_size=384, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=4, max_position_embeddings=64, rms_norm_eps=1e-6, tie_word_embeddings=False)
PARTS = ("vision", "aggregator", "projector", "lm")


@dataclass
class VLMConfig:
    vocab_size: int
    video_token_id: int
    pad_token_id: int = 0
    bos_token_id: int = 1
    eos_token_id: int = 2
    vision: VisionConfig = field(default_factory=VisionConfig)
    lm: dict = field(default_factory=dict)  # LlamaConfig overrides of TINY_LLAMA

    def __post_init__(self):
        if isinstance(self.vision, dict):
            self.vision = VisionConfig(**self.vision)
        if not 0 <= self.video_token_id < self.vocab_size:
            raise ValueError(f"video_token_id={self.video_token_id} is outside the vocabulary of {self.vocab_size}")

    @classmethod
    def for_tokenizer(cls, tokenizer, **kwargs) -> "VLMConfig":
        return cls(vocab_size=len(tokenizer), video_token_id=tokenizer.video_token_id, pad_token_id=tokenizer.pad_token_id,
                   bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, **kwargs)

    def llama_config(self):
        from transformers import LlamaConfig

        return LlamaConfig(**{**TINY_LLAMA, **self.lm}, vocab_size=self.vocab_size, pad_token_id=self.pad_token_id,
                           bos_token_id=self.bos_token_id, eos_token_id=self.eos_token_id)

    def to_dict(self) -> dict:
        return asdict(self)


def place_visual_tokens(inputs_embeds: torch.Tensor, input_ids: torch.Tensor, visual: torch.Tensor,
                        video_token_id: int) -> torch.Tensor:
    """Write the visual tokens (B, M, H) over the placeholders of `input_ids` (B, L), in order.

    `masked_scatter` fills the True positions of the mask, row-major, with the flattened source:
    row b's placeholders receive clip b's M tokens when every row holds exactly M placeholders.
    """
    mask = input_ids == video_token_id
    if int(mask.sum()) != visual.shape[0] * visual.shape[1]:
        raise ValueError(f"the prompts hold {int(mask.sum())} {video_token_id=} placeholders but there are "
                         f"{visual.shape[0]} x {visual.shape[1]} visual tokens")
    return inputs_embeds.masked_scatter(mask.unsqueeze(-1), visual.to(inputs_embeds.dtype))


class VideoLLaVA(nn.Module):
    """Video (B, 1, T, H, W) in [-1, 1] + token ids -> next-token logits of the Llama LM."""

    def __init__(self, config: VLMConfig):
        super().__init__()
        from transformers import LlamaForCausalLM

        cfg = self.config = config
        self.vision = vision_encoder(cfg.vision)
        self.aggregator = Aggregator(cfg.vision)
        hidden = cfg.llama_config().hidden_size
        # Linear-GELU-Linear, the LLaVA-1.5 / Video-LLaVA projector (`VideoLlavaMultiModalProjector`)
        self.projector = nn.Sequential(nn.Linear(cfg.vision.dim, hidden), nn.GELU(), nn.Linear(hidden, hidden))
        self.lm = LlamaForCausalLM(cfg.llama_config())
        self.lm.generation_config.pad_token_id = cfg.pad_token_id

    def train(self, mode: bool = True) -> "VideoLLaVA":
        """Frozen parts stay in eval mode (their BatchNorm statistics and dropout do not change)."""
        super().train(mode)
        for name in PARTS:
            part = getattr(self, name)
            if not any(p.requires_grad for p in part.parameters()):
                part.eval()
        return self

    @property
    def num_visual_tokens(self) -> int:
        return self.config.vision.num_tokens

    def sample_frames(self, video: torch.Tensor) -> torch.Tensor:
        """(B, 1, T, H, W) -> the model's frames (B, T', 1, H, W), spread uniformly over the clip."""
        v = self.config.vision
        if video.ndim != 5 or video.shape[1] != 1 or video.shape[-2:] != (v.size, v.size):
            raise ValueError(f"expected videos (B, 1, T, {v.size}, {v.size}) in [-1, 1], got {tuple(video.shape)}")
        idx = frame_times(v, video.shape[2]).to(video.device)
        # black background -> 0: the frames' constant part would otherwise dominate every feature at init
        frames = video.index_select(2, idx) + 1
        if v.motion:  # two-stream input: the change to a later frame shows which way each edge moves
            after = video.index_select(2, idx + v.motion_gap) + 1
            frames = torch.cat([frames, after - frames], dim=1)
        return rearrange(frames, "b c t h w -> b t c h w")

    def frame_tokens(self, video: torch.Tensor) -> torch.Tensor:
        """(B, 1, T, H, W) -> the ViT's tokens of each sampled frame (B, T', N, D_vision)."""
        return self.vision(self.sample_frames(video))

    def video_features(self, video: torch.Tensor) -> torch.Tensor:
        """(B, 1, T, H, W) -> aggregated visual features (B, M, D_vision), before the projector."""
        return self.aggregator(self.frame_tokens(video))

    def embed(self, input_ids: torch.Tensor, video: torch.Tensor | None = None,
              features: torch.Tensor | None = None) -> torch.Tensor:
        """Token embeddings with the projected visual tokens at the placeholders.

        Give `video`, or `features` (from `video_features`) when the visual side is frozen and cached."""
        embeds = self.lm.get_input_embeddings()(input_ids)
        if video is not None:
            features = self.video_features(video)
        if features is None:
            if (input_ids == self.config.video_token_id).any():
                raise ValueError("the prompts hold <video> placeholders: pass video= or features=")
            return embeds
        return place_visual_tokens(embeds, input_ids, self.projector(features), self.config.video_token_id)

    def forward(self, input_ids, attention_mask=None, labels=None, video=None, features=None):
        """transformers' CausalLMOutput; `.loss` is the mean cross-entropy on the labels that are not -100."""
        embeds = self.embed(input_ids, video, features)
        return self.lm(inputs_embeds=embeds, attention_mask=attention_mask, labels=labels)

    @torch.no_grad()
    def generate(self, input_ids, attention_mask, video=None, features=None, max_new_tokens: int = 20,
                 num_beams: int = 1, use_cache: bool = True) -> torch.Tensor:
        """Greedy (num_beams=1) or beam-search continuation of left-padded prompts: new ids (B, <=max_new_tokens),
        padded with <pad> after <eos>. The KV cache holds every earlier position's keys and values,
        so each new token costs one position of compute."""
        embeds = self.embed(input_ids, video, features)
        return self.lm.generate(inputs_embeds=embeds, attention_mask=attention_mask, max_new_tokens=max_new_tokens,
                                num_beams=num_beams, do_sample=False, use_cache=use_cache,
                                eos_token_id=self.config.eos_token_id, pad_token_id=self.config.pad_token_id)


# --- the two training stages and LoRA ---

def set_trainable(model: VideoLLaVA, parts) -> int:
    """Train only the named parts (of vision, aggregator, projector, lm); returns the trainable parameter count."""
    parts = {parts} if isinstance(parts, str) else set(parts)
    if parts - set(PARTS):
        raise ValueError(f"unknown parts {sorted(parts - set(PARTS))}: choose from {PARTS}")
    for name in PARTS:
        getattr(model, name).requires_grad_(name in parts)
    return count_trainable(model)


def count_trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def add_lora(model: VideoLLaVA, r: int = 8, alpha: int = 16, dropout: float = 0.0,
             target_modules=("q_proj", "v_proj")) -> int:
    """Wrap the LM with peft LoRA adapters on the attention's q/v projections (the LoRA paper's choice);
    the LM's own weights are frozen. Returns the LM's trainable parameter count."""
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(target_modules), bias="none")
    model.lm = get_peft_model(model.lm, lora)
    return count_trainable(model.lm)


def merge_lora(model: VideoLLaVA) -> VideoLLaVA:
    """Fold LoRA adapters into the LM's weights (W + BA): a plain LlamaForCausalLM again, same outputs."""
    if hasattr(model.lm, "merge_and_unload"):
        model.lm = model.lm.merge_and_unload()
    return model


def vlm_loss(videos: torch.Tensor | None = None, features: torch.Tensor | None = None, detection=None,
             detection_weight: float = 1.0):
    """loss_fn(model, batch) for the Trainer; batch = (clip, input_ids, attention_mask, labels).

    `clip` indexes a bank kept here rather than in the batches, so a clip asked several
    questions is stored once: `videos` uint8 (N, T, H, W) (the visual side trains), or `features`
    (N, M, D) from a frozen visual side, or neither for text-only LM pretraining.
    `detection`: (digit, direction) targets from `frame_detection_targets` for the same bank: adds the
    encoder's auxiliary detection loss (weighted by `detection_weight`), a dense signal that teaches the
    ViT digits and motion much faster than the caption loss alone. Logs the token accuracy on the answer.
    """
    if videos is not None and features is not None:
        raise ValueError("give videos or features, not both")
    if detection is not None and videos is None:
        raise ValueError("the detection loss trains the encoder: give videos= with detection=")

    def loss_fn(model, batch):
        clip, ids, mask, labels = batch
        rows = clip.cpu()
        kwargs, logs, extra = {}, {}, 0.0
        if videos is not None:
            video = to_model_layout(videos[rows]).to(ids.device)
            if detection is None:
                kwargs["video"] = video
            else:  # the frame tokens feed both the aggregator and the detection head
                frames = model.frame_tokens(video)
                kwargs["features"] = model.aggregator(frames)
                targets = (t[rows].to(ids.device) for t in detection)
                extra = detection_weight * detection_loss(*model.vision.detect(frames), *targets)
                logs["detection_loss"] = extra.detach()
        elif features is not None:
            kwargs["features"] = features[rows].to(ids.device)
        out = model(ids, mask, labels, **kwargs)
        target = labels[:, 1:]
        hit = (out.logits[:, :-1].argmax(-1) == target)[target != -100]
        return out.loss + extra, {"token_accuracy": hit.float().mean().detach(), **logs}

    return loss_fn


@torch.no_grad()
def compute_features(model: VideoLLaVA, videos, batch_size: int = 256) -> torch.Tensor:
    """Aggregated visual features (N, M, D) of uint8 clips (N, T, H, W), on the CPU."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = [model.video_features(to_model_layout(videos[i:i + batch_size]).to(device)).cpu()
           for i in range(0, len(videos), batch_size)]
    model.train(was_training)
    return torch.cat(out)


# --- captioning and question answering ---

@torch.no_grad()
def answer(model: VideoLLaVA, tokenizer, videos, questions, batch_size: int = 64, num_beams: int = 1,
           max_new_tokens: int = 20, use_cache: bool = True) -> list[str]:
    """One answer per clip: `videos` uint8 (N, T, H, W), `questions` one string or one per clip."""
    videos = np.asarray(videos)
    questions = [questions] * len(videos) if isinstance(questions, str) else list(questions)
    if len(questions) != len(videos):
        raise ValueError(f"{len(questions)} questions for {len(videos)} clips")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    model.eval()
    device = next(model.parameters()).device
    texts = []
    for i in range(0, len(videos), batch_size):
        ids, mask = encode_prompts(tokenizer, questions[i:i + batch_size], model.num_visual_tokens)
        new = model.generate(ids.to(device), mask.to(device), video=to_model_layout(videos[i:i + batch_size]).to(device),
                             max_new_tokens=max_new_tokens, num_beams=num_beams, use_cache=use_cache)
        texts += [t.strip() for t in tokenizer.batch_decode(new, skip_special_tokens=True)]
    return texts


def caption(model: VideoLLaVA, tokenizer, videos, **kwargs) -> list[str]:
    """Captions of uint8 clips (N, T, H, W), asked with the first caption prompt."""
    from tinyvid.data.instructions import CAPTION_QUESTIONS

    return answer(model, tokenizer, videos, CAPTION_QUESTIONS[0], **kwargs)


# --- checkpoints: one safetensors file, config and tokenizer in its metadata ---

def save_captioner(model: VideoLLaVA, tokenizer, path: str | Path, dtype: torch.dtype | None = None, **extra) -> Path:
    from tinyvid.models.registry import save_model

    merge_lora(model)
    return save_model(model, path, dtype=dtype, tokenizer=tokenizer.backend_tokenizer.to_str(), **extra)


def load_captioner(path: str | Path, device: str | torch.device = "cpu"):
    """(model, tokenizer, extra metadata) from a file written by `save_captioner`."""
    from tinyvid.models.registry import load_model

    model, extra = load_model(path, device)
    if not isinstance(model, VideoLLaVA) or "tokenizer" not in extra:
        raise ValueError(f"{path} is not a video-language model checkpoint (no VideoLLaVA with a tokenizer)")
    return model, tokenizer_from_json(extra.pop("tokenizer")), extra
