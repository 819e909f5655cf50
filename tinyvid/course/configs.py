"""Per-notebook settings for each profile: one table, shared by every profile's code path.

A notebook calls `config("01_ddpm_mnist", profile, steps=steps, ...)`: the profile fixes
model width, steps, batch size and sample counts; a parameter given (not None) overrides it.
"""

from __future__ import annotations

from types import SimpleNamespace

from tinyvid.course.profiles import resolve_profile

# a diffusers AutoencoderKL of about the size of the tinyvid VAE (28x28 -> 4x7x7), trained by the same code in 03
AUTOENCODER_KL_TINY = dict(in_channels=1, out_channels=1, down_block_types=("DownEncoderBlock2D",) * 3,
                           up_block_types=("UpDecoderBlock2D",) * 3, block_out_channels=(16, 32, 32), layers_per_block=1,
                           latent_channels=4, norm_num_groups=8, sample_size=28)

CONFIGS: dict[str, dict[str, dict]] = {
    "00_video_data": {
        "smoke": dict(clips=64, frames=8, size=64, shard_size=16, workers=0),
        "cpu": dict(clips=2000, frames=16, size=64, shard_size=250, workers=2),
        "gpu": dict(clips=2000, frames=16, size=64, shard_size=250, workers=2),
        "full": dict(clips=10000, frames=16, size=64, shard_size=1000, workers=4),
    },
    "01_ddpm_mnist": {
        "smoke": dict(unet=dict(patch=2, channels=(16, 32), attention_levels=(1,)), steps=30, train_minutes=None,
                      batch_size=32, lr=2e-3, warmup=5, ema_decay=0.9, min_snr_gamma=5.0, n_samples=200, sample_steps=10,
                      sample_eta=1.0, n_sweep=50, log_every=5),
        "cpu": dict(unet=dict(patch=2, channels=(48, 96), attention_levels=(1,)), steps=100_000, train_minutes=24.5,
                    batch_size=64, lr=2e-3, warmup=200, ema_decay=0.999, min_snr_gamma=5.0, n_samples=2000, sample_steps=50,
                    sample_eta=1.0, n_sweep=400, log_every=50),
        "gpu": dict(unet=dict(patch=2, channels=(128, 256), blocks_per_level=2, attention_levels=(1,)), steps=40_000,
                    train_minutes=18.0, batch_size=256, lr=1e-3, warmup=500, ema_decay=0.9995, min_snr_gamma=5.0,
                    n_samples=10_000, sample_steps=50, sample_eta=1.0, n_sweep=1000, log_every=100),
        "full": dict(unet=dict(patch=2, channels=(192, 384), blocks_per_level=2, attention_levels=(1,)), steps=200_000,
                     train_minutes=None, batch_size=512, lr=1e-3, warmup=1000, ema_decay=0.9999, min_snr_gamma=5.0,
                     n_samples=10_000, sample_steps=50, sample_eta=1.0, n_sweep=1000, log_every=200),
    },
    "02_ddim_cfg": {
        "smoke": dict(unet=dict(patch=2, channels=(16, 32), attention_levels=(1,)), steps=30, train_minutes=None,
                      batch_size=32, lr=2e-3, warmup=5, ema_decay=0.9, min_snr_gamma=5.0, prediction_type="v_prediction",
                      label_dropout=0.1, n_sweep=40, n_samples=100, sample_steps=10, sample_eta=1.0, ddim_steps=(10, 50),
                      ancestral_steps=(50, 250), guidance_scales=(0.0, 1.0, 3.0), solver_steps=(10,), contrast_guidance=3.0, log_every=5),
        "cpu": dict(unet=dict(patch=2, channels=(48, 96), attention_levels=(1,)), steps=100_000, train_minutes=11.0,
                    batch_size=64, lr=2e-3, warmup=200, ema_decay=0.999, min_snr_gamma=5.0, prediction_type="v_prediction",
                    label_dropout=0.1, n_sweep=300, n_samples=2000, sample_steps=25, sample_eta=1.0,
                    ddim_steps=(10, 20, 50, 100), ancestral_steps=(50, 250), guidance_scales=(0.0, 1.0, 1.5, 2.0, 3.0, 5.0, 7.0),
                    solver_steps=(10, 20), contrast_guidance=3.0, log_every=50),
        "gpu": dict(unet=dict(patch=2, channels=(128, 256), blocks_per_level=2, attention_levels=(1,)), steps=40_000,
                    train_minutes=15.0, batch_size=256, lr=1e-3, warmup=500, ema_decay=0.9995, min_snr_gamma=5.0,
                    prediction_type="v_prediction", label_dropout=0.1, n_sweep=2000, n_samples=10_000, sample_steps=25,
                    sample_eta=1.0, ddim_steps=(10, 20, 50, 100), ancestral_steps=(50, 250),
                    guidance_scales=(0.0, 1.0, 1.5, 2.0, 3.0, 5.0, 7.0), solver_steps=(10, 20), contrast_guidance=3.0, log_every=100),
        "full": dict(unet=dict(patch=2, channels=(192, 384), blocks_per_level=2, attention_levels=(1,)), steps=200_000,
                     train_minutes=None, batch_size=512, lr=1e-3, warmup=1000, ema_decay=0.9999, min_snr_gamma=5.0,
                     prediction_type="v_prediction", label_dropout=0.1, n_sweep=5000, n_samples=10_000, sample_steps=50,
                     sample_eta=1.0, ddim_steps=(10, 20, 50, 100, 250), ancestral_steps=(50, 250, 1000),
                     guidance_scales=(0.0, 1.0, 1.5, 2.0, 3.0, 5.0, 7.0), solver_steps=(10, 20), contrast_guidance=3.0, log_every=200),
    },
    "03_vae_latent": {
        "smoke": dict(vae=dict(patch=2, channels=(8, 16), latent_channels=4), vae_minutes=None, vae_steps=20,
                      vae_lr=2e-3, beta=1e-3, beta_sweep=(1.0, 100.0), sweep_minutes=None, compare_minutes=None,
                      autoencoder_kl=AUTOENCODER_KL_TINY, n_recon=200,
                      latent_unet=dict(in_channels=4, patch=1, channels=(16, 32), attention_levels=(1,)),
                      pixel_unet=dict(patch=2, channels=(16, 32), attention_levels=(1,)), throughput_steps=2,
                      ldm_minutes=None, ldm_steps=30, batch_size=32, lr=2e-3, warmup=5, ema_decay=0.9,
                      min_snr_gamma=5.0, prediction_type="v_prediction", label_dropout=0.1, guidance=2.0,
                      n_samples=100, sample_steps=10, sample_eta=1.0, n_edit=20, strengths=(0.0, 0.5, 1.0), log_every=5),
        "cpu": dict(vae=dict(patch=2, channels=(32, 64), latent_channels=4), vae_minutes=6.0, vae_steps=100_000,
                    vae_lr=1e-3, beta=1e-3, beta_sweep=(1.0, 10.0, 100.0), sweep_minutes=0.5, compare_minutes=1.5,
                    autoencoder_kl=AUTOENCODER_KL_TINY, n_recon=10_000,
                    latent_unet=dict(in_channels=4, patch=1, channels=(64, 128), attention_levels=(1,)),
                    pixel_unet=dict(patch=2, channels=(48, 96), attention_levels=(1,)), throughput_steps=10,
                    ldm_minutes=10.0, ldm_steps=100_000, batch_size=64, lr=2e-3, warmup=200, ema_decay=0.999,
                    min_snr_gamma=5.0, prediction_type="v_prediction", label_dropout=0.1, guidance=2.0,
                    n_samples=2000, sample_steps=50, sample_eta=1.0, n_edit=200,
                    strengths=(0.0, 0.2, 0.4, 0.6, 0.8, 1.0), log_every=50),
        "gpu": dict(vae=dict(patch=2, channels=(64, 128), latent_channels=4), vae_minutes=5.0, vae_steps=20_000,
                    vae_lr=1e-3, beta=1e-3, beta_sweep=(1.0, 10.0, 100.0), sweep_minutes=0.5, compare_minutes=1.5,
                    autoencoder_kl=AUTOENCODER_KL_TINY, n_recon=10_000,
                    latent_unet=dict(in_channels=4, patch=1, channels=(128, 256), blocks_per_level=2, attention_levels=(1,)),
                    pixel_unet=dict(patch=2, channels=(128, 256), blocks_per_level=2, attention_levels=(1,)),
                    throughput_steps=20, ldm_minutes=10.0, ldm_steps=40_000, batch_size=256, lr=1e-3, warmup=500,
                    ema_decay=0.9995, min_snr_gamma=5.0, prediction_type="v_prediction", label_dropout=0.1, guidance=2.0,
                    n_samples=10_000, sample_steps=50, sample_eta=1.0, n_edit=1000,
                    strengths=(0.0, 0.2, 0.4, 0.6, 0.8, 1.0), log_every=100),
        "full": dict(vae=dict(patch=2, channels=(64, 128), latent_channels=4), vae_minutes=None, vae_steps=50_000,
                     vae_lr=1e-3, beta=1e-3, beta_sweep=(1.0, 10.0, 100.0), sweep_minutes=1.0, compare_minutes=3.0,
                     autoencoder_kl=AUTOENCODER_KL_TINY, n_recon=10_000,
                     latent_unet=dict(in_channels=4, patch=1, channels=(192, 384), blocks_per_level=2, attention_levels=(1,)),
                     pixel_unet=dict(patch=2, channels=(192, 384), blocks_per_level=2, attention_levels=(1,)),
                     throughput_steps=20, ldm_minutes=None, ldm_steps=200_000, batch_size=512, lr=1e-3, warmup=1000,
                     ema_decay=0.9999, min_snr_gamma=5.0, prediction_type="v_prediction", label_dropout=0.1, guidance=2.0,
                     n_samples=10_000, sample_steps=50, sample_eta=1.0, n_edit=1000,
                     strengths=(0.0, 0.2, 0.4, 0.6, 0.8, 1.0), log_every=200),
    },
    "04_text_clip": {
        "smoke": dict(n_train=64, n_test=64, frames=8, size=48, speed=2, bpe_vocab=60, max_len=24,
                      video=dict(patch=16, dim=32, spatial_depth=1, temporal_depth=1, heads=4),
                      text=dict(dim=32, depth=1, heads=4), embed_dim=32, batch_size=16, steps=20, clip_minutes=None,
                      lr=2e-3, warmup=5, log_every=5),
        "cpu": dict(n_train=20_000, n_test=1000, frames=16, size=64, speed=2, bpe_vocab=120, max_len=24,
                    video=dict(patch=16, dim=128, spatial_depth=2, temporal_depth=2, heads=4),
                    text=dict(dim=128, depth=2, heads=4), embed_dim=128, batch_size=64, steps=100_000, clip_minutes=15.0,
                    lr=1e-3, warmup=200, log_every=50),
        "gpu": dict(n_train=50_000, n_test=2000, frames=16, size=64, speed=2, bpe_vocab=120, max_len=24,
                    video=dict(patch=8, dim=256, spatial_depth=4, temporal_depth=4, heads=8),
                    text=dict(dim=256, depth=4, heads=8), embed_dim=256, batch_size=256, steps=20_000, clip_minutes=15.0,
                    lr=1e-3, warmup=500, log_every=100),
        "full": dict(n_train=200_000, n_test=5000, frames=16, size=64, speed=2, bpe_vocab=120, max_len=24,
                     video=dict(patch=8, dim=384, spatial_depth=6, temporal_depth=6, heads=8),
                     text=dict(dim=384, depth=6, heads=8), embed_dim=384, batch_size=512, steps=100_000, clip_minutes=None,
                     lr=1e-3, warmup=1000, log_every=200),
    },
}


def config(notebook: str, profile: str = "auto", **overrides) -> SimpleNamespace:
    """Settings of `notebook` under `profile`, with non-None overrides applied."""
    if notebook not in CONFIGS:
        raise KeyError(f"no configs for notebook {notebook!r}: known are {', '.join(CONFIGS)}")
    name = resolve_profile(profile)
    settings = dict(CONFIGS[notebook][name])
    unknown = set(overrides) - set(settings)
    if unknown:
        raise TypeError(f"{notebook} has no setting(s) {sorted(unknown)}; known: {sorted(settings)}")
    settings.update({k: v for k, v in overrides.items() if v is not None})
    return SimpleNamespace(profile=name, **settings)
