"""Course plumbing: profiles, per-notebook configs, device choice, exercise checks, notebook tooling."""

from tinyvid.course.profiles import PROFILES, resolve_profile
from tinyvid.course.configs import config
from tinyvid.course.device import pick_device, pick_precision

__all__ = ["PROFILES", "resolve_profile", "config", "pick_device", "pick_precision"]
