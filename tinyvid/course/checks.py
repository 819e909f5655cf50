"""Check cells for exercises: compare the learner's function with tinyvid's on random inputs.

The cell right after each exercise calls `check_close(...)`. A pass prints one
✅ line; a miss raises AssertionError whose message says *what* differs
(not implemented yet, shape, dtype, or the largest error and where), so a
learner knows what to fix and nbval fails in CI when a solution rots.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch


def check_close(
    learner_fn: Callable[..., Any],
    reference_fn: Callable[..., Any],
    make_inputs: Callable[[int], Any],
    trials: int = 3,
    atol: float = 1e-5,
    rtol: float = 1e-5,
    name: str | None = None,
) -> None:
    """Call both functions on `make_inputs(seed)` for seed in 0..trials-1 and compare every output.

    `make_inputs(seed)` returns the positional-args tuple (a single non-tuple
    value is passed as the only argument). The reference gets its own deep copy
    so a learner function that edits its inputs in place cannot fool the check.
    """
    __tracebackhide__ = True
    name = name or getattr(learner_fn, "__name__", "your function")
    for seed in range(trials):
        args = make_inputs(seed)
        args = args if isinstance(args, tuple) else (args,)
        expected = reference_fn(*copy.deepcopy(args))
        try:
            actual = learner_fn(*args)
        except NotImplementedError:
            raise AssertionError(f"❌ {name}: not implemented yet: fill in the exercise above") from None
        problem = _difference(actual, expected, "output", atol, rtol)
        if problem:
            raise AssertionError(
                f"❌ {name} differs from tinyvid's reference on random input #{seed + 1} "
                f"(make_inputs({seed}), {describe(args)}): {problem}"
            ) from None
    print(f"✅ {name}: matches tinyvid's reference on {trials} random inputs", flush=True)


def check_true(cond: Any, message: str, hint: str = "") -> None:
    """Pass/fail on a condition the exercise should make true; `message` says what should hold."""
    __tracebackhide__ = True
    if isinstance(cond, torch.Tensor):
        cond = bool(cond.all())
    if not cond:
        raise AssertionError(f"❌ {message}" + (f" — {hint}" if hint else "")) from None
    print(f"✅ {message}", flush=True)


def describe(value: Any) -> str:
    """Short description of inputs for messages: shapes and dtypes, never the numbers."""
    if isinstance(value, torch.Tensor):
        return f"tensor{tuple(value.shape)} {str(value.dtype).removeprefix('torch.')}"
    if _is_numpy(value):
        return f"array{tuple(value.shape)} {value.dtype}"
    if isinstance(value, (tuple, list)):
        inner = ", ".join(describe(v) for v in value)
        return f"({inner})" if isinstance(value, tuple) else f"[{inner}]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {describe(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (int, float, bool)) or value is None:
        return repr(value)
    return type(value).__name__


def _difference(actual: Any, expected: Any, where: str, atol: float, rtol: float) -> str | None:
    """None when equal within tolerance, else one sentence naming the first difference."""
    if _is_numpy(actual):
        actual = torch.as_tensor(actual)
    if _is_numpy(expected):
        expected = torch.as_tensor(expected)
    if isinstance(expected, torch.Tensor):
        if not isinstance(actual, torch.Tensor):
            return f"{where} should be a tensor {describe(expected)}, got {describe(actual)}"
        return _tensor_difference(actual, expected, where, atol, rtol)
    if isinstance(expected, Mapping):
        if not isinstance(actual, Mapping) or set(actual) != set(expected):
            return f"{where} should be a dict with keys {sorted(expected)}, got {describe(actual)}"
        for key in expected:
            problem = _difference(actual[key], expected[key], f"{where}[{key!r}]", atol, rtol)
            if problem:
                return problem
        return None
    if isinstance(expected, Sequence) and not isinstance(expected, str):
        if not isinstance(actual, Sequence) or isinstance(actual, str) or len(actual) != len(expected):
            return f"{where} should be {describe(expected)}, got {describe(actual)}"
        for i, (a, e) in enumerate(zip(actual, expected)):
            problem = _difference(a, e, f"{where}[{i}]", atol, rtol)
            if problem:
                return problem
        return None
    if isinstance(expected, (int, float)) and not isinstance(expected, bool):
        if isinstance(actual, torch.Tensor) and actual.numel() == 1:
            actual = actual.item()
        if not isinstance(actual, (int, float)) or abs(actual - expected) > atol + rtol * abs(expected):
            return f"{where} is {actual!r}, expected {expected!r}"
        return None
    return None if actual == expected else f"{where} is {actual!r}, expected {expected!r}"


def _tensor_difference(actual: torch.Tensor, expected: torch.Tensor, where: str, atol: float, rtol: float) -> str | None:
    if actual.shape != expected.shape:
        return f"{where} shape differs: yours {tuple(actual.shape)}, reference {tuple(expected.shape)}"
    if actual.dtype != expected.dtype:
        return f"{where} dtype differs: yours {actual.dtype}, reference {expected.dtype}"
    actual, expected = actual.detach().cpu(), expected.detach().cpu()
    if not (actual.is_floating_point() or actual.is_complex()):
        bad = actual != expected
    else:
        bad = ~torch.isclose(actual, expected, rtol=rtol, atol=atol, equal_nan=True)
    if not bool(bad.any()):
        return None
    error = (actual.double() - expected.double()).abs() if not actual.is_complex() else (actual - expected).abs()
    error = torch.where(bad, error.nan_to_num(nan=float("inf")), torch.zeros_like(error))
    flat = int(error.argmax())
    index = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), actual.shape)) if actual.dim() else ()
    return (
        f"{where} values differ: max abs error {float(error.max()):.3g} at index {index} "
        f"(yours {actual[index].item():.6g}, reference {expected[index].item():.6g}); "
        f"{int(bad.sum())} of {bad.numel()} elements outside atol={atol:g}, rtol={rtol:g}"
    )


def _is_numpy(value: Any) -> bool:
    return type(value).__module__ == "numpy" and hasattr(value, "shape") and hasattr(value, "dtype")
