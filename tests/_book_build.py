"""One strict build of the book per test session, shared by test_book.py and test_book_browser.py.

The build runs on a copy of book/ and course/ in a temporary folder, so the repository's
book/_build, status.md and results.md are never touched. Executed notebooks the theory chapters
link to but that have not been produced yet (`tinyvid course run --profile cpu --out book/executed`)
are replaced *in the copy* by one-cell stand-ins, so the skeleton is tested before the first run.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
COURSE = ROOT / "course"
SUFFIXES = (".md", ".ipynb")


@dataclass
class BuiltBook:
    book: Path  # the copied book folder (sources as built, generated pages included)
    html: Path  # its _build/html
    seconds: float
    stubs: list[str]

    @property
    def index(self) -> Path:
        return self.html / "index.html"


_BUILT: dict[str, BuiltBook] = {}


def has_jupyter_book() -> bool:
    return Path(sys.executable).with_name("jupyter-book").is_file() or shutil.which("jupyter-book") is not None


def toc_docs(book: Path) -> list[Path]:
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


def stub_notebook(path: Path, name: str) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells.append(nbformat.v4.new_markdown_cell(f"# {name} (not executed yet)\n\nStand-in made by tests/_book_build.py."))
    path.parent.mkdir(parents=True, exist_ok=True)  # a fresh clone has no book/executed/ until the first run
    nbformat.write(nb, str(path))


def built_book(tmp_path_factory) -> BuiltBook:
    """Build (once per session) and return the book; skips when jupyter-book is not installed."""
    if not has_jupyter_book():
        pytest.skip("jupyter-book is not installed (pip install -e '.[docs]')")
    if "book" in _BUILT:
        return _BUILT["book"]
    from tinyvid.course.book import build_book

    work = tmp_path_factory.mktemp("book")
    # a notebook being written by a run in progress is copied as it is at this moment
    shutil.copytree(BOOK, work / "book", symlinks=True,
                    ignore=shutil.ignore_patterns("_build", ".jupyter_cache", "*.safetensors", "*.pt", "*.npz"))
    shutil.copytree(COURSE, work / "course", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    book = work / "book"
    stubs = []
    for chapter in sorted((work / "course").glob("*.md")):
        for name in re.findall(r"\(\.\./executed/([\w.-]+)\.ipynb\)", chapter.read_text(encoding="utf-8")):
            target = book / "executed" / f"{name}.ipynb"
            if not target.exists():
                stub_notebook(target, name)
                stubs.append(name)
    start = time.perf_counter()
    index = build_book(book, strict=True)
    seconds = time.perf_counter() - start
    print(f"\nbook build: {seconds:.1f} s ({len(toc_docs(book))} pages; stand-ins for {stubs or 'none'})")
    _BUILT["book"] = BuiltBook(book=book, html=index.parent, seconds=seconds, stubs=stubs)
    return _BUILT["book"]


def gif_count(notebook: Path) -> int:
    """How many inline GIFs (tinyvid.viz.show_video) the notebook's HTML outputs hold."""
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    count = 0
    for cell in nb.get("cells", []):
        for output in cell.get("outputs", []) or []:
            html = output.get("data", {}).get("text/html", "")
            html = "".join(html) if isinstance(html, list) else html
            count += html.count('src="data:image/gif;base64,')
    return count
