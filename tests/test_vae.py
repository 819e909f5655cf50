import pytest
import torch

from tinyvid.models import VAE, VAEConfig, decode_latents, encode_latents, latent_scaling_factor, load_model, save_model, vae_loss
from tinyvid.models.vae import DiagonalGaussian
from tinyvid.train import TensorBatches, Trainer

TINY = dict(patch=2, channels=(8, 16), latent_channels=4)


def test_vae_shapes_follow_the_autoencoderkl_api():
    vae = VAE(VAEConfig(**TINY))
    x = torch.rand(3, 1, 28, 28) * 2 - 1
    posterior = vae.encode(x).latent_dist
    assert posterior.mean.shape == (3, 4, 8, 8) == (3, *vae.latent_shape)
    assert vae.decode(posterior.sample()).sample.shape == x.shape
    assert vae.decode(posterior.mode()).sample.shape == x.shape


def test_kl_matches_torch_distributions_and_sampling_is_reparameterised():
    moments = torch.randn(2, 8, 4, 4, requires_grad=True)
    q = DiagonalGaussian(moments)
    ref = torch.distributions.kl_divergence(torch.distributions.Normal(q.mean, q.std), torch.distributions.Normal(0.0, 1.0))
    torch.testing.assert_close(q.kl(), ref.flatten(1).sum(1), atol=1e-4, rtol=1e-5)
    q.sample(torch.Generator().manual_seed(0)).sum().backward()
    assert moments.grad is not None and moments.grad.abs().sum() > 0  # gradients reach mean and log-variance
    a = DiagonalGaussian(moments.detach()).sample(torch.Generator().manual_seed(1))
    b = DiagonalGaussian(moments.detach()).sample(torch.Generator().manual_seed(1))
    assert torch.equal(a, b)


def test_training_lowers_the_reconstruction_error():
    torch.manual_seed(0)
    x = torch.rand(64, 1, 28, 28) * 2 - 1
    vae = VAE(VAEConfig(**TINY))
    before = (decode_latents(vae, encode_latents(vae, x)) - x).pow(2).mean()
    Trainer(vae, vae_loss(1e-3), TensorBatches(x, batch_size=16), steps=60, lr=3e-3, warmup=5, ema_decay=None,
            progress=False).fit()
    after = (decode_latents(vae, encode_latents(vae, x)) - x).pow(2).mean()
    assert after < 0.7 * before


def test_same_loss_trains_a_diffusers_autoencoderkl():
    diffusers = pytest.importorskip("diffusers")
    from tinyvid.course.configs import AUTOENCODER_KL_TINY

    akl = diffusers.AutoencoderKL(**AUTOENCODER_KL_TINY)
    loss, logs = vae_loss(1e-3)(akl, (torch.rand(2, 1, 28, 28) * 2 - 1,))
    loss.backward()
    assert loss.ndim == 0 and set(logs) == {"mse", "kl_per_latent"}


def test_scaling_factor_makes_unit_variance():
    z = 5.0 * torch.randn(1000, 4, 2, 2)
    assert (z * latent_scaling_factor(z)).std().item() == pytest.approx(1.0, abs=1e-5)


def test_bad_input_and_configs_are_clear_errors(tmp_path):
    vae = VAE(VAEConfig(**TINY))
    with pytest.raises(ValueError, match="expected images"):
        vae.encode(torch.zeros(1, 1, 32, 32))
    with pytest.raises(ValueError, match="expected latents"):
        vae.decode(torch.zeros(1, 4, 7, 7))
    with pytest.raises(ValueError, match="pad_to"):
        VAEConfig(patch=2, channels=(8, 16, 32, 64), pad_to=28)
    path = save_model(vae, tmp_path / "vae.safetensors", scaling_factor=0.5)
    loaded, extra = load_model(path)
    assert extra == {"scaling_factor": 0.5} and isinstance(loaded, VAE)
    torch.testing.assert_close(loaded.encode(torch.zeros(1, 1, 28, 28)).latent_dist.mean,
                               vae.eval().encode(torch.zeros(1, 1, 28, 28)).latent_dist.mean)
