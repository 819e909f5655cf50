"""The video-language model: placement parity with transformers' Video-LLaVA, aggregators, decoding, stages, LoRA, files."""

import pytest
import torch
from torch import nn

from tinyvid.data.instructions import build_tokenizer, encode_examples, encode_prompts, instruction_examples
from tinyvid.data.moving_mnist import generate
from tinyvid.models.vision import AGGREGATORS, VisionConfig
from tinyvid.models.vlm import (
    VideoLLaVA,
    VLMConfig,
    add_lora,
    answer,
    count_trainable,
    load_captioner,
    merge_lora,
    place_visual_tokens,
    save_captioner,
    set_trainable,
    vlm_loss,
)

TINY_LM = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4)


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer()


def tiny_model(tok, **vision):
    torch.manual_seed(0)
    vision = dict(dict(frames=4, size=64, patch=16, dim=32, depth=1, heads=4, queries=6), **vision)
    return VideoLLaVA(VLMConfig.for_tokenizer(tok, vision=vision, lm=TINY_LM))


def videos(n=3, seed=0, frames=16):
    return torch.rand(n, 1, frames, 64, 64, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_place_visual_tokens_fills_each_row_in_order():
    embeds = torch.zeros(2, 5, 3)
    ids = torch.tensor([[1, 9, 9, 4, 0], [1, 4, 9, 9, 4]])
    visual = torch.arange(12.0).reshape(2, 2, 3) + 1
    out = place_visual_tokens(embeds, ids, visual, video_token_id=9)
    torch.testing.assert_close(out[0, 1:3], visual[0])
    torch.testing.assert_close(out[1, 2:4], visual[1])
    assert (out[ids != 9] == 0).all()
    with pytest.raises(ValueError, match="placeholders"):
        place_visual_tokens(embeds, ids, visual[:, :1], video_token_id=9)


def test_same_logits_as_transformers_video_llava(tok):
    """tinyvid's placement + projector + LM equal VideoLlavaForConditionalGeneration on the same pixels,
    when tinyvid's vision encoder is swapped for the same CLIP tower (the `concat` aggregator: every
    frame's tokens, as Video-LLaVA feeds them)."""
    from transformers import CLIPVisionConfig, LlamaConfig, VideoLlavaConfig, VideoLlavaForConditionalGeneration

    frames, size = 3, 32
    torch.manual_seed(0)
    vision_cfg = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                                  image_size=size, patch_size=16, num_channels=1, projection_dim=32)
    text_cfg = LlamaConfig(vocab_size=len(tok), **TINY_LM, max_position_embeddings=128, tie_word_embeddings=False,
                           pad_token_id=tok.pad_token_id)
    hf = VideoLlavaForConditionalGeneration(VideoLlavaConfig(
        vision_config=vision_cfg, text_config=text_cfg, video_token_index=tok.video_token_id,
        image_token_index=tok.unk_token_id, vision_feature_layer=-2)).eval()
    ours = VideoLLaVA(VLMConfig.for_tokenizer(tok, vision=dict(frames=frames, size=size, patch=16, dim=32, heads=4,
                                                               aggregator="concat", feature_norm="none"),
                                              lm=dict(TINY_LM, max_position_embeddings=128))).eval()

    class CLIPFrames(nn.Module):  # tinyvid's (B, T, C, H, W) frames -> (B, T, N + 1, D), Video-LLaVA's feature layer
        def forward(self, x):
            hidden = hf.model.video_tower(x.flatten(0, 1), output_hidden_states=True).hidden_states
            return hidden[hf.config.vision_feature_layer].unflatten(0, x.shape[:2])

    ours.vision = CLIPFrames()
    hf_proj = hf.model.multi_modal_projector
    ours.projector.load_state_dict({"0.weight": hf_proj.linear_1.weight, "0.bias": hf_proj.linear_1.bias,
                                    "2.weight": hf_proj.linear_2.weight, "2.bias": hf_proj.linear_2.bias})
    ours.lm.model.load_state_dict(hf.model.language_model.state_dict())
    ours.lm.lm_head.load_state_dict(hf.lm_head.state_dict())

    video = videos(2, frames=frames)[..., :size, :size]
    tokens_per_clip = frames * (vision_cfg.image_size // vision_cfg.patch_size) ** 2 + frames  # patches + CLS
    ids, mask = encode_prompts(tok, ["describe the video.", "which digits are in the video?"], tokens_per_clip)
    pixels = ours.sample_frames(video)  # (B, T, C, H, W), what tinyvid's encoder receives
    with torch.no_grad():
        expected = hf(input_ids=ids, attention_mask=mask, pixel_values_videos=pixels).logits
        actual = ours(ids, mask, video=video).logits
    real = mask.bool()
    torch.testing.assert_close(actual[real], expected[real], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("aggregator", AGGREGATORS)
def test_aggregators_give_the_configured_number_of_tokens(tok, aggregator):
    model = tiny_model(tok, aggregator=aggregator).eval()
    features = model.video_features(videos(2))
    assert features.shape == (2, model.config.vision.num_tokens, 32)
    assert model.config.vision.num_tokens == {"qformer": 6, "concat": 4 * 16}.get(aggregator, 16)


def test_only_mean_pooling_is_blind_to_the_order_of_frames(tok):
    video = videos(2, frames=4)  # as many frames as the model samples: it sees every frame, in order
    for aggregator in ("mean", "temporal", "qformer"):
        model = tiny_model(tok, aggregator=aggregator).eval()
        forward, backward = model.video_features(video), model.video_features(video.flip(2))
        same = torch.allclose(forward, backward, atol=1e-5)
        assert same == (aggregator == "mean"), aggregator


def test_bad_inputs_raise(tok):
    model = tiny_model(tok)
    with pytest.raises(ValueError, match="expected videos"):
        model.video_features(torch.zeros(2, 16, 64, 64))
    ids, mask = encode_prompts(tok, ["describe the video."], model.num_visual_tokens)
    with pytest.raises(ValueError, match="pass video= or features="):
        model(ids, mask)
    with pytest.raises(ValueError, match="aggregator"):
        VisionConfig(aggregator="max")
    with pytest.raises(ValueError, match="patch"):
        VisionConfig(size=64, patch=12)


def test_greedy_with_kv_cache_equals_greedy_without(tok):
    model = tiny_model(tok).eval()
    clips = videos(3)
    ids, mask = encode_prompts(tok, ["describe the video.", "how many digits are there?", "which digits are in the video?"],
                               model.num_visual_tokens)
    cached = model.generate(ids, mask, video=clips, max_new_tokens=8, use_cache=True)
    uncached = model.generate(ids, mask, video=clips, max_new_tokens=8, use_cache=False)
    assert cached.shape[1] == 8  # an untrained model does not stop early
    torch.testing.assert_close(cached, uncached)


def test_batched_generation_equals_one_clip_at_a_time(tok):
    """Left padding: prompts of different lengths in one batch decode as they do alone."""
    model = tiny_model(tok).eval()
    clips = (videos(3) + 1).mul(127.5).to(torch.uint8).squeeze(1).numpy()
    questions = ["describe the video.", "is any digit moving up-left?", "how many digits are there?"]
    for beams in (1, 3):
        batched = answer(model, tok, clips, questions, batch_size=3, num_beams=beams, max_new_tokens=6)
        alone = [answer(model, tok, clips[i:i + 1], questions[i], num_beams=beams, max_new_tokens=6)[0] for i in range(3)]
        assert batched == alone
        assert len(batched) == 3 and all(isinstance(t, str) for t in batched)


def batch_of(tok, model, n=32, kinds="caption"):
    clips = generate(n, "train", seed=0, frames=16)
    enc = encode_examples(tok, instruction_examples(clips, kinds=kinds), model.num_visual_tokens)
    return torch.as_tensor(clips.videos), (enc["clip"], enc["input_ids"], enc["attention_mask"], enc["labels"])


def test_training_lowers_the_loss(tok):
    from tinyvid.train import TensorBatches, Trainer

    model = tiny_model(tok)
    bank, batch = batch_of(tok, model)
    loss_fn = vlm_loss(videos=bank)
    with torch.no_grad():
        before = float(loss_fn(model.eval(), batch)[0])
    Trainer(model, loss_fn, TensorBatches(*batch, batch_size=16, seed=0), steps=30, lr=3e-3, warmup=3,
            ema_decay=None, progress=False, device="cpu").fit()
    with torch.no_grad():
        after = float(loss_fn(model.eval(), batch)[0])
    assert after < 0.6 * before


def test_stages_train_what_they_name_and_frozen_parts_stay_in_eval_mode(tok):
    model = tiny_model(tok)
    n_projector = sum(p.numel() for p in model.projector.parameters())
    assert set_trainable(model, "projector") == n_projector
    model.train()
    assert not model.aggregator.norm.training and model.projector.training
    bank, batch = batch_of(tok, model, n=8)
    loss, _ = vlm_loss(videos=bank)(model, batch)
    loss.backward()
    assert all(p.grad is None for p in model.lm.parameters())
    assert all(p.grad is not None for p in model.projector.parameters())
    with pytest.raises(ValueError, match="unknown parts"):
        set_trainable(model, ["decoder"])


def test_lora_on_q_and_v_counts_and_merges(tok):
    model = tiny_model(tok).eval()
    set_trainable(model, [])
    r = 4
    trainable = add_lora(model, r=r, alpha=8)
    hidden, layers = TINY_LM["hidden_size"], TINY_LM["num_hidden_layers"]
    assert trainable == layers * 2 * r * (hidden + hidden)  # A (r x in) + B (out x r) on q_proj and v_proj
    assert count_trainable(model) == trainable
    # make the adapters non-trivial (B starts at zero), then merging must keep the outputs
    for name, p in model.lm.named_parameters():
        if "lora_B" in name:
            nn.init.normal_(p, std=0.1)
    clips = videos(2)
    ids, mask = encode_prompts(tok, ["describe the video.", "how many digits are there?"], model.num_visual_tokens)
    with torch.no_grad():
        before = model(ids, mask, video=clips).logits
        merge_lora(model)
        after = model(ids, mask, video=clips).logits
    assert type(model.lm).__name__ == "LlamaForCausalLM"
    torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-5)


def test_save_and_load_keep_the_model_and_tokenizer(tok, tmp_path):
    model = tiny_model(tok, aggregator="temporal").eval()
    path = save_captioner(model, tok, tmp_path / "captioner.safetensors", note="test")
    loaded, tok2, extra = load_captioner(path)
    assert extra == {"note": "test"}
    assert tok2.get_vocab() == tok.get_vocab() and tok2.video_token_id == tok.video_token_id
    clips = videos(2)
    ids, mask = encode_prompts(tok, ["describe the video."] * 2, model.num_visual_tokens)
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids, mask, video=clips).logits, model(ids, mask, video=clips).logits)


