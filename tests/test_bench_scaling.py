"""Notebook 09's measurements: peak FLOP/s, FLOP counts, peak memory against the estimate, the DiT and
U-Net benchmarks against their diffusers twins, the levers, and that the big configs fit their cards."""

import json

import pytest
import torch
from torch import nn

from tinyvid import bench_scaling as bs
from tinyvid.course.configs import CONFIGS
from tinyvid.course.memory import CARDS_GIB, estimate_training_memory

ZEN4 = {"flags": {"avx2", "fma", "avx512f", "avx512_bf16"}, "model": "AMD EPYC", "vendor": "AuthenticAMD", "family": 25, "mhz": 2600.0}
SAPPHIRE = {"flags": {"avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16"}, "model": "Xeon", "vendor": "GenuineIntel",
            "family": 6, "mhz": 2000.0}
AVX2 = {"flags": {"avx2", "fma"}, "model": "Core", "vendor": "GenuineIntel", "family": 6, "mhz": 3000.0}


@pytest.mark.parametrize("info, precision, per_cycle", [(ZEN4, "fp32", 32), (ZEN4, "bf16", 64), (SAPPHIRE, "fp32", 64),
                                                         (SAPPHIRE, "bf16", 1024), (AVX2, "fp32", 32), (AVX2, "bf16", 32)])
def test_cpu_peak_is_cores_times_flop_per_cycle_times_clock(monkeypatch, info, precision, per_cycle):
    monkeypatch.setattr(bs, "_cpuinfo", lambda: info)
    monkeypatch.setattr(bs, "_cpu_ghz", lambda info: info["mhz"] / 1000)
    peak = bs.cpu_peak(precision, threads=2)
    assert peak["peak_flops"] == pytest.approx(2 * per_cycle * info["mhz"] * 1e6)
    assert f"{per_cycle} {precision} FLOP/cycle" in peak["how"]


@pytest.mark.parametrize("name, precision, tflops", [("NVIDIA H100 80GB HBM3", "bf16", 989), ("NVIDIA H100 PCIe", "bf16", 756),
                                                     ("Tesla T4", "fp16", 65), ("NVIDIA A100-SXM4-40GB", "fp32", 19.5)])
def test_gpu_peak_comes_from_the_datasheet_table(monkeypatch, name, precision, tflops):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    assert bs.device_peak("cuda", precision)["peak_flops"] == pytest.approx(tflops * 1e12)


def test_flops_per_sample_counts_forward_and_weight_gradient_matmuls():
    model = nn.Linear(8, 16, bias=False)
    batch = (torch.randn(4, 8),)
    flops = bs.training_flops_per_sample(model, lambda m, b: m(b[0]).pow(2).sum(), batch)
    assert flops == 2 * (2 * 8 * 16)  # forward x @ W^T, backward dW (the input needs no gradient)
    assert model.weight.grad is None


def test_measured_peak_memory_of_a_weight_heavy_model_is_in_the_optimizer_step():
    make = lambda: nn.Sequential(nn.Linear(256, 1024), nn.GELU(), nn.Linear(1024, 256))  # noqa: E731
    loss = lambda mod, b: mod(b[0]).pow(2).mean()  # noqa: E731
    model = make()
    params = sum(p.numel() for p in model.parameters())
    m = bs.measure_peak_memory(model, loss, (torch.randn(16, 256),))
    # weights, gradients, AdamW's two moments and its temporary: 20 bytes a parameter
    assert m["by_kind"]["param"] == 4 * params and m["by_kind"]["grad"] == 4 * params
    assert m["by_kind"]["opt"] >= 8 * params
    est = estimate_training_memory(make, lambda: (torch.randn(16, 256),), loss)
    assert est.step_peak_bytes == pytest.approx(m["peak_bytes"], rel=0.15)


@pytest.mark.parametrize("spec", [dict(size="tiny"), dict(size="tiny", dim=64), dict(size="tiny", dim=64, depth=4)])
def test_memory_estimate_is_within_15_percent_of_the_measured_peak(spec):
    check = bs.dit_memory_check(spec, latent_shape=(4, 2, 8, 8), batch=2)
    print(json.dumps(check))
    assert abs(check["relative_error"]) < 0.15
    assert check["estimate_all_at_once_mib"] >= check["measured_mib"]  # the bound used to pick a card is safe


