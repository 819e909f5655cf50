"""The text-to-video pipeline: prompts -> clips, seeded per prompt, saved and loaded as one bundle."""

import copy

import numpy as np
import pytest
import torch

from tinyvid.data.moving_mnist import caption_for
from tinyvid.data.sample_sets import snap_black
from tinyvid.data.tokenizer import train_word_tokenizer
from tinyvid.diffusion import Schedule, diffusion_loss
from tinyvid.diffusion.text_to_video import TextToVideo
from tinyvid.models import VAE, TextEncoder, TextEncoderConfig, UNet, UNetConfig, VAEConfig
from tinyvid.models.conditioning import TextConditioned, caption_tokens, null_caption
from tinyvid.models.motion import inflate
from tinyvid.train import TensorBatches, Trainer

CAPTIONS = [caption_for([d], [k]) for d in range(10) for k in range(8)]
TWO = "the digit 1 is moving up and the digit 2 is moving down"


@pytest.fixture(scope="module")
def pipe():
    torch.manual_seed(0)
    tok = train_word_tokenizer(CAPTIONS)
    text = TextEncoder(TextEncoderConfig(vocab_size=tok.get_vocab_size(), dim=32, depth=1, heads=4, max_len=24))
    vae = VAE(VAEConfig(image_size=64, pad_to=64, patch=2, channels=(8, 16, 16), latent_channels=4))
    unet = inflate(UNet(UNetConfig(in_channels=4, patch=1, channels=(16, 32), attention_levels=(0, 1), context_dim=32)))
    for p in unet.parameters():
        torch.nn.init.normal_(p, std=0.02)
    return TextToVideo(TextConditioned(unet, text), vae, tok, (4, 16, 8, 8), latent_scale=1.5, max_len=24)


def test_generate_writes_contract_clips_seeded_per_prompt(pipe):
    prompts = ["the digit 3 is moving left", TWO]
    v = pipe.generate(prompts, steps=3, seeds=[5, 6], progress=False)
    assert v.shape == (2, 16, 64, 64) and v.dtype == np.uint8
    assert np.array_equal(v, pipe.generate(prompts, steps=3, seeds=[5, 6], progress=False))
    alone = pipe.generate([TWO], steps=3, seeds=[6], progress=False)
    assert np.array_equal(v[1], alone[0])  # a clip depends on its seed, not on its batch
    assert not np.array_equal(v[1], pipe.generate([TWO], steps=3, seeds=[7], progress=False)[0])


def test_bundle_round_trip_gives_the_same_clips(pipe, tmp_path):
    path = pipe.save(tmp_path / "t2v.safetensors")
    again = TextToVideo.load(path)
    a = pipe.generate([TWO], steps=2, seeds=[1], progress=False)
    assert np.array_equal(a, again.generate([TWO], steps=2, seeds=[1], progress=False))
    assert again.sampler == pipe.sampler and again.latent_shape == (4, 16, 8, 8)


def test_an_edit_keeps_the_clip_at_strength_0_and_generates_at_strength_1(pipe):
    latents = torch.randn(2, *pipe.latent_shape)
    prompts = ["the digit 3 is moving left", TWO]
    torch.testing.assert_close(pipe.edit_latents(latents, prompts, 0.0, steps=4), latents)
    edited = pipe.edit_latents(latents, prompts, 0.5, steps=4, seeds=[5, 6])
    assert edited.shape == latents.shape and not torch.allclose(edited, latents)
    torch.testing.assert_close(edited, pipe.edit_latents(latents, prompts, 0.5, steps=4, seeds=[5, 6]))
    with pytest.raises(ValueError, match="latents must be"):
        pipe.edit_latents(latents[:1], prompts, 0.5)


def test_bad_prompts_and_seeds_are_clear_errors(pipe):
    with pytest.raises(ValueError, match="non-empty list"):
        pipe.generate("the digit 3 is moving left", progress=False)
    with pytest.raises(ValueError, match="seeds for"):
        pipe.generate([TWO], seeds=[1, 2], progress=False)
    with pytest.raises(ValueError, match="max_len"):
        caption_tokens(pipe.tokenizer, [" and ".join([TWO] * 3)], max_len=24)


def test_caption_dropout_swaps_in_the_empty_caption():
    tok = train_word_tokenizer(CAPTIONS)
    ids, mask = caption_tokens(tok, CAPTIONS[:8], max_len=16)
    null_ids, null_mask = null_caption(tok, 16)
    seen = {}

    def model(x, t, i, m):
        seen["ids"], seen["mask"] = i, m
        return torch.zeros_like(x)

    loss = diffusion_loss(Schedule(), "v_prediction", label_dropout=1.0, null_label=(null_ids, null_mask))
    loss(model, (torch.randn(8, 4, 2, 8, 8), ids, mask))
    assert (seen["ids"] == null_ids).all() and (seen["mask"] == null_mask).all()
    assert null_mask.sum() == 2  # <bos> <eos>
    loss = diffusion_loss(Schedule(), "v_prediction", label_dropout=0.0, null_label=(null_ids, null_mask))
    loss(model, (torch.randn(8, 4, 2, 8, 8), ids, mask))
    assert torch.equal(seen["ids"], ids)