def test_the_cpu_reference_model_fits_a_10_mb_checkpoint(tok):
    """The cpu run's captioner is committed under book/results/ (float32, at most 10 MB)."""
    from tinyvid.course.configs import CONFIGS

    for profile in ("smoke", "cpu"):
        cfg = CONFIGS["07_video_llava"][profile]
        model = VideoLLaVA(VLMConfig.for_tokenizer(tok, vision=cfg["vision"], lm=cfg["lm"]))
        megabytes = sum(p.numel() for p in model.parameters()) * 4 / 1e6
        assert megabytes <= 10, (profile, megabytes)


def test_motion_input_is_the_frame_and_its_change_to_the_next_frame(tok):
    model = tiny_model(tok, motion=True)
    clip = videos(2)
    frames = model.sample_frames(clip)  # (B, T', 2, H, W)
    assert frames.shape == (2, 4, 2, 64, 64)
    idx = [2, 6, 10, 14]  # the uniform sampler's frames of 16
    assert torch.equal(frames[:, :, 0], clip[:, 0, idx] + 1)
    assert torch.allclose(frames[:, :, 1], clip[:, 0, [i + 1 for i in idx]] - clip[:, 0, idx])
    assert model.video_features(clip).shape == (2, model.num_visual_tokens, 32)


