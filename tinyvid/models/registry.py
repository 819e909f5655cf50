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
    from tinyvid.models.text_encoder import TextEncoder, TextEncoderConfig
    from tinyvid.models.vlm import VideoLLaVA, VLMConfig
    from tinyvid.models.causal_vae import CausalVAE3D, CausalVAE3DConfig
    from tinyvid.models.dit import VideoDiT, VideoDiTConfig

    return {"UNet": (UNet, UNetConfig), "VAE": (VAE, VAEConfig), "VideoTextCLIP": (VideoTextCLIP, CLIPConfig),
            "TextEncoder": (TextEncoder, TextEncoderConfig), "VideoLLaVA": (VideoLLaVA, VLMConfig),
            "CausalVAE3D": (CausalVAE3D, CausalVAE3DConfig), "VideoDiT": (VideoDiT, VideoDiTConfig)}


def _state(model: nn.Module, dtype: torch.dtype | None, prefix: str = "") -> dict[str, torch.Tensor]:
    name = type(model).__name__
    if name not in _classes():
        raise ValueError(f"{name} is not a registered model class: {sorted(_classes())}")
    return {prefix + k: (v.to(dtype) if dtype and v.is_floating_point() else v).detach().cpu().contiguous()
            for k, v in model.state_dict().items()}


def _build(class_name: str, config: dict, state: dict[str, torch.Tensor]) -> nn.Module:
    cls, config_cls = _classes()[class_name]
    model = cls(config_cls(**config))
    model.load_state_dict({k: t.float() if t.is_floating_point() else t for k, t in state.items()})
    return model


def save_model(model: nn.Module, path: str | Path, dtype: torch.dtype | None = None, **extra) -> Path:
    """Weights (optionally cast, e.g. to fp16 to halve the file) + {class, config, extra} metadata."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = _state(model, dtype)
    meta = {"class": type(model).__name__, "config": json.dumps(model.config.to_dict()), "extra": json.dumps(extra)}
    save_file(state, path, metadata=meta)
    return path


def save_bundle(path: str | Path, parts: dict[str, nn.Module], dtype: torch.dtype | None = None, **extra) -> Path:
    """Several models in one file (a pipeline: denoiser, text encoder, VAE): weights under `<part>.`,
    each part's class and config in the metadata, plus JSON `extra`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state, classes = {}, {}
    for part, model in parts.items():
        state.update(_state(model, dtype, f"{part}."))
        classes[part] = {"class": type(model).__name__, "config": model.config.to_dict()}
    save_file(state, path, metadata={"class": "bundle", "config": json.dumps(classes), "extra": json.dumps(extra)})
    return path


def load_bundle(path: str | Path, device: str | torch.device = "cpu") -> tuple[dict[str, nn.Module], dict]:
    """({part: model in eval mode}, extra) from a file written by save_bundle."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no model file at {path}")
    meta = read_metadata(path)
    if meta["class"] != "bundle":
        raise ValueError(f"{path} holds one {meta['class']}, not a bundle of models (use load_model)")
    with safe_open(str(path), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    parts = {}
    for part, spec in meta["config"].items():
        own = {k.removeprefix(f"{part}."): v for k, v in tensors.items() if k.startswith(f"{part}.")}
        parts[part] = _build(spec["class"], spec["config"], own).to(device).eval()
    return parts, meta["extra"]


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
    if meta["class"] == "bundle":
        raise ValueError(f"{path} is a bundle of several models (use load_bundle or the pipeline's load)")
    with safe_open(str(path), framework="pt") as f:
        state = {k: f.get_tensor(k) for k in f.keys()}
    return _build(meta["class"], meta["config"], state).to(device).eval(), meta["extra"]


def load_pretrained(name: str, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """A committed reference checkpoint by name, e.g. 'ddpm_mnist' -> book/results/ddpm_mnist.safetensors."""
    path = RESULTS_DIR / f"{name}.safetensors"
    if not path.is_file():
        known = sorted(p.stem for p in RESULTS_DIR.glob("*.safetensors"))
        raise FileNotFoundError(f"no reference checkpoint {name!r} in {RESULTS_DIR}; available: {known or 'none yet'}")
    return load_model(path, device)
