"""Sphinx glue for the tinyvid book (loaded by `sphinx.local_extensions` in _config.yml).

1. Header buttons point at the files a reader should open, not at the book's copies:
   - Colab (the launch button configured) on `executed/NN_x` opens `notebooks/NN_x.ipynb`,
     the learner's notebook with the exercises blanked, instead of `book/executed/NN_x.ipynb`;
   - "show source" / "suggest edit" on `executed/NN_x` go to `solutions/NN_x.ipynb` (the
     executed copy is generated), and on `course/...` to the top-level `course/` folder
     (`book/course` is only a symlink).
2. Before any page is read, `status.md` is regenerated from `executed/results.json` with
   `tinyvid.course.book.write_status_page`, so a plain `jupyter-book build book` is never stale
   (if tinyvid is not importable the committed `status.md` is used as it is).
3. The results of `tinyvid course run` are handed to myst-nb's execution table
   (`{nb-exec-table}`): the book never executes notebooks itself, so without this the table
   would be empty.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.util import logging

LOGGER = logging.getLogger(__name__)

EXECUTED = "executed/"
COURSE = "course/"
OK_STATUSES = {"ok", "pass", "passed", "success", "succeeded", "done", "completed"}


def _results_path(app: Sphinx) -> Path:
    return Path(app.srcdir) / "executed" / "results.json"


def _load_results(app: Sphinx) -> None:
    path = _results_path(app)
    raw = path.read_bytes() if path.is_file() else b""
    app.tinyvid_results_digest = hashlib.sha256(raw).hexdigest()
    try:
        app.tinyvid_results = json.loads(raw) if raw else {}
    except json.JSONDecodeError as err:
        LOGGER.warning(f"tinyvid: cannot parse {path}: {err}", type="tinyvid", subtype="results")
        app.tinyvid_results = {}


def _write_status_page(app: Sphinx) -> None:
    try:
        from tinyvid.course.book import write_status_page
    except ModuleNotFoundError as err:
        if err.name != "tinyvid":
            raise
        LOGGER.info("tinyvid: library not installed, using the committed status.md")
        return
    write_status_page(Path(app.srcdir) / "executed", Path(app.srcdir) / "status.md")


def builder_inited(app: Sphinx) -> None:
    _load_results(app)
    _write_status_page(app)


def env_get_outdated(app, env, added, changed, removed) -> list[str]:
    """Re-read the executed notebooks whenever results.json changed (their exec data comes from it)."""
    if getattr(env, "tinyvid_results_digest", None) == app.tinyvid_results_digest:
        return []
    env.tinyvid_results_digest = app.tinyvid_results_digest
    return sorted(d for d in env.found_docs if d.startswith(EXECUTED) and d not in added | changed)


def _timestamp(text: str | None, fallback: Path) -> float:
    if text:
        try:
            return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    return fallback.stat().st_mtime


def _exec_data(app: Sphinx, docname: str) -> dict | None:
    """What myst-nb would have recorded had it run the notebook: from results.json, else papermill metadata."""
    source = Path(app.env.doc2path(docname))
    name = docname[len(EXECUTED):]
    results = app.tinyvid_results or {}
    for entry in results.get("notebooks", []):
        if str(entry.get("name", "")).removesuffix(".ipynb") == name:
            status = str(entry.get("status", ""))
            return {
                "mtime": _timestamp(results.get("finished"), source),
                "runtime": entry.get("seconds"),
                "method": f"papermill ({results.get('profile', '?')} profile)",
                "succeeded": status.lower() in OK_STATUSES,
                "error": entry.get("error") or (None if status.lower() in OK_STATUSES else status),
                "traceback": None,
            }
    try:
        papermill = json.loads(source.read_text(encoding="utf-8"))["metadata"].get("papermill")
    except (OSError, ValueError, KeyError):
        return None
    if not papermill:
        return None
    profile = (papermill.get("parameters") or {}).get("profile", "?")
    return {
        "mtime": _timestamp(papermill.get("end_time"), source),
        "runtime": papermill.get("duration"),
        "method": f"papermill ({profile} profile)",
        "succeeded": not papermill.get("exception"),
        "error": "exception" if papermill.get("exception") else None,
        "traceback": None,
    }


def doctree_read(app: Sphinx, doctree) -> None:
    docname = app.env.docname
    if not docname.startswith(EXECUTED):
        return
    data = _exec_data(app, docname)
    if data is not None:
        from myst_nb.sphinx_ import NbMetadataCollector

        NbMetadataCollector.set_exec_data(app.env, docname, data)


def html_page_context(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    opts = app.config.html_theme_options
    branch = opts.get("repository_branch") or "main"
    book = (opts.get("path_to_docs") or "").strip("/")
    book = f"{book}/" if book else ""
    old = f"/{branch}/{book}{pagename}"
    if pagename.startswith(EXECUTED):
        name = pagename[len(EXECUTED):]
        launch_new = f"/{branch}/notebooks/{name}"
        source_new = f"/{branch}/solutions/{name}"
    elif pagename.startswith(COURSE):
        launch_new = source_new = f"/{branch}/{pagename}"
    else:
        return

    def fix(buttons: list, new: str) -> None:
        for button in buttons:
            if button.get("type") == "group":
                is_launch = button.get("label") == "launch-buttons"
                fix(button.get("buttons", []), launch_new if is_launch else source_new)
            elif isinstance(button.get("url"), str) and old in button["url"]:
                button["url"] = button["url"].replace(old, new)

    fix(context.get("header_buttons", []), source_new)


def setup(app: Sphinx) -> dict:
    app.connect("builder-inited", builder_inited)
    app.connect("env-get-outdated", env_get_outdated)
    app.connect("doctree-read", doctree_read)
    # after sphinx-book-theme has added its launch and source buttons (priority 501)
    app.connect("html-page-context", html_page_context, priority=900)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