def test_training_a_text_conditioned_video_unet_lowers_the_loss():
    torch.manual_seed(0)
    tok = train_word_tokenizer(CAPTIONS)
    text = TextEncoder(TextEncoderConfig(vocab_size=tok.get_vocab_size(), dim=16, depth=1, heads=2, max_len=16))
    unet = inflate(UNet(UNetConfig(in_channels=4, patch=1, channels=(8, 16), attention_levels=(1,), context_dim=16)))
    model = TextConditioned(unet, text)
    ids, mask = caption_tokens(tok, CAPTIONS[:16], max_len=16)
    x0 = torch.randn(4, 4, 2, 8, 8).repeat(4, 1, 1, 1, 1)  # four clips, each shown with four captions
    loss_fn = diffusion_loss(Schedule(), "epsilon", label_dropout=0.1, null_label=null_caption(tok, 16))

    @torch.no_grad()
    def probe():
        return float(torch.stack([loss_fn(model, (x0, ids, mask)) for _ in range(16)]).mean())

    torch.manual_seed(1)
    before = probe()
    Trainer(model, loss_fn, TensorBatches(x0, ids, mask, batch_size=8), steps=150, lr=1e-2, warmup=5,
            ema_decay=None, progress=False).fit()
    torch.manual_seed(1)
    assert probe() < 0.7 * before
    assert all(not p.requires_grad for p in model.text_encoder.parameters())


def test_sample_t2v_cli_writes_videos_and_captions(pipe, tmp_path):
    from tinyvid.cli import main

    bundle = pipe.save(tmp_path / "t2v.safetensors")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("the digit 3 is moving left\n\n" + TWO + "\n")
    out = tmp_path / "samples.npz"
    assert main(["sample", "t2v", "--checkpoint", str(bundle), "--prompts", str(prompts), "--out", str(out),
                 "--steps", "2", "--seed", "5"]) == 0
    z = np.load(out, allow_pickle=False)
    assert z["videos"].shape == (2, 16, 64, 64) and z["videos"].dtype == np.uint8
    assert list(z["captions"]) == ["the digit 3 is moving left", TWO]
    drawn = pipe.generate(list(z["captions"]), steps=2, seeds=[5, 6], progress=False)
    assert np.array_equal(z["videos"], snap_black(drawn))  # the near-black background written as 0
    assert main(["sample", "t2v", "--checkpoint", str(bundle), "--prompts", str(prompts), "--out", str(out),
                 "--steps", "2", "--seed", "5", "--black-level", "0"]) == 0
    assert np.array_equal(np.load(out)["videos"], drawn)  # bit for bit
    with pytest.raises(SystemExit, match="black-level"):
        main(["sample", "t2v", "--checkpoint", str(bundle), "--prompts", str(prompts), "--out", str(out),
              "--black-level", "300"])
    prompts.write_text("\n \n")
    with pytest.raises(SystemExit, match="no prompts"):
        main(["sample", "t2v", "--checkpoint", str(bundle), "--prompts", str(prompts), "--out", str(out)])


def test_sample_t2v_cli_uses_the_bundles_guidance_unless_told(pipe, tmp_path):
    from tinyvid.cli import main

    stored = copy.copy(pipe)  # the shared fixture keeps its own sampler settings
    stored.sampler = {**pipe.sampler, "defaults": {"guidance": 6.0}}  # what notebook 06 stores after its guidance sweep
    bundle = stored.save(tmp_path / "t2v.safetensors")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text(TWO + "\n")
    runs = {}
    for name, extra in [("default", []), ("told", ["--guidance", "1.5"])]:
        out = tmp_path / f"{name}.npz"
        assert main(["sample", "t2v", "--checkpoint", str(bundle), "--prompts", str(prompts), "--out", str(out),
                     "--steps", "2", "--black-level", "0", *extra]) == 0
        runs[name] = np.load(out)["videos"]
    assert np.array_equal(runs["default"], pipe.generate([TWO], steps=2, guidance=6.0, seeds=[0], progress=False))
    assert np.array_equal(runs["told"], pipe.generate([TWO], steps=2, guidance=1.5, seeds=[0], progress=False))
    assert not np.array_equal(runs["default"], runs["told"])


def test_diffusers_motion_unet_starts_as_its_image_model_only_once_proj_out_is_zeroed():
    from tinyvid.models.diffusers_motion import (DiffusersImageUNet, inflate_diffusers, per_frame_gap,
                                                 tiny_unet2d_condition, trainable_parameters, zero_motion_proj_out)

    torch.manual_seed(0)
    image = DiffusersImageUNet(tiny_unet2d_condition((16, 32), context_dim=24))
    video = inflate_diffusers(image, frames=4)
    x, t, ctx = torch.randn(2, 4, 4, 8, 8), torch.tensor([10, 500]), torch.randn(2, 5, 24)
    assert video(x, t, context=ctx).shape == x.shape
    assert per_frame_gap(video, image, x, t, ctx) > 1e-2  # diffusers' random proj_out: not the image model
    assert zero_motion_proj_out(video) > 0
    assert per_frame_gap(video, image, x, t, ctx) < 1e-5
    spatial = sum(p.numel() for p in image.parameters())
    assert 0 < trainable_parameters(video) < sum(p.numel() for p in video.parameters()) - spatial + 1
