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
        # text-to-image conditioning (`tinyvid bench t2i-conditioning --minutes 4`, single-digit frames, 2-core CPU):
        # the caption via cross-attention 29.0% of samples show the prompted digit, the digit as a class label 76.7%.
        # 4-minute variants (1- and 2-digit frames, base 18.7%) that did not help: pooled caption in the time embedding
        # 21.3%, channels (32, 64) 22.3%, batch 32 19.0%, no Min-SNR 15.0%, 4x VAE + U-Net patch 2 18.7%; single-digit
        # frames: trainable text tower 23.7%, learned token embeddings 30.7%. Adopted: pooled_context (the caption's mean
        # token feature standardised over the training captions, unit-scale projection into the timestep vector):
        # 53.7% vs 29.0% at an equal 490 steps; the cpu run reads 74.0% at guidance 3 (1513 steps in 12 min)
        "smoke": dict(n_train=64, n_test=64, frames=16, size=64, speed=2, bpe_vocab=60, max_len=24,
                      video=dict(patch=16, tubelet=4, dim=32, spatial_depth=1, temporal_depth=1, heads=4, temporal="joint"),
                      text=dict(dim=32, depth=1, heads=4), embed_dim=32, batch_size=16, steps=20, clip_minutes=None,
                      lr=2e-3, warmup=5, log_every=5,
                      vae=dict(patch=4, channels=(8, 16), latent_channels=4), beta=1e-3, vae_batch_size=32,
                      vae_steps=20, vae_minutes=None, vae_lr=2e-3,
                      t2i_unet=dict(patch=1, pooled_context=True, channels=(16, 32), attention_levels=(1,)), t2i_batch_size=32,
                      t2i_steps=20, t2i_minutes=None, t2i_lr=2e-3, ema_decay=0.9, sample_steps=5, guidance=3.0,
                      guidance_scales=(1.0, 3.0), n_t2i=20),
        "cpu": dict(n_train=20_000, n_test=1000, frames=16, size=64, speed=2, bpe_vocab=120, max_len=24,
                    video=dict(patch=16, tubelet=4, dim=128, spatial_depth=2, temporal_depth=2, heads=4, temporal="joint"),
                    text=dict(dim=128, depth=2, heads=4), embed_dim=128, batch_size=128, steps=100_000, clip_minutes=12.0,
                    lr=1e-3, warmup=200, log_every=50,
                    vae=dict(patch=4, channels=(32, 64), latent_channels=4), beta=1e-3, vae_batch_size=64,
                    vae_steps=100_000, vae_minutes=3.0, vae_lr=1e-3,
                    # cross-attention at 4x4 and in the middle only: 2.3x the images/s of attention at 8x8 too
                    t2i_unet=dict(patch=1, pooled_context=True, channels=(64, 128), attention_levels=(1,)), t2i_batch_size=128,
                    t2i_steps=100_000, t2i_minutes=12.0, t2i_lr=2e-3, ema_decay=0.999, sample_steps=25, guidance=3.0,
                    guidance_scales=(1.0, 2.0, 3.0, 5.0), n_t2i=500),
        "gpu": dict(n_train=50_000, n_test=2000, frames=16, size=64, speed=2, bpe_vocab=120, max_len=24,
                    video=dict(patch=8, tubelet=2, dim=256, spatial_depth=4, temporal_depth=4, heads=8, temporal="joint"),
                    text=dict(dim=256, depth=4, heads=8), embed_dim=256, batch_size=256, steps=20_000, clip_minutes=8.0,
                    lr=1e-3, warmup=500, log_every=100,
                    vae=dict(patch=2, channels=(64, 128, 128), latent_channels=4), beta=1e-3, vae_batch_size=256,
                    vae_steps=20_000, vae_minutes=4.0, vae_lr=1e-3,
                    t2i_unet=dict(patch=1, pooled_context=True, channels=(128, 256), blocks_per_level=2, attention_levels=(0, 1)),
                    t2i_batch_size=256, t2i_steps=40_000, t2i_minutes=8.0, t2i_lr=1e-3, ema_decay=0.9995,
                    sample_steps=25, guidance=3.0, guidance_scales=(1.0, 2.0, 3.0, 5.0), n_t2i=2000),
        "full": dict(n_train=200_000, n_test=5000, frames=16, size=64, speed=2, bpe_vocab=120, max_len=24,
                     video=dict(patch=8, tubelet=2, dim=384, spatial_depth=6, temporal_depth=6, heads=8, temporal="joint"),
                     text=dict(dim=384, depth=6, heads=8), embed_dim=384, batch_size=512, steps=100_000, clip_minutes=None,
                     lr=1e-3, warmup=1000, log_every=200,
                     vae=dict(patch=2, channels=(64, 128, 256), latent_channels=4), beta=1e-3, vae_batch_size=512,
                     vae_steps=50_000, vae_minutes=None, vae_lr=1e-3,
                     t2i_unet=dict(patch=1, pooled_context=True, channels=(192, 384), blocks_per_level=2, attention_levels=(0, 1)),
                     t2i_batch_size=512, t2i_steps=200_000, t2i_minutes=None, t2i_lr=1e-3, ema_decay=0.9999,
                     sample_steps=50, guidance=3.0, guidance_scales=(1.0, 2.0, 3.0, 5.0), n_t2i=5000),
    },
    "05_animatediff": {
        "smoke": dict(image_model="t2i_mnist", n_train=64, frames=16, batch_size=8, steps=8, motion_minutes=None,
                      baseline_minutes=None, lr=1e-3, warmup=2, ema_decay=0.9, caption_dropout=0.1, log_every=4,
                      n_eval=16, sample_steps=3, guidance=3.0, eta=0.0, diffusers_channels=(16, 32), image_batch_size=32,
                      diffusers_image_minutes=None, diffusers_motion_minutes=None, n_diffusers=8),
        "cpu": dict(image_model="t2i_mnist", n_train=12_000, frames=16, batch_size=32, steps=100_000, motion_minutes=8.0,
                    baseline_minutes=7.0, lr=1e-3, warmup=100, ema_decay=0.999, caption_dropout=0.1, log_every=25,
                    n_eval=500, sample_steps=25, guidance=3.0, eta=0.0, diffusers_channels=(48, 96), image_batch_size=128,
                    diffusers_image_minutes=2.0, diffusers_motion_minutes=2.0, n_diffusers=200),
        "gpu": dict(image_model="t2i_mnist", n_train=30_000, frames=16, batch_size=64, steps=20_000, motion_minutes=6.0,
                    baseline_minutes=6.0, lr=1e-3, warmup=200, ema_decay=0.999, caption_dropout=0.1, log_every=50,
                    n_eval=1000, sample_steps=25, guidance=3.0, eta=0.0, diffusers_channels=(64, 128), image_batch_size=256,
                    diffusers_image_minutes=2.0, diffusers_motion_minutes=3.0, n_diffusers=500),
        "full": dict(image_model="t2i_mnist", n_train=100_000, frames=16, batch_size=128, steps=100_000, motion_minutes=None,
                     baseline_minutes=None, lr=1e-3, warmup=500, ema_decay=0.9999, caption_dropout=0.1, log_every=100,
                     n_eval=2000, sample_steps=50, guidance=3.0, eta=0.0, diffusers_channels=(64, 128), image_batch_size=512,
                     diffusers_image_minutes=None, diffusers_motion_minutes=None, n_diffusers=1000),
    },
    "06_flow_dit": {
        "smoke": dict(n_train=48, n_test=8, vae_train_clips=48,
                      vae=dict(patch=(4, 4), channels=(16,), blocks_per_level=1, latent_channels=8), vae_steps=6,
                      vae_minutes=None, vae_batch_size=8, vae_lr=3e-3, vae_crop=(16, 32), beta=1e-3, temporal_weight=0.0,
                      dit=dict(dim=32, depth=2, heads=2), dit_steps=10,
                      dit_minutes=None, batch_size=8, lr=1e-3, warmup=2, ema_decay=0.9, text_dropout=0.1,
                      logit_mean=0.0, logit_std=1.0, shift=3.0, guidance=3.0, sample_steps=4, step_sweep=(1, 2, 4),
                      n_probe=4, probe_strengths=(0.5, 1.0), n_guidance=4, guidance_sweep=(1.0, 3.0),
                      reference_steps=8, n_samples=4, n_eval=8, compare_steps=4, compare_minutes=None, throughput_steps=1,
                      log_every=2),
        # sized on a 2-core AVX2 CPU (fp32): a 32-channel VAE trains 1.7x more crops per second than 64 channels and
        # reconstructed better at equal time; 4x4 DiT patches (80 tokens) train 3.6x more clips/s than 2x2 (320).
        # 256x6 for 12 min (543 steps) left the DiT far from trained: 192x4 (3.5 M, bundle under 10 MB) gets the
        # remaining minutes of the 30-minute budget (VAE 5 + DiT 22 + Wan comparison 2). Shift 3: with shift 1 the
        # trained DiT denoised real clips noised to t <= 0.7 into judged-correct ones (85-91%) but failed from
        # t >= 0.85 (41%, 8% at 0.95), where logit-normal(0, 1) puts 4% of the training times; shift 3 puts 26% there
        # (a 4-minute fine-tune of that model at shift 6 was no better than at shift 3: 26.5/15.8% vs 27.9/12.3%).
        # Guidance is chosen by the notebook from guidance_sweep; on the shift-3 DiT (500 fixed prompts) scales 3/5/7/10
        # gave seen 23.5/27.5/25.9/26.7%, held-out 9.0/10.6/12.2/11.4%, FVD 490/410/372/347
        # The 22-minute DiT looks step-bound: 5 more minutes of fine-tuning (fp32, lr 5e-4) took the 128 guidance
        # prompts from 37.1% to 43.5% seen (held-out 15.2% -> 10.6%); the pooled caption added to adaLN in that
        # fine-tune gave 41.9% / 13.6% (no clear gain)
        "cpu": dict(n_train=8000, n_test=500, vae_train_clips=3000,
                    vae=dict(patch=(4, 4), channels=(32,), blocks_per_level=2, latent_channels=8), vae_steps=100_000,
                    vae_minutes=5.0, vae_batch_size=32, vae_lr=3e-3, vae_crop=(16, 32), beta=1e-3, temporal_weight=0.0,
                    dit=dict(dim=192, depth=4, heads=4, patch=(1, 4, 4)), dit_steps=100_000,
                    dit_minutes=22.0, batch_size=32, lr=1e-3, warmup=200, ema_decay=0.999, text_dropout=0.1,
                    logit_mean=0.0, logit_std=1.0, shift=3.0, guidance=3.0, sample_steps=25,
                    n_probe=128, probe_strengths=(0.3, 0.5, 0.7, 0.85, 0.95, 1.0), n_guidance=128,
                    guidance_sweep=(3.0, 5.0, 7.0, 10.0),
                    step_sweep=(1, 2, 4, 8, 16, 25), reference_steps=50, n_samples=8, n_eval=500, compare_steps=100_000,
                    compare_minutes=1.0, throughput_steps=5, log_every=50),
        "gpu": dict(n_train=20_000, n_test=1000, vae_train_clips=10_000,
                    vae=dict(patch=(2, 2), channels=(64, 128), blocks_per_level=2, latent_channels=8), vae_steps=100_000,
                    vae_minutes=5.0, vae_batch_size=32, vae_lr=2e-3, vae_crop=(16, 64), beta=1e-3, temporal_weight=0.0,
                    dit=dict(dim=384, depth=8, heads=6), dit_steps=100_000,
                    dit_minutes=12.0, batch_size=64, lr=5e-4, warmup=500, ema_decay=0.9995, text_dropout=0.1,
                    logit_mean=0.0, logit_std=1.0, shift=3.0, guidance=3.0, sample_steps=25,
                    n_probe=128, probe_strengths=(0.3, 0.5, 0.7, 0.85, 0.95, 1.0), n_guidance=128,
                    guidance_sweep=(3.0, 5.0, 7.0, 10.0),
                    step_sweep=(1, 2, 4, 8, 16, 25), reference_steps=100, n_samples=64, n_eval=500, compare_steps=100_000,
                    compare_minutes=2.0, throughput_steps=10, log_every=100),
        "full": dict(n_train=50_000, n_test=2000, vae_train_clips=50_000,
                     vae=dict(patch=(2, 2), channels=(96, 192), blocks_per_level=2, latent_channels=8), vae_steps=20_000,
                     vae_minutes=None, vae_batch_size=64, vae_lr=2e-3, vae_crop=(16, 64), beta=1e-3, temporal_weight=0.0,
                     dit=dict(dim=384, depth=9, heads=6), dit_steps=100_000,
                     dit_minutes=None, batch_size=256, lr=3e-4, warmup=1000, ema_decay=0.9999, text_dropout=0.1,
                     logit_mean=0.0, logit_std=1.0, shift=3.0, guidance=3.0, sample_steps=25,
                     n_probe=128, probe_strengths=(0.3, 0.5, 0.7, 0.85, 0.95, 1.0), n_guidance=128,
                     guidance_sweep=(3.0, 5.0, 7.0, 10.0),
                     step_sweep=(1, 2, 4, 8, 16, 25, 50), reference_steps=200, n_samples=256, n_eval=500, compare_steps=5000,
                     compare_minutes=None, throughput_steps=20, log_every=200),
    },
    "09_scaling": {
        # the first block of each profile is the t2v_dit recipe's (python -m / torchrun / accelerate launch
        # tinyvid.recipes.t2v_dit); the rest is the notebook's: the 2-process check, levers, benchmarks, memory, ONNX
        "smoke": dict(dit=dict(size="tiny"), latents=None, n_clips=32, frames=4, size=48, pool=3,
                      text=dict(dim=16, depth=1, heads=2), max_len=16, batch_size=4, steps=4, train_minutes=None,
                      lr=1e-3, warmup=2, ema_decay=0.9, text_dropout=0.1, shift=1.0, log_every=1,
                      ddp=dict(steps=3), lever_dit=dict(size="tiny"), lever_steps=2, compile_levers=False, bench_compile=False, bench_sizes=("tiny",),
                      bench_latent=(4, 2, 8, 8), bench_batch=2, bench_steps=2, bench_rounds=1, sample_steps=2,
                      unet=dict(patch=2, channels=(16, 32), attention_levels=(1,)), unet_batch=8,
                      memory_sizes=(dict(size="tiny"), dict(size="tiny", dim=64), dict(size="tiny", dim=64, depth=4)),
                      memory_batch=2, onnx_dit=dict(size="tiny"), onnx_runs=3, loader_clips=32),
        "cpu": dict(dit=dict(size="XS"), latents=None, n_clips=2000, frames=16, size=64, pool=4,
                    text=dict(dim=64, depth=2, heads=4), max_len=16, batch_size=16, steps=100_000, train_minutes=10.0,
                    lr=1e-3, warmup=100, ema_decay=0.999, text_dropout=0.1, shift=1.0, log_every=25,
                    ddp=dict(steps=10, dit=dict(size="tiny"), n_clips=256, batch_size=8, log_every=1), lever_dit=dict(size="XS"), lever_steps=8,
                    compile_levers=True, bench_compile=False, bench_sizes=("tiny", "XS", "S"), bench_latent=(8, 5, 16, 16), bench_batch=4,
                    bench_steps=3, bench_rounds=3, sample_steps=25,
                    unet=dict(patch=2, channels=(48, 96), attention_levels=(1,)), unet_batch=64,
                    memory_sizes=(dict(size="tiny"), dict(size="XS"), dict(size="S")), memory_batch=4,
                    onnx_dit=dict(size="XS"), onnx_runs=20, loader_clips=256),
        "gpu": dict(dit=dict(size="XS"), latents=None, n_clips=10_000, frames=16, size=64, pool=2,
                    text=dict(dim=128, depth=2, heads=4), max_len=16, batch_size=32, steps=20_000, train_minutes=15.0,
                    lr=1e-3, warmup=500, ema_decay=0.999, text_dropout=0.1, shift=1.0, log_every=100,
                    ddp=dict(steps=10, dit=dict(size="tiny"), n_clips=256, batch_size=8, log_every=1), lever_dit=dict(size="S"), lever_steps=10,
                    compile_levers=True, bench_compile=True, bench_sizes=("XS", "S"), bench_latent=(8, 5, 32, 32), bench_batch=16,
                    bench_steps=10, bench_rounds=3, sample_steps=25,
                    unet=dict(patch=2, channels=(128, 256), blocks_per_level=2, attention_levels=(1,)), unet_batch=256,
                    memory_sizes=(dict(size="tiny"), dict(size="XS"), dict(size="S")), memory_batch=8,
                    onnx_dit=dict(size="XS"), onnx_runs=50, loader_clips=1024),
        "full": dict(dit=dict(size="S"), latents=None, n_clips=50_000, frames=16, size=64, pool=2,
                     text=dict(dim=256, depth=4, heads=8), max_len=16, batch_size=64, steps=100_000, train_minutes=None,
                     lr=5e-4, warmup=1000, ema_decay=0.9999, text_dropout=0.1, shift=2.0, log_every=200,
                     ddp=dict(steps=10, dit=dict(size="tiny"), n_clips=256, batch_size=8, log_every=1), lever_dit=dict(size="S"), lever_steps=20,
                     compile_levers=True, bench_compile=True, bench_sizes=("XS", "S"), bench_latent=(8, 4, 32, 32), bench_batch=32,
                     bench_steps=20, bench_rounds=3, sample_steps=25,
                     unet=dict(patch=2, channels=(192, 384), blocks_per_level=2, attention_levels=(1,)), unet_batch=512,
                     memory_sizes=(dict(size="tiny"), dict(size="XS"), dict(size="S")), memory_batch=16,
                     onnx_dit=dict(size="S"), onnx_runs=50, loader_clips=1024),
    },
    "10_serving": {
        "smoke": dict(steps=2, frames=4, clients=8, jobs_per_client=2, max_batch=8, max_wait_s=0.05, time_limit_s=30.0),
        "cpu": dict(steps=4, frames=8, clients=32, jobs_per_client=4, max_batch=32, max_wait_s=0.05, time_limit_s=60.0),
        "gpu": dict(steps=4, frames=8, clients=32, jobs_per_client=4, max_batch=32, max_wait_s=0.05, time_limit_s=60.0),
        "full": dict(steps=8, frames=16, clients=64, jobs_per_client=4, max_batch=64, max_wait_s=0.05, time_limit_s=120.0),
    },
    "07_video_llava": {
        # steps are upper bounds: the *_minutes budgets stop each phase on the cpu/gpu profiles.
        # motion + detection (cpu, 5 min on one core): direction slots 63% (8-32% without); two streams (4 min, detection
        # only): held-out digits 87% (21% with one ViT over both channels). cpu training ~28.5 of the 30 minutes.
        # pool=2 (frames average-pooled to 32x32 before the stem; detection only, 6 min on one core, 1,000 test
        # clips): 370 vs 203 clips/s, 2-digit clips' digits 84.4% vs 81.4%, directions 89.8% vs 88.8%; a 2x wider
        # stem at full size was slower (77 clips/s) and worse (73.5%); batch 96 slower (154 clips/s).
        # Instruction tuning 6 min + LoRA 1.0 (instead of 4 + 1.5), cpu notebook run: held-out exact 80.0% (82.6),
        # seen 87.4% (87.4), QA 87.7% (86.8), so not adopted; detection-only encoder pre-training (9 + 7 min of the
        # 16) gave held-out 79.2%, QA 88.3%: not adopted either. motion_gap=3 (the change over 6 px instead of 2,
        # frames 0/4/8/12), cpu notebook run: seen 86.4% (87.4), held-out 79.8% (82.6), directions seen 97.6% (94.6)
        # but held-out 92.7% (95.2), QA 86.7% (86.8), LoRA held-out 78.0% (53.1): not adopted
        "smoke": dict(n_train=64, n_test=40, vision=dict(frames=4, patch=16, pool=2, dim=32, depth=1, heads=4, aggregator="qformer", motion=True, detection=True, two_stream=True,
                                                         aggregator_depth=1, queries=8),
                      lm=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
                              num_key_value_heads=4),
                      aggregators=("mean", "temporal", "qformer"), batch_size=16, lr=2e-3, lm_lr=3e-3, tune_lr=1e-3,
                      lm_steps=15, lm_minutes=None, vision_steps=15, vision_minutes=None, compare_steps=8,
                      compare_minutes=None, align_steps=10, align_minutes=None, tune_steps=15, tune_minutes=None,
                      lora_steps=15, lora_minutes=None, lora_r=8, qa_per_clip=2, beams=3, n_throughput=16, log_every=5),
        "cpu": dict(n_train=30_000, n_test=1000, vision=dict(frames=4, patch=16, pool=2, dim=96, depth=2, heads=4, aggregator="qformer", motion=True, detection=True, two_stream=True,
                                                             aggregator_depth=1, queries=16),
                    lm=dict(hidden_size=128, intermediate_size=384, num_hidden_layers=2, num_attention_heads=4,
                            num_key_value_heads=4),
                    aggregators=("mean", "temporal", "qformer"), batch_size=32, lr=2e-3, lm_lr=3e-3, tune_lr=1e-3,
                    lm_steps=100_000, lm_minutes=1.5, vision_steps=100_000, vision_minutes=16.0, compare_steps=100_000,
                    compare_minutes=1.0, align_steps=100_000, align_minutes=1.5, tune_steps=100_000, tune_minutes=4.0,
                    lora_steps=100_000, lora_minutes=1.5, lora_r=8, qa_per_clip=3, beams=3, n_throughput=256, log_every=50),
        "gpu": dict(n_train=50_000, n_test=2000, vision=dict(frames=8, patch=16, pool=2, dim=128, depth=4, heads=4, aggregator="qformer", motion=True, detection=True, two_stream=True,
                                                             aggregator_depth=2, queries=16),
                    lm=dict(hidden_size=192, intermediate_size=512, num_hidden_layers=3, num_attention_heads=4,
                            num_key_value_heads=4),
                    aggregators=("mean", "temporal", "qformer"), batch_size=128, lr=1e-3, lm_lr=2e-3, tune_lr=5e-4,
                    lm_steps=100_000, lm_minutes=1.0, vision_steps=100_000, vision_minutes=9.0, compare_steps=100_000,
                    compare_minutes=1.5, align_steps=100_000, align_minutes=1.0, tune_steps=100_000, tune_minutes=2.0,
                    lora_steps=100_000, lora_minutes=1.5, lora_r=16, qa_per_clip=3, beams=3, n_throughput=1024, log_every=100),
        "full": dict(n_train=200_000, n_test=5000, vision=dict(frames=8, patch=8, dim=256, depth=6, heads=8, aggregator="qformer", motion=True, detection=True, two_stream=True,
                                                               aggregator_depth=2, queries=32),
                     lm=dict(hidden_size=384, intermediate_size=1024, num_hidden_layers=6, num_attention_heads=8,
                             num_key_value_heads=8, max_position_embeddings=128),
                     aggregators=("mean", "temporal", "qformer"), batch_size=256, lr=1e-3, lm_lr=1e-3, tune_lr=3e-4,
                     lm_steps=5000, lm_minutes=None, vision_steps=30_000, vision_minutes=None, compare_steps=5000,
                     compare_minutes=None, align_steps=2000, align_minutes=None, tune_steps=5000, tune_minutes=None,
                     lora_steps=5000, lora_minutes=None, lora_r=16, qa_per_clip=3, beams=3, n_throughput=2048, log_every=200),
    },
    "08_evaluation": {
        # the sample sets are fixed (2000 images, 500 clips per model): the profiles choose how much of them to score
        "smoke": dict(n_images=200, fid_ns=(50, 100, 200), pr_k=3, n_videos=24, n_text=24, qa_per_clip=1, batch_size=64,
                      beams=1, n_examples=1),
        "cpu": dict(n_images=2000, fid_ns=(250, 500, 1000, 2000), pr_k=3, n_videos=500, n_text=1000, qa_per_clip=1,
                    batch_size=256, beams=1, n_examples=3),
        "gpu": dict(n_images=2000, fid_ns=(250, 500, 1000, 2000), pr_k=3, n_videos=500, n_text=2000, qa_per_clip=2,
                    batch_size=512, beams=1, n_examples=3),
        "full": dict(n_images=2000, fid_ns=(250, 500, 1000, 2000), pr_k=3, n_videos=500, n_text=5000, qa_per_clip=3,
                     batch_size=512, beams=3, n_examples=4),
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
