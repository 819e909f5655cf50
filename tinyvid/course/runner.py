"""Re-execute the course's notebooks with papermill under one profile and collect their numbers.

`tinyvid course run --profile cpu --out book/executed` is how the book's
executed notebooks and its status table are made; `--profile smoke` is the
quick end-to-end check. Every notebook runs in a fresh kernel from its own
folder (as nbval and a learner would), with `profile` injected as a papermill
parameter and `$TINYVID_PROFILE` set, so `resolve_profile("auto")` inside the
notebook agrees. A failing notebook is recorded and the run goes on.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import nbformat

from tinyvid.course.metrics import OPS, collect_metrics, format_value
from tinyvid.course.profiles import ENV_VAR, resolve_profile
from tinyvid.course.strip import course_notebooks

RESULTS_FILE = "results.json"


def run_notebooks(
    profile: str = "smoke",
    only: Iterable[str] | str | None = None,
    out_dir: str | Path | None = None,
    solutions_dir: str | Path = "solutions",
    parameters: Mapping[str, Any] | None = None,
    kernel_name: str = "python3",
    progress: bool = True,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Execute `solutions/NN_*.ipynb` (those starting with a prefix in `only`) into `out_dir`.

    Returns the results dict that is also written to `out_dir/results.json`
    (rewritten after every notebook, so an interrupted run keeps what it did). Entries of
    notebooks not run this time are kept from an earlier results.json of the same profile,
    so `--only 02` refreshes one notebook's row of the book's results.
    `timeout` is papermill's per-cell limit in seconds (None: no limit).
    """
    import papermill

    profile = resolve_profile(profile)
    notebooks = select_notebooks(solutions_dir, only)
    out = Path(out_dir) if out_dir is not None else Path("runs") / profile
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "profile": profile,
        "parameters": dict(parameters or {}),
        "started": _now(),
        "finished": None,
        "machine": machine_info(),
        "notebooks": [],
    }
    chosen = {p.name for p in notebooks}
    kept = [e for e in _earlier_entries(out, profile) if e.get("name") not in chosen]
    ran: list[dict] = []
    previous_env = os.environ.get(ENV_VAR)
    os.environ[ENV_VAR] = profile  # the kernel inherits it: `auto` inside the notebook means this profile
    try:
        for k, source in enumerate(notebooks, start=1):
            print(f"[notebook {k}/{len(notebooks)}] {source.name} · profile {profile}", flush=True)
            target = out / source.name
            target.unlink(missing_ok=True)  # never collect metrics from an older run's copy
            start = time.perf_counter()
            status, error = "ok", None
            try:
                papermill.execute_notebook(
                    str(source),
                    str(target),
                    parameters={"profile": profile, **(parameters or {})},
                    kernel_name=kernel_name,
                    language="python",
                    progress_bar=progress,
                    cwd=str(source.parent),
                    execution_timeout=timeout,
                )
            except Exception as exc:  # noqa: BLE001 - any failure is recorded, the next notebook still runs
                status, error = "failed", short_error(exc)
            seconds = round(time.perf_counter() - start, 2)
            entry = {
                "name": source.name,
                "status": status,
                "seconds": seconds,
                "error": error,
                "metrics": _metrics_of(target),
                "executed": str(target),
                "finished": _now(),
            }
            ran.append(entry)
            results["notebooks"] = sorted(kept + ran, key=lambda e: e["name"])
            print(f"[notebook {k}/{len(notebooks)}] {source.name}: {status} in {format_seconds(seconds)}"
                  + (f" — {error}" if error else ""), flush=True)
            write_results(results, out)
    finally:
        if previous_env is None:
            os.environ.pop(ENV_VAR, None)
        else:
            os.environ[ENV_VAR] = previous_env
    results["finished"] = _now()
    write_results(results, out)
    return results


def _earlier_entries(out_dir: Path, profile: str) -> list[dict]:
    path = out_dir / RESULTS_FILE
    try:
        earlier = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return list(earlier.get("notebooks", [])) if earlier.get("profile") == profile else []


def artifacts_dir(profile: str) -> Path:
    """Where a notebook saves what it trained: `runs/<profile>/` of the checkout, else of the cwd (Colab)."""
    repo = Path(__file__).resolve().parents[2]
    base = repo if (repo / "solutions").is_dir() else Path.cwd()
    return base / "runs" / profile


