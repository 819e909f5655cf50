"""Notebook 09's measurements, as library functions and `tinyvid bench` sub-commands that print JSON.

- `tinyvid bench dit`: the video DiT at several sizes against diffusers' `WanTransformer3DModel` of
  the same size (`wan_config_like`), in the same run: training samples/s, model FLOPs per sample
  (counted by `torch.utils.flop_counter.FlopCounterMode` over forward + backward), achieved FLOP/s
  and MFU against the device's peak, peak training memory, sampling latency per video;
- `tinyvid bench unet`: the same for notebook 01's U-Net against a diffusers `UNet2DModel` of matched size;
- `tinyvid bench levers`: each speed lever of the Trainer on or off;
- `tinyvid bench memory`: the memory estimate against measured peak memory;
- `tinyvid bench loader`: DataLoader workers and pinned memory on a decode-bound pipeline.

Timing on a shared machine is noisy: models compared with each other run in alternating rounds and
each keeps its best round (the least disturbed), as `timeit` recommends.

Peak memory: on CUDA `torch.cuda.max_memory_allocated` over one training step. On a CPU there is no
allocator counter, so torch's `MemTracker` (torch.distributed._tools) follows every tensor's storage
through a dispatch mode and reports the peak of live tensor bytes by kind (parameters, gradients,
optimizer states, activations, temporaries): the CPU analogue of max_memory_allocated. It does not
count the process's other memory (Python, libraries, allocator caches), which `resource` would.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import time
from typing import Callable

import torch
from torch import nn

from tinyvid.train import TensorBatches, Trainer

# dense peak TFLOP/s of NVIDIA cards: (bf16/fp16 tensor cores, fp32 without TF32); longer names first
GPU_PEAK_TFLOPS: dict[str, tuple[float, float]] = {
    "H200": (989.0, 67.0), "H100 PCIe": (756.0, 51.0), "H100": (989.0, 67.0), "A100": (312.0, 19.5),
    "L40S": (362.0, 91.6), "L4": (121.0, 30.3), "A10": (125.0, 31.2), "T4": (65.0, 8.1), "V100": (125.0, 15.7),
}


# --- the device's peak ---

def _cpuinfo() -> dict:
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        return {"flags": set(), "model": platform.processor(), "vendor": "", "family": None, "mhz": None}
    first = text.split("\n\n")[0]
    field = lambda name: (re.search(rf"^{name}\s*:\s*(.*)$", first, re.M) or [None, ""])[1]  # noqa: E731
    return {"flags": set(field("flags").split()), "model": field("model name"), "vendor": field("vendor_id"),
            "family": int(field("cpu family")) if field("cpu family") else None,
            "mhz": float(field("cpu MHz")) if field("cpu MHz") else None}


def _cpu_ghz(info: dict) -> float:
    try:  # the rated maximum where the kernel exposes it (a VM usually does not)
        return int(open("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq").read()) / 1e6
    except (OSError, ValueError):
        return (info["mhz"] or 2000.0) / 1000


def cpu_peak(precision: str = "fp32", threads: int | None = None) -> dict:
    """Peak FLOP/s of the CPU cores this process computes on: cores x FLOP per cycle x clock.

    FLOP per cycle = 2 FMA units x 2 (an FMA is a multiply and an add) x fp32 lanes of the vector
    datapath: 512-bit with AVX-512 (16 lanes), 256-bit with AVX2 (8), except AMD Zen 4, which runs
    AVX-512 on 256-bit halves. AVX512-BF16's dot-product instruction doubles the lanes for bf16,
    Intel AMX tiles reach 1024 bf16 FLOP per cycle. The clock is the rated maximum where exposed,
    else the current `cpu MHz` (a VM shows the base clock; turbo would raise the peak). An
    estimate to put MFU on a scale, not a measurement.
    """
    info = _cpuinfo()
    flags = info["flags"]
    bits = 512 if "avx512f" in flags else 256 if {"avx2", "fma"} <= flags else 128
    zen4 = info["vendor"] == "AuthenticAMD" and info["family"] == 25 and bits == 512
    datapath = 256 if zen4 else bits
    per_cycle = 2 * 2 * datapath // 32
    how = f"2 FMA x 2 x {datapath // 32} fp32 lanes ({'AVX-512 on 256-bit halves' if zen4 else f'{bits}-bit'})"
    if precision in ("bf16", "fp16"):
        if "amx_bf16" in flags:
            per_cycle, how = 1024, "AMX bf16 tiles"
        elif "avx512_bf16" in flags and precision == "bf16":
            per_cycle, how = 2 * per_cycle, how + " x 2 (AVX512-BF16 dot products)"
    cores = threads or torch.get_num_threads()
    ghz = _cpu_ghz(info)
    return {"peak_flops": cores * per_cycle * ghz * 1e9, "device": f"{info['model'] or platform.machine()}",
            "how": f"{cores} cores x {per_cycle} {precision} FLOP/cycle [{how}] x {ghz:.2f} GHz"}


def device_peak(device: torch.device | str, precision: str = "fp32") -> dict:
    """{'peak_flops', 'device', 'how'}: the table above for GPUs, `cpu_peak` for CPUs (None when unknown)."""
    device = torch.device(device)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, (half, single) in GPU_PEAK_TFLOPS.items():
            if key in name:
                tflops = single if precision == "fp32" else half
                return {"peak_flops": tflops * 1e12, "device": name, "how": f"datasheet dense {precision}: {tflops} TFLOP/s"}
        return {"peak_flops": None, "device": name, "how": "not in GPU_PEAK_TFLOPS"}
    if device.type == "cpu":
        return cpu_peak(precision)
    return {"peak_flops": None, "device": device.type, "how": "unknown"}


def machine() -> str:
    info = _cpuinfo()
    return (f"{info['model'] or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
            + (f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""))


# --- FLOPs, memory, time ---

def training_flops_per_sample(model: nn.Module, loss_fn: Callable, batch: tuple) -> float:
    """Model FLOPs of forward + backward per batch row, as FlopCounterMode counts them (matmuls,
    convolutions, attention; elementwise ops are not counted, as MFU conventionally does not)."""
    from torch.utils.flop_counter import FlopCounterMode

    model.train()
    with FlopCounterMode(display=False) as counter:
        loss_fn(model, batch).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / len(batch[0])


def measure_peak_memory(model: nn.Module, loss_fn: Callable, batch: tuple, precision: str = "fp32",
                        setup: Callable[[nn.Module], None] | None = None) -> dict:
    """Peak bytes of one AdamW training step, after a first step has created the optimizer states.

    CUDA: max_memory_allocated. CPU: MemTracker's peak of live tensor storage, by kind.
    """
    from tinyvid.course.device import autocast_dtype

    device = next(model.parameters()).device
    dtype = autocast_dtype(precision)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step():
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = loss_fn(model, batch)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    model.train()
    step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)
        step()
        torch.cuda.synchronize()
        return {"peak_bytes": torch.cuda.max_memory_allocated(device), "how": "torch.cuda.max_memory_allocated"}
    from torch.distributed._tools.mem_tracker import MemTracker

    tracker = MemTracker()
    tracker.track_external(model, opt)
    with tracker:
        step()
    peak = tracker.get_tracker_snapshot("peak")[device]
    kinds = {str(k).split(".")[-1].lower(): int(v) for k, v in peak.items() if str(k) != "Total"}
    return {"peak_bytes": int(peak["Total"]), "by_kind": kinds, "how": "MemTracker: peak live tensor bytes"}


def bench_trainer(model: nn.Module, loss_fn: Callable, batch: tuple, seed: int = 0, **options) -> Trainer:
    """A Trainer that takes the same batch every step (no data cost), without EMA or logging."""
    rows = len(batch[0]) // options.get("grad_accum", 1)
    return Trainer(model, loss_fn, TensorBatches(*batch, batch_size=rows, seed=seed), steps=10**9, warmup=1,
                   ema_decay=None, progress=False, log_every=10**9, seed=seed, **options)


def _seconds_per_step(trainer: Trainer, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        trainer.train_step()  # float(loss) inside waits for the device
    return (time.perf_counter() - start) / steps


def compare_throughput(trainers: dict[str, Trainer], rows: int, steps: int = 3, rounds: int = 3,
                       warmup: int = 1) -> dict[str, float]:
    """Samples/s of each trainer (all of one precision: accelerate keeps one state), best of
    `rounds` alternating rounds of `steps` steps, after `warmup` untimed steps each."""
    for trainer in trainers.values():
        for _ in range(warmup):
            trainer.train_step()
    best = {name: math.inf for name in trainers}
    for _ in range(rounds):
        for name, trainer in trainers.items():
            best[name] = min(best[name], _seconds_per_step(trainer, steps))
    return {name: rows / s for name, s in best.items()}


def seconds_of(fn: Callable[[], object], runs: int = 3, warmup: int = 1) -> float:
    """Best wall-clock seconds of fn() over `runs` calls after `warmup` calls."""
    for _ in range(warmup):
        fn()
    best = math.inf
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


# --- the DiT and its diffusers twin ---

def dit_spec(spec) -> tuple[str, dict]:
    """'XS' or {'size': 'XS', 'dim': 256, ...} -> (size, overrides)."""
    spec = {"size": spec} if isinstance(spec, str) else dict(spec)
    return spec.pop("size", "tiny"), spec


def dit_models(spec, in_channels: int, context_dim: int) -> dict[str, Callable[[], nn.Module]]:
    from tinyvid.models import VideoDiT, WanVideoTransformer, video_dit_config, wan_config_like

    size, overrides = dit_spec(spec)
    cfg = video_dit_config(size, in_channels=in_channels, context_dim=context_dim, **overrides)
    return {"tinyvid": lambda: VideoDiT(cfg), "diffusers_wan": lambda: WanVideoTransformer(wan_config_like(cfg))}


def dit_batch(batch: int, latent_shape, context_len: int = 12, context_dim: int = 32, device="cpu", seed: int = 0):
    """Random latents, caption features and a caption mask with some padding, like a real batch."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, *latent_shape, generator=g)
    context = torch.randn(batch, context_len, context_dim, generator=g)
    mask = torch.arange(context_len)[None] < torch.randint(context_len // 2, context_len + 1, (batch, 1), generator=g)
    return tuple(t.to(device) for t in (x, context, mask))


@torch.no_grad()
def dit_sampling_seconds(model: nn.Module, latent_shape, context, mask, steps: int, guidance: float = 3.0,
                         precision: str = "fp32", runs: int = 1) -> float:
    """Seconds to sample one video: `steps` Euler steps, each a batched conditional + unconditional call (CFG)."""
    from tinyvid.course.device import autocast_dtype
    from tinyvid.diffusion.flow import euler_sample
    from tinyvid.diffusion.samplers import with_guidance

    model.eval()
    device = context.device
    cond = (context[:1], mask[:1])
    null = (torch.zeros_like(context[:1]), torch.zeros_like(mask[:1]).index_fill_(1, torch.tensor([0], device=device), True))
    velocity = with_guidance(lambda x, t, c: model(x, t, *c), cond, null, guidance)
    dtype = autocast_dtype(precision)

    def run():
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            euler_sample(velocity, (1, *latent_shape), steps, device=device, progress=False)

    return seconds_of(run, runs=runs, warmup=0)


def bench_models(makers: dict[str, Callable[[], nn.Module]], loss_fn: Callable, batch: tuple, steps: int, rounds: int,
                 precision: str, device: torch.device, sample: Callable[[nn.Module], float] | None = None,
                 memory: bool = True, seed: int = 0, compile: bool = False) -> dict:
    """Throughput, FLOPs, MFU, memory and sampling latency of each model on the same batch, in one run
    (FLOPs and memory of the eager model; `compile` applies to the timed training steps)."""
    peak = device_peak(device, precision)
    out: dict = {}
    models = {}
    for name, make in makers.items():
        torch.manual_seed(seed)
        models[name] = make().to(device)
        out[name] = {"params_millions": round(sum(p.numel() for p in models[name].parameters()) / 1e6, 3),
                     "flops_per_sample": training_flops_per_sample(models[name], loss_fn, batch)}
    trainers = {name: bench_trainer(m, loss_fn, batch, seed=seed, precision=precision, device=str(device), compile=compile)
                for name, m in models.items()}
    speed = compare_throughput(trainers, len(batch[0]), steps, rounds)
    for name, trainer in trainers.items():
        r = out[name]
        r["train_samples_per_s"] = round(speed[name], 3)
        r["achieved_tflops"] = round(speed[name] * r["flops_per_sample"] / 1e12, 4)
        r["mfu"] = round(speed[name] * r["flops_per_sample"] / peak["peak_flops"], 4) if peak["peak_flops"] else None
        if memory:
            torch.manual_seed(seed)
            r["peak_memory_mib"] = round(measure_peak_memory(makers[name]().to(device), loss_fn, batch, precision)["peak_bytes"] / 2**20, 2)
        if sample:
            r["sample_seconds"] = round(sample(trainer.unwrapped), 4)
    names = list(makers)
    if len(names) == 2:
        a, b = names
        out[f"{a}_over_{b}"] = {"train_throughput": round(out[a]["train_samples_per_s"] / out[b]["train_samples_per_s"], 3),
                                "params": round(out[a]["params_millions"] / out[b]["params_millions"], 3)}
        if sample:
            out[f"{a}_over_{b}"]["sampling_speed"] = round(out[b]["sample_seconds"] / out[a]["sample_seconds"], 3)
    return {"precision": precision, "compile": compile, "peak": peak, **out}


def bench_dit(sizes=("tiny",), latent_shape=(4, 2, 8, 8), batch: int = 2, steps: int = 2, rounds: int = 1,
              sample_steps: int = 2, precision: str = "auto", device: str = "auto", memory: bool = True,
              context_dim: int = 32, seed: int = 0, compile: bool = False) -> dict:
    from tinyvid.course.device import pick_device, pick_precision
    from tinyvid.diffusion.flow import flow_matching_loss

    dev = pick_device(device)
    precision = pick_precision(dev, precision)
    data = dit_batch(batch, latent_shape, context_dim=context_dim, device=dev, seed=seed)
    out = {"bench": "dit", "machine": machine(), "latent_shape": list(latent_shape), "batch": batch,
           "sampler": f"Euler {sample_steps} steps with CFG (2 model calls per step, batched)", "sizes": {}}
    for spec in sizes:
        makers = dit_models(spec, latent_shape[0], context_dim)
        tokens = math.prod(n // p for n, p in zip(latent_shape[1:], makers["tinyvid"]().config.patch))
        sample = lambda m: dit_sampling_seconds(m, latent_shape, data[1], data[2], sample_steps, precision=precision)  # noqa: E731
        result = bench_models(makers, flow_matching_loss(), data, steps, rounds, precision, dev, sample, memory, seed, compile)
        out["sizes"][json.dumps(spec) if isinstance(spec, dict) else spec] = {"tokens": tokens, **result}
    return out


# --- the U-Net and its diffusers twin ---

def diffusers_unet_like(unet_config) -> "nn.Module":
    """A diffusers UNet2DModel (bench.DiffusersUNet: channels (a, b, b), attention at the lowest level) with
    about as many parameters as the tinyvid U-Net: a is the largest width in steps of 8 whose (a, 2a, 2a)
    does not exceed it, then b is tuned in steps of 8 (GroupNorm's 8 groups) to the closest count."""
    from tinyvid.bench import DiffusersUNet
    from tinyvid.models import UNet

    with torch.device("meta"):
        target = sum(p.numel() for p in UNet(unet_config).parameters())
        count = lambda a, b: sum(p.numel() for p in DiffusersUNet((a, b, b)).parameters())  # noqa: E731
        a = max([c for c in range(8, 257, 8) if count(c, 2 * c) <= target] or [8])
        b = min(range(a, 4 * a + 1, 8), key=lambda b: abs(count(a, b) - target))
    return DiffusersUNet((a, b, b))


def bench_unet(unet: dict, batch: int = 8, steps: int = 2, rounds: int = 1, sample_steps: int = 2,
               precision: str = "auto", device: str = "auto", memory: bool = True, seed: int = 0) -> dict:
    from tinyvid.course.device import pick_device, pick_precision
    from tinyvid.diffusion import Schedule, diffusion_loss
    from tinyvid.diffusion.pipeline import sample_images
    from tinyvid.models import UNet, UNetConfig

    dev = pick_device(device)
    precision = pick_precision(dev, precision)
    cfg = UNetConfig(**unet)
    schedule = Schedule("linear")
    g = torch.Generator().manual_seed(seed)
    data = (torch.randn(batch, 1, 28, 28, generator=g).to(dev),)
    makers = {"tinyvid": lambda: UNet(cfg), "diffusers_unet2d": lambda: diffusers_unet_like(cfg)}
    sample = lambda m: seconds_of(lambda: sample_images(m.eval(), schedule, 1, "ddim", sample_steps, 0.0, progress=False),  # noqa: E731
                                  runs=1, warmup=0)
    result = bench_models(makers, diffusion_loss(schedule, min_snr_gamma=5.0), data, steps, rounds, precision, dev,
                          sample, memory, seed)
    return {"bench": "unet", "machine": machine(), "image_shape": [1, 28, 28], "batch": batch,
            "sampler": f"DDIM {sample_steps} steps, one image", **result}


# --- the speed levers ---

# name -> (Trainer options on top of the fp32 eager baseline, the model it applies to)
LEVERS: dict[str, dict] = {
    "fp32 eager (baseline)": {},
    "bf16 autocast": {"precision": "bf16"},
    "torch.compile": {"compile": True},
    "bf16 + compile": {"precision": "bf16", "compile": True},
    "activation checkpointing": {"activation_checkpointing": True},
    "fused AdamW": {"fused_adamw": True},
    "SDPA flash": {"sdpa_backend": "flash"},
    "SDPA memory-efficient": {"sdpa_backend": "efficient"},
    "SDPA math": {"sdpa_backend": "math"},
    "grad accumulation x2": {"grad_accum": 2},
}
UNET_LEVERS: dict[str, dict] = {"U-Net fp32 (baseline)": {}, "U-Net channels-last": {"channels_last": True}}


def _lever_row(make: Callable[[], nn.Module], loss_fn: Callable, batch: tuple, options: dict, steps: int,
               warmup: int, memory: bool, seed: int, device: torch.device) -> dict:
    torch.manual_seed(seed)
    try:
        trainer = bench_trainer(make().to(device), loss_fn, batch, seed=seed, device=str(device), **options)
        for _ in range(warmup):
            trainer.train_step()
        seconds = min(_seconds_per_step(trainer, steps) for _ in range(2))
        last = trainer.train_step()  # the same seed, batch and step count for every lever: the same loss, up to rounding
    except Exception as error:  # a kernel this device lacks (e.g. memory-efficient attention on a CPU)
        return {"available": False, "error": f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"}
    row = {"available": True, "samples_per_s": round(len(batch[0]) / seconds, 3), f"loss_at_step_{last['step']}": round(last["loss"], 5)}
    if memory and not options.get("compile"):  # compiled graphs are not followed by the tensor tracker
        from tinyvid.train.trainer import checkpoint_blocks, to_channels_last

        torch.manual_seed(seed)
        model = make().to(device)
        if options.get("activation_checkpointing"):
            checkpoint_blocks(model)
        micro = tuple(t[: len(t) // options.get("grad_accum", 1)] for t in batch)  # accumulation's point: a smaller micro-batch
        if options.get("channels_last"):
            model, micro = model.to(memory_format=torch.channels_last), tuple(map(to_channels_last, micro))
        row["peak_memory_mib"] = round(measure_peak_memory(model, loss_fn, micro, options.get("precision", "fp32"))["peak_bytes"] / 2**20, 2)
    return row


def _paired_speedup(measure: Callable[[dict, bool], dict], options: dict) -> dict:
    """The lever's row with its speed-up over fp32 eager baselines timed right before and right after it.

    A shared or burstable CPU changes speed over minutes (a first measurement can run 1.5x faster than
    one taken after minutes of load): a ratio against a baseline timed once, at the start, measures that
    drift more than the lever. Each lever is therefore compared with its own neighbours."""
    before = measure({}, False)
    row = measure(options, True)
    after = measure({}, False)
    if row.get("available") and before.get("available") and after.get("available"):
        base = (before["samples_per_s"] + after["samples_per_s"]) / 2
        row["baseline_samples_per_s"] = round(base, 3)
        row["speedup"] = round(row["samples_per_s"] / base, 3)
    return row


def bench_levers(dit=None, latent_shape=(4, 2, 8, 8), batch: int = 2, unet: dict | None = None, unet_batch: int = 8,
                 steps: int = 2, warmup: int = 2, compile: bool = True, memory: bool = True, device: str = "auto",
                 context_dim: int = 32, seed: int = 0, levers: tuple[str, ...] | None = None) -> dict:
    """Training samples/s (and peak memory) of the DiT with each lever on alone (and bf16 + compile),
    and of the U-Net with channels-last; speed-up against fp32 eager timed just before and after each lever."""
    from tinyvid.course.device import cpu_has_native_bf16, pick_device
    from tinyvid.diffusion import Schedule, diffusion_loss
    from tinyvid.diffusion.flow import flow_matching_loss
    from tinyvid.models import UNet, UNetConfig

    dev = pick_device(device)
    data = dit_batch(batch, latent_shape, context_dim=context_dim, device=dev, seed=seed)
    make = dit_models(dit or "tiny", latent_shape[0], context_dim)["tinyvid"]
    measure_dit = lambda options, mem: _lever_row(make, flow_matching_loss(), data, options, steps, warmup,  # noqa: E731
                                                  memory and mem, seed, dev)
    rows = {}
    for name, options in LEVERS.items():
        if levers is not None and name not in levers:
            continue
        if options.get("compile") and not compile:
            rows[name] = {"available": False, "error": "skipped: compiling takes minutes on this profile's CPU"}
        elif not options:  # the baseline itself
            rows[name] = {**measure_dit(options, True), "speedup": 1.0}
        else:
            rows[name] = _paired_speedup(measure_dit, options)
    if unet is not None:
        images = (torch.randn(unet_batch, 1, 28, 28, generator=torch.Generator().manual_seed(seed)).to(dev),)
        measure_unet = lambda options, mem: _lever_row(lambda: UNet(UNetConfig(**unet)), diffusion_loss(Schedule("linear")),  # noqa: E731
                                                       images, options, steps, warmup, memory and mem, seed, dev)
        for name, options in UNET_LEVERS.items():
            rows[name] = {**measure_unet(options, True), "speedup": 1.0} if not options else _paired_speedup(measure_unet, options)
    speedups = [rows[n].get("speedup", 0) for n in ("bf16 autocast", "torch.compile", "bf16 + compile") if n in rows]
    return {"bench": "levers", "machine": machine(), "device": str(dev), "native_bf16": dev.type == "cuda" or cpu_has_native_bf16(),
            "dit": dit, "latent_shape": list(latent_shape), "batch": batch, "levers": rows,
            "best_bf16_compile_speedup": max(speedups) if speedups else None}


# --- memory: the estimate against the measurement ---

def dit_memory_check(spec, latent_shape=(4, 2, 8, 8), batch: int = 2, precision: str = "fp32", context_dim: int = 32,
                     device: str = "auto", seed: int = 0) -> dict:
    """`estimate_training_memory` (meta device, fused attention; its step peak: weights + optimizer +
    max(activations, gradients)) against the measured peak of a training step."""
    from tinyvid.course.device import autocast_dtype, pick_device
    from tinyvid.course.memory import estimate_training_memory
    from tinyvid.diffusion.flow import flow_matching_loss

    dev = pick_device(device)
    make = dit_models(spec, latent_shape[0], context_dim)["tinyvid"]
    loss_fn = flow_matching_loss()
    est = estimate_training_memory(make, lambda: dit_batch(batch, latent_shape, context_dim=context_dim, device="meta"),
                                   loss_fn, activation_dtype=autocast_dtype(precision) or torch.float32, fused_attention=True)
    torch.manual_seed(seed)
    measured = measure_peak_memory(make().to(dev), loss_fn, dit_batch(batch, latent_shape, context_dim=context_dim,
                                                                       device=dev, seed=seed), precision)
    mib = lambda b: round(b / 2**20, 2)  # noqa: E731
    return {"spec": spec, "params_millions": round(est.params / 1e6, 3), "estimate_mib": mib(est.step_peak_bytes),
            "estimate_all_at_once_mib": mib(est.total_bytes),
            "estimate_by_part_mib": {p: mib(getattr(est, f"{p}_bytes")) for p in ("weights", "grads", "optimizer", "activations")},
            "measured_mib": mib(measured["peak_bytes"]),
            "measured_by_kind_mib": {k: mib(v) for k, v in measured.get("by_kind", {}).items() if v},
            "relative_error": round(est.step_peak_bytes / measured["peak_bytes"] - 1, 4), "how": measured["how"]}


def bench_memory(sizes=("tiny",), latent_shape=(4, 2, 8, 8), batch: int = 2, precision: str = "fp32",
                 device: str = "auto") -> dict:
    rows = [dit_memory_check(spec, latent_shape, batch, precision, device=device) for spec in sizes]
    return {"bench": "memory", "machine": machine(), "latent_shape": list(latent_shape), "batch": batch,
            "precision": precision, "sizes": rows, "max_abs_relative_error": max(abs(r["relative_error"]) for r in rows)}


# --- the data loader: workers and pinned memory ---

class EncodedClips(torch.utils.data.Dataset):
    """Clips stored as MP4 bytes (as in WebDataset shards), decoded on access: a decode-bound pipeline."""

    def __init__(self, videos):
        from tinyvid.data.video_io import encode_mp4_bytes

        self.encoded = [encode_mp4_bytes(v) for v in videos]

    def __len__(self) -> int:
        return len(self.encoded)

    def __getitem__(self, i: int) -> torch.Tensor:
        from tinyvid.data.video_io import decode_mp4_bytes

        return torch.from_numpy(decode_mp4_bytes(self.encoded[i], gray=True)).float().div_(127.5).sub_(1)


def bench_loader(clips: int = 32, batch: int = 8, settings=((0, False), (2, False), (0, True), (2, True)), seed: int = 0) -> dict:
    """Clips/s through a DataLoader for each (num_workers, pin_memory), one pass after a warm-up batch."""
    from tinyvid.data.moving_mnist import generate

    dataset = EncodedClips(generate(clips, "train", seed=seed).videos)
    rows = {}
    for workers, pin in settings:
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch, num_workers=workers, pin_memory=pin,
                                             persistent_workers=False)
        start = time.perf_counter()
        n = sum(len(b) for b in loader)
        rows[f"workers={workers}, pin_memory={pin}"] = {"clips_per_s": round(n / (time.perf_counter() - start), 1),
                                                       "pinned": bool(pin and torch.cuda.is_available())}
    return {"bench": "loader", "machine": machine(), "clips": clips, "batch": batch, "cpu_count": os.cpu_count(),
            "note": "pinned memory only matters for host-to-GPU copies; without a GPU PyTorch ignores it", "settings": rows}


# --- command line ---

def _settings(profile: str):
    from tinyvid.course.configs import config

    return config("09_scaling", profile)


def _sizes(text: str | None, default):
    if not text:
        return default
    from tinyvid.recipes.common import literal

    return [literal(s) for s in text.split(";")] if ";" in text or "{" in text else text.split(",")


def register(kinds: argparse._SubParsersAction) -> None:
    """Sub-commands of `tinyvid bench`; every default comes from notebook 09's profile settings."""
    def common(p):
        p.add_argument("--profile", default="auto", help="the 09_scaling profile whose settings are the defaults")
        p.add_argument("--device", default="auto")
        p.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
        return p

    def show(result: dict) -> None:
        print(json.dumps(result, indent=1))

    d = common(kinds.add_parser("dit", help="video DiT vs diffusers WanTransformer3DModel: throughput, FLOPs, MFU, memory, latency"))
    d.add_argument("--sizes", default=None, help="comma-separated DiT sizes (tiny,XS,S); default: the profile's")
    d.add_argument("--precision", default="auto")
    d.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None, help="default: the profile's")

    def run_dit(a):
        s = _settings(a.profile)
        show(bench_dit(_sizes(a.sizes, s.bench_sizes), s.bench_latent, s.bench_batch, s.bench_steps, s.bench_rounds,
                       s.sample_steps, a.precision, a.device, not a.no_memory,
                       compile=s.bench_compile if a.compile is None else a.compile))
    d.set_defaults(func=run_dit)

    u = common(kinds.add_parser("unet", help="notebook 01's U-Net vs a diffusers UNet2DModel of matched size"))
    u.add_argument("--precision", default="auto")
    u.set_defaults(func=lambda a: show(bench_unet(_settings(a.profile).unet, _settings(a.profile).unet_batch,
                                                  _settings(a.profile).bench_steps, _settings(a.profile).bench_rounds,
                                                  _settings(a.profile).sample_steps, a.precision, a.device, not a.no_memory)))

    lv = common(kinds.add_parser("levers", help="each speed lever of the Trainer on or off (DiT; channels-last on the U-Net)"))
    lv.add_argument("--no-compile", action="store_true")

    def run_levers(a):
        s = _settings(a.profile)
        show(bench_levers(s.lever_dit, s.bench_latent, s.bench_batch, s.unet, s.unet_batch, s.lever_steps,
                          compile=s.compile_levers and not a.no_compile, memory=not a.no_memory, device=a.device))
    lv.set_defaults(func=run_levers)

    m = common(kinds.add_parser("memory", help="memory estimate vs measured peak for the DiT at several sizes"))
    m.add_argument("--precision", default="fp32")
    m.set_defaults(func=lambda a: show(bench_memory(_settings(a.profile).memory_sizes, _settings(a.profile).bench_latent,
                                                    _settings(a.profile).memory_batch, a.precision, a.device)))

    ld = kinds.add_parser("loader", help="DataLoader workers and pinned memory on MP4-decoding clips")
    ld.add_argument("--profile", default="auto")
    ld.set_defaults(func=lambda a: show(bench_loader(_settings(a.profile).loader_clips)))

    o = kinds.add_parser("onnx", help="export the DiT denoiser to ONNX: parity and onnxruntime vs eager latency")
    o.add_argument("--profile", default="auto")
    o.add_argument("--out", default=None, help="where to write the .onnx file (default: a temporary folder)")

    def run_onnx(a):
        from tinyvid.export import onnx_report

        s = _settings(a.profile)
        show(onnx_report(s.onnx_dit, s.bench_latent, out=a.out, runs=s.onnx_runs))
    o.set_defaults(func=run_onnx)
