"""The book: its execution-status page and its build.

`write_status_page` turns `book/executed/results.json` (written by `tinyvid course run`) into
`book/status.md`; `build_book` writes that page and runs Jupyter Book 1 (Sphinx) with warnings
as errors. The book never executes notebooks: it shows the executed copies.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

OK_STATUSES = {"ok", "pass", "passed", "success", "succeeded", "done", "completed"}
FAILED_STATUSES = {"error", "failed", "fail", "failure", "timeout", "timed out", "crashed"}
OPS = {
    ">=": (lambda v, t: v >= t, "≥"),
    ">": (lambda v, t: v > t, ">"),
    "<=": (lambda v, t: v <= t, "≤"),
    "<": (lambda v, t: v < t, "<"),
    "==": (lambda v, t: v == t, "="),
}


class BookBuildError(RuntimeError):
    """The Sphinx build failed; the message ends with the tail of its log."""


def write_status_page(executed_dir: str | os.PathLike = "book/executed", out: str | os.PathLike = "book/status.md") -> Path:
    """Write the book's execution-status page from `executed_dir/results.json`.

    The page holds the run's execution table (notebook, profile, status, run time), each
    notebook's headline metrics beside their targets (✅/❌), and myst-nb's `{nb-exec-table}`.
    Without results.json every table says "not run yet". The text depends only on results.json
    (no build timestamp), and the file is rewritten only when it changes.
    """
    executed_dir, out = Path(executed_dir), Path(out)
    results_path = executed_dir / "results.json"
    results = json.loads(results_path.read_text(encoding="utf-8")) if results_path.is_file() else None
    text = _status_markdown(results, executed_dir, out.parent)
    if not out.is_file() or out.read_text(encoding="utf-8") != text:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    return out


def build_book(book_dir: str | os.PathLike = "book", strict: bool = True) -> Path:
    """Write the status page, then `jupyter-book build <book_dir> --keep-going` (`-W --all` when strict).

    Returns the path of the built `<book_dir>/_build/html/index.html`; raises `BookBuildError`
    with the warnings and the tail of the Sphinx log when the build fails (with `strict`, any
    warning fails it).
    """
    book = Path(book_dir)
    write_status_page(book / "executed", book / "status.md")
    cmd = [*_jupyter_book_command(), "build", str(book), "--keep-going"]
    if strict:
        # --all: a fresh environment, so warnings of pages left unchanged since the last build
        # are raised again (an incremental build would pass silently over them)
        cmd += ["-W", "--all"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    index = book / "_build" / "html" / "index.html"
    if proc.returncode != 0 or not index.is_file():
        raise BookBuildError(_failure_message(cmd, proc))
    return index


def _failure_message(cmd: list[str], proc: subprocess.CompletedProcess) -> str:
    """The warnings and errors first (Sphinx prints them on stderr, apart from the progress), then the log's tail."""
    log = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + "\n" + proc.stderr).strip().splitlines()
    problems = [line for line in log if re.search(r"WARNING:|ERROR:|CRITICAL:|Error|Traceback", line)]
    message = f"`{' '.join(cmd)}` failed (exit code {proc.returncode})"
    if problems:
        message += f"; {len(problems)} warning/error line(s):\n" + "\n".join(problems[:40])
    return message + "\n--- last lines of the log ---\n" + "\n".join(log[-40:])


def _jupyter_book_command() -> list[str]:
    """The jupyter-book that sits next to this Python (the venv's), else the one on PATH."""
    sibling = Path(sys.executable).with_name("jupyter-book")
    if sibling.is_file():
        return [str(sibling)]
    found = shutil.which("jupyter-book")
    if found:
        return [found]
    raise BookBuildError("jupyter-book is not installed: pip install -e '.[docs]'")


# --- the page -----------------------------------------------------------------------------

HEADER = """\
# Execution status

The book never runs code: it shows the notebooks in `book/executed/`, executed by

```bash
tinyvid course run --profile cpu --out book/executed
```

which also writes `book/executed/results.json`. This page is generated from that file by
`tinyvid.course.book.write_status_page` (every book build refreshes it): do not edit it by hand.
A notebook whose headline number misses its target fails its run, so a ❌ below is a
notebook to fix, not a number to explain.
"""


def _status_markdown(results: dict | None, executed_dir: Path, page_dir: Path) -> str:
    parts = [HEADER]
    if results is None:
        parts.append("## Run\n\nNot run yet: `book/executed/results.json` does not exist.\n")
        parts.append("## Notebooks\n\nNot run yet.\n")
        parts.append("## Headline metrics\n\nNot run yet.\n")
    else:
        parts.append(_run_section(results))
        parts.append(_notebook_table(results, executed_dir, page_dir))
        parts.append(_metric_table(results, executed_dir, page_dir))
    parts.append(
        "## myst-nb execution table\n\n"
        "The same runs as myst-nb's `{nb-exec-table}` lists them: the book executes nothing itself, "
        "so its Sphinx extension (`book/_ext/tinyvid_book.py`) feeds the table from `results.json`, "
        "or from a notebook's papermill metadata when results.json does not list it.\n\n"
        "```{nb-exec-table}\n```\n"
    )
    return "\n".join(parts)


