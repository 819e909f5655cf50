"""Text-to-video flow-matching DiT training, launchable unchanged on 1 CPU or N GPUs:

    python -m tinyvid.recipes.t2v_dit --profile smoke --out-dir runs/dit
    torchrun --nproc_per_node 2 -m tinyvid.recipes.t2v_dit --profile smoke --out-dir runs/dit
    accelerate launch --config_file tinyvid/recipes/accelerate/ddp.yaml -m tinyvid.recipes.t2v_dit --profile full --out-dir runs/dit

The settings are notebook 09's (`config("09_scaling", profile, ...)`), each overridable (`--steps 20`,
`--dit "{'size': 'XS'}"`). Data: the VAE latents that notebook 06 pre-encodes (`--latents cache.npz`,
a `LatentSet`), or, without them, captioned Moving MNIST clips turned into "pixel latents" by a
parameter-free encoder (average pooling, then space-to-depth into 4 channels): a stand-in that costs
nothing, so the recipe runs anywhere. Captions are encoded once by a frozen text encoder (pre-encoded
text features, as large video models train). Timesteps, noise and caption dropout are drawn with
the global batch (`GlobalBatches`), so the run does not depend on how many processes share it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange

from tinyvid.diffusion.flow import interpolate, sample_timesteps, velocity_target
from tinyvid.recipes.common import GlobalBatches, parse_recipe_args, run_trainer, train_config

NOTEBOOK = "09_scaling"
# the settings of notebook 09 that this recipe reads (the notebook has more, for its benchmarks)
KEYS = ("dit", "latents", "n_clips", "frames", "size", "pool", "text", "max_len", "batch_size", "steps", "train_minutes",
        "lr", "warmup", "ema_decay", "text_dropout", "shift", "log_every")


def pixel_latents(videos: torch.Tensor, pool: int = 1) -> torch.Tensor:
    """(N, 1, T, H, W) in [-1, 1] -> (N, 4, T, H / (2 pool), W / (2 pool)): average-pool space by `pool`,
    then fold each 2x2 pixel block into channels (lossless after the pooling)."""
    if pool > 1:
        videos = F.avg_pool3d(videos, (1, pool, pool))
    return rearrange(videos, "n c t (h ph) (w pw) -> n (c ph pw) t h w", ph=2, pw=2)


@torch.no_grad()
def caption_features(captions: list[str], text: dict, max_len: int, seed: int = 0):
    """(features (N + 1, L, D), mask (N + 1, L)) of the captions and, last, the empty caption, from a
    frozen text encoder seeded by `seed` (the course's word tokenizer; no training needed to condition)."""
    from tinyvid.data.moving_mnist import WordTokenizer
    from tinyvid.models import TextEncoder, TextEncoderConfig

    tok = WordTokenizer()
    ids, mask = tok.batch(list(captions) + [""], max_len=max_len)
    torch.manual_seed(seed)
    encoder = TextEncoder(TextEncoderConfig(vocab_size=len(tok), max_len=max_len, **text)).eval()
    return encoder(ids, mask)[0], mask


def training_data(cfg, seed: int = 0):
    """(latents (N, C, F, h, w), context (N, L, D), mask (N, L), null context (L, D), null mask (L,))."""
    if cfg.latents:
        from tinyvid.data.latents import LatentSet

        cache = LatentSet.load(cfg.latents)
        x, captions = cache.mean, cache.captions
    else:
        from tinyvid.data.moving_mnist import generate

        clips = generate(cfg.n_clips, "train", seed=seed, frames=cfg.frames, size=cfg.size)
        x, captions = pixel_latents(clips.tensors(), cfg.pool), clips.captions
    context, mask = caption_features(captions, cfg.text, cfg.max_len, seed)
    return x, context[:-1], mask[:-1], context[-1], mask[-1]


def flow_draws(text_dropout: float, shift: float = 1.0):
    """The randomness of `flow_matching_loss`, drawn for the global batch in the same order (so the same
    seed gives the same numbers): logit-normal t, noise like x0, then the caption-dropout coin."""

    def draws(rows, g):
        x0 = rows[0]
        t = sample_timesteps(len(x0), "logit_normal", shift=shift, generator=g)
        noise = torch.randn(x0.shape, generator=g, dtype=x0.dtype)
        drop = torch.rand(len(x0), generator=g) < text_dropout
        return t, noise, drop

    return draws


def presampled_flow_loss(null_context: torch.Tensor, null_mask: torch.Tensor):
    """`flow_matching_loss` with its draws taken from the batch: (x0, context, mask, t, noise, drop)."""

    def loss_fn(model, batch):
        x0, context, mask, t, noise, drop = batch
        keep = ~drop.to(context.device)
        context = torch.where(keep[:, None, None], context, null_context.to(context))
        mask = torch.where(keep[:, None], mask, null_mask.to(mask.device))
        pred = model(interpolate(x0, noise, t), t, context, mask)
        return (pred.float() - velocity_target(x0, noise).float()).pow(2).mean()

    return loss_fn


def build_model(cfg, in_channels: int, context_dim: int):
    from tinyvid.models import VideoDiT, video_dit_config

    spec = dict(cfg.dit)
    return VideoDiT(video_dit_config(spec.pop("size", "tiny"), in_channels=in_channels, context_dim=context_dim, **spec))


def build_trainer(cfg, args, levers: dict):
    from tinyvid.train import Trainer

    x, context, mask, null_context, null_mask = training_data(cfg, args.seed)
    torch.manual_seed(args.seed)
    model = build_model(cfg, x.shape[1], context.shape[-1])
    data = GlobalBatches(x, context, mask, batch_size=cfg.batch_size, seed=args.seed,
                         draws=flow_draws(cfg.text_dropout, cfg.shift))
    trainer = Trainer(model, presampled_flow_loss(null_context, null_mask), data, train_config(cfg, args, levers))
    return trainer, {"params": sum(p.numel() for p in model.parameters()), "latent_shape": list(x.shape[1:]),
                     "tokens": model.token_grid(x[:1]), "global_batch": cfg.batch_size}


def main(argv: list[str] | None = None) -> dict:
    from tinyvid.course.configs import config

    args, overrides, levers = parse_recipe_args(NOTEBOOK, KEYS, __doc__.split("\n\n")[0], argv)
    cfg = config(NOTEBOOK, args.profile, **overrides)
    trainer, info = build_trainer(cfg, args, levers)
    return run_trainer(trainer, args, {"recipe": "t2v_dit", "profile": cfg.profile, **info})


if __name__ == "__main__":
    main()
