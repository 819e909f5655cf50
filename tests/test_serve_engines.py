"""The engine interfaces and the tiny engines behind them: shapes, seeds, batch invariance, save/load."""

import numpy as np
import pytest

from tinyvid.data.moving_mnist import parse_caption
from tinyvid.serve.engines import (CAPTIONERS, GENERATORS, VideoCaptioner, VideoGenerator, answer_from_caption,
                                   grammar_captions, load_captioner, load_generator, make_captioner, make_generator,
                                   save_engine, tiny_captioner, tiny_generator)

PROMPTS = ["the digit 3 is moving left", "the digit 7 is moving up and the digit 1 is moving down", "a cat"]


@pytest.fixture(scope="module")
def generator():
    return tiny_generator()


def test_generator_protocol_shapes_and_seeds(generator):
    assert isinstance(generator, VideoGenerator)
    v = generator.generate(PROMPTS, steps=2, guidance=2.0, seeds=[0, 1, 2], frames=5)
    assert v.shape == (3, 5, 64, 64) and v.dtype == np.uint8
    again = generator.generate(PROMPTS[:1], 2, 2.0, [0], 5)
    np.testing.assert_array_equal(again[0], v[0])  # a seed fixes the video
    other_seed = generator.generate(PROMPTS[:1], 2, 2.0, [5], 5)
    other_prompt = generator.generate(PROMPTS[1:2], 2, 2.0, [0], 5)
    assert (other_seed[0] != v[0]).mean() > 0.1
    assert (other_prompt[0] != v[0]).any(), "the prompt must reach the pixels"


def test_a_video_does_not_depend_on_its_batch(generator):
    batch = generator.generate(PROMPTS, 3, 3.0, [4, 5, 6], 4)
    for i, (p, s) in enumerate(zip(PROMPTS, [4, 5, 6])):
        alone = generator.generate([p], 3, 3.0, [s], 4)[0]
        assert np.abs(alone.astype(int) - batch[i]).max() <= 1  # float round-off at most one gray level


def test_generator_rejects_mismatched_inputs(generator):
    with pytest.raises(ValueError, match="2 prompts but 1 seeds"):
        generator.generate(PROMPTS[:2], 2, 1.0, [0], 4)
    with pytest.raises(ValueError, match="at least one"):
        generator.generate([], 2, 1.0, [], 4)


def test_captioner_answers_from_its_caption():
    captioner = tiny_captioner()
    assert isinstance(captioner, VideoCaptioner)
    videos = np.random.default_rng(0).integers(0, 255, (2, 11, 64, 64), dtype=np.uint8)  # any T works
    captions = captioner.caption(videos)
    assert len(captions) == 2 and all(parse_caption(c) for c in captions)
    answers = captioner.answer(videos, ["which digit is it?", "which direction is it moving?"])
    (digit, direction), = parse_caption(captions[0])
    assert answers[0] == str(digit)
    with pytest.raises(ValueError, match="2 videos but 1 questions"):
        captioner.answer(videos, ["why?"])
    with pytest.raises(ValueError, match="uint8 videos"):
        captioner.caption(videos.astype(np.float32))


def test_answer_from_caption():
    c = "the digit 3 is moving left and the digit 7 is moving up-left"
    assert answer_from_caption(c, "How many digits are there?") == "2"
    assert answer_from_caption(c, "Which digits are moving?") == "3 and 7"
    assert answer_from_caption(c, "Where are they going?") == "left and up-left"
    assert answer_from_caption(c, "describe the clip") == c
    assert len(grammar_captions()) == 80 and len(grammar_captions(two_digits=True)) == 80 + 80 * 80


