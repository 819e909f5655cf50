"""Per-notebook settings for each profile: one table, shared by every profile's code path.

A notebook calls `config("01_ddpm_mnist", profile, steps=steps, ...)`: the profile fixes
model width, steps, batch size and sample counts; a parameter given (not None) overrides it.
"""

from __future__ import annotations

from types import SimpleNamespace

from tinyvid.course.profiles import resolve_profile

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
        "cpu": dict(unet=dict(patch=2, channels=(48, 96), attention_levels=(1,)), steps=100_000, train_minutes=22.0,
                    batch_size=64, lr=2e-3, warmup=200, ema_decay=0.999, min_snr_gamma=5.0, n_samples=2000, sample_steps=50,
                    sample_eta=1.0, n_sweep=400, log_every=50),
        "gpu": dict(unet=dict(patch=2, channels=(128, 256), blocks_per_level=2, attention_levels=(1,)), steps=40_000,
                    train_minutes=18.0, batch_size=256, lr=1e-3, warmup=500, ema_decay=0.9995, min_snr_gamma=5.0,
                    n_samples=10_000, sample_steps=50, sample_eta=1.0, n_sweep=1000, log_every=100),
        "full": dict(unet=dict(patch=2, channels=(192, 384), blocks_per_level=2, attention_levels=(1,)), steps=200_000,
                     train_minutes=None, batch_size=512, lr=1e-3, warmup=1000, ema_decay=0.9999, min_snr_gamma=5.0,
                     n_samples=10_000, sample_steps=50, sample_eta=1.0, n_sweep=1000, log_every=200),
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