def _run_section(results: dict) -> str:
    lines = ["## Run", ""]
    lines.append(f"- profile: `{results.get('profile', '?')}`")
    for key in ("started", "finished"):
        if results.get(key):
            lines.append(f"- {key} (the last run): {results[key]}")
    if results.get("parameters"):
        params = ", ".join(f"`{_cell(k)}={_cell(v)}`" for k, v in results["parameters"].items())
        lines.append(f"- parameters: {params}")
    machine = results.get("machine") or {}
    if machine:
        desc = ", ".join(f"{k}: {_cell(v)}" for k, v in machine.items() if v not in (None, "", [], {}))
        lines.append(f"- machine: {desc}")
    notebooks = results.get("notebooks") or []
    ok = sum(_status_kind(nb.get("status")) == "ok" for nb in notebooks)
    total = sum(float(nb.get("seconds") or 0) for nb in notebooks)
    lines.append(f"- {ok} of {len(notebooks)} notebooks ran successfully, in {_duration(total)} altogether")
    return "\n".join(lines) + "\n"


def _notebook_table(results: dict, executed_dir: Path, page_dir: Path) -> str:
    notebooks = results.get("notebooks") or []
    if not notebooks:
        return "## Notebooks\n\nNot run yet: results.json lists no notebooks.\n"
    profile = _cell(results.get("profile", "?"))
    rows = ["| notebook | profile | status | run time | finished | error |", "| --- | --- | --- | --- | --- | --- |"]
    for nb in notebooks:
        status = str(nb.get("status", "?"))
        seconds = nb.get("seconds")
        # `--only` refreshes single rows, so each notebook says when it ran
        finished = _cell(nb.get("finished") or "—")
        rows.append(
            f"| {_link(nb, executed_dir, page_dir)} | {profile} | {_status_icon(status)} {_cell(status)} "
            f"| {_duration(seconds) if seconds is not None else '—'} | {finished} | {_code(_first_line(nb.get('error')))} |"
        )
    return "## Notebooks\n\n" + "\n".join(rows) + "\n"


def _metric_table(results: dict, executed_dir: Path, page_dir: Path) -> str:
    rows = ["| notebook | metric | value | target | met |", "| --- | --- | --- | --- | --- |"]
    for nb in results.get("notebooks") or []:
        for name, metric in (nb.get("metrics") or {}).items():
            if not isinstance(metric, dict):
                metric = {"value": metric}
            target, op = metric.get("target"), metric.get("op", ">=")
            symbol = OPS.get(op, (None, op))[1]
            unit = f" {_cell(metric['unit'])}" if metric.get("unit") else ""
            target_cell = "—" if target is None else f"{symbol} {_number(target)}{unit}"
            rows.append(
                f"| {_link(nb, executed_dir, page_dir)} | {_cell(name)} | {_number(metric.get('value'))}{unit} "
                f"| {target_cell} | {_met(metric)} |"
            )
    if len(rows) == 2:
        return "## Headline metrics\n\nNo metrics recorded yet.\n"
    return "## Headline metrics\n\n" + "\n".join(rows) + "\n"


def _met(metric: dict) -> str:
    met = metric.get("met")
    if met is None and metric.get("target") is not None:
        check = OPS.get(metric.get("op", ">="), (None,))[0]
        value = metric.get("value")
        if check is not None and isinstance(value, (int, float)) and not (isinstance(value, float) and math.isnan(value)):
            met = bool(check(value, metric["target"]))
    return "—" if met is None else ("✅" if met else "❌")


def _status_kind(status) -> str:
    status = str(status or "").strip().lower()
    if status in OK_STATUSES:
        return "ok"
    if status in FAILED_STATUSES:
        return "failed"
    return "other"


def _status_icon(status) -> str:
    return {"ok": "✅", "failed": "❌"}.get(_status_kind(status), "⏸")


def _link(nb: dict, executed_dir: Path, page_dir: Path) -> str:
    name = str(nb.get("name", "?")).removesuffix(".ipynb")
    path = executed_dir / f"{name}.ipynb"
    if not (path.is_file() and re.match(r"\d\d_", name)):  # only NN_* notebooks are pages (see _toc.yml)
        return _cell(name)
    rel = Path(os.path.relpath(path.resolve(), page_dir.resolve())).as_posix()
    return f"[{_cell(name)}]({rel})"


def _duration(seconds) -> str:
    try:
        seconds = float(seconds)
    except (TypeError, ValueError):
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def _number(value) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "—" if value is None else _cell(value)
    return f"{value:.4g}"


def _first_line(text) -> str:
    if not text:
        return ""
    line = str(text).strip().splitlines()[0] if str(text).strip() else ""
    return line if len(line) <= 120 else line[:117] + "..."


def _code(text: str) -> str:
    """Inline code, so an error message's `*`, `$` or `{` is shown, not parsed."""
    text = _cell(text).replace("`", "'")
    return f"`{text}`" if text else ""


def _cell(value) -> str:
    """Text safe inside a markdown table cell."""
    text = str(value).replace("\n", " ").replace("|", "\\|")
    return text.replace("`", "'") if text.count("`") % 2 else text
