"""The book's generated pages and its build.

`write_book_pages` turns `book/executed/` (the notebooks and `results.json` written by
`tinyvid course run --profile cpu --out book/executed`) into two pages:

- `book/status.md`, the execution status: each notebook, ok/failed, run time, profile, when;
- `book/results.md`, the results: each notebook's headline numbers beside their targets,
  every target met or its gap stated (value, target, shortfall), on which profile and machine.

The book's Sphinx extension (`book/_ext/tinyvid_book.py`) calls it before every build, so a
plain `jupyter-book build book` never shows stale numbers; `build_book` runs that build with
warnings as errors. The book never executes notebooks: it shows the executed copies.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

OK_STATUSES = {"ok", "pass", "passed", "success", "succeeded", "done", "completed"}
FAILED_STATUSES = {"error", "failed", "fail", "failure", "timeout", "timed out", "crashed"}
OPS = {
    ">=": (lambda v, t: v >= t, "≥"),
    ">": (lambda v, t: v > t, ">"),
    "<=": (lambda v, t: v <= t, "≤"),
    "<": (lambda v, t: v < t, "<"),
    "==": (lambda v, t: v == t, "="),
}
NOTEBOOK_NAME = re.compile(r"\d\d_[\w-]+")  # only NN_* notebooks are pages (see _toc.yml)


class BookBuildError(RuntimeError):
    """The Sphinx build failed; the message ends with the tail of its log."""


@dataclass
class NotebookRun:
    """One executed notebook as the pages show it, from results.json or, failing that, the notebook itself."""

    name: str  # without .ipynb
    status: str
    seconds: float | None = None
    finished: str | None = None
    error: str | None = None
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    profile: str = "?"
    title: str | None = None
    page: bool = False  # an executed NN_*.ipynb exists, so the book has a page for it
    source: str = "results.json"  # or "notebook": not listed in results.json, read from the executed copy


# --- entry points -------------------------------------------------------------------------

def write_book_pages(book_dir: str | os.PathLike = "book", solutions_dir: str | os.PathLike | None = None) -> list[Path]:
    """Write `<book_dir>/status.md` and `<book_dir>/results.md` from `<book_dir>/executed/`.

    `solutions_dir` (default: `solutions/` beside the book, when it exists) names the notebooks
    of the course, so one that has not been run yet is listed as such instead of left out.
    """
    book = Path(book_dir)
    if solutions_dir is None and (book.parent / "solutions").is_dir():
        solutions_dir = book.parent / "solutions"
    return [
        write_status_page(book / "executed", book / "status.md"),
        write_results_page(book / "executed", book / "results.md", solutions_dir=solutions_dir),
    ]


def write_status_page(executed_dir: str | os.PathLike = "book/executed", out: str | os.PathLike = "book/status.md") -> Path:
    """Write the execution-status page: the run, then one row per notebook (status, run time, profile, when).

    Notebooks in `executed_dir` that results.json does not list (run by hand with papermill)
    get their row from papermill's metadata. The text depends only on the inputs (no build
    timestamp), and the file is rewritten only when it changes.
    """
    executed_dir, out = Path(executed_dir), Path(out)
    results = _read_results(executed_dir)
    runs = notebook_runs(executed_dir, results)
    return _write_if_changed(out, _status_markdown(results, runs, executed_dir, out.parent))


def write_results_page(
    executed_dir: str | os.PathLike = "book/executed",
    out: str | os.PathLike = "book/results.md",
    solutions_dir: str | os.PathLike | None = None,
) -> Path:
    """Write the results page: every headline number beside its target, met or the gap stated."""
    executed_dir, out = Path(executed_dir), Path(out)
    results = _read_results(executed_dir)
    runs = notebook_runs(executed_dir, results)
    not_run = _not_run(solutions_dir, runs)
    return _write_if_changed(out, _results_markdown(results, runs, not_run, executed_dir, out.parent))


def build_book(book_dir: str | os.PathLike = "book", strict: bool = True) -> Path:
    """Write the generated pages, then `jupyter-book build <book_dir> --keep-going` (`-W --all` when strict).

    Returns the path of the built `<book_dir>/_build/html/index.html`; raises `BookBuildError`
    with the warnings and the tail of the Sphinx log when the build fails (with `strict`, any
    warning fails it).
    """
    book = Path(book_dir)
    write_book_pages(book)
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


# --- what was run ---------------------------------------------------------------------------

def notebook_runs(executed_dir: str | os.PathLike, results: dict | None) -> list[NotebookRun]:
    """results.json's notebooks, plus executed NN_*.ipynb it does not list, sorted by name."""
    executed_dir = Path(executed_dir)
    results = results or {}
    profile = str(results.get("profile") or "?")
    runs: dict[str, NotebookRun] = {}
    for entry in results.get("notebooks") or []:
        name = str(entry.get("name", "?")).removesuffix(".ipynb")
        metrics = {k: (dict(v) if isinstance(v, dict) else {"value": v}) for k, v in (entry.get("metrics") or {}).items()}
        runs[name] = NotebookRun(
            name=name, status=str(entry.get("status", "?")), seconds=_float(entry.get("seconds")),
            finished=entry.get("finished") or results.get("finished"), error=entry.get("error"),
            metrics=metrics, profile=profile,
        )
    for path in sorted(executed_dir.glob("[0-9][0-9]_*.ipynb")):
        notebook = _read_notebook(path)
        run = runs.get(path.stem) or _run_from_notebook(path.stem, notebook)
        if run is None:
            continue
        run.title = _notebook_title(notebook)
        run.page = bool(NOTEBOOK_NAME.fullmatch(path.stem))
        runs[path.stem] = run
    return [runs[name] for name in sorted(runs)]


