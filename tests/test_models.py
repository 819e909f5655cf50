import pytest
import torch

from tinyvid.models import UNet, UNetConfig, load_model, save_model, timestep_embedding

TINY = dict(channels=(16, 32), attention_levels=(1,), groups=8)


@pytest.mark.parametrize("patch", [1, 2])
def test_unet_keeps_the_shape_and_starts_at_zero(patch):
    m = UNet(UNetConfig(patch=patch, **TINY))
    x, t = torch.randn(3, 1, 28, 28), torch.randint(0, 1000, (3,))
    out = m(x, t)
    assert out.shape == x.shape
    assert out.abs().max() == 0  # zero-initialised output conv: the untrained model predicts 0


def test_unet_depends_on_time_and_label_after_a_step():
    m = UNet(UNetConfig(num_classes=10, **TINY))
    for p in m.parameters():  # leave the zero init so the output can move
        torch.nn.init.normal_(p, std=0.05)
    x = torch.randn(2, 1, 28, 28)
    a = m(x, torch.tensor([10, 10]), torch.tensor([1, 1]))
    assert not torch.allclose(a, m(x, torch.tensor([900, 900]), torch.tensor([1, 1])))
    assert not torch.allclose(a, m(x, torch.tensor([10, 10]), torch.tensor([2, 2])))
    assert not torch.allclose(a, m(x, torch.tensor([10, 10])))  # no label = the null token


def test_labels_without_class_conditioning_is_an_error():
    with pytest.raises(ValueError, match="no class conditioning"):
        UNet(UNetConfig(**TINY))(torch.randn(1, 1, 28, 28), torch.tensor([1]), torch.tensor([3]))


def test_bad_group_count_is_an_error():
    with pytest.raises(ValueError, match="divide by groups"):
        UNetConfig(channels=(12, 24), groups=8)


def test_timestep_embedding_is_sinusoidal():
    e = timestep_embedding(torch.tensor([0.0, 1.0]), 8)
    assert e.shape == (2, 8)
    torch.testing.assert_close(e[0], torch.tensor([1.0] * 4 + [0.0] * 4))


def test_save_and_load_round_trip(tmp_path):
    m = UNet(UNetConfig(patch=2, **TINY))
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.05)
    path = save_model(m, tmp_path / "m.safetensors", schedule="linear")
    loaded, extra = load_model(path)
    assert extra == {"schedule": "linear"}
    x, t = torch.randn(2, 1, 28, 28), torch.tensor([3, 500])
    torch.testing.assert_close(loaded(x, t), m(x, t))
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing.safetensors")


def test_text_conditioned_unet_uses_context_and_ignores_padding():
    m = UNet(UNetConfig(in_channels=1, patch=2, channels=(16, 32), attention_levels=(1,), context_dim=24))
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.05)
    m.eval()
    x, t = torch.randn(2, 1, 28, 28), torch.tensor([100, 700])
    ctx, mask = torch.randn(2, 5, 24), torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    out = m(x, t, context=ctx, context_mask=mask)
    assert out.shape == x.shape
    assert not torch.allclose(out, m(x, t, context=torch.randn(2, 5, 24), context_mask=mask))
    changed_padding = ctx.clone()
    changed_padding[1, 3:] = 100.0  # masked tokens of the second text
    torch.testing.assert_close(m(x, t, context=changed_padding, context_mask=mask)[1], out[1], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="context must be given"):
        m(x, t)
    with pytest.raises(ValueError, match="context must be given"):
        UNet(UNetConfig(**TINY))(x, t, context=ctx)


def test_pooled_context_is_standardised_and_reaches_the_timestep_vector():
    from tinyvid.models.text_encoder import masked_mean

    m = UNet(UNetConfig(in_channels=1, patch=2, channels=(16, 32), attention_levels=(1,), context_dim=24, pooled_context=True))
    common = torch.randn(1, 1, 24) * 5  # words every caption shares
    ctx = common + 0.1 * torch.randn(64, 6, 24)
    mask = torch.ones(64, 6, dtype=torch.bool)
    m.standardise_pooled(masked_mean(ctx, mask))
    t = torch.full((64,), 500)
    extra = m.embed(t, None, ctx, mask) - m.time(t)
    assert 0.5 < extra.std() < 2.0  # the small differences between captions arrive at unit scale
    padded, pad_mask = torch.cat([ctx, torch.randn(64, 2, 24) * 100], 1), torch.cat([mask, torch.zeros(64, 2, dtype=torch.bool)], 1)
    torch.testing.assert_close(m.embed(t, None, padded, pad_mask), m.embed(t, None, ctx, mask), atol=2e-4, rtol=1e-4)
    video = UNet(UNetConfig(in_channels=1, channels=(16, 32), attention_levels=(1,), context_dim=24, pooled_context=True))
    with pytest.raises(ValueError, match="at least two captions"):
        video.standardise_pooled(masked_mean(ctx[:1], mask[:1]))
    with pytest.raises(ValueError, match="no pooled context path"):
        UNet(UNetConfig(context_dim=24, **TINY)).standardise_pooled(masked_mean(ctx, mask))
    with pytest.raises(ValueError, match="pooled_context needs text conditioning"):
        UNetConfig(pooled_context=True, **TINY)


def test_spatial_transformer_starts_as_identity():
    from tinyvid.models.blocks import SpatialTransformer

    block = SpatialTransformer(16, 4, context_dim=8)
    x = torch.randn(2, 16, 7, 7)
    assert torch.equal(block(x, torch.randn(2, 3, 8)), x)
