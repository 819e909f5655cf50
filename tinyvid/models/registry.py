"""Save and load trained models as one safetensors file: weights + class + config in metadata.

`load_pretrained("ddpm_mnist")` loads the `cpu` reference checkpoint committed under
book/results/, so a later notebook (or a learner short of time) starts from a trained model.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

RESULTS_DIR = Path(__file__).resolve().parents[2] / "book" / "results"


def _classes() -> dict:
    from tinyvid.models.unet import UNet, UNetConfig
    from tinyvid.models.vae import VAE, VAEConfig
    from tinyvid.models.clip import CLIPConfig, VideoTextCLIP

    return {"UNet": (UNet, UNetConfig), "VAE": (VAE, VAEConfig), "VideoTextCLIP": (VideoTextCLIP, CLIPConfig)}


def save_model(model: nn.Module, path: str | Path, dtype: torch.dtype | None = None, **extra) -> Path:
    """Weights (optionally cast, e.g. to fp16 to halve the file) + {class, config, extra} metadata."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    name = type(model).__name__
    if name not in _classes():
        raise ValueError(f"{name} is not a registered model class: {sorted(_classes())}")
    state = {k: (v.to(dtype) if dtype and v.is_floating_point() else v).detach().cpu().contiguous()
             for k, v in model.state_dict().items()}
    meta = {"class": name, "config": json.dumps(model.config.to_dict()), "extra": json.dumps(extra)}
    save_file(state, path, metadata=meta)
    return path


def read_metadata(path: str | Path) -> dict:
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if "class" not in meta:
        raise ValueError(f"{path} is not a tinyvid model file (no 'class' in its metadata)")
    return {"class": meta["class"], "config": json.loads(meta["config"]), "extra": json.loads(meta.get("extra", "{}"))}


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """(model in eval mode, extra metadata such as the schedule) from a file written by save_model."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no model file at {path}")
    meta = read_metadata(path)
    cls, config_cls = _classes()[meta["class"]]
    model = cls(config_cls(**meta["config"]))
    state = {}
    with safe_open(str(path), framework="pt") as f:
        for k in f.keys():
            t = f.get_tensor(k)
            state[k] = t.float() if t.is_floating_point() else t
    model.load_state_dict(state)
    return model.to(device).eval(), meta["extra"]


def load_pretrained(name: str, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """A committed reference checkpoint by name, e.g. 'ddpm_mnist' -> book/results/ddpm_mnist.safetensors."""
    path = RESULTS_DIR / f"{name}.safetensors"
    if not path.is_file():
        known = sorted(p.stem for p in RESULTS_DIR.glob("*.safetensors"))
        raise FileNotFoundError(f"no reference checkpoint {name!r} in {RESULTS_DIR}; available: {known or 'none yet'}")
    return load_model(path, device)