def recipe_estimate(profile, card_dtype):
    """The t2v_dit recipe's training step at a profile's settings, on the meta device."""
    from tinyvid.diffusion.flow import flow_matching_loss
    from tinyvid.models import VideoDiT, video_dit_config

    s = CONFIGS["09_scaling"][profile]
    spec = dict(s["dit"])
    latent = (4, s["frames"], s["size"] // (2 * s["pool"]), s["size"] // (2 * s["pool"]))  # pixel_latents' shape
    cfg = video_dit_config(spec.pop("size"), in_channels=4, context_dim=s["text"]["dim"], **spec)
    b = s["batch_size"]
    est = estimate_training_memory(
        lambda: VideoDiT(cfg),
        lambda: (torch.randn(b, *latent), torch.randn(b, s["max_len"], s["text"]["dim"]), torch.ones(b, s["max_len"], dtype=torch.bool)),
        flow_matching_loss(), activation_dtype=card_dtype, fused_attention=True)
    tokens = s["frames"] * (latent[2] // 2) * (latent[3] // 2)
    return est, tokens


@pytest.mark.parametrize("profile, card, dtype", [("full", "H100-80GB", torch.bfloat16), ("gpu", "T4", torch.float16)])
def test_the_dit_configs_fit_their_card(profile, card, dtype):
    est, tokens = recipe_estimate(profile, dtype)
    print(profile, card, tokens, "tokens", est)
    assert est.total_gib < 0.66 * CARDS_GIB[card]  # a third of the card for the CUDA context, workspaces, fragmentation
    if profile == "full":
        assert est.params > 25e6 and tokens >= 1024  # DiT-S size at >= 1,024 tokens, as the MFU target asks


def test_dit_bench_measures_both_models_in_one_run():
    out = bs.bench_dit(("tiny",), latent_shape=(4, 2, 8, 8), batch=2, steps=1, rounds=1, sample_steps=1, precision="fp32",
                       memory=False)
    r = out["sizes"]["tiny"]
    for name in ("tinyvid", "diffusers_wan"):
        assert r[name]["train_samples_per_s"] > 0 and r[name]["flops_per_sample"] > 0 and r[name]["sample_seconds"] > 0
        assert 0 < r[name]["mfu"] < 1
    assert r["tinyvid_over_diffusers_wan"]["params"] == pytest.approx(1.0, abs=0.02)
    assert r["tokens"] == 2 * 4 * 4 and json.dumps(out)


def test_unet_bench_matches_the_diffusers_model_size():
    unet = CONFIGS["09_scaling"]["cpu"]["unet"]  # notebook 01's cpu U-Net (the smoke one is below the smallest UNet2DModel)
    out = bs.bench_unet(unet, batch=4, steps=1, rounds=1, sample_steps=1, precision="fp32", memory=False)
    assert out["tinyvid_over_diffusers_unet2d"]["params"] == pytest.approx(1.0, abs=0.05)
    assert out["tinyvid"]["train_samples_per_s"] > 0 and out["diffusers_unet2d"]["sample_seconds"] > 0


def test_levers_report_speed_memory_and_unavailable_kernels():
    out = bs.bench_levers("tiny", latent_shape=(4, 2, 8, 8), batch=2, steps=1, warmup=1, compile=False,
                          levers=("fp32 eager (baseline)", "activation checkpointing", "SDPA memory-efficient", "torch.compile"))
    rows = out["levers"]
    base, ckpt = rows["fp32 eager (baseline)"], rows["activation checkpointing"]
    assert base["speedup"] == 1.0 and ckpt["peak_memory_mib"] < base["peak_memory_mib"]
    assert ckpt["loss_at_step_4"] == pytest.approx(base["loss_at_step_4"], abs=1e-5)
    assert rows["torch.compile"]["available"] is False
    if not torch.cuda.is_available():  # no memory-efficient kernel on CPUs: reported, not raised
        assert rows["SDPA memory-efficient"]["available"] is False and "error" in rows["SDPA memory-efficient"]


def test_lever_speedups_are_taken_against_the_baselines_beside_them(monkeypatch):
    # a CPU that slows down by 10% at every measurement, and a lever that is truly 1.5x the baseline:
    # against the first baseline alone it would read about 1.2x; against its neighbours it reads 1.5x
    calls = []

    def drifting_row(make, loss_fn, batch, options, *args):
        calls.append(options)
        speed = 100 * 0.9 ** (len(calls) - 1) * (1.5 if options.get("precision") == "bf16" else 1.0)
        return {"available": True, "samples_per_s": speed}

    monkeypatch.setattr(bs, "_lever_row", drifting_row)
    out = bs.bench_levers("tiny", latent_shape=(4, 2, 8, 8), batch=2, compile=False,
                          levers=("fp32 eager (baseline)", "bf16 autocast"))
    row = out["levers"]["bf16 autocast"]
    assert calls == [{}, {}, {"precision": "bf16"}, {}]
    assert row["baseline_samples_per_s"] == pytest.approx((90 + 72.9) / 2, rel=1e-3)
    assert row["speedup"] == pytest.approx(1.5 * 81 / ((90 + 72.9) / 2), rel=1e-3)
    assert abs(row["speedup"] - 1.5) < 0.02 and out["best_bf16_compile_speedup"] == row["speedup"]


def test_loader_bench_counts_every_clip():
    out = bs.bench_loader(clips=4, batch=2, settings=((0, False), (1, True)))
    assert all(r["clips_per_s"] > 0 for r in out["settings"].values())
    assert out["settings"]["workers=1, pin_memory=True"]["pinned"] == torch.cuda.is_available()


def test_bench_cli_prints_json(capsys):
    from tinyvid.cli import main

    main(["bench", "memory", "--profile", "smoke"])
    out = json.loads(capsys.readouterr().out)
    assert out["bench"] == "memory" and len(out["sizes"]) == 3