def test_save_and_load_engines(tmp_path, generator):
    path = save_engine(generator, tmp_path / "t2v.safetensors")
    loaded = load_generator(path)
    np.testing.assert_array_equal(loaded.generate(PROMPTS[:1], 2, 2.0, [3], 3), generator.generate(PROMPTS[:1], 2, 2.0, [3], 3))
    np.testing.assert_array_equal(make_generator(str(path)).generate(PROMPTS[:1], 2, 2.0, [3], 3),
                                  generator.generate(PROMPTS[:1], 2, 2.0, [3], 3))
    captioner = tiny_captioner(seed=1)
    cpath = save_engine(captioner, tmp_path / "v2t.safetensors")
    videos = np.random.default_rng(1).integers(0, 255, (3, 8, 64, 64), dtype=np.uint8)
    assert load_captioner(cpath).caption(videos) == captioner.caption(videos)
    with pytest.raises(ValueError, match="does not generate videos"):
        load_generator(cpath)
    with pytest.raises(FileNotFoundError):
        load_generator(tmp_path / "missing.safetensors")


def test_registry_by_name():
    assert "tiny" in GENERATORS and "tiny" in CAPTIONERS
    assert isinstance(make_captioner("tiny"), VideoCaptioner)
    with pytest.raises(ValueError, match="unknown generator 'nope'"):
        make_generator("nope")


def test_course_checkpoints_serve_through_the_adapters(tmp_path):
    """A text-to-video bundle and a VideoLLaVA checkpoint (what notebooks 05-07 commit) load by path as
    a generator and a captioner; the registry names the committed ones."""
    import torch

    from tinyvid.data.instructions import build_tokenizer
    from tinyvid.data.moving_mnist import caption_for, generate
    from tinyvid.data.tokenizer import train_word_tokenizer
    from tinyvid.diffusion.text_to_video import TextToVideo
    from tinyvid.models import VAE, TextEncoder, TextEncoderConfig, UNet, UNetConfig, VAEConfig
    from tinyvid.models.conditioning import TextConditioned
    from tinyvid.models.motion import inflate
    from tinyvid.models.vlm import VideoLLaVA, VLMConfig, save_captioner
    from tinyvid.serve.engines import BundleGenerator, LLaVACaptioner

    torch.manual_seed(0)
    tok = train_word_tokenizer([caption_for([d], [k]) for d in range(10) for k in range(8)])
    text = TextEncoder(TextEncoderConfig(vocab_size=tok.get_vocab_size(), dim=16, depth=1, heads=2, max_len=24))
    vae = VAE(VAEConfig(image_size=64, pad_to=64, patch=4, channels=(8, 8), latent_channels=4))
    unet = inflate(UNet(UNetConfig(in_channels=4, patch=1, channels=(8, 16), attention_levels=(1,), context_dim=16)))
    bundle = TextToVideo(TextConditioned(unet, text), vae, tok, (4, 16, 8, 8), 1.0, 24).save(tmp_path / "t2v.safetensors")
    generator = make_generator(str(bundle))
    assert isinstance(generator, BundleGenerator) and isinstance(generator, VideoGenerator)
    videos = generator.generate(["the digit 3 is moving left"] * 2, steps=2, guidance=2.0, seeds=[1, 2], frames=8)
    assert videos.shape == (2, 8, 64, 64) and videos.dtype == np.uint8
    with pytest.raises(ValueError, match="draws 16 frames; 32 were asked"):
        generator.generate(["the digit 3 is moving left"], steps=1, guidance=1.0, seeds=[0], frames=32)

    vtok = build_tokenizer()
    vlm = VideoLLaVA(VLMConfig.for_tokenizer(
        vtok, vision=dict(frames=2, patch=16, dim=16, depth=1, heads=2, aggregator="mean"),
        lm=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2)))
    path = save_captioner(vlm.eval(), vtok, tmp_path / "vlm.safetensors")
    captioner = make_captioner(str(path))
    assert isinstance(captioner, LLaVACaptioner) and isinstance(captioner, VideoCaptioner)
    clips = generate(2, "test", seed=0).videos
    assert len(captioner.caption(clips)) == 2
    assert len(captioner.answer(clips, ["which digits are in the video?"] * 2)) == 2
    assert {"dit", "animatediff"} <= set(GENERATORS) and "video_llava" in CAPTIONERS
