"""The book: its generated pages (status, results) and its strict offline build.

The page writers are tested on small made-up runs (no build). The build itself (once per session,
on a copy of book/ and course/, see tests/_book_build.py) must pass with Sphinx warnings as
errors, show every TOC page with its title, serve MathJax from the book, keep the notebooks'
inline GIFs, and give every notebook page its Colab and download links. The same build is opened
in headless Chromium by tests/test_book_browser.py.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from urllib.parse import unquote

import pytest

from _book_build import BOOK, COURSE, built_book, gif_count, toc_docs
from tinyvid.course.book import metric_gap, metric_met, write_book_pages, write_results_page, write_status_page
from tinyvid.course.metrics import MIME_TYPE

pytestmark = pytest.mark.timeout(600)


def _norm(text: str) -> str:
    """Compare titles as words: Sphinx turns quotes and dashes typographic."""
    return re.sub(r"\W+", " ", text).strip().lower()


def _md_title(path: Path) -> str:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    raise AssertionError(f"{path} has no '# ' title")


def _nb_title(path: Path) -> str:
    nb = json.loads(path.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            for line in source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    raise AssertionError(f"{path} has no '# ' title in a markdown cell: the book needs one per notebook")


# --- the generated pages, on made-up runs ------------------------------------------------------

def _expect(value, target, op, met=None):
    record = {"value": value, "target": target, "op": op, "unit": "", "profile": "cpu", "enforced": True}
    if met is not None:
        record["met"] = met
    return record


RESULTS = {
    "profile": "cpu",
    "parameters": {},
    "started": "2026-11-25T18:17:09+00:00",
    "finished": "2026-11-25T18:48:21+00:00",
    "machine": {"platform": "Linux-6.1", "python": "3.11.7", "cpu_count": 2, "torch": "2.13.0+cpu", "cuda_device": None},
    "notebooks": [
        {"name": "00_data.ipynb", "status": "ok", "seconds": 46.1, "error": None, "finished": "2026-11-25T18:17:55+00:00",
         "metrics": {"clips_per_s": {"value": 116.2}, "dropped": _expect(4, 4, ">=", True)}},
        {"name": "01_ddpm.ipynb", "status": "failed", "seconds": 1825.2, "finished": "2026-11-25T18:48:21+00:00",
         "error": "In [19]: AssertionError: fid_over_floor = 8.5 misses its target ≤ 8",
         "metrics": {"fid_over_floor": _expect(8.5, 8.0, "<=", False), "accuracy": _expect(0.97, 0.98, ">=", False),
                     "recon": _expect(0.99, 0.98, ">="), "loss": _expect("nan", 1.0, "<=")}},
    ],
}


def _notebook(path: Path, title: str, metrics: dict | None = None, papermill: dict | None = None) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_markdown_cell(f"# {title}\n\nText."))
    code = nbformat.v4.new_code_cell("expect(...)")
    if metrics:
        code.outputs.append(nbformat.v4.new_output("display_data", data={"text/plain": "...", MIME_TYPE: metrics}))
    nb.cells.append(code)
    if papermill is not None:
        nb.metadata["papermill"] = papermill
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))


@pytest.fixture
def made_up_book(tmp_path):
    book = tmp_path / "book"
    executed = book / "executed"
    _notebook(executed / "00_data.ipynb", "00 · Data")
    _notebook(executed / "01_ddpm.ipynb", "01 · DDPM")
    # run by hand with papermill, so not in results.json: its numbers come from its outputs
    _notebook(executed / "02_ddim.ipynb", "02 · DDIM", metrics={"fid_over_floor": _expect(3.8, 6.0, "<=", True)},
              papermill={"parameters": {"profile": "cpu"}, "duration": 1634.1, "exception": None,
                         "end_time": "2026-11-26T10:00:00+00:00"})
    (executed / "results.json").write_text(json.dumps(RESULTS), encoding="utf-8")
    for name in ("00_data", "01_ddpm", "02_ddim", "03_vae"):
        (tmp_path / "solutions").mkdir(exist_ok=True)
        (tmp_path / "solutions" / f"{name}.ipynb").write_text("{}", encoding="utf-8")
    return book


def test_metric_verdicts_and_gaps():
    assert metric_met(_expect(8.5, 8.0, "<=", False)) is False
    assert metric_met(_expect(0.99, 0.98, ">=")) is True  # no recorded verdict: compared here
    assert metric_met(_expect("nan", 1.0, "<=")) is False  # a diverged run never meets a target
    assert metric_met({"value": 3.0}) is None
    assert metric_gap(_expect(8.5, 8.0, "<=", False)) == "**0.5 too high** (6.2% of the target)"
    assert metric_gap(_expect(0.97, 0.98, ">=", False)) == "**0.01 too low** (1.0% of the target)"
    assert metric_gap(_expect(0.99, 0.98, ">=")) == "0.01 to spare (1.0% of the target)"
    assert metric_gap(_expect(4, 4, ">=", True)) == "exactly on target"
    assert metric_gap(_expect("nan", 1.0, "<=")) == "no number to compare (value nan)"
    assert metric_gap({"value": 3.0}) == ""


def test_results_page_states_every_target_and_gap(made_up_book):
    pages = write_book_pages(made_up_book)
    assert [p.name for p in pages] == ["status.md", "results.md"]
    text = (made_up_book / "results.md").read_text(encoding="utf-8")
    assert "- **3 of 6 targets met**; 3 missed:" in text
    # each missed target with its value, target and shortfall, in the summary and in its notebook's section
    for row in ("`fid_over_floor` | 8.5 | ≤ 8 | ❌ | **0.5 too high** (6.2% of the target)",
                "`accuracy` | 0.97 | ≥ 0.98 | ❌ | **0.01 too low** (1.0% of the target)",
                "`loss` | nan | ≤ 1 | ❌ | no number to compare (value nan)"):
        assert text.count(row) == 2, row
    assert "`recon` | 0.99 | ≥ 0.98 | ✅ | 0.01 to spare" in text
    assert "[01_ddpm](executed/01_ddpm.ipynb) `fid_over_floor` = 8.5, target ≤ 8: **0.5 too high**" in text
    # which profile and machine, and when
    assert "- profile: `cpu`" in text
    assert "- machine: 2 CPU cores, no GPU · Linux-6.1 · Python 3.11.7 · torch 2.13.0+cpu" in text
    assert "finished 2026-11-25 18:48 UTC+00:00" in text
    # numbers without a target are shown apart from the headline ones
    assert "Other numbers: `clips_per_s` 116.2" in text
    # the notebook results.json does not list: its numbers from its outputs, labelled as such
    section = text.split("(results-02_ddim)=")[1]
    assert "## 02 · DDIM" in section and "Not listed in results.json" in section
    assert "`fid_over_floor` | 3.8 | ≤ 6 | ✅ | 2.2 to spare" in section
    assert "27 min 14 s" in section and "finished 2026-11-26 10:00" in section
    # failures and notebooks never run are said, not left out
    assert "notebooks that did not finish cleanly: [01_ddpm](executed/01_ddpm.ipynb) (failed)" in text
    assert "Error: `In [19]: AssertionError: fid_over_floor = 8.5 misses its target ≤ 8`" in text
    assert "- not run yet (no executed copy): `03_vae`" in text
    for name in ("00_data", "01_ddpm", "02_ddim"):
        assert f"(results-{name})=" in text  # the notebook pages link to these labels


def test_status_page_lists_each_run(made_up_book):
    text = write_status_page(made_up_book / "executed", made_up_book / "status.md").read_text(encoding="utf-8")
    assert "| [00_data](executed/00_data.ipynb) | cpu | ✅ ok | 46.1 s | 2026-11-25 18:17 UTC+00:00 |  |" in text
    assert "| [01_ddpm](executed/01_ddpm.ipynb) | cpu | ❌ failed | 30 min 25 s |" in text
    assert "| [02_ddim](executed/02_ddim.ipynb) | cpu | ✅ ok (papermill metadata) | 27 min 14 s |" in text
    assert "- 2 of 3 notebooks ran successfully" in text
    assert "```{nb-exec-table}\n```" in text
    assert "[results](results.md)" in text


def test_pages_before_any_run(tmp_path):
    book = tmp_path / "book"
    (book / "executed").mkdir(parents=True)
    status, results = write_book_pages(book)
    assert "Not run yet" in status.read_text(encoding="utf-8")
    assert "Not run yet" in results.read_text(encoding="utf-8")
    mtime = results.stat().st_mtime_ns
    write_results_page(book / "executed", results)
    assert results.stat().st_mtime_ns == mtime, "an unchanged page is not rewritten (Sphinx would re-read it)"


# --- the built book ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def book(tmp_path_factory):
    return built_book(tmp_path_factory)


def test_course_symlink_is_committed_relative():
    link = BOOK / "course"
    assert link.is_symlink(), "book/course must be a symlink to ../course (Sphinx cannot read outside book/)"
    assert Path(link.readlink()).as_posix().rstrip("/") == "../course"
    assert link.resolve() == COURSE.resolve()


def test_book_builds_with_every_toc_page(book):
    assert book.index.is_file()
    docs = toc_docs(book.book)
    theory = [d for d in docs if d.parent.name == "course"]
    executed = [d for d in docs if d.parent.name == "executed"]
    assert {d.stem for d in theory} >= {"00_video_data", "01_ddpm"}
    assert {d.stem for d in executed} >= {"00_video_data", "01_ddpm_mnist"}
    assert {d.stem for d in docs} >= {"status", "results"}
    for doc in docs:
        page = book.html / doc.relative_to(book.book).with_suffix(".html")
        assert page.is_file(), f"{doc.relative_to(book.book)} is in the TOC but {page.name} was not built"
        title = _nb_title(doc) if doc.suffix == ".ipynb" else _md_title(doc)
        headings = " ".join(re.findall(r"<h1[^>]*>(.*?)</h1>", page.read_text(encoding="utf-8"), flags=re.S))
        assert _norm(title) in _norm(html.unescape(re.sub(r"<[^>]+>", " ", headings))), (
            f"{page.relative_to(book.html)} does not show its title {title!r}")


def test_math_is_marked_up_and_mathjax_is_served_by_the_book(book):
    page = (book.html / "course" / "01_ddpm.html").read_text(encoding="utf-8")
    assert page.count('class="math') > 50
    assert 'id="equation-ddpm-marginal"' in page and 'id="equation-ddpm-fid"' in page
    assert r"\bar\alpha_t" in page
    scripts = re.findall(r'<script[^>]*src="([^"]*mathjax[^"]*)"', page)
    assert scripts and all("://" not in s for s in scripts), f"MathJax must load from the book, not {scripts}"
    entry = (book.html / "course" / scripts[0].split("?")[0]).resolve()
    assert entry.is_file() and entry.name == "tex-mml-chtml.js"
    assert (entry.parent / "output" / "chtml" / "fonts" / "woff-v2").is_dir(), "MathJax's fonts are copied too"
    for page in book.html.rglob("*.html"):
        assert "cdn.jsdelivr.net" not in page.read_text(encoding="utf-8"), f"{page.name} loads from a CDN"


def test_results_page_shows_every_recorded_target(book):
    text = (book.html / "results.html").read_text(encoding="utf-8")
    results = json.loads((book.book / "executed" / "results.json").read_text(encoding="utf-8"))
    for nb in results["notebooks"]:
        for name, metric in (nb.get("metrics") or {}).items():
            if isinstance(metric, dict) and metric.get("target") is not None:
                # docutils puts each word of an inline literal in its own span
                spans = " ".join(f"<span class=\"pre\">{html.escape(word, quote=False)}</span>" for word in name.split())
                assert text.count(f"<code class=\"docutils literal notranslate\">{spans}</code>") >= 1, name
    assert "targets met" in text


def test_notebook_pages_have_colab_and_download_links(book):
    for doc in sorted((book.book / "executed").glob("[0-9][0-9]_*.ipynb")):
        page = (book.html / "executed" / f"{doc.stem}.html").read_text(encoding="utf-8")
        colab = f"https://colab.research.google.com/github/tinyvid-course/tinyvid/blob/main/notebooks/{doc.name}"
        assert f'href="{colab}"' in page, f"{doc.stem}: no Open in Colab link to notebooks/{doc.name}"
        assert "/main/book/executed/" not in page
        downloads = re.findall(r'<a class="[^"]*\bdownload internal\b[^"]*"[^>]*\shref="([^"]+)"', page)
        assert downloads, f"{doc.stem}: no download link"
        target = (book.html / "executed" / unquote(downloads[0])).resolve()
        assert target.name == doc.name and target.read_bytes() == doc.read_bytes(), (
            f"{doc.stem}: the download link must give the executed notebook")
        if not any(doc.stem == stub for stub in book.stubs):
            assert f'href="../results.html#results-{doc.stem.lower().replace("_", "-")}"' in page


def test_inline_videos_are_kept_in_the_html(book):
    """tinyvid.viz.show_video's GIFs are HTML outputs: myst-nb must pass them through, not escape or drop them."""
    seen = 0
    for doc in sorted((book.book / "executed").glob("[0-9][0-9]_*.ipynb")):
        expected = gif_count(doc)
        page = (book.html / "executed" / f"{doc.stem}.html").read_text(encoding="utf-8")
        assert page.count('<img src="data:image/gif;base64,') == expected, doc.stem
        assert "&lt;img src=&quot;data:image/gif" not in page, f"{doc.stem}: a GIF was escaped into text"
        seen += expected
    if any((BOOK / "executed").glob("0[0-9]_*.ipynb")):
        assert seen > 0, "the executed notebooks should show at least one video"


def test_build_time_is_reported(book):
    assert book.seconds < 300, f"book build took {book.seconds:.0f} s; CI needs it well under 3 minutes"
