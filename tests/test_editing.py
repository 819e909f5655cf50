import pytest
import torch

from tinyvid.diffusion import Schedule, sample
from tinyvid.diffusion.editing import edit_timesteps, img2img, inpaint


def perfect_denoiser(schedule, target):
    """The exact eps-predictor for a point mass at `target`: every sample should become `target`."""
    abar = schedule.alphas_cumprod

    def denoise(x, t):
        a = abar[t].view(-1, 1, 1, 1)
        return (x - a.sqrt() * target) / (1 - a).sqrt()

    return denoise


def test_edit_timesteps_follow_strength():
    s = Schedule()
    assert edit_timesteps(s, 50, 0.0) == []
    assert len(edit_timesteps(s, 50, 0.4)) == 20 and edit_timesteps(s, 50, 1.0)[0] == 999
    with pytest.raises(ValueError, match="strength"):
        edit_timesteps(s, 50, 1.5)


def test_img2img_strength_zero_is_identity_and_one_reaches_the_model():
    s = Schedule()
    x0, target = torch.randn(2, 4, 8, 8), torch.full((2, 4, 8, 8), 0.5)
    denoise = perfect_denoiser(s, target)
    assert torch.equal(img2img(denoise, x0, s, 0.0), x0)
    out = img2img(denoise, x0, s, 1.0, steps=20, clip=False, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, target, atol=1e-3, rtol=1e-3)


def test_inpaint_keeps_the_known_part_exactly_and_fills_the_rest():
    s = Schedule()
    known, target = torch.randn(2, 4, 8, 8), torch.full((2, 4, 8, 8), -0.25)
    keep = torch.zeros(1, 1, 8, 8)
    keep[..., :4] = 1
    out = inpaint(perfect_denoiser(s, target), known, keep, s, steps=20, clip=False, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out[..., :4], known[..., :4])
    torch.testing.assert_close(out[..., 4:], target[..., 4:], atol=1e-2, rtol=1e-2)
    with pytest.raises(ValueError, match="differ in height/width"):
        inpaint(perfect_denoiser(s, target), known, torch.ones(1, 1, 4, 4), s)


def test_after_step_hook_sees_every_step():
    seen = []
    sample(lambda x, t: 0 * x, (1, 1, 4, 4), Schedule(), "ddim", steps=5, progress=False,
           after_step=lambda x, t_prev: seen.append(t_prev) or x)
    assert len(seen) == 5 and seen[-1] == -1