def test_motion_gap_takes_the_change_to_a_later_frame_and_moves_the_frames_to_fit(tok):
    from tinyvid.models.vision import frame_detection_targets, frame_times

    model = tiny_model(tok, motion=True, motion_gap=3)
    clip = videos(2)
    frames = model.sample_frames(clip)
    idx = [0, 4, 8, 12]  # [2, 6, 10, 14] moved back by 2 so that 12 + 3 is still a frame of 16
    assert torch.equal(frames[:, :, 0], clip[:, 0, idx] + 1)
    assert torch.allclose(frames[:, :, 1], clip[:, 0, [i + 3 for i in idx]] - clip[:, 0, idx])
    # the detection targets sit where the digits are in those same frames
    cfg = model.config.vision
    assert frame_times(cfg, 16).tolist() == idx
    clips = generate(8, "train", seed=0)
    moved = frame_detection_targets(clips, cfg)[0]
    first = frame_detection_targets(clips, VisionConfig(**{**cfg.to_dict(), "motion": False}))[0]  # [2, 6, 10, 14]
    assert not torch.equal(moved, first)
    assert frame_times(VisionConfig(frames=4, motion=True), 16).tolist() == [2, 6, 10, 14]  # gap 1: unchanged
    with pytest.raises(ValueError, match="motion_gap"):
        VisionConfig(motion=True, motion_gap=0)
    with pytest.raises(ValueError, match="motion_gap=3 needs clips of more than 3 frames"):
        model.sample_frames(videos(1, frames=3))


