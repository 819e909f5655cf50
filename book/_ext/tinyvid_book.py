"""Sphinx glue for the tinyvid book (loaded by `sphinx.local_extensions` in _config.yml).

1. Before any page is read, `status.md` (execution status) and `results.md` (each notebook's
   headline numbers beside their targets) are regenerated from `executed/` and its
   `results.json` by `tinyvid.course.book.write_book_pages`, so a plain `jupyter-book build book`
   is never stale (if tinyvid is not importable the committed pages are used as they are).
2. Every notebook page gets a line under its title: "Open in Colab" (the learner's
   `notebooks/NN_x.ipynb` on GitHub, exercises blanked), "Download" (this executed `.ipynb`,
   copied into the book's `_downloads/`), and which run produced the outputs (profile, run
   time, status) with a link to its numbers on the results page.
3. Header buttons point at the files a reader should open, not at the book's copies:
   - Colab (the launch button configured) on `executed/NN_x` opens `notebooks/NN_x.ipynb`
     instead of `book/executed/NN_x.ipynb`;
   - "show source" / "suggest edit" on `executed/NN_x` go to `solutions/NN_x.ipynb` (the
     executed copy is generated), and on `course/...` to the top-level `course/` folder
     (`book/course` is only a symlink).
4. The results of `tinyvid course run` are handed to myst-nb's execution table
   (`{nb-exec-table}`): the book never executes notebooks itself, so without this the table
   would be empty.
5. MathJax is served from the book itself: `mathjax_path` in _config.yml is a path under
   `_static/`, and after an HTML build the MathJax 3 files shipped by the `sphinx-mathjax-offline`
   package (the `docs` extra) are copied there, so math renders with no network.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from datetime import datetime
from pathlib import Path

from docutils import nodes
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.util import logging

LOGGER = logging.getLogger(__name__)

EXECUTED = "executed/"
COURSE = "course/"
OK_STATUSES = {"ok", "pass", "passed", "success", "succeeded", "done", "completed"}
MATHJAX_DISTRIBUTION = "sphinx-mathjax-offline"
MATHJAX_FOLDER = "sphinx-mathjax-offline/static/mathjax"
# MathJax loads these on demand (fonts, TeX extensions, menu, accessibility) from beside its entry file
MATHJAX_PARTS = ("a11y", "adaptors", "input", "output", "sre", "ui")


# --- 1. generated pages ----------------------------------------------------------------------

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


def _write_pages(app: Sphinx) -> None:
    try:
        from tinyvid.course.book import write_book_pages
    except ModuleNotFoundError as err:
        if err.name != "tinyvid":
            raise
        LOGGER.info("tinyvid: library not installed, using the committed status.md and results.md")
        return
    write_book_pages(app.srcdir)


def builder_inited(app: Sphinx) -> None:
    _load_results(app)
    _write_pages(app)
    _check_mathjax(app)


def env_get_outdated(app, env, added, changed, removed) -> list[str]:
    """Re-read the executed notebooks whenever results.json changed (their exec data comes from it)."""
    if getattr(env, "tinyvid_results_digest", None) == app.tinyvid_results_digest:
        return []
    env.tinyvid_results_digest = app.tinyvid_results_digest
    return sorted(d for d in env.found_docs if d.startswith(EXECUTED) and d not in added | changed)


# --- 4. myst-nb's execution table ------------------------------------------------------------

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
                "mtime": _timestamp(entry.get("finished") or results.get("finished"), source),
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
    finished = bool(papermill.get("end_time"))
    return {
        "mtime": _timestamp(papermill.get("end_time"), source),
        "runtime": papermill.get("duration"),
        "method": f"papermill ({profile} profile)",
        "succeeded": finished and not papermill.get("exception"),
        "error": "exception" if papermill.get("exception") else (None if finished else "unfinished"),
        "traceback": None,
    }


# --- 2. the links under a notebook's title ---------------------------------------------------

def _colab_url(app: Sphinx, name: str) -> str | None:
    """Colab's GitHub URL of the learner's notebook, from the book's repository and launch settings."""
    opts = app.config.html_theme_options
    colab = (opts.get("launch_buttons") or {}).get("colab_url")
    repo = re.sub(r"^https?://github\.com/", "", (opts.get("repository_url") or "").rstrip("/"))
    if not colab or not repo or "://" in repo:
        return None
    branch = opts.get("repository_branch") or "main"
    return f"{colab.rstrip('/')}/github/{repo}/blob/{branch}/notebooks/{name}.ipynb"