def select_notebooks(solutions_dir: str | Path, only: Iterable[str] | str | None = None) -> list[Path]:
    """The solution notebooks to run; `only` = prefixes such as ["00", "01"] (or "00,01")."""
    notebooks = course_notebooks(solutions_dir)
    if not notebooks:
        raise FileNotFoundError(f"no NN_*.ipynb notebooks in {solutions_dir}")
    if only is None:
        return notebooks
    prefixes = [p.strip() for p in (only.split(",") if isinstance(only, str) else only) if p.strip()]
    chosen = [p for p in notebooks if any(p.name.startswith(prefix) for prefix in prefixes)]
    if not chosen:
        raise ValueError(f"no notebook in {solutions_dir} starts with {', '.join(prefixes)}; "
                         f"have: {', '.join(p.name for p in notebooks)}")
    return chosen


def short_error(exc: BaseException, limit: int = 300) -> str:
    """`In [N]: Name: message` (numbered as in the executed copy), one line, short enough for a table."""
    ename, evalue = getattr(exc, "ename", None), getattr(exc, "evalue", None)
    if ename is not None:
        cell = getattr(exc, "exec_count", None)
        text = f"{ename}: {evalue}" if evalue else str(ename)
        text = f"In [{cell}]: {text}" if cell is not None else text
    else:
        text = f"{type(exc).__name__}: {exc}"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on, so a reader can compare with their own run."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "torch": None,
        "cuda_device": None,
    }
    try:
        import torch

        info["torch"] = torch.__version__
        if torch.cuda.is_available():
            info["cuda_device"] = torch.cuda.get_device_name(0)
    except Exception:  # noqa: BLE001 - the table is still useful without torch details
        pass
    return info


def write_results(results: Mapping[str, Any], out_dir: str | Path) -> Path:
    path = Path(out_dir) / RESULTS_FILE
    path.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def load_results(path: str | Path) -> dict[str, Any]:
    """Read `results.json`, given the file or the folder holding it."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_FILE
    return json.loads(path.read_text(encoding="utf-8"))


def all_ok(results: Mapping[str, Any]) -> bool:
    return all(nb["status"] == "ok" for nb in results.get("notebooks", []))


def format_results_table(results: Mapping[str, Any]) -> str:
    """Plain-text table: one row per notebook, one line per headline metric with its target and ✅/❌."""
    rows: list[tuple[str, str, str, str]] = []
    for nb in results.get("notebooks", []):
        metrics = [format_metric(name, m) for name, m in nb.get("metrics", {}).items()] or ["—"]
        status = "ok" if nb["status"] == "ok" else "FAILED"
        rows.append((nb["name"], status, format_seconds(nb.get("seconds") or 0), metrics[0]))
        rows.extend(("", "", "", line) for line in metrics[1:])
    header = ("notebook", "status", "time", "metrics")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
    lines = [
        "  ".join([header[0].ljust(widths[0]), header[1].ljust(widths[1]), header[2].rjust(widths[2]), header[3]]),
        "  ".join("-" * w for w in widths) + "  " + "-" * 7,
    ]
    lines += ["  ".join([r[0].ljust(widths[0]), r[1].ljust(widths[1]), r[2].rjust(widths[2]), r[3]]).rstrip()
              for r in rows]
    notebooks = results.get("notebooks", [])
    failed = [nb for nb in notebooks if nb["status"] != "ok"]
    machine = results.get("machine") or {}
    where = machine.get("cuda_device") or f"{machine.get('cpu_count', '?')} CPU cores"
    title = (f"profile {results.get('profile')} · {where} · "
             f"{len(notebooks) - len(failed)} ok, {len(failed)} failed"
             + ("" if results.get("finished") else " · unfinished"))
    lines = [title, "", *lines]
    if failed:
        lines += ["", "failures:"] + [f"  {nb['name']}: {nb.get('error') or 'failed'}" for nb in failed]
    return "\n".join(lines)


def format_metric(name: str, m: Mapping[str, Any]) -> str:
    unit = m.get("unit", "")
    text = f"{name} = {format_value(m.get('value'), unit)}"
    if "target" in m:
        mark = "✅" if m.get("met") else "❌"
        text = f"{mark} {text} (target {OPS.get(m.get('op'), m.get('op'))} {format_value(m['target'], unit)})"
    return text


def format_seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes}m{rest:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def _metrics_of(executed: Path) -> dict[str, Any]:
    """Metrics recorded up to the point of failure still count: the table shows which one was missed."""
    try:
        return collect_metrics(nbformat.read(executed, as_version=4))
    except Exception:  # noqa: BLE001 - no executed copy (e.g. the kernel never started)
        return {}


def _now() -> str:
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")