def test_detection_targets_mark_each_digit_centre_at_each_sampled_frame():
    from tinyvid.data.moving_mnist import DIRECTION_STEPS, NO_DIGIT
    from tinyvid.models.vision import NO_DIGIT_CLASS, frame_detection_targets

    clips = generate(40, "train", seed=3)
    cfg = VisionConfig(frames=4, patch=16)
    digit, direction = frame_detection_targets(clips, cfg)
    assert digit.shape == direction.shape == (40, 4, 16)
    for i in range(40):
        for slot in range(2):
            d, k = clips.digits[i, slot], clips.directions[i, slot]
            if d == NO_DIGIT:
                continue
            for j, t in enumerate([2, 6, 10, 14]):
                r, c = (clips.centers[i, slot] + DIRECTION_STEPS[k] * 2 * t) // 16
                cell = int(r) * 4 + int(c)
                # the other digit may be centred in the same patch and be the one marked there
                assert digit[i, j, cell] in (d, clips.digits[i, 1 - slot])
                assert direction[i, j, cell] in (k, clips.directions[i, 1 - slot])
    # empty patches: no digit, direction ignored; a clip has at most 2 marked patches per frame
    assert ((digit == NO_DIGIT_CLASS) == (direction == -100)).all()
    assert ((digit != NO_DIGIT_CLASS).sum(-1) <= 2).all() and ((digit != NO_DIGIT_CLASS).sum(-1) >= 1).all()


@pytest.mark.parametrize("two_stream", [False, True])
def test_detection_loss_trains_the_encoder_head(tok, two_stream):
    from tinyvid.models.vision import frame_detection_targets
    from tinyvid.train import TensorBatches, Trainer

    model = tiny_model(tok, motion=True, detection=True, two_stream=two_stream)
    bank, batch = batch_of(tok, model)
    targets = frame_detection_targets(generate(32, "train", seed=0, frames=16), model.config.vision)
    loss_fn = vlm_loss(videos=bank, detection=targets)
    with torch.no_grad():
        before = loss_fn(model.eval(), batch)[1]["detection_loss"]
    Trainer(model, loss_fn, TensorBatches(*batch, batch_size=16, seed=0), steps=30, lr=3e-3, warmup=3,
            ema_decay=None, progress=False, device="cpu").fit()
    with torch.no_grad():
        after = loss_fn(model.eval(), batch)[1]["detection_loss"]
    assert after < 0.7 * before
    with pytest.raises(ValueError, match="give videos"):
        vlm_loss(features=torch.zeros(1, 6, 32), detection=targets)
    with pytest.raises(ValueError, match="no detection head"):
        tiny_model(tok).vision.detect(torch.zeros(1, 4, 16, 32))


def test_two_stream_reads_digits_from_the_frame_and_directions_from_its_motion(tok):
    model = tiny_model(tok, motion=True, detection=True, two_stream=True).eval()
    frames = model.sample_frames(videos(2))
    other = frames.clone()
    other[:, :, 1] = torch.randn_like(other[:, :, 1])  # a different motion channel, the same frames
    with torch.no_grad():
        tokens, changed = model.vision(frames), model.vision(other)
        (digits, directions), (digits2, directions2) = model.vision.detect(tokens), model.vision.detect(changed)
    assert tokens.shape == (2, 4, 16, 32)
    assert torch.equal(tokens[..., :16], changed[..., :16]) and not torch.allclose(tokens[..., 16:], changed[..., 16:])
    assert torch.equal(digits, digits2) and not torch.allclose(directions, directions2)
    assert digits.shape == (2, 4, 16, 11) and directions.shape == (2, 4, 16, 8)
    assert model.video_features(videos(2)).shape == (2, model.num_visual_tokens, 32)
    with pytest.raises(ValueError, match="needs motion=True"):
        VisionConfig(two_stream=True)
    with pytest.raises(ValueError, match="must be even"):
        VisionConfig(motion=True, two_stream=True, heads=3, dim=96)


def test_pooled_frames_give_the_tokens_of_a_half_size_encoder_on_pooled_input():
    from tinyvid.models.vision import FrameViT

    torch.manual_seed(0)
    pooled = FrameViT(VisionConfig(frames=4, size=64, patch=16, dim=32, depth=1, heads=4, pool=2)).eval()
    small = FrameViT(VisionConfig(frames=4, size=32, patch=8, dim=32, depth=1, heads=4)).eval()
    # the same weights: the pooled stem is AvgPool2d followed by the small encoder's stem
    state = {}
    for k, v in pooled.state_dict().items():
        if k.startswith("patchify."):
            index, rest = k[len("patchify."):].split(".", 1)
            k = f"patchify.{int(index) - 1}.{rest}"  # drop the pooling layer from the numbering
        state[k] = v
    small.load_state_dict(state)
    frames = torch.rand(2, 4, 1, 64, 64) * 2 - 1
    with torch.no_grad():
        expected = small(torch.nn.functional.avg_pool2d(frames.flatten(0, 1), 2).unflatten(0, (2, 4)))
        assert torch.allclose(pooled(frames), expected, atol=1e-5)
    assert pooled(frames).shape == (2, 4, 16, 32)  # the patch grid is the unpooled one: 64 / 16 = 4 per side
    with pytest.raises(ValueError, match="pool=3"):
        VisionConfig(patch=16, pool=3)
    with pytest.raises(ValueError, match="divide by 4"):
        VisionConfig(patch=16, pool=8)
