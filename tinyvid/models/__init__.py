"""Models: building blocks and the course's networks."""

from tinyvid.models.blocks import (Attention, SelfAttention2d, SpatialTransformer, TimestepMLP, TransformerBlock,
                                   timestep_embedding, zero_init)
from tinyvid.models.unet import UNet, UNetConfig
from tinyvid.models.vae import VAE, VAEConfig, decode_latents, encode_latents, latent_scaling_factor, vae_loss
from tinyvid.models.text_encoder import TextEncoder, TextEncoderConfig
from tinyvid.models.clip import CLIPConfig, VideoEncoderConfig, VideoTextCLIP, clip_loss
from tinyvid.models.causal_vae import CausalVAE3D, CausalVAE3DConfig, video_vae_loss
from tinyvid.models.dit import VideoDiT, VideoDiTConfig, WanVideoTransformer, video_dit_config, wan_config_like
from tinyvid.models.registry import load_model, load_pretrained, save_model

__all__ = ["Attention", "TransformerBlock", "SpatialTransformer", "TextEncoder", "TextEncoderConfig", "VideoTextCLIP", "CLIPConfig",
           "VideoEncoderConfig", "clip_loss", "SelfAttention2d", "TimestepMLP", "timestep_embedding", "zero_init", "UNet", "UNetConfig", "load_model", "load_pretrained", "save_model",
           "VAE", "VAEConfig", "vae_loss", "encode_latents", "decode_latents", "latent_scaling_factor",
           "CausalVAE3D", "CausalVAE3DConfig", "video_vae_loss", "VideoDiT", "VideoDiTConfig", "WanVideoTransformer",
           "video_dit_config", "wan_config_like"]
