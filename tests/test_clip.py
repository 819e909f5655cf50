import pytest
import torch

from tinyvid.data.moving_mnist import caption_for
from tinyvid.data.tokenizer import as_transformers, encode_batch, train_bpe_tokenizer, train_word_tokenizer
from tinyvid.models import load_model, save_model
from tinyvid.models.clip import (CLIPConfig, VideoEncoderConfig, VideoTextCLIP, clip_loss, clip_training_loss,
                                 retrieval_recall)
from tinyvid.models.text_encoder import TextEncoder, TextEncoderConfig
from tinyvid.train import TensorBatches, Trainer

CAPTIONS = [caption_for([d], [k]) for d in range(10) for k in range(8)] + ["which direction is the digit 7 moving?"]


def test_word_tokenizer_keeps_grammar_words_and_round_trips_through_transformers():
    tok = train_word_tokenizer(CAPTIONS)
    enc = tok.encode("The digit 3 is moving up-left?")
    assert enc.tokens == ["<bos>", "the", "digit", "3", "is", "moving", "up-left", "?", "<eos>"]
    assert "<unk>" not in tok.encode(CAPTIONS[5]).tokens
    hf = as_transformers(tok)
    assert hf(CAPTIONS[5])["input_ids"] == tok.encode(CAPTIONS[5]).ids
    assert hf.decode(hf(CAPTIONS[5])["input_ids"], skip_special_tokens=True) == CAPTIONS[5]
    ids, mask = encode_batch(tok, ["the digit 3", CAPTIONS[0]])
    assert ids.shape == mask.shape and mask[0].sum() == 5 and mask[1].all() and ids[0, 5:].eq(0).all()
    with pytest.raises(TypeError, match="list of texts"):
        encode_batch(tok, "the digit 3")


def test_bpe_splits_unseen_words_into_known_pieces():
    bpe = train_bpe_tokenizer(CAPTIONS * 5, vocab_size=80)
    word = train_word_tokenizer(CAPTIONS)
    assert "<unk>" in word.encode("the digits are moving").tokens
    pieces = bpe.encode("the digits are moving").tokens
    assert "digit" in pieces and "moving" in pieces  # 'digits' becomes 'digit' + a known piece


def test_text_encoder_pooling_ignores_padding():
    enc = TextEncoder(TextEncoderConfig(vocab_size=20, dim=32, depth=2, heads=4)).eval()
    ids = torch.tensor([[1, 5, 6, 2]])
    padded = torch.tensor([[1, 5, 6, 2, 0, 0]])
    a = enc(ids, ids != 0)[1]
    b = enc(padded, padded != 0)[1]
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="at least one real token"):
        enc(ids, torch.zeros_like(ids, dtype=torch.bool))


TINY = CLIPConfig(video=VideoEncoderConfig(frames=4, size=16, patch=8, dim=32, spatial_depth=1, temporal_depth=1),
                  text=TextEncoderConfig(vocab_size=40, dim=32, depth=1), embed_dim=16)


def test_clip_embeddings_are_normalised_and_video_shape_is_checked():
    model = VideoTextCLIP(TINY)
    v, t = model(torch.randn(3, 1, 4, 16, 16), torch.randint(4, 40, (3, 6)), torch.ones(3, 6, dtype=torch.bool))
    assert v.shape == t.shape == (3, 16)
    torch.testing.assert_close(v.norm(dim=-1), torch.ones(3))
    with pytest.raises(ValueError, match="expected videos"):
        model.encode_video(torch.randn(3, 1, 5, 16, 16))


def test_temporal_attention_sees_frame_order_and_mean_pooling_does_not():
    torch.manual_seed(0)
    video = torch.randn(2, 1, 4, 16, 16)
    reversed_ = video.flip(2)
    for temporal, order_matters in (("attention", True), ("mean", False)):
        cfg = CLIPConfig(video=VideoEncoderConfig(**{**TINY.video.__dict__, "temporal": temporal}), text=TINY.text, embed_dim=16)
        enc = VideoTextCLIP(cfg).eval()
        with torch.no_grad():
            same = torch.allclose(enc.encode_video(video), enc.encode_video(reversed_), atol=1e-5)
        assert same != order_matters, temporal


