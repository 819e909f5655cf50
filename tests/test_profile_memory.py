"""The `gpu` and `full` configs share every line with `cpu`; here we check they fit their cards."""

import pytest
import torch

from tinyvid.course.configs import CONFIGS
from tinyvid.course.memory import CARDS_GIB, estimate_training_memory
from tinyvid.models import UNet, UNetConfig

TARGETS = {"gpu": ("T4", torch.float16), "full": ("H100-80GB", torch.bfloat16)}


def unet_estimate(settings, dtype=torch.float32, key="unet", shape=(1, 28, 28), num_classes=None):
    b = settings["batch_size"]
    labels = (torch.randint(0, num_classes + 1, (b,)),) if num_classes else ()
    return estimate_training_memory(
        lambda: UNet(UNetConfig(**settings[key], num_classes=num_classes)),
        lambda: (torch.randn(b, *shape), torch.randint(0, 1000, (b,)), *labels),
        lambda model, batch: model(*batch).float().pow(2).mean(),
        activation_dtype=dtype,
    )


UNET_NOTEBOOKS = [name for name, profiles in CONFIGS.items() if "unet" in profiles["cpu"]]


@pytest.mark.parametrize("notebook", UNET_NOTEBOOKS)
@pytest.mark.parametrize("profile", ["gpu", "full"])
def test_unet_configs_fit_their_card(notebook, profile):
    card, dtype = TARGETS[profile]
    est = unet_estimate(CONFIGS[notebook][profile], dtype)
    print(notebook, profile, card, est)
    # leave a third of the card for the CUDA context, allocator fragmentation and workspaces
    assert est.total_gib < 0.66 * CARDS_GIB[card]


def test_estimate_counts_activations_linearly_in_batch():
    small = dict(CONFIGS["01_ddpm_mnist"]["cpu"], batch_size=8)
    big = dict(small, batch_size=16)
    a, b = unet_estimate(small), unet_estimate(big)
    assert a.params == b.params and a.weights_bytes == 4 * a.params
    assert b.activations_bytes == pytest.approx(2 * a.activations_bytes, rel=0.05)
    assert a.activations_bytes > 0


@pytest.mark.parametrize("profile", ["gpu", "full"])
def test_latent_diffusion_configs_fit_their_card(profile):
    from tinyvid.models import VAE, VAEConfig, vae_loss

    card, dtype = TARGETS[profile]
    settings = CONFIGS["03_vae_latent"][profile]
    b = settings["batch_size"]
    vae = estimate_training_memory(lambda: VAE(VAEConfig(**settings["vae"])), lambda: (torch.randn(b, 1, 28, 28),),
                                   lambda model, batch: vae_loss(settings["beta"])(model, batch)[0], activation_dtype=dtype)
    latent = VAEConfig(**settings["vae"])
    shape = (settings["latent_unet"]["in_channels"], latent.latent_size, latent.latent_size)
    ldm = unet_estimate(settings, dtype, key="latent_unet", shape=shape, num_classes=10)
    print(profile, card, vae, ldm)
    assert max(vae.total_gib, ldm.total_gib) < 0.66 * CARDS_GIB[card]
