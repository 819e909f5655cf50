import math

import pytest
import torch

from tinyvid.diffusion import with_guidance
from tinyvid.diffusion.flow import (drop_condition, euler_sample, euler_step, flow_img2img, flow_matching_loss,
                                    flow_sample, flow_timesteps, heun_sample, interpolate, resolution_shift, sample_timesteps,
                                    shift_timesteps, velocity_target)
from tinyvid.models import VideoDiT, video_dit_config
from tinyvid.train import TensorBatches, Trainer


def test_the_path_is_straight_from_data_to_noise_with_constant_velocity():
    x0, noise = torch.randn(3, 2, 4), torch.randn(3, 2, 4)
    torch.testing.assert_close(interpolate(x0, noise, torch.zeros(3)), x0)
    torch.testing.assert_close(interpolate(x0, noise, torch.ones(3)), noise)
    t, h = torch.tensor([0.2, 0.5, 0.9]), 1e-3
    slope = (interpolate(x0, noise, t + h) - interpolate(x0, noise, t - h)) / (2 * h)
    torch.testing.assert_close(slope, velocity_target(x0, noise), atol=1e-3, rtol=1e-3)


def test_timestep_shift_keeps_the_ends_and_multiplies_the_noise_to_signal_ratio():
    t = torch.linspace(0.05, 0.95, 10)
    torch.testing.assert_close(shift_timesteps(t, 1.0), t)
    shifted = shift_timesteps(t, 3.0)
    torch.testing.assert_close(shifted / (1 - shifted), 3.0 * t / (1 - t), rtol=1e-4, atol=1e-6)
    assert (shifted > t).all() and (shifted.diff() > 0).all()
    torch.testing.assert_close(shift_timesteps(torch.tensor([0.0, 1.0]), 3.0), torch.tensor([0.0, 1.0]))
    assert resolution_shift(1024, 256) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="shift must be positive"):
        shift_timesteps(t, 0.0)


def test_logit_normal_timesteps_are_deterministic_and_centred():
    g = lambda: torch.Generator().manual_seed(0)
    t = sample_timesteps(20_000, generator=g())
    torch.testing.assert_close(t, sample_timesteps(20_000, generator=g()))
    assert 0 < t.min() and t.max() < 1 and abs(t.median().item() - 0.5) < 0.02
    assert ((t > 0.3) & (t < 0.7)).float().mean() > 0.55  # uniform would put 40% there
    assert sample_timesteps(20_000, shift=3.0, generator=g()).median() > 0.7
    with pytest.raises(ValueError, match="timestep sampling"):
        sample_timesteps(4, "cosine")


def test_time_grid_runs_from_noise_to_data():
    ts = flow_timesteps(4)
    torch.testing.assert_close(ts, torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0]))
    shifted = flow_timesteps(4, shift=3.0)
    assert shifted[0] == 1 and shifted[-1] == 0 and (shifted[1:-1] > ts[1:-1]).all()
    with pytest.raises(ValueError, match="steps"):
        flow_timesteps(0)
    torch.testing.assert_close(flow_timesteps(4, start=0.6), torch.tensor([0.6, 0.5, 0.25, 0.0]))
    torch.testing.assert_close(flow_timesteps(4, start=0.5), torch.tensor([0.5, 0.25, 0.0]))
    with pytest.raises(ValueError, match="start"):
        flow_timesteps(4, start=1.5)


def test_an_edit_keeps_its_input_at_strength_0_and_is_plain_sampling_at_strength_1():
    field = lambda x, t: torch.tanh(x) * (1 + t.view(-1, 1))  # any velocity that depends on x and t
    x0, noise = torch.randn(3, 5), torch.randn(3, 5)
    torch.testing.assert_close(flow_img2img(field, x0, 0.0, steps=6, noise=noise), x0)
    full = flow_sample(field, x0.shape, steps=6, x_start=noise, progress=False)
    torch.testing.assert_close(flow_img2img(field, x0, 1.0, steps=6, noise=noise), full)
    # a constant field c carries x_t at t = s to x_t - s c, wherever the grid puts its steps
    c = torch.randn(3, 5)
    out = flow_img2img(lambda x, t: c.expand_as(x), x0, 0.4, steps=6, shift=3.0, noise=noise)
    torch.testing.assert_close(out, 0.6 * x0 + 0.4 * noise - 0.4 * c)
    with pytest.raises(ValueError, match="strength"):
        flow_img2img(field, x0, 1.2)
    with pytest.raises(ValueError, match="differ"):
        flow_img2img(field, x0, 0.5, noise=noise[:2])


@pytest.mark.parametrize("method", ["euler", "heun"])
def test_samplers_integrate_a_constant_field_exactly(method):
    c, start = torch.randn(2, 3), torch.randn(2, 3)
    out = flow_sample(lambda x, t: c.expand_as(x), start.shape, steps=3, method=method, x_start=start, progress=False)
    torch.testing.assert_close(out, start - c)  # x(0) = x(1) - c


