"""Instruction data for the video-language model: captions and questions about captioned Moving MNIST.

One plain chat format, as LLaVA's "USER: <image>\\n... ASSISTANT:" but in the caption grammar's words:

    <bos> <video> x M  question : which digits are in the video ?  answer : 3 and 7 <eos>

The `<video>` placeholder is repeated once per visual token (M of them), as transformers'
Video-LLaVA processor expands it; the model puts its visual tokens there with `masked_scatter`.
Only the answer (and its <eos>) is learned: every other label is -100, so the loss never asks
the model to predict the question or the video.

Two digits are always named in one order, the canonical one (by digit, then direction): the
clips do not say which digit is "first", so a fixed order makes the target a function of the
video. Metrics accept either order (`caption_references`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch

from tinyvid.data.moving_mnist import DIRECTIONS, NO_DIGIT, Clips, caption_for, parse_caption
from tinyvid.data.tokenizer import BOS, EOS, PAD, as_transformers, train_word_tokenizer

VIDEO = "<video>"
IGNORE = -100  # the label cross-entropy skips (transformers' and torch's ignore_index)
KINDS = ("caption", "direction", "digits", "moving", "count")
CAPTION_QUESTIONS = ("describe the video.", "what happens in the video?", "write a caption for the video.")
DIRECTION_QUESTION = "which direction is the digit {digit} moving?"
DIGITS_QUESTION = "which digits are in the video?"
MOVING_QUESTION = "is any digit moving {direction}?"
COUNT_QUESTION = "how many digits are there?"


@dataclass(frozen=True)
class Example:
    clip: int  # index of the clip in its Clips
    kind: str
    question: str
    answer: str


def prompt_text(question: str) -> str:
    """The text around the visual tokens, up to where the answer starts."""
    return f"question: {question} answer:"


def clip_pairs(digits, directions) -> list[tuple[int, int]]:
    """The (digit, direction index) pairs of one clip in canonical order, empty slots dropped."""
    return sorted((int(d), int(k)) for d, k in zip(digits, directions) if int(d) != NO_DIGIT)


def canonical_caption(caption: str) -> str:
    """The caption with its parts in canonical order: what the model learns to say."""
    pairs = sorted(parse_caption(caption))
    return caption_for(*zip(*pairs))


def caption_references(caption: str) -> list[str]:
    """Every ordering of the caption's parts: each is a correct description of the clip."""
    pairs = parse_caption(caption)
    return sorted({caption_for(*zip(*order)) for order in itertools.permutations(pairs)})


def answer_for(kind: str, pairs: list[tuple[int, int]], rng: np.random.Generator) -> tuple[str, str]:
    """(question, answer) of one kind about a clip with these canonical pairs."""
    if kind == "caption":
        return CAPTION_QUESTIONS[rng.integers(len(CAPTION_QUESTIONS))], caption_for(*zip(*pairs))
    if kind == "direction":
        digit = pairs[rng.integers(len(pairs))][0]
        moves = sorted({k for d, k in pairs if d == digit})  # one digit can appear twice
        return DIRECTION_QUESTION.format(digit=digit), " and ".join(DIRECTIONS[k] for k in moves)
    if kind == "digits":
        return DIGITS_QUESTION, " and ".join(str(d) for d, _ in pairs)
    if kind == "moving":
        present = sorted({k for _, k in pairs})
        absent = [k for k in range(len(DIRECTIONS)) if k not in present]
        # half the questions ask about a direction in the clip, so "yes" and "no" are balanced
        pool = present if rng.random() < 0.5 else absent
        k = pool[rng.integers(len(pool))]
        return MOVING_QUESTION.format(direction=DIRECTIONS[k]), "yes" if k in present else "no"
    if kind == "count":
        return COUNT_QUESTION, str(len(pairs))
    raise ValueError(f"unknown question kind {kind!r}: choose from {', '.join(KINDS)}")


def instruction_examples(clips: Clips, kinds=KINDS, per_clip: int = 1, seed: int = 0) -> list[Example]:
    """`per_clip` examples for every clip, each of a kind drawn uniformly from `kinds`; deterministic in seed."""
    kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
    unknown = set(kinds) - set(KINDS)
    if unknown or not kinds:
        raise ValueError(f"unknown question kinds {sorted(unknown)}: choose from {', '.join(KINDS)}")
    if per_clip < 1:
        raise ValueError(f"per_clip must be positive, got {per_clip}")
    rng = np.random.default_rng(seed)
    examples = []
    for i in range(len(clips)):
        pairs = clip_pairs(clips.digits[i], clips.directions[i])
        for _ in range(per_clip):
            kind = kinds[rng.integers(len(kinds))]
            examples.append(Example(i, kind, *answer_for(kind, pairs, rng)))
    return examples


