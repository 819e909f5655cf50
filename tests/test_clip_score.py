"""CLIPScore with the course's CLIP: the formula, the scorer against the model's towers, checkpoints, distractor retrieval."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tinyvid.data.moving_mnist import caption_for, parse_caption
from tinyvid.data.tokenizer import encode_batch, train_word_tokenizer
from tinyvid.eval.clip_score import (CLIPScorer, caption_retrieval, clip_score_from_embeddings, distractor_captions,
                                     load_clip_scorer, retrieval_accuracy)
from tinyvid.models import save_model
from tinyvid.models.clip import CLIPConfig, VideoEncoderConfig, VideoTextCLIP
from tinyvid.models.text_encoder import TextEncoder, TextEncoderConfig

TOK = train_word_tokenizer([caption_for([d], [k]) for d in range(10) for k in range(8)] + ["and"])
TINY = CLIPConfig(video=VideoEncoderConfig(frames=4, size=16, patch=8, dim=32, spatial_depth=1, temporal_depth=1),
                  text=TextEncoderConfig(vocab_size=TOK.get_vocab_size(), dim=32, depth=1, max_len=16), embed_dim=16)
CAPTIONS = ["the digit 3 is moving left", "the digit 7 is moving up and the digit 1 is moving down-right",
            "the digit 0 is moving right", "the digit 5 is moving up-left and the digit 5 is moving down"]


def test_clip_score_is_w_times_the_clipped_cosine():
    v, t = torch.randn(64, 8), torch.randn(64, 8)
    cos = (v * t).sum(1) / (v.norm(dim=1) * t.norm(dim=1))
    torch.testing.assert_close(clip_score_from_embeddings(v, t), 2.5 * cos.clamp(min=0))
    torch.testing.assert_close(clip_score_from_embeddings(3 * v, 0.5 * t, w=1.0), cos.clamp(min=0))  # scale-free
    assert (clip_score_from_embeddings(v, -v) == 0).all() and torch.allclose(clip_score_from_embeddings(v, v), torch.full((64,), 2.5))
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        clip_score_from_embeddings(v, t[:3])


def test_scorer_equals_the_model_towers_in_any_batch_size():
    torch.manual_seed(0)
    model = VideoTextCLIP(TINY).eval()
    videos = torch.randint(0, 256, (4, 4, 16, 16), dtype=torch.uint8)
    x = videos.float().div(127.5).sub(1).unsqueeze(1)
    ids, mask = encode_batch(TOK, CAPTIONS, max_len=16)
    with torch.no_grad():
        expected = (model.encode_video(x) * model.encode_text(ids, mask)).sum(1)
    for batch_size in (3, 128):
        scorer = CLIPScorer(model, TOK, max_len=16, batch_size=batch_size)
        torch.testing.assert_close(scorer.cosines(videos.numpy(), CAPTIONS), expected, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(scorer.cosines(x, CAPTIONS), expected, atol=1e-5, rtol=1e-5)  # float layout too
    torch.testing.assert_close(scorer.scores(videos, CAPTIONS), 2.5 * expected.clamp(min=0), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="4 videos but 3 captions"):
        scorer.cosines(videos, CAPTIONS[:3])
    with pytest.raises(TypeError, match="list of captions"):
        scorer.embed_captions(CAPTIONS[0])


def test_load_clip_scorer_rebuilds_model_and_tokenizer_from_the_checkpoint(tmp_path):
    torch.manual_seed(1)
    model = VideoTextCLIP(TINY).eval()
    path = save_model(model, tmp_path / "clip.safetensors", tokenizer=TOK.to_str(), max_len=12)
    scorer = load_clip_scorer(path)
    assert scorer.max_len == 12 and scorer.tokenizer.get_vocab() == TOK.get_vocab()
    videos = torch.randint(0, 256, (4, 4, 16, 16), dtype=torch.uint8)
    torch.testing.assert_close(scorer.cosines(videos, CAPTIONS), CLIPScorer(model, TOK, 12).cosines(videos, CAPTIONS))
    other = save_model(TextEncoder(TextEncoderConfig(vocab_size=8, dim=16, depth=1)), tmp_path / "text.safetensors")
    with pytest.raises(ValueError, match="not a CLIP checkpoint"):
        load_clip_scorer(other)


def test_distractors_differ_in_exactly_the_asked_way():
    one, two = CAPTIONS[0], CAPTIONS[1]
    directions = distractor_captions(one, "direction")
    assert len(directions) == 7 and all(parse_caption(d)[0][0] == 3 for d in directions) and one not in directions
    assert len(distractor_captions(two, "direction")) == 14 and len(distractor_captions(two, "digit")) == 18
    assert distractor_captions(two, "swap") == ["the digit 7 is moving down-right and the digit 1 is moving up"]
    assert distractor_captions(one, "swap") == []
    # two 5s moving two ways: swapping their directions describes the same clip, so it is no distractor
    assert distractor_captions(CAPTIONS[3], "swap") == []
    # "3 left and 3 up" with the second 3 turned left would be the same pair twice, not the truth: kept
    assert "the digit 3 is moving left and the digit 3 is moving left" in distractor_captions(
        "the digit 3 is moving left and the digit 3 is moving up", "direction")
    with pytest.raises(ValueError, match="unknown distractor kind"):
        distractor_captions(one, "colour")


class OracleCLIP(nn.Module):
    """Text: the sum of fixed random vectors, one per (position, token), nearly orthogonal in 256-d, so
    the cosine of two captions is about the share of positions where they agree. Video: its embedding
    is written in the first frame's pixels, so a test can make a clip 'look like' any caption."""

    def __init__(self, vocab: int, dim: int = 256, length: int = 16):
        super().__init__()
        self.table = nn.Parameter(torch.randn(length, vocab, dim), requires_grad=False)
        self.dim = dim

    def encode_text(self, ids, mask):
        emb = self.table[torch.arange(ids.shape[1])[None], ids] * mask[..., None]
        return F.normalize(emb.sum(1), dim=-1)

    def encode_video(self, video):
        return F.normalize(video[:, 0, 0].flatten(1)[:, : self.dim], dim=-1)


