"""Motion modules and inflation (AnimateDiff): a video U-Net that starts as its image U-Net per frame."""

import pytest
import torch
from einops import rearrange

from tinyvid.models import UNet, UNetConfig
from tinyvid.models.motion import MotionModule, TemporalConv, freeze_spatial, inflate, is_motion_parameter

IMAGE = dict(in_channels=4, patch=1, channels=(16, 32), attention_levels=(0, 1), context_dim=24)


def randomised(model):
    for p in model.parameters():  # away from the zero init, so the test compares real functions
        torch.nn.init.normal_(p, std=0.05)
    return model


def inputs(b=2, f=5):
    x, t = torch.randn(b, 4, f, 8, 8), torch.tensor([3, 500])[:b]
    ctx, mask = torch.randn(b, 7, 24), torch.ones(b, 7, dtype=torch.bool)
    mask[-1, 4:] = False
    return x, t, ctx, mask


def per_frame(image, x, t, ctx, mask):
    f = x.shape[2]
    out = image(rearrange(x, "b c f h w -> (b f) c h w"), t.repeat_interleave(f),
                context=ctx.repeat_interleave(f, 0), context_mask=mask.repeat_interleave(f, 0))
    return rearrange(out, "(b f) c h w -> b c f h w", f=f)


@pytest.mark.parametrize("kind", ["attention", "conv"])
def test_inflated_model_equals_the_image_model_per_frame_at_init(kind):
    image = randomised(UNet(UNetConfig(**IMAGE)))
    video = inflate(image, kind)
    x, t, ctx, mask = inputs()
    torch.testing.assert_close(video(x, t, context=ctx, context_mask=mask), per_frame(image, x, t, ctx, mask))


def test_trained_motion_layers_mix_frames_and_only_they_train():
    image = randomised(UNet(UNetConfig(**IMAGE)))
    video = inflate(image)
    trainable = freeze_spatial(video)
    assert trainable == sum(p.numel() for n, p in video.named_parameters() if is_motion_parameter(n)) > 0
    assert all(not p.requires_grad for n, p in video.named_parameters() if not is_motion_parameter(n))
    randomised(video)  # as if the motion modules had trained
    x, t, ctx, mask = inputs()
    out = video(x, t, context=ctx, context_mask=mask)
    x2 = x.clone()
    x2[:, :, -1] += 1.0  # change only the last frame
    out2 = video(x2, t, context=ctx, context_mask=mask)
    assert not torch.allclose(out[:, :, 0], out2[:, :, 0])  # ...and the first frame's output moves


def test_motion_module_sees_frame_order_and_text_padding_is_ignored():
    torch.manual_seed(0)
    m = randomised(MotionModule(16, 4, context_dim=8))
    x = torch.randn(2 * 6, 16, 3, 3)  # (b f) c h w with f = 6
    ctx = torch.randn(2, 5, 8)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    out = m(x, 6, ctx, mask)
    reversed_in = rearrange(rearrange(x, "(b f) c h w -> b f c h w", f=6).flip(1), "b f c h w -> (b f) c h w")
    reversed_out = rearrange(rearrange(m(reversed_in, 6, ctx, mask), "(b f) c h w -> b f c h w", f=6).flip(1),
                             "b f c h w -> (b f) c h w")
    assert not torch.allclose(out, reversed_out, atol=1e-4)  # the frame-position encoding breaks the symmetry
    padded = torch.cat([ctx, torch.randn(2, 3, 8)], 1)
    torch.testing.assert_close(m(x, 6, padded, torch.cat([mask, torch.zeros(2, 3, dtype=torch.bool)], 1)), out)


def test_temporal_conv_is_identity_at_init_and_local_in_time():
    conv = TemporalConv(16)
    x = torch.randn(8 * 2, 16, 2, 2)
    torch.testing.assert_close(conv(x, 8), x)
    randomised(conv)
    y = x.clone()
    y[7] += 1  # clip 0, last frame
    changed = (conv(y, 8) - conv(x, 8)).abs().flatten(1).amax(1)
    assert changed[:6].max() == 0 and changed[6] > 0  # a kernel-3 conv reaches one frame back only


def test_video_unet_checks_its_input():
    image = UNet(UNetConfig(**IMAGE))
    with pytest.raises(ValueError, match="inflate it for video"):
        image(*inputs()[:2], context=torch.randn(2, 7, 24))
    video = inflate(image)
    with pytest.raises(ValueError, match="takes clips"):
        video(torch.randn(2, 4, 8, 8), torch.tensor([1, 2]), context=torch.randn(2, 7, 24))
    with pytest.raises(ValueError, match="already has motion"):
        inflate(video)
    with pytest.raises(ValueError, match="unknown motion"):
        UNetConfig(**IMAGE, motion="lstm")
