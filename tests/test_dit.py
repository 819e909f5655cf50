import pytest
import torch

from tinyvid.diffusion.flow import flow_matching_loss
from tinyvid.models import VideoDiT, VideoDiTConfig, WanVideoTransformer, video_dit_config, wan_config_like
from tinyvid.models.blocks import Attention, apply_rope, grid_positions, rope_3d_angles, rope_angles
from tinyvid.models.dit import count_parameters, first_frame_condition, patchify, unpatchify

C, CTX = 4, 16


def tiny(**kw) -> VideoDiTConfig:
    return video_dit_config("tiny", in_channels=C, **kw)


def randomized(model):
    """Every parameter perturbed: adaLN-Zero starts the network at zero, which would make any
    output comparison pass trivially."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model.eval()


def inputs(b=2, frames=3, size=8, length=5):
    g = torch.Generator().manual_seed(0)
    return (torch.randn(b, C, frames, size, size, generator=g), torch.rand(b, generator=g),
            torch.randn(b, length, CTX, generator=g), torch.ones(b, length, dtype=torch.bool))


@pytest.mark.parametrize("kw", [dict(), dict(text_mode="joint"), dict(patch=(1, 1, 1)), dict(patch=(3, 2, 2)),
                                dict(image_to_video=True)])
def test_output_has_the_shape_of_the_input(kw):
    model = randomized(VideoDiT(tiny(**kw)))
    x, t, ctx, mask = inputs()
    first = x[:, :, :1] if kw.get("image_to_video") else None
    assert model(x, t, ctx, mask, first_frame=first).shape == x.shape


@pytest.mark.parametrize("mode", ["cross", "joint"])
def test_every_block_and_the_network_start_as_identity_and_zero(mode):
    model = VideoDiT(tiny(text_mode=mode))
    x, t, ctx, mask = inputs()
    assert model(x, t, ctx, mask).abs().max() == 0  # zero-initialised final layer
    tokens = torch.randn(2, 48, 32)
    text, c = torch.randn(2, 5, 32), torch.randn(2, 32)
    rope = rope_3d_angles(grid_positions(3, 4, 4), 16)
    if mode == "joint":
        rope = torch.cat([torch.zeros(5, 8), rope])
    for block in model.blocks:
        out, out_text = block(tokens, c, rope, text, mask)
        torch.testing.assert_close(out, tokens, rtol=0, atol=0)
        torch.testing.assert_close(out_text, text, rtol=0, atol=0)
    # ...and trainable: once the first step has moved the zero output layer, gradients reach every block
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for _ in range(2):
        opt.zero_grad()
        flow_matching_loss()(model, (x, ctx, mask)).backward()
        opt.step()
    for block in model.blocks:
        assert block.adaLN[1].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("mode", ["cross", "joint"])
def test_padding_tokens_of_the_caption_do_not_change_the_output(mode):
    model = randomized(VideoDiT(tiny(text_mode=mode)))
    x, t, ctx, mask = inputs()
    padded = torch.cat([ctx, 5 * torch.randn(2, 3, CTX)], dim=1)  # arbitrary features on the padding
    padded_mask = torch.cat([mask, torch.zeros(2, 3, dtype=torch.bool)], dim=1)
    with torch.no_grad():
        a, b = model(x, t, ctx, mask), model(x, t, padded, padded_mask)
        c = model(x, t, padded, torch.ones_like(padded_mask))  # the same tokens unmasked do matter
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert (a - c).abs().max() > 1e-3


def test_patchify_orders_tokens_as_the_rope_grid_and_inverts():
    x = torch.randn(2, C, 4, 6, 8)
    tokens = patchify(x, (2, 3, 2))
    assert tokens.shape == (2, 2 * 2 * 4, 2 * 3 * 2 * C)
    torch.testing.assert_close(unpatchify(tokens, (2, 2, 4), (2, 3, 2)), x, rtol=0, atol=0)
    for n, (f, h, w) in enumerate(grid_positions(2, 2, 4).tolist()):  # token n is the patch at RoPE position n
        patch = x[:, :, 2 * f : 2 * f + 2, 3 * h : 3 * h + 3, 2 * w : 2 * w + 2]
        torch.testing.assert_close(tokens[:, n], patch.permute(0, 2, 3, 4, 1).flatten(1), rtol=0, atol=0)


def test_rope_makes_attention_depend_on_relative_position_only():
    torch.manual_seed(0)
    positions = grid_positions(3, 4, 4)
    q, k = torch.randn(2, 48, 24), torch.randn(2, 48, 24)
    angles, shifted = rope_3d_angles(positions, 24), rope_3d_angles(positions + torch.tensor([5, 2, 7]), 24)
    scores = apply_rope(q, angles) @ apply_rope(k, angles).transpose(1, 2)
    torch.testing.assert_close(scores, apply_rope(q, shifted) @ apply_rope(k, shifted).transpose(1, 2), atol=1e-4, rtol=1e-4)
    attn = randomized(Attention(48, heads=2, qk_norm=True))
    x = torch.randn(2, 48, 48)
    with torch.no_grad():
        out = attn(x, rope=angles)
        torch.testing.assert_close(out, attn(x, rope=shifted), atol=1e-4, rtol=1e-4)
        reordered = rope_3d_angles(positions[torch.randperm(48)], 24)  # not a shift: attention changes
        assert (out - attn(x, rope=reordered)).abs().max() > 1e-3
    # a pair is a complex number turned by its angle; norms are kept
    a = rope_angles(torch.arange(48.0), 24)
    torch.testing.assert_close(apply_rope(q, a), torch.view_as_real(torch.view_as_complex(q.unflatten(-1, (-1, 2)))
                                                                   * torch.polar(torch.ones_like(a), a)).flatten(-2))
    torch.testing.assert_close(apply_rope(q, a).norm(dim=-1), q.norm(dim=-1))


def test_rope_3d_equals_diffusers_wan_rotary_embedding():
    transformer_wan = pytest.importorskip("diffusers.models.transformers.transformer_wan")
    head_dim, grid = 24, (3, 4, 5)
    cos, sin = transformer_wan.WanRotaryPosEmbed(head_dim, (1, 2, 2), max_seq_len=32)(torch.zeros(1, 1, 3, 8, 10))
    angles = rope_3d_angles(grid_positions(*grid), head_dim)
    torch.testing.assert_close(cos[0, :, 0].float(), angles.cos().repeat_interleave(2, dim=-1), atol=1e-6, rtol=0)
    torch.testing.assert_close(sin[0, :, 0].float(), angles.sin().repeat_interleave(2, dim=-1), atol=1e-6, rtol=0)


def test_image_to_video_input_holds_the_first_frame_and_its_mask():
    x = torch.randn(2, C, 3, 4, 4)
    first = torch.randn(2, C, 1, 4, 4)
    inp = first_frame_condition(x, first)
    assert inp.shape == (2, 2 * C + 1, 3, 4, 4)
    torch.testing.assert_close(inp[:, C : 2 * C, :1], first)
    assert inp[:, C:, 1:].abs().max() == 0 and (inp[:, -1, 0] == 1).all()
    model = randomized(VideoDiT(tiny(image_to_video=True)))
    _, t, ctx, mask = inputs()
    with torch.no_grad():
        other = model(x, t, ctx, mask, first_frame=first + 1)
        assert (model(x, t, ctx, mask, first_frame=first) - other).abs().max() > 1e-3  # the image is read


def test_wan_wrapper_is_called_like_videodit_and_one_step_of_each_lowers_the_loss():
    pytest.importorskip("diffusers")
    cfg = tiny()
    wan_cfg = wan_config_like(cfg)
    x, _, ctx, mask = inputs()
    batch = (x, ctx, mask)
    loss_fn = flow_matching_loss()
    for model in (VideoDiT(cfg), WanVideoTransformer(wan_cfg)):
        assert model(x, torch.rand(2), ctx, mask).shape == x.shape
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2)

        def fixed_loss():  # the same timesteps and noise every time
            torch.manual_seed(0)
            return loss_fn(model, batch)

        before = fixed_loss()
        before.backward()
        opt.step()
        with torch.no_grad():
            assert fixed_loss() < before, type(model).__name__


def test_wan_config_matches_the_parameter_count():
    pytest.importorskip("diffusers")
    for cfg in (tiny(), video_dit_config("XS")):
        wan = WanVideoTransformer(wan_config_like(cfg))
        assert abs(count_parameters(wan) / count_parameters(VideoDiT(cfg)) - 1) < 0.02
        assert wan.config.num_layers == cfg.depth and wan.config.attention_head_dim == cfg.head_dim
    assert 27e6 < count_parameters(VideoDiT(video_dit_config("S"))) < 36e6


def test_bad_input_and_configs_are_clear_errors():
    with pytest.raises(ValueError, match="text_mode"):
        tiny(text_mode="concat")
    with pytest.raises(ValueError, match="heads"):
        tiny(dim=30, heads=4)
    with pytest.raises(KeyError, match="unknown VideoDiT size"):
        video_dit_config("XXL")
    model = VideoDiT(tiny())
    x, t, ctx, mask = inputs()
    with pytest.raises(ValueError, match="divisible by patch"):
        model(x[..., :7], t, ctx, mask)
    with pytest.raises(ValueError, match="all False"):
        model(x, t, ctx, torch.zeros_like(mask))
    with pytest.raises(ValueError, match="first_frame"):
        model(x, t, ctx, mask, first_frame=x[:, :, :1])
    with pytest.raises(ValueError, match="self-attention only"):
        Attention(8, 2)(torch.randn(1, 4, 8), context=torch.randn(1, 3, 8), rope=torch.zeros(4, 2))


def test_save_and_load_round_trip(tmp_path):
    from tinyvid.models import load_model, save_model

    model = randomized(VideoDiT(tiny(text_mode="joint")))
    loaded, _ = load_model(save_model(model, tmp_path / "dit.safetensors"), "cpu")
    assert loaded.config == model.config
    x, t, ctx, mask = inputs()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, t, ctx, mask), model(x, t, ctx, mask))