def test_one_euler_step_follows_a_straight_path_to_the_end():
    # the ideal velocity towards a single data point, (x - x0) / t: straight lines, exact at any step count
    x0, start = torch.randn(2, 3), torch.randn(2, 3)
    towards = lambda x, t: (x - x0) / t[:, None]
    for steps in (1, 7):
        out = euler_sample(towards, start.shape, steps, shift=2.0, x_start=start, progress=False)
        torch.testing.assert_close(out, x0, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(euler_step(towards(start, torch.ones(2)), start, 1.0, 0.0), x0)


def test_heun_is_exact_on_a_linear_field_and_more_accurate_than_euler_on_a_curved_one():
    a, b = torch.randn(4), torch.randn(4)
    start = torch.randn(1, 4)
    linear = lambda x, t: a + b * t[:, None]  # x(0) = x(1) - a - b / 2
    torch.testing.assert_close(heun_sample(linear, start.shape, 5, x_start=start, progress=False), start - a - b / 2)
    assert (euler_sample(linear, start.shape, 5, x_start=start, progress=False) - (start - a - b / 2)).abs().max() > 1e-2
    exact = start * math.exp(-1)  # dx/dt = x integrated from t = 1 to 0
    errors = {m: [(flow_sample(lambda x, t: x, start.shape, n, m, x_start=start, progress=False) - exact).abs().max().item()
                  for n in (5, 10)] for m in ("euler", "heun")}
    assert errors["heun"][0] < 0.1 * errors["euler"][0]
    assert errors["euler"][0] / errors["euler"][1] == pytest.approx(2, rel=0.2)  # first order
    assert errors["heun"][0] / errors["heun"][1] == pytest.approx(4, rel=0.2)  # second order


def test_sampling_is_deterministic_under_a_seed_and_returns_the_trajectory():
    field = lambda x, t: torch.sin(x) + t[:, None]
    run = lambda seed, **kw: flow_sample(field, (3, 5), 4, "heun", generator=torch.Generator().manual_seed(seed),
                                         progress=False, **kw)
    torch.testing.assert_close(run(0), run(0), rtol=0, atol=0)
    assert (run(0) - run(1)).abs().max() > 1e-3
    x, trajectory = run(0, return_trajectory=True)
    torch.testing.assert_close(x, run(0))
    assert [t for t, _, _ in trajectory] == pytest.approx([1.0, 0.75, 0.5, 0.25])
    t, xt, x0_hat = trajectory[1]
    torch.testing.assert_close(x0_hat, xt - t * field(xt, torch.full((3,), t)))
    with pytest.raises(ValueError, match="method"):
        flow_sample(field, (1, 2), 2, "rk4")


def test_classifier_free_guidance_extrapolates_from_the_unconditional_velocity():
    cond, uncond = torch.ones(2, 1), torch.zeros(2, 1)
    velocity = lambda x, t, c: c.expand_as(x) * 2.0  # v = 2 under the condition, 0 without
    start = torch.zeros(2, 3)
    out = euler_sample(with_guidance(velocity, cond, uncond, 3.0), start.shape, 2, x_start=start, progress=False)
    torch.testing.assert_close(out, torch.full((2, 3), -6.0))  # v = 0 + 3 * (2 - 0), integrated over t in [1, 0]


def test_the_loss_is_the_velocity_error_at_interpolated_points():
    seen = {}

    class Spy(torch.nn.Module):
        def forward(self, xt, t, label):
            seen.update(xt=xt, t=t, label=label)
            return torch.zeros_like(xt)

    x0, labels = torch.randn(4, 2, 3), torch.arange(4)
    torch.manual_seed(0)
    loss = flow_matching_loss(shift=2.0)(Spy(), (x0, labels))
    torch.manual_seed(0)
    t = sample_timesteps(4, shift=2.0)
    noise = torch.randn_like(x0)
    torch.testing.assert_close(seen["t"], t)
    torch.testing.assert_close(seen["xt"], interpolate(x0, noise, t))
    torch.testing.assert_close(loss, velocity_target(x0, noise).pow(2).mean())
    assert torch.equal(seen["label"], labels)


def test_caption_dropout_swaps_in_the_empty_caption():
    ids, mask = torch.arange(12).view(4, 3), torch.ones(4, 3, dtype=torch.bool)
    null = (torch.tensor([1, 2, 0]), torch.tensor([True, True, False]))
    kept = drop_condition([ids, mask], null, 0.0)
    assert torch.equal(kept[0], ids) and torch.equal(kept[1], mask)
    dropped = drop_condition([ids, mask], null, 1.0)
    assert (dropped[0] == null[0]).all() and (dropped[1] == null[1]).all()
    torch.manual_seed(0)
    half = drop_condition([ids, mask], null, 0.5)
    rows = (half[0] == null[0]).all(1)
    assert 0 < rows.sum() < 4 and torch.equal(rows, (half[1] == null[1]).all(1))  # ids and mask drop together
    with pytest.raises(ValueError, match="null_cond"):
        flow_matching_loss(text_dropout=0.1)


def test_training_a_tiny_dit_lowers_the_loss():
    torch.manual_seed(0)
    # two clips of flat colours, each with its own caption: a velocity field that 60 steps can learn
    latents = torch.randn(2, 4, 1, 1, 1).expand(2, 4, 3, 8, 8).repeat(4, 1, 1, 1, 1)
    context = torch.randn(2, 5, 16).repeat(4, 1, 1)
    mask = torch.ones(8, 5, dtype=torch.bool)
    null = (torch.zeros(5, 16), torch.tensor([True, False, False, False, False]))
    model = VideoDiT(video_dit_config("tiny", in_channels=4))
    loss_fn = flow_matching_loss(text_dropout=0.1, null_cond=null)
    history = Trainer(model, loss_fn, TensorBatches(latents, context, mask, batch_size=8), steps=60, lr=1e-2, warmup=5,
                      ema_decay=None, log_every=10, progress=False).fit()
    assert history[-1]["loss"] < 0.5 * history[0]["loss"]
