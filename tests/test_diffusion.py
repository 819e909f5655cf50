import pytest
import torch

from tinyvid.diffusion import (
    Schedule, ddim_step, ddim_timesteps, ddpm_step, eps_from_v, eps_from_x0, posterior_mean_variance,
    q_sample, sample, to_eps_and_x0, v_from_x0_eps, x0_from_eps, x0_from_v,
)

diffusers = pytest.importorskip("diffusers")


@pytest.mark.parametrize("name,beta_schedule", [("linear", "linear"), ("cosine", "squaredcos_cap_v2")])
def test_schedule_and_add_noise_match_diffusers(name, beta_schedule):
    ours = Schedule(name)
    ref = diffusers.DDPMScheduler(num_train_timesteps=1000, beta_schedule=beta_schedule)
    torch.testing.assert_close(ours.alphas_cumprod, ref.alphas_cumprod, atol=1e-6, rtol=1e-5)
    x0, noise = torch.randn(8, 1, 28, 28), torch.randn(8, 1, 28, 28)
    t = torch.randint(0, 1000, (8,))
    torch.testing.assert_close(q_sample(ours, x0, t, noise), ref.add_noise(x0, noise, t), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
@pytest.mark.parametrize("t", [999, 500, 1, 0])
def test_ddpm_step_matches_diffusers(prediction_type, t):
    ours = Schedule("linear")
    ref = diffusers.DDPMScheduler(num_train_timesteps=1000, prediction_type=prediction_type, clip_sample=True)
    ref.set_timesteps(1000)
    xt, out = torch.randn(4, 1, 28, 28), torch.randn(4, 1, 28, 28)
    expected = ref.step(out, t, xt, generator=torch.Generator().manual_seed(3)).prev_sample
    got = ddpm_step(ours, out, t, xt, generator=torch.Generator().manual_seed(3), prediction_type=prediction_type)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("refit", [False, True])
@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_step_matches_diffusers_in_both_clipping_conventions(eta, refit):
    """refit_eps=False is diffusers' default (clipped x0, raw eps); True is its use_clipped_model_output."""
    ours = Schedule("linear")
    ref = diffusers.DDIMScheduler(num_train_timesteps=1000, timestep_spacing="trailing", clip_sample=True)
    ref.set_timesteps(50)
    ts = ddim_timesteps(1000, 50, "trailing")
    assert ts == ref.timesteps.tolist()
    xt = torch.randn(4, 1, 28, 28)
    for i in (0, 10, 25, 49):
        out = torch.randn(4, 1, 28, 28)
        t_prev = ts[i + 1] if i + 1 < len(ts) else -1
        expected = ref.step(out, ts[i], xt, eta=eta, use_clipped_model_output=refit,
                            generator=torch.Generator().manual_seed(1)).prev_sample
        got = ddim_step(ours, out, ts[i], t_prev, xt, eta=eta, generator=torch.Generator().manual_seed(1), refit_eps=refit)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_parameterisations_round_trip():
    s = Schedule("cosine")
    x0, eps = torch.randn(6, 1, 8, 8, dtype=torch.float64), torch.randn(6, 1, 8, 8, dtype=torch.float64)
    t = torch.tensor([0, 10, 200, 500, 900, 999])
    xt = q_sample(s, x0, t, eps)
    v = v_from_x0_eps(s, x0, t, eps)
    torch.testing.assert_close(x0_from_eps(s, xt, t, eps), x0)
    torch.testing.assert_close(eps_from_x0(s, xt, t, x0), eps)
    torch.testing.assert_close(x0_from_v(s, xt, t, v), x0)
    torch.testing.assert_close(eps_from_v(s, xt, t, v), eps)
    e, x = to_eps_and_x0(s, xt, t, v, "v_prediction", clip=False)
    torch.testing.assert_close(x, x0)


def test_posterior_is_the_gaussian_product():
    """q(x_{t-1}|x_t,x_0) mean equals the closed form built from the two Gaussians."""
    s = Schedule("linear")
    t = torch.tensor([50, 400])
    x0, xt = torch.randn(2, 3), torch.randn(2, 3)
    mean, var = posterior_mean_variance(s, x0, xt, t)
    a, ab, abp, b = s.alphas[t], s.alphas_cumprod[t], s.alphas_cumprod_prev[t], s.betas[t]
    prec = a / b + 1 / (1 - abp)
    expected_mean = (a.sqrt() / b)[:, None] * xt + (abp.sqrt() / (1 - abp))[:, None] * x0
    torch.testing.assert_close(mean, (expected_mean / prec[:, None]).float(), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(var.flatten().double(), (1 / prec).double(), atol=1e-8, rtol=1e-4)


def test_sampler_is_deterministic_under_a_seed():
    s = Schedule("linear")
    denoise = lambda x, t: 0.1 * x  # noqa: E731
    a = sample(denoise, (2, 1, 8, 8), s, "ddim", steps=10, eta=1.0, generator=torch.Generator().manual_seed(7), progress=False)
    b = sample(denoise, (2, 1, 8, 8), s, "ddim", steps=10, eta=1.0, generator=torch.Generator().manual_seed(7), progress=False)
    c = sample(denoise, (2, 1, 8, 8), s, "ddim", steps=10, eta=1.0, generator=torch.Generator().manual_seed(8), progress=False)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_bad_arguments_give_clear_errors():
    with pytest.raises(ValueError, match="unknown schedule"):
        Schedule("quadratic")
    with pytest.raises(ValueError, match="steps must be in"):
        ddim_timesteps(1000, 0)
    with pytest.raises(ValueError, match="ddpm sampling runs all T"):
        sample(lambda x, t: x, (1, 1, 4, 4), Schedule(), "ddpm", steps=10, progress=False)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_diffusers_ddim_solver_drives_a_tinyvid_denoiser_like_tinyvid_ddim(prediction_type):
    from tinyvid.diffusion.diffusers_solvers import diffusers_scheduler, sample_with_scheduler

    s = Schedule("linear")
    denoise = lambda x, t: 0.3 * x + 0.001 * t.float().view(-1, 1, 1, 1)  # noqa: E731 - depends on x and t
    ours = sample(denoise, (3, 1, 8, 8), s, "ddim", steps=20, eta=0.0, prediction_type=prediction_type, clip=False,
                  generator=torch.Generator().manual_seed(5), progress=False)
    theirs = sample_with_scheduler(denoise, (3, 1, 8, 8), diffusers_scheduler("ddim", s, prediction_type, clip=False), 20,
                                   generator=torch.Generator().manual_seed(5), progress=False)
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)


def test_dpm_solver_sampling_is_deterministic_and_uses_the_requested_steps():
    from tinyvid.diffusion.diffusers_solvers import diffusers_scheduler, sample_with_scheduler

    calls = []

    def denoise(x, t):
        calls.append(int(t[0]))
        return 0.2 * x

    sched = diffusers_scheduler("dpmsolver++", Schedule("linear"))
    a = sample_with_scheduler(denoise, (2, 1, 4, 4), sched, 10, torch.Generator().manual_seed(0), progress=False)
    b = sample_with_scheduler(denoise, (2, 1, 4, 4), sched, 10, torch.Generator().manual_seed(0), progress=False)
    assert torch.equal(a, b) and len(calls) == 20 and calls[0] == 999 and calls[9] < calls[0]
    with pytest.raises(ValueError, match="unknown solver"):
        diffusers_scheduler("heun9", Schedule("linear"))


def test_refitted_eps_makes_eta1_ddim_equal_ddpm_even_when_clipping():
    s = Schedule("linear")
    xt, out, z = 3 * torch.randn(4, 1, 8, 8), torch.randn(4, 1, 8, 8), torch.randn(4, 1, 8, 8)
    _, raw_x0 = to_eps_and_x0(s, xt, torch.full((4,), 500), out, clip=False)
    assert raw_x0.abs().max() > 1  # clipping is active on these inputs
    ddpm = ddpm_step(s, out, 500, xt, noise=z)
    torch.testing.assert_close(ddim_step(s, out, 500, 499, xt, eta=1.0, noise=z), ddpm, atol=1e-5, rtol=1e-5)
    assert (ddim_step(s, out, 500, 499, xt, eta=1.0, noise=z, refit_eps=False) - ddpm).abs().max() > 1e-2