def _run_from_notebook(name: str, notebook: dict | None) -> NotebookRun | None:
    """A notebook results.json does not list: its numbers from its outputs, its run from papermill's metadata."""
    if notebook is None:
        return None
    from tinyvid.course.metrics import collect_metrics

    papermill = (notebook.get("metadata") or {}).get("papermill") or {}
    if papermill.get("exception"):
        status = "failed"
    elif papermill.get("end_time"):
        status = "ok"
    else:
        status = "unfinished" if papermill else "not executed by papermill"
    metrics = collect_metrics(notebook)
    profile = (papermill.get("parameters") or {}).get("profile")
    if profile in (None, "auto"):  # the records of expect() know the profile they ran under
        profile = next((m["profile"] for m in metrics.values() if m.get("profile")), profile or "?")
    return NotebookRun(
        name=name, status=status, seconds=_float(papermill.get("duration")), finished=papermill.get("end_time"),
        metrics=metrics, profile=str(profile), source="notebook",
    )


def _not_run(solutions_dir, runs: list[NotebookRun]) -> list[str]:
    if solutions_dir is None or not Path(solutions_dir).is_dir():
        return []
    done = {run.name for run in runs}
    return sorted(p.stem for p in Path(solutions_dir).glob("[0-9][0-9]_*.ipynb") if p.stem not in done)


def _read_results(executed_dir: Path) -> dict | None:
    path = executed_dir / "results.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _read_notebook(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # e.g. caught half-written by a run in progress
        return None


def _notebook_title(notebook: dict | None) -> str | None:
    for cell in (notebook or {}).get("cells", []):
        if cell.get("cell_type") != "markdown":
            continue
        source = cell.get("source", "")
        for line in ("".join(source) if isinstance(source, list) else source).splitlines():
            if line.startswith("# "):
                return line[2:].strip()
    return None


# --- metrics ---------------------------------------------------------------------------------

def metric_met(metric: dict) -> bool | None:
    """The record's own verdict (expect() wrote it), else value against target; None without a target."""
    met = metric.get("met")
    if met is not None or metric.get("target") is None:
        return None if met is None else bool(met)
    check = OPS.get(metric.get("op", ">="), (None,))[0]
    value, target = _float(metric.get("value")), _float(metric.get("target"))
    if check is None or value is None or target is None or math.isnan(value):
        return False
    return bool(check(value, target))