def test_clip_loss_is_symmetric_infonce_and_training_lowers_it():
    e = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    assert clip_loss(e, e, torch.tensor(4.6)) < clip_loss(e, e.roll(1, 0), torch.tensor(4.6))
    torch.manual_seed(0)
    n = 32
    labels = torch.arange(n) % 8
    videos = torch.randn(8, 1, 4, 16, 16)[labels] + 0.1 * torch.randn(n, 1, 4, 16, 16)
    ids = torch.stack([torch.tensor([1, 4 + int(l), 2]) for l in labels])
    mask = torch.ones_like(ids, dtype=torch.bool)
    model = VideoTextCLIP(TINY)
    loss_fn = clip_training_loss()
    before = float(loss_fn(model, (videos[:8], ids[:8], mask[:8]))[0].detach())
    Trainer(model, loss_fn, TensorBatches(videos, ids, mask, batch_size=8), steps=60, lr=2e-3, warmup=5,
            ema_decay=None, progress=False).fit()
    after = float(loss_fn(model, (videos[:8], ids[:8], mask[:8]))[0].detach())
    assert after < 0.5 * before


def test_retrieval_recall_counts_equal_captions_as_hits():
    sim = torch.tensor([[0.9, 0.1, 0.0], [0.8, 0.7, 0.1], [0.1, 0.2, 0.3]])
    relevant = torch.tensor([[True, False, False], [False, True, False], [False, False, True]])
    assert retrieval_recall(sim, relevant, ks=(1, 2)) == {1: pytest.approx(2 / 3), 2: 1.0}
    with pytest.raises(ValueError, match="differ"):
        retrieval_recall(sim, relevant[:2])


def test_clip_saves_and_loads(tmp_path):
    model = VideoTextCLIP(TINY).eval()
    loaded, _ = load_model(save_model(model, tmp_path / "clip.safetensors"))
    video = torch.randn(1, 1, 4, 16, 16)
    torch.testing.assert_close(loaded.encode_video(video), model.encode_video(video))


def test_joint_tubelet_encoder_sees_frame_order_and_checks_its_config():
    torch.manual_seed(0)
    cfg = CLIPConfig(video=VideoEncoderConfig(frames=8, size=16, patch=8, tubelet=4, dim=32, spatial_depth=1,
                                              temporal_depth=1, temporal="joint"), text=TINY.text, embed_dim=16)
    model = VideoTextCLIP(cfg).eval()
    video = torch.randn(2, 1, 8, 16, 16)
    with torch.no_grad():
        assert not torch.allclose(model.encode_video(video), model.encode_video(video.flip(2)), atol=1e-5)
    assert len(model.video_encoder.spatial) == 2 and len(model.video_encoder.temporal) == 0  # all blocks are joint
    with pytest.raises(ValueError, match="divide by tubelet"):
        VideoEncoderConfig(frames=8, size=16, patch=8, tubelet=3)


def test_clip_loss_with_repeated_captions_treats_them_as_positives():
    torch.manual_seed(0)
    v = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    v[1] = torch.nn.functional.normalize(v[0] + 0.1 * torch.randn(8), dim=0)  # two clips of one caption
    t = v.clone()
    t[1] = t[0]  # ...and the caption twice
    scale = torch.tensor(3.0)
    eye = torch.eye(4, dtype=torch.bool)
    torch.testing.assert_close(clip_loss(v, t, scale, eye), clip_loss(v, t, scale))  # identity = plain InfoNCE
    same = eye.clone()
    same[0, 1] = same[1, 0] = True

    def gradients(positives):  # d loss / d similarity(video i, caption j)
        sim = (v @ t.t()).requires_grad_(True)
        clip_loss(torch.eye(4), sim.t(), scale, positives).backward()  # eye @ sim = the similarities
        return sim.grad

    plain, twins = gradients(None), gradients(same)
    assert plain[0, 1] > 0 > plain[0, 0]  # plain InfoNCE pushes video 0 from its twin caption, pulls its own
    torch.testing.assert_close(twins[0, 1], twins[0, 0])  # with positives, the twin is treated as its own
