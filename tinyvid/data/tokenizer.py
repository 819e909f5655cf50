"""Tokenizers built with Hugging Face `tokenizers`: word-level for the caption grammar, BPE to compare.

Word level is all the course's captions and questions need (a closed vocabulary of ~30
words); real prompts need subwords, which `train_bpe_tokenizer` shows. Either tokenizer
becomes a transformers `PreTrainedTokenizerFast` with `as_transformers` (notebook 07).
"""

from __future__ import annotations

from typing import Iterable

import torch

SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<unk>")
PAD, BOS, EOS, UNK = SPECIAL_TOKENS


def train_word_tokenizer(texts: Iterable[str]):
    """A WordLevel tokenizer whose vocabulary is every word of `texts` (ids 0-3 are the specials)."""
    from tokenizers import models, trainers

    return _train(models.WordLevel(unk_token=UNK), trainers.WordLevelTrainer(special_tokens=list(SPECIAL_TOKENS)), texts)


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int = 200):
    """A byte-pair-encoding tokenizer of at most `vocab_size` tokens, trained on `texts`."""
    from tokenizers import models, trainers

    return _train(models.BPE(unk_token=UNK),
                  trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS)), texts)


def _train(model, trainer, texts: Iterable[str]):
    """One pipeline for both: lowercasing, punctuation split off words ("moving?" -> "moving", "?"),
    whitespace otherwise ("up-left" stays one word) — set before training so the trainer sees the
    same words — then <bos> … <eos> around every text, and padding."""
    from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers, processors

    tok = Tokenizer(model)
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.WhitespaceSplit(),
        pre_tokenizers.Split(Regex(r"[?.,!:;]"), behavior="isolated"),
    ])
    tok.train_from_iterator(list(texts), trainer)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A {EOS}", pair=f"{BOS} $A {EOS} $B {EOS}",
        special_tokens=[(t, tok.token_to_id(t)) for t in (BOS, EOS)],
    )
    tok.enable_padding(pad_id=tok.token_to_id(PAD), pad_token=PAD)
    return tok


def encode_batch(tok, texts: list[str], max_len: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Padded ids (B, L) and a bool mask (B, L), True on real tokens; longer texts are truncated."""
    if isinstance(texts, str):
        raise TypeError("encode_batch takes a list of texts, not a single string")
    encodings = tok.encode_batch(list(texts))
    length = max_len or max(len(e.ids) for e in encodings)
    ids = torch.full((len(encodings), length), tok.token_to_id(PAD), dtype=torch.long)
    mask = torch.zeros((len(encodings), length), dtype=torch.bool)
    for i, e in enumerate(encodings):
        n = min(len(e.ids), length)
        ids[i, :n] = torch.tensor(e.ids[:n])
        mask[i, :n] = torch.tensor(e.attention_mask[:n], dtype=torch.bool)
    return ids, mask


def as_transformers(tok):
    """The same tokenizer as a transformers `PreTrainedTokenizerFast` (for LlamaForCausalLM & co.)."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD, bos_token=BOS, eos_token=EOS, unk_token=UNK)
