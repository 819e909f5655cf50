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