def metric_gap(metric: dict) -> str:
    """How far the value is from its target, in words: the shortfall when missed, the margin when met."""
    target, op = _float(metric.get("target")), metric.get("op", ">=")
    if target is None:
        return ""
    value = _float(metric.get("value"))
    unit = f" {metric['unit']}" if metric.get("unit") and metric["unit"] != "%" else (metric.get("unit") or "")
    if value is None or math.isnan(value):
        return f"no number to compare (value {_cell(metric.get('value'))})"
    lower_is_better = op in ("<=", "<")
    diff = value - target if lower_is_better else target - value  # > 0: the target is missed by diff
    relative = f" ({abs(diff) / abs(target):.1%} of the target)" if target else ""
    if metric_met(metric):
        return "exactly on target" if diff == 0 else f"{_number(abs(diff))}{unit} to spare{relative}"
    if diff == 0:  # strict comparison missed by equality
        return "on the target, which it must beat"
    word = "too high" if lower_is_better else "too low"
    return f"**{_number(diff)}{unit} {word}**{relative}"


def _headline(metrics: dict[str, dict]) -> list[tuple[str, dict]]:
    return [(name, m) for name, m in metrics.items() if m.get("target") is not None]


def _other(metrics: dict[str, dict]) -> list[tuple[str, dict]]:
    return [(name, m) for name, m in metrics.items() if m.get("target") is None]


# --- the status page -------------------------------------------------------------------------

STATUS_HEADER = """\
# Execution status

The book never runs code: it shows the notebooks in `book/executed/`, executed by

```bash
tinyvid course run --profile cpu --out book/executed
```

which also writes `book/executed/results.json`. This page is generated from those files by
`tinyvid.course.book.write_status_page` (every book build refreshes it): do not edit it by hand.
The numbers the notebooks reached, beside their targets, are on the [results](results.md) page.
"""


def _status_markdown(results: dict | None, runs: list[NotebookRun], executed_dir: Path, page_dir: Path) -> str:
    parts = [STATUS_HEADER]
    if results is None and not runs:
        parts.append("## Run\n\nNot run yet: `book/executed/results.json` does not exist.\n")
        parts.append("## Notebooks\n\nNot run yet.\n")
    else:
        parts.append(_run_section(results or {}, runs))
        parts.append(_notebook_table(runs, executed_dir, page_dir))
    parts.append(
        "## myst-nb execution table\n\n"
        "The same runs as myst-nb's `{nb-exec-table}` lists them: the book executes nothing itself, "
        "so its Sphinx extension (`book/_ext/tinyvid_book.py`) feeds the table from `results.json`, "
        "or from a notebook's papermill metadata when results.json does not list it.\n\n"
        "```{nb-exec-table}\n```\n"
    )
    return "\n".join(parts)


def _run_section(results: dict, runs: list[NotebookRun]) -> str:
    lines = ["## Run", ""]
    lines.append(f"- profile: `{_cell(results.get('profile', '?'))}`")
    for key in ("started", "finished"):
        if results.get(key):
            lines.append(f"- {key} (the last run): {_when(results[key])}")
    if results.get("parameters"):
        params = ", ".join(f"`{_cell(k)}={_cell(v)}`" for k, v in results["parameters"].items())
        lines.append(f"- parameters: {params}")
    if results.get("machine"):
        lines.append(f"- machine (the last run): {machine_summary(results['machine'])}")
    ok = sum(_status_kind(run.status) == "ok" for run in runs)
    total = sum(run.seconds or 0 for run in runs)
    lines.append(f"- {ok} of {len(runs)} notebooks ran successfully, in {_duration(total)} altogether")
    return "\n".join(lines) + "\n"


def _notebook_table(runs: list[NotebookRun], executed_dir: Path, page_dir: Path) -> str:
    if not runs:
        return "## Notebooks\n\nNot run yet: results.json lists no notebooks.\n"
    rows = ["| notebook | profile | status | run time | finished | error |", "| --- | --- | --- | --- | --- | --- |"]
    for run in runs:
        status = f"{_status_icon(run.status)} {_cell(run.status)}"
        if run.source == "notebook":
            status += " (papermill metadata)"
        # `--only` refreshes single rows, so each notebook says when it ran
        rows.append(
            f"| {_link(run, executed_dir, page_dir)} | {_cell(run.profile)} | {status} "
            f"| {_duration(run.seconds)} | {_when(run.finished)} | {_code(_first_line(run.error))} |"
        )
    return "## Notebooks\n\n" + "\n".join(rows) + "\n"


