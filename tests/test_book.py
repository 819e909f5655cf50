"""The book builds offline with Sphinx warnings as errors, and every page in its TOC is there.

The build runs on a copy of book/ and course/ in a temporary folder, so the repository's
book/_build and status.md are never touched. Executed notebooks the theory chapters link to but
that have not been produced yet (`tinyvid course run --profile cpu --out book/executed`) are
replaced *in the copy* by one-cell stand-ins, so the skeleton is tested before the first run.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
COURSE = ROOT / "course"
SUFFIXES = (".md", ".ipynb")

pytestmark = pytest.mark.timeout(600)


def _has_jupyter_book() -> bool:
    return Path(sys.executable).with_name("jupyter-book").is_file() or shutil.which("jupyter-book") is not None


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


def _toc_docs(book: Path) -> list[Path]:
    """Source files of every page the TOC names, globs expanded as Sphinx does (sorted)."""
    import yaml

    toc = yaml.safe_load((book / "_toc.yml").read_text(encoding="utf-8"))
    entries = [{"file": toc["root"]}]
    for part in toc.get("parts", []):
        entries.extend(part.get("chapters", []))
    docs = []
    for entry in entries:
        if "file" in entry:
            name = entry["file"]
            found = [book / f"{name}{s}" for s in SUFFIXES if (book / f"{name}{s}").is_file()]
            assert found, f"_toc.yml names {name!r}, which does not exist"
            docs.append(found[0])
        elif "glob" in entry:
            docs.extend(sorted(p for s in SUFFIXES for p in book.glob(entry["glob"] + s)))
    return docs


def _stub_notebook(path: Path, name: str) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells.append(nbformat.v4.new_markdown_cell(f"# {name} (not executed yet)\n\nStand-in made by tests/test_book.py."))
    path.parent.mkdir(parents=True, exist_ok=True)  # a fresh clone has no book/executed/ until the first run
    nbformat.write(nb, str(path))


@pytest.fixture(scope="module")
def built_book(tmp_path_factory):
    if not _has_jupyter_book():
        pytest.skip("jupyter-book is not installed (pip install -e '.[docs]')")
    from tinyvid.course.book import build_book

    work = tmp_path_factory.mktemp("book")
    shutil.copytree(BOOK, work / "book", symlinks=True,
                    ignore=shutil.ignore_patterns("_build", ".jupyter_cache", "*.safetensors", "*.pt"))
    shutil.copytree(COURSE, work / "course", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    book = work / "book"
    stubs = []
    for chapter in sorted((work / "course").glob("*.md")):
        for name in re.findall(r"\(\.\./executed/([\w.-]+)\.ipynb\)", chapter.read_text(encoding="utf-8")):
            target = book / "executed" / f"{name}.ipynb"
            if not target.exists():
                _stub_notebook(target, name)
                stubs.append(name)
    start = time.perf_counter()
    index = build_book(book, strict=True)
    seconds = time.perf_counter() - start
    print(f"\nbook build: {seconds:.1f} s ({len(_toc_docs(book))} pages; stand-ins for {stubs or 'none'})")
    return book, index, seconds


def test_course_symlink_is_committed_relative():
    link = BOOK / "course"
    assert link.is_symlink(), "book/course must be a symlink to ../course (Sphinx cannot read outside book/)"
    assert Path(link.readlink()).as_posix().rstrip("/") == "../course"
    assert link.resolve() == COURSE.resolve()


def test_book_builds_with_every_toc_page(built_book):
    book, index, _ = built_book
    html_dir = index.parent
    assert index.is_file()
    docs = _toc_docs(book)
    theory = [d for d in docs if d.parent.name == "course"]
    executed = [d for d in docs if d.parent.name == "executed"]
    assert {d.stem for d in theory} >= {"00_video_data", "01_ddpm"}
    assert {d.stem for d in executed} >= {"00_video_data", "01_ddpm_mnist"}
    assert any(d.stem == "status" for d in docs)
    for doc in docs:
        page = html_dir / doc.relative_to(book).with_suffix(".html")
        assert page.is_file(), f"{doc.relative_to(book)} is in the TOC but {page.name} was not built"
        title = _nb_title(doc) if doc.suffix == ".ipynb" else _md_title(doc)
        headings = " ".join(re.findall(r"<h1[^>]*>(.*?)</h1>", page.read_text(encoding="utf-8"), flags=re.S))
        assert _norm(title) in _norm(html.unescape(re.sub(r"<[^>]+>", " ", headings))), (
            f"{page.relative_to(html_dir)} does not show its title {title!r}")


def test_math_is_rendered_in_ddpm_chapter(built_book):
    _, index, _ = built_book
    page = (index.parent / "course" / "01_ddpm.html").read_text(encoding="utf-8")
    assert page.count('class="math') > 50
    assert 'id="equation-ddpm-marginal"' in page and 'id="equation-ddpm-fid"' in page
    assert "mathjax@3" in page
    assert r"\bar\alpha_t" in page


def test_status_page_and_colab_links(built_book):
    book, index, _ = built_book
    status = (index.parent / "status.html").read_text(encoding="utf-8")
    assert "Execution status" in status
    for doc in sorted((book / "executed").glob("[0-9][0-9]_*.ipynb")):
        page = (index.parent / "executed" / f"{doc.stem}.html").read_text(encoding="utf-8")
        assert f"/blob/main/notebooks/{doc.name}" in page, f"Colab button of {doc.stem} should open notebooks/{doc.name}"
        assert "/main/book/executed/" not in page


def test_build_time_is_reported(built_book):
    _, _, seconds = built_book
    assert seconds < 300, f"book build took {seconds:.0f} s; CI needs it well under 3 minutes"