def test_retrieval_wins_only_where_the_video_matches_its_own_caption():
    torch.manual_seed(2)
    scorer = CLIPScorer(OracleCLIP(TOK.get_vocab_size()), TOK, max_len=16)
    shown = [CAPTIONS[0], "the digit 3 is moving right", CAPTIONS[1], "the digit 7 is moving down-right and the digit 1 is moving up"]
    videos = torch.zeros(4, 1, 2, 16, 16)
    videos[:, 0, 0] = scorer.embed_captions(shown).reshape(4, 16, 16)  # each clip looks like its `shown` caption
    prompts = [CAPTIONS[0], CAPTIONS[0], CAPTIONS[1], CAPTIONS[1]]  # clips 1 and 3 got it wrong
    # clip 3 (directions swapped) loses to the one-direction distractors too: each shares more words with it
    np.testing.assert_array_equal(caption_retrieval(scorer, videos, prompts, "direction"), [1, 0, 1, 0])
    np.testing.assert_array_equal(caption_retrieval(scorer, videos, prompts, "swap"), [np.nan, np.nan, 1, 0])
    assert retrieval_accuracy(caption_retrieval(scorer, videos, prompts, "swap")) == 0.5
    embedded = caption_retrieval(scorer, None, prompts, "direction", video_emb=scorer.embed_videos(videos))
    np.testing.assert_array_equal(embedded, [1, 0, 1, 0])
    with pytest.raises(ValueError, match="videos or video_emb"):
        caption_retrieval(scorer, videos, prompts, "direction", video_emb=scorer.embed_videos(videos))
    with pytest.raises(ValueError, match="no clip had a distractor"):
        retrieval_accuracy(caption_retrieval(scorer, videos[:2], prompts[:2], "swap"))