def _duration(seconds) -> str:
    try:
        seconds = float(seconds)
    except (TypeError, ValueError):
        return "run time unknown"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def _links_block(app: Sphinx, docname: str, data: dict | None) -> nodes.container:
    name = docname[len(EXECUTED):]
    links = nodes.paragraph(classes=["tinyvid-notebook-links"])
    colab = _colab_url(app, name)
    if colab:
        links += nodes.reference("", "Open in Colab", refuri=colab, classes=["tinyvid-colab"])
        links += nodes.Text(f" (the learner's notebooks/{name}.ipynb, exercises blanked) · ")
    else:
        LOGGER.warning("tinyvid: no Colab link: set repository.url and launch_buttons.colab_url in _config.yml",
                       location=docname, type="tinyvid", subtype="colab")
    # collected into _downloads/ by Sphinx's download collector (its doctree-read runs after this one)
    links += addnodes.download_reference("", "", nodes.literal("", f"Download {name}.ipynb"),
                                         reftarget=f"/{docname}.ipynb", refdoc=docname,
                                         classes=["tinyvid-download"])
    links += nodes.Text(" (this executed notebook, outputs included)")
    run = nodes.paragraph(classes=["tinyvid-run"])
    if data is not None:
        outcome = "ran to the end" if data.get("succeeded") else f"did not finish cleanly ({data.get('error')})"
        run += nodes.Text(f"Outputs from the reference run: {data['method']}, {_duration(data.get('runtime'))}, "
                          f"{outcome}. Its numbers beside their targets: ")
    else:
        run += nodes.Text("Not executed by tinyvid course run. Its numbers: ")
    run += addnodes.pending_xref("", nodes.inline("", "results"), refdomain="std", reftype="ref",
                                 reftarget=f"results-{name.lower()}", refexplicit=True, refwarn=True,
                                 refdoc=docname)
    run += nodes.Text(".")
    return nodes.container("", links, run, classes=["tinyvid-notebook-header"])


def doctree_read(app: Sphinx, doctree) -> None:
    docname = app.env.docname
    if not docname.startswith(EXECUTED):
        return
    data = _exec_data(app, docname)
    if data is not None:
        from myst_nb.sphinx_ import NbMetadataCollector

        NbMetadataCollector.set_exec_data(app.env, docname, data)
    section = next(iter(doctree.findall(nodes.section)), None)
    if section is None or not section.children or not isinstance(section[0], nodes.title):
        LOGGER.warning("tinyvid: notebook has no '# ' title, so no Colab/download links",
                       location=docname, type="tinyvid", subtype="links")
        return
    section.insert(1, _links_block(app, docname, data))


# --- 3. header buttons -----------------------------------------------------------------------

def dedupe_scripts(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    """An inline script added by `app.add_js_file(None, body=...)` after the builder exists (sphinx-thebe,
    sphinx-togglebutton) reaches the page twice under Sphinx 7.4, once with filename None and once
    with '' (the registry's copy), so the two do not compare equal; the second copy re-declares
    `const THEBE_JS_URL` and the browser reports a SyntaxError. Keep one of each."""
    seen, kept = set(), []
    for script in context.get("script_files", []):
        key = (getattr(script, "filename", str(script)) or "", repr(sorted((getattr(script, "attributes", None) or {}).items())))
        if key not in seen:
            seen.add(key)
            kept.append(script)
    if "script_files" in context:
        context["script_files"][:] = kept


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


# --- 5. MathJax from the book's own static files ---------------------------------------------

def _local_mathjax(app: Sphinx) -> bool:
    path = app.config.mathjax_path or ""
    return bool(path) and "://" not in path and not path.startswith("//")


def _mathjax_source() -> Path | None:
    try:
        from importlib.metadata import PackageNotFoundError, distribution

        folder = Path(distribution(MATHJAX_DISTRIBUTION).locate_file(MATHJAX_FOLDER))
    except (ImportError, PackageNotFoundError):
        return None
    return folder if folder.is_dir() else None


def _check_mathjax(app: Sphinx) -> None:
    if not _local_mathjax(app) or app.builder.format != "html":
        return
    source = _mathjax_source()
    entry = Path(app.config.mathjax_path).name
    if source is None:
        LOGGER.warning(f"tinyvid: mathjax_path is the local {app.config.mathjax_path!r} but the "
                       f"{MATHJAX_DISTRIBUTION} package is not installed (pip install -e '.[docs]'): "
                       "pages would show raw TeX", type="tinyvid", subtype="mathjax")
    elif not (source / entry).is_file():
        LOGGER.warning(f"tinyvid: {MATHJAX_DISTRIBUTION} has no {entry}; choose one of "
                       f"{sorted(p.name for p in source.glob('*.js'))} for mathjax_path",
                       type="tinyvid", subtype="mathjax")


def copy_mathjax(app: Sphinx, exc) -> None:
    if exc is not None or not _local_mathjax(app) or app.builder.format != "html":
        return
    source = _mathjax_source()
    entry = source / Path(app.config.mathjax_path).name if source else None
    if entry is None or not entry.is_file():
        return  # _check_mathjax warned
    target = Path(app.outdir) / "_static" / Path(app.config.mathjax_path).parent
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(entry, target / entry.name)
    for part in MATHJAX_PARTS:
        if (source / part).is_dir():
            shutil.copytree(source / part, target / part, dirs_exist_ok=True)


def setup(app: Sphinx) -> dict:
    app.connect("builder-inited", builder_inited)
    app.connect("env-get-outdated", env_get_outdated)
    # before Sphinx's download collector (priority 500), which must see the Download link
    app.connect("doctree-read", doctree_read, priority=400)
    # after sphinx-book-theme has added its launch and source buttons (priority 501)
    app.connect("html-page-context", html_page_context, priority=900)
    # first of all html-page-context handlers: emit_firstresult stops at the first one that returns a template
    app.connect("html-page-context", dedupe_scripts, priority=1)
    app.connect("build-finished", copy_mathjax)
    return {"version": "1.1", "parallel_read_safe": True, "parallel_write_safe": True}
