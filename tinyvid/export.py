"""ONNX export of the DiT denoiser with torch's current exporter (`torch.onnx.export(..., dynamo=True)`,
built on `torch.export`), inference in onnxruntime, parity and latency against eager PyTorch.

The denoiser checks its caption mask on the way in (`if not mask.any(1).all(): raise`), a Python
branch on tensor values that `torch.export` cannot trace. While tracing, `InputChecksPass`
answers every such `bool(tensor)` with True, "the check passes": the exported graph has no
branch, so a server must validate its inputs before calling the session (the eager model does it
itself). Shapes are static: the graph is specialised to the example batch and latent size, which
is what a serving engine (onnxruntime, TensorRT) wants anyway.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

INPUT_NAMES = ("x", "t", "context", "context_mask")


class InputChecksPass(TorchFunctionMode):
    """While tracing for export: `bool(tensor)` is True, so value checks on the inputs trace as passed."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is torch.Tensor.__bool__:
            return True
        return func(*args, **(kwargs or {}))


def export_denoiser(model: nn.Module, inputs: tuple[torch.Tensor, ...], path: str | Path, quiet: bool = True) -> Path:
    """Write `model(*inputs)` (x, t, context, context_mask) -> velocity as an ONNX file at `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    with contextlib.ExitStack() as stack:
        if quiet:  # the exporter narrates its three steps and warns about optional torchvision ops
            stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
            stack.enter_context(warnings.catch_warnings())
            warnings.simplefilter("ignore")
            for name in ("torch.onnx", "torch.export", "onnxscript"):
                logger = logging.getLogger(name)
                stack.callback(logger.setLevel, logger.level)
                logger.setLevel(logging.ERROR)
        with torch.no_grad(), InputChecksPass():
            program = torch.export.export(model, tuple(inputs), strict=False)
        torch.onnx.export(program, tuple(inputs), str(path), dynamo=True, input_names=list(INPUT_NAMES[: len(inputs)]),
                          output_names=["velocity"], verbose=False)
    return path


def onnx_session(path: str | Path, threads: int | None = None):
    """An onnxruntime CPU session (intra-op threads: PyTorch's, so the comparison is fair)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_feed(session, inputs: tuple[torch.Tensor, ...]) -> dict[str, np.ndarray]:
    names = [i.name for i in session.get_inputs()]
    return {name: t.detach().cpu().numpy() for name, t in zip(names, inputs)}


def onnx_parity(model: nn.Module, session, inputs: tuple[torch.Tensor, ...]) -> float:
    """Max absolute difference between onnxruntime's and eager PyTorch's outputs."""
    with torch.no_grad():
        ref = model.eval()(*inputs).float().cpu().numpy()
    out = session.run(None, onnx_feed(session, inputs))[0]
    return float(np.abs(out - ref).max())


def latency(fn, runs: int = 10, warmup: int = 2) -> float:
    """Median seconds of fn() over `runs` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def dit_example(spec="tiny", latent_shape=(4, 2, 8, 8), batch: int = 2, context_dim: int = 32, seed: int = 0):
    """A trained-looking DiT (every weight moved, so the zero-initialised layers are not zero) and its inputs:
    batch 2 = one video's conditional and unconditional rows, the CFG batch a sampler sends."""
    from tinyvid.bench_scaling import dit_batch, dit_models

    torch.manual_seed(seed)
    model = dit_models(spec, latent_shape[0], context_dim)["tinyvid"]()
    with torch.no_grad():  # weights at the scale of a default init: outputs of order one
        for p in model.parameters():
            p.add_(torch.randn_like(p) * (p.shape[-1] ** -0.5 if p.ndim >= 2 else 0.02))
    x, context, mask = dit_batch(batch, latent_shape, context_dim=context_dim, seed=seed)
    t = torch.rand(batch, generator=torch.Generator().manual_seed(seed + 1))
    return model.eval(), (x, t, context, mask)


def onnx_report(spec="tiny", latent_shape=(4, 2, 8, 8), out: str | Path | None = None, runs: int = 10,
                batch: int = 2, seed: int = 0) -> dict:
    """Export a DiT, check parity, time one denoiser call in eager PyTorch and in onnxruntime."""
    from tinyvid.bench_scaling import machine

    model, inputs = dit_example(spec, latent_shape, batch, seed=seed)
    folder = None if out else tempfile.TemporaryDirectory()
    path = Path(out) if out else Path(folder.name) / "dit.onnx"
    start = time.perf_counter()
    export_denoiser(model, inputs, path)
    export_seconds = time.perf_counter() - start
    session = onnx_session(path)
    feed = onnx_feed(session, inputs)
    with torch.no_grad():
        eager = latency(lambda: model(*inputs), runs)
    ort_seconds = latency(lambda: session.run(None, feed), runs)
    result = {"bench": "onnx", "machine": machine(), "spec": spec, "latent_shape": list(latent_shape), "batch": batch,
              "params_millions": round(sum(p.numel() for p in model.parameters()) / 1e6, 3),
              "max_abs_error": onnx_parity(model, session, inputs), "export_seconds": round(export_seconds, 2),
              "onnx_mib": round(path.stat().st_size / 2**20, 3), "eager_ms": round(1000 * eager, 3),
              "onnxruntime_ms": round(1000 * ort_seconds, 3), "onnxruntime_speedup": round(eager / ort_seconds, 3),
              "path": str(path) if out else None}
    if folder:
        folder.cleanup()
    return result