# --- the results page ------------------------------------------------------------------------

RESULTS_HEADER = """\
# Results

Each notebook's headline numbers beside the targets the course sets for them, as its reference
run reached them. A notebook records a number with `tinyvid.course.metrics.expect` (with a
target) or `report` (without); `tinyvid course run --profile cpu --out book/executed` collects
them into `book/executed/results.json`, and this page is generated from that file (and from
executed notebooks it does not list) by `tinyvid.course.book.write_results_page` at every book
build: do not edit it by hand. Under the `cpu`, `gpu` and `full` profiles a missed target fails
its notebook, so a ❌ is shown with its gap, never hidden. How long each run took is on the
[execution status](status.md) page.
"""


def _results_markdown(results: dict | None, runs: list[NotebookRun], not_run: list[str],
                      executed_dir: Path, page_dir: Path) -> str:
    parts = [RESULTS_HEADER, _results_summary(results or {}, runs, not_run, executed_dir, page_dir)]
    for run in runs:
        parts.append(_results_section(run, results or {}, executed_dir, page_dir))
    return "\n".join(parts)


def _results_summary(results: dict, runs: list[NotebookRun], not_run: list[str],
                     executed_dir: Path, page_dir: Path) -> str:
    lines = ["## Summary", ""]
    if not runs:
        lines.append("Not run yet: `book/executed/` holds no executed notebook and no results.json.")
        if not_run:
            lines.append("")
            lines.append(f"Notebooks of the course: {', '.join(f'`{n}`' for n in not_run)}.")
        return "\n".join(lines) + "\n"
    profiles = sorted({run.profile for run in runs})
    lines.append(f"- profile: {', '.join(f'`{_cell(p)}`' for p in profiles)}"
                 + ("" if profiles != ["smoke"] else " (proves the code path only: its numbers are not the book's)"))
    if results.get("machine"):
        lines.append(f"- machine: {machine_summary(results['machine'])}")
    if results.get("finished") or results.get("started"):
        lines.append(f"- last run: {_when(results.get('started'))} to {_when(results.get('finished'))}; "
                     "each notebook below says when it finished")
    headline = [(run, name, m) for run in runs for name, m in _headline(run.metrics)]
    missed = [(run, name, m) for run, name, m in headline if metric_met(m) is False]
    lines.append(f"- **{len(headline) - len(missed)} of {len(headline)} targets met**"
                 + (f"; {len(missed)} missed:" if missed else ""))
    for run, name, m in missed:
        lines.append(f"  - {_link(run, executed_dir, page_dir)} `{_cell(name)}` = {_value(m)}, "
                     f"target {_target(m)}: {metric_gap(m)}")
    failed = [run for run in runs if _status_kind(run.status) != "ok"]
    if failed:
        lines.append("- notebooks that did not finish cleanly: "
                     + ", ".join(f"{_link(run, executed_dir, page_dir)} ({_cell(run.status)})" for run in failed))
    if not_run:
        lines.append(f"- not run yet (no executed copy): {', '.join(f'`{n}`' for n in not_run)}")
    lines += ["", "| notebook | headline number | value | target | met | gap |",
              "| --- | --- | --- | --- | --- | --- |"]
    for run, name, m in headline:
        lines.append(f"| {_link(run, executed_dir, page_dir)} | `{_cell(name)}` | {_value(m)} | {_target(m)} "
                     f"| {_met_icon(m)} | {metric_gap(m)} |")
    if not headline:
        lines.append("| — | no target recorded yet | | | | |")
    return "\n".join(lines) + "\n"