def grammar_texts() -> list[str]:
    """Texts that use every word of the prompts and answers, so a tokenizer trained on them
    covers the whole grammar whatever clips were drawn."""
    questions = [*CAPTION_QUESTIONS, DIGITS_QUESTION, COUNT_QUESTION]
    questions += [DIRECTION_QUESTION.format(digit=d) for d in range(10)]
    questions += [MOVING_QUESTION.format(direction=name) for name in DIRECTIONS]
    captions = [caption_for([d], [k]) for d in range(10) for k in range(len(DIRECTIONS))]
    return [prompt_text(q) for q in questions] + captions + ["yes no and 1 2"]


def build_tokenizer():
    """The word-level tokenizer of the grammar plus the `<video>` placeholder, as a transformers
    `PreTrainedTokenizerFast`."""
    from tokenizers import AddedToken

    tok = train_word_tokenizer(grammar_texts())
    tok.add_special_tokens([AddedToken(VIDEO, special=True)])
    return tokenizer_from_backend(tok)


def tokenizer_from_backend(tok):
    fast = as_transformers(tok)
    fast.video_token, fast.video_token_id = VIDEO, tok.token_to_id(VIDEO)
    return fast


def tokenizer_from_json(text: str):
    """Inverse of `tokenizer.backend_tokenizer.to_str()` (how a checkpoint stores it)."""
    from tokenizers import Tokenizer

    return tokenizer_from_backend(Tokenizer.from_str(text))


def _words(tokenizer, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False)


def prompt_ids(tokenizer, question: str, num_visual_tokens: int, context: str | None = None) -> list[int]:
    """<bos>, M placeholders (or the words of a text `context` in their place), then the question
    up to `answer :`."""
    video = [tokenizer.video_token_id] * num_visual_tokens if context is None else _words(tokenizer, context)
    return [tokenizer.bos_token_id, *video, *_words(tokenizer, prompt_text(question))]


def answer_labels(input_ids: torch.Tensor, attention_mask: torch.Tensor, prompt_lengths: torch.Tensor) -> torch.Tensor:
    """Labels (B, L): the input ids on the answer (positions from `prompt_lengths`, padding
    excluded), IGNORE everywhere else. transformers shifts them by one inside the loss."""
    positions = torch.arange(input_ids.shape[1], device=input_ids.device)
    keep = (positions[None] >= prompt_lengths[:, None]) & attention_mask.bool()
    return torch.where(keep, input_ids, torch.full_like(input_ids, IGNORE))


def encode_examples(tokenizer, examples: list[Example], num_visual_tokens: int, max_len: int | None = None,
                    train_on: str = "answer", contexts: list[str] | None = None) -> dict[str, torch.Tensor]:
    """Right-padded input_ids, attention_mask, labels (B, L) and clip (B,) for training.

    train_on='answer' masks the prompt (instruction tuning); 'all' learns every real token but <bos>.
    contexts: a text per example in place of the video (text-only pretraining: with the clip's
    caption there, the LM learns to answer from what its context says, which is the job the
    visual tokens take over later).
    """
    if train_on not in ("answer", "all"):
        raise ValueError(f"train_on must be 'answer' or 'all', got {train_on!r}")
    if not examples:
        raise ValueError("no examples to encode")
    if contexts is not None and len(contexts) != len(examples):
        raise ValueError(f"{len(contexts)} contexts for {len(examples)} examples")
    contexts = contexts or [None] * len(examples)
    prompts = [prompt_ids(tokenizer, e.question, num_visual_tokens, c) for e, c in zip(examples, contexts)]
    rows = [p + _words(tokenizer, e.answer) + [tokenizer.eos_token_id] for p, e in zip(prompts, examples)]
    length = max(map(len, rows))
    if max_len is not None and length > max_len:
        raise ValueError(f"an example has {length} tokens, more than max_len={max_len}")
    length = max_len or length
    ids = torch.full((len(rows), length), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(rows), length), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    # 'all' still skips <bos>: nothing predicts the first token
    starts = torch.tensor([len(p) for p in prompts]) if train_on == "answer" else torch.ones(len(rows), dtype=torch.long)
    return {"input_ids": ids, "attention_mask": mask, "labels": answer_labels(ids, mask, starts),
            "clip": torch.tensor([e.clip for e in examples])}


def encode_prompts(tokenizer, questions: list[str], num_visual_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded prompt ids and attention mask (B, L) for generation: every row ends where its
    answer starts, so the next token of every row is generated at the same position."""
    rows = [prompt_ids(tokenizer, q, num_visual_tokens) for q in questions]
    length = max(map(len, rows))
    ids = torch.full((len(rows), length), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(rows), length), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, length - len(row):] = torch.tensor(row)
        mask[i, length - len(row):] = 1
    return ids, mask


__all__ = ["VIDEO", "IGNORE", "KINDS", "Example", "prompt_text", "clip_pairs", "canonical_caption", "caption_references",
           "answer_for", "instruction_examples", "grammar_texts", "build_tokenizer", "tokenizer_from_json", "prompt_ids",
           "answer_labels", "encode_examples", "encode_prompts", "BOS", "EOS", "PAD"]
