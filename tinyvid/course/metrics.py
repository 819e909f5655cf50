"""Headline numbers that notebooks report, so the runner and the book can collect them.

A notebook never just prints its FID: it calls `report(...)` or `expect(...)`,
which show a readable line in the notebook *and* attach the numbers as display
data with the MIME type below. Jupyter front-ends ignore the custom type and
show the text; `collect_metrics` reads it back from an executed notebook, so
`tinyvid course run` and the book's status page never parse printed text.

`expect` is the d2l habit: under the `cpu`/`gpu`/`full` profiles a notebook
that stops reaching its number fails loudly instead of printing a worse one.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

MIME_TYPE = "application/vnd.tinyvid.metrics+json"
OPS = {"<=": "≤", ">=": "≥"}


def report(**metrics: Any) -> None:
    """Show `name = value` rows as a small table and record them (no targets).

    Returns None so a call on a cell's last line adds no repr to the output.
    """
    records = {name: {"value": _plain(value)} for name, value in metrics.items()}
    rows = [(name, format_value(r["value"])) for name, r in records.items()]
    width = max((len(n) for n, _ in rows), default=0)
    text = "\n".join(f"{n.ljust(width)}  {v}" for n, v in rows)
    cells = "".join(
        f"<tr><td style='text-align:left'><code>{html.escape(n)}</code></td>"
        f"<td style='text-align:right'>{html.escape(v)}</td></tr>"
        for n, v in rows
    )
    table = f"<table class='tinyvid-metrics'><tr><th>metric</th><th>value</th></tr>{cells}</table>"
    _emit({"text/plain": text, "text/html": table, MIME_TYPE: records})


def expect(
    name: str,
    value: Any,
    *,
    at_most: float | None = None,
    at_least: float | None = None,
    profile: str,
    enforce: Iterable[str] = ("cpu", "gpu", "full"),
    unit: str = "",
) -> None:
    """Record `value` with its target, print ✅/❌, and fail when the target is missed under an enforced profile.

    Exactly one of `at_most`/`at_least` is the target. NaN never meets one.

    `profile` is required so a notebook cannot forget which run it is: the
    `smoke` profile trains for seconds and only proves the code path, so its
    numbers are recorded but never enforced.
    """
    __tracebackhide__ = True  # the notebook's traceback should end at its own expect() line
    if (at_most is None) == (at_least is None):
        raise ValueError(f"expect({name!r}): give exactly one of at_most= or at_least=")
    from tinyvid.course.profiles import resolve_profile

    profile = resolve_profile(profile)
    value = _plain(value)
    op, target = ("<=", at_most) if at_most is not None else (">=", at_least)
    target = _plain(target)
    met = _meets(value, op, target)
    enforced = profile in ((enforce,) if isinstance(enforce, str) else tuple(enforce))
    record = {
        "value": value,
        "target": target,
        "op": op,
        "met": met,
        "unit": unit,
        "profile": profile,
        "enforced": enforced,
    }
    line = f"{'✅' if met else '❌'} {name} = {format_value(value, unit)} (target {OPS[op]} {format_value(target, unit)})"
    if not met and not enforced:
        line += f" — not enforced in the {profile!r} profile"
    _emit({"text/plain": line, MIME_TYPE: {name: record}})
    if not met and enforced:
        raise AssertionError(
            f"{name} = {format_value(value, unit)} misses its target {OPS[op]} {format_value(target, unit)} "
            f"under the {profile!r} profile: this notebook no longer reaches the book's number"
        )


def expect_all(checks: Iterable[tuple], *, profile: str) -> None:
    """Several `expect`s at once: `checks` of (name, value, {"at_least": x} or {"at_most": x}).
    Every one is recorded and printed before the first miss fails the cell, so the results page
    shows all of a notebook's targets, met or not."""
    __tracebackhide__ = True
    missed = []
    for name, value, target in checks:
        try:
            expect(name, value, profile=profile, **target)
        except AssertionError as error:
            missed.append(str(error))
    if missed:
        raise AssertionError("\n".join(missed))


def collect_metrics(notebook: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """name → {value, target?, op?, met?, ...} from an executed notebook's outputs; a later cell wins."""
    metrics: dict[str, dict[str, Any]] = {}
    for cell in notebook.get("cells", []):
        for output in cell.get("outputs", []) or []:
            if output.get("output_type") not in ("display_data", "execute_result", "update_display_data"):
                continue
            payload = output.get("data", {}).get(MIME_TYPE)
            if payload is None:
                continue
            if isinstance(payload, str):
                payload = json.loads(payload)
            for key, record in payload.items():
                metrics[key] = dict(record) if isinstance(record, Mapping) else {"value": record}
    return metrics


def format_value(value: Any, unit: str = "") -> str:
    """Four significant digits are enough to compare with the book; ints stay exact."""
    if isinstance(value, bool) or value is None:
        text = str(value)
    elif isinstance(value, int):
        text = str(value)
    elif isinstance(value, float):
        text = f"{value:.4g}"
    else:
        text = str(value)
    return f"{text} {unit}".rstrip() if unit and unit != "%" else f"{text}{unit}"


def _meets(value: Any, op: str, target: Any) -> bool:
    try:
        v, t = float(value), float(target)
    except (TypeError, ValueError):
        return False
    if math.isnan(v):  # a diverged run never meets a target
        return False
    return v <= t if op == "<=" else v >= t


def _plain(value: Any) -> Any:
    """numpy/torch scalars → Python numbers so the record is JSON."""
    item = getattr(value, "item", None)
    if callable(item) and not isinstance(value, (Mapping, list, tuple, str)):
        try:
            value = item()
        except (ValueError, RuntimeError):  # an array of several numbers: keep it as a list below
            value = value.tolist() if hasattr(value, "tolist") else str(value)
    if isinstance(value, (bool, int, float, str)) or value is None:
        if isinstance(value, float) and not math.isfinite(value):
            return str(value)  # JSON has no NaN/inf; the string still reads clearly
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


def _emit(bundle: dict[str, Any]) -> None:
    """Display the bundle inside IPython; elsewhere (scripts, recipes) print the text."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython ships with every notebook install
        get_ipython = lambda: None  # noqa: E731
    if get_ipython() is not None:
        from IPython.display import display

        display(bundle, raw=True)
    else:
        print(bundle["text/plain"], flush=True)


class MystNbMetricsRenderer:
    """myst-nb plugin (entry point `myst_nb.mime_renderers`): the metrics bundle is data for
    `collect_metrics`, not something to draw; the book shows the bundle's text/html instead."""

    mime_priority_overrides = [("*", MIME_TYPE, None)]

    @staticmethod
    def handle_mime(renderer, data, inline):
        return [] if data.mime_type == MIME_TYPE else None