def _results_section(run: NotebookRun, results: dict, executed_dir: Path, page_dir: Path) -> str:
    title = _cell(run.title or run.name)
    lines = [f"(results-{run.name.lower()})=", f"## {title}", ""]
    where = f"`{_cell(run.profile)}` profile"
    if run.source == "results.json" and results.get("machine"):
        where += " (machine in the summary)"
    status = f"{_status_icon(run.status)} {_cell(run.status)}"
    line = f"{_link(run, executed_dir, page_dir, text='executed notebook')} · {status} · {where}"
    line += f" · {_duration(run.seconds)} · finished {_when(run.finished)}"
    lines.append(line)
    if run.source == "notebook":
        lines += ["", "Not listed in results.json: the numbers are read from the executed notebook's outputs."]
    if run.error:
        lines += ["", f"Error: {_code(_first_line(run.error))}"]
    lines.append("")
    headline = _headline(run.metrics)
    if headline:
        lines += ["| headline number | value | target | met | gap |", "| --- | --- | --- | --- | --- |"]
        for name, m in headline:
            note = "" if m.get("enforced", True) else " (not enforced)"
            lines.append(f"| `{_cell(name)}` | {_value(m)} | {_target(m)} | {_met_icon(m)}{note} | {metric_gap(m)} |")
        lines.append("")
    elif not run.metrics:
        ending = {"ok": ".", "failed": " before it failed."}.get(_status_kind(run.status), " yet.")
        lines += [f"No numbers recorded{ending}", ""]
    other = _other(run.metrics)
    if other:
        label = "Other numbers" if headline else "Numbers (no target)"
        lines.append(f"{label}: " + " · ".join(f"`{_cell(name)}` {_value(m)}" for name, m in other))
        lines.append("")
    return "\n".join(lines)


def machine_summary(machine: dict) -> str:
    """`2 CPU cores, no GPU · Linux-6.1 · Python 3.11.7 · torch 2.13.0+cpu` from runner.machine_info()."""
    parts = []
    cores = machine.get("cpu_count")
    gpu = machine.get("cuda_device")
    parts.append((f"{cores} CPU cores" if cores else "CPU") + (f", GPU {gpu}" if gpu else ", no GPU"))
    for key, label in (("platform", ""), ("python", "Python "), ("torch", "torch ")):
        if machine.get(key):
            parts.append(f"{label}{machine[key]}")
    return _cell(" · ".join(parts))


# --- small helpers ---------------------------------------------------------------------------

def _write_if_changed(out: Path, text: str) -> Path:
    """Sphinx rebuilds pages whose source changed: an unchanged page keeps its mtime."""
    if not out.is_file() or out.read_text(encoding="utf-8") != text:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    return out


def _value(m: dict) -> str:
    unit = f" {_cell(m['unit'])}" if m.get("unit") and m["unit"] != "%" else _cell(m.get("unit") or "")
    return f"{_number(m.get('value'))}{unit}"


def _target(m: dict) -> str:
    if m.get("target") is None:
        return "—"
    symbol = OPS.get(m.get("op", ">="), (None, m.get("op")))[1]
    return f"{symbol} {_value({**m, 'value': m['target']})}"


def _met_icon(m: dict) -> str:
    met = metric_met(m)
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


def _link(run: NotebookRun, executed_dir: Path, page_dir: Path, text: str | None = None) -> str:
    text = _cell(text or run.name)
    if not run.page:
        return text
    path = executed_dir / f"{run.name}.ipynb"
    rel = Path(os.path.relpath(path.resolve(), page_dir.resolve())).as_posix()
    return f"[{text}]({rel})"


def _when(text) -> str:
    """`2026-11-25 18:48 UTC+00:00` from an ISO timestamp; anything else as it is."""
    if not text:
        return "—"
    try:
        moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return _cell(text)
    zone = moment.strftime("%z")
    zone = f" UTC{zone[:3]}:{zone[3:]}" if zone else ""
    return moment.strftime("%Y-%m-%d %H:%M") + zone


def _duration(seconds) -> str:
    seconds = _float(seconds)
    if seconds is None or math.isnan(seconds):
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def _float(value) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


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
    """Text safe inside a markdown table cell (and free of math and role markup)."""
    text = str(value).replace("\n", " ").replace("|", "\\|").replace("$", "\\$")
    return text.replace("`", "'") if text.count("`") % 2 else text


# --- running Sphinx --------------------------------------------------------------------------

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
