"""The built book as a reader sees it: every page opened in headless Chromium (Debian's `chromium`
and `chromium-driver`, driven by Selenium), served from a loopback HTTP server.

On every page of the TOC: each math element is typeset by MathJax (an `mjx-container`, no TeX
error), every image and inline video (the notebooks' GIFs) has loaded (`naturalWidth > 0`),
nothing is fetched from outside the book, and every local link resolves to a built file and,
when it has one, to an element with that id. Skips (saying why) only when Chromium or its
driver is not installed: `apt-get install -y chromium chromium-driver`.
"""

from __future__ import annotations

import functools
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from _book_build import built_book, gif_count, toc_docs

pytestmark = pytest.mark.timeout(900)

# without the networking flags Chromium keeps trying Google's services, which a closed network refuses
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1280,1024",
)
PAGE_TIMEOUT_S = 120

# runs in the page once it has loaded: waits for MathJax's first typeset and for every image
COLLECT = """
const done = arguments[arguments.length - 1];
// a page of several MB (notebooks with inline GIFs) may still be parsing when the driver hands over:
// wait for readyState "complete", then for MathJax, then decode every image, and read document.images
// again until no new image has appeared (the CI once saw 2 of a page's 3 GIFs)
const poll = (ok, limit_ms) => new Promise(resolve => {
  const t0 = Date.now();
  (function tick() { (ok() || Date.now() - t0 > limit_ms) ? resolve() : setTimeout(tick, 100); })();
});
const decodeAll = async () => {
  let seen = -1;
  while (seen !== document.images.length) {
    seen = document.images.length;
    const images = Array.from(document.images);
    images.forEach(img => { img.loading = "eager"; });
    await Promise.all(images.map(img => img.decode().catch(() => null)));
  }
  return Array.from(document.images);
};
// MathJax is loaded with defer/async: on a busy machine its script may not have run yet when the page
// reports load, so wait (up to 40 s) for MathJax.startup.promise on pages that include it
const typeset = poll(() => document.readyState === "complete", 40000)
  .then(() => poll(() => (window.MathJax && MathJax.startup && MathJax.startup.promise)
                         || !document.querySelector("script[src*='tex-mml-chtml']"), 40000))
  .then(() => (window.MathJax && MathJax.startup && MathJax.startup.promise) || null);
typeset.catch(e => String(e)).then(decodeAll).then(images => {
  const math = Array.from(document.querySelectorAll(".math"));
  done({
    mathjax_version: (window.MathJax && MathJax.version) || null,
    math: math.length,
    untypeset: math.filter(m => !m.querySelector("mjx-container")).map(m => m.textContent.slice(0, 80)),
    tex_errors: Array.from(document.querySelectorAll("mjx-merror, [data-mjx-error]"),
                           e => e.getAttribute("data-mjx-error") || e.textContent.slice(0, 80)),
    images: images.map(img => ({src: img.currentSrc || img.src, width: img.naturalWidth, complete: img.complete})),
    links: Array.from(document.querySelectorAll("a[href]"), a => a.href),
    ids: Array.from(document.querySelectorAll("[id], a[name]"), e => e.id || e.getAttribute("name")),
    resources: performance.getEntriesByType("resource").map(e => e.name),
  });
});
"""


def _chromium() -> tuple[str | None, str | None]:
    browser = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
    return browser, shutil.which("chromedriver")


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    return built_book(tmp_path_factory)


@pytest.fixture(scope="module")
def server(book):
    handler = functools.partial(_QuietHandler, directory=str(book.html))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chromium, driver_path = _chromium()
    if chromium is None or driver_path is None:
        reason = ("headless Chromium is not installed (" + ", ".join(
            n for n, p in (("chromium", chromium), ("chromedriver", driver_path)) if p is None)
            + " missing): apt-get install -y chromium chromium-driver")
        print(f"\nSKIP: {reason}")
        pytest.skip(reason)
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # the Debian driver, named explicitly: Selenium Manager would otherwise try to download one
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver_path))
    driver.set_page_load_timeout(PAGE_TIMEOUT_S)
    driver.set_script_timeout(PAGE_TIMEOUT_S)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def pages(book, server, browser):
    """What the browser saw on every TOC page (and the landing page), keyed by the page's path."""
    paths = ["index.html"] + [d.relative_to(book.book).with_suffix(".html").as_posix() for d in toc_docs(book.book)]
    seen = {}
    for path in dict.fromkeys(paths):
        browser.get(f"{server}/{path}")
        seen[path] = browser.execute_async_script(COLLECT)
        seen[path]["console"] = [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]
    return seen


def test_math_is_rendered(pages):
    with_math = {path: page for path, page in pages.items() if page["math"]}
    assert "course/01_ddpm.html" in with_math, "the DDPM chapter has math"
    for path, page in with_math.items():
        assert page["mathjax_version"] and page["mathjax_version"].startswith("3."), f"{path}: MathJax did not load"
        assert not page["untypeset"], f"{path}: {len(page['untypeset'])} math elements not typeset: {page['untypeset'][:5]}"
        assert not page["tex_errors"], f"{path}: TeX errors: {page['tex_errors'][:5]}"
    assert sum(p["math"] for p in with_math.values()) > 100


def test_images_and_videos_load(book, pages):
    for path, page in pages.items():
        broken = [img["src"][:100] for img in page["images"] if not img["complete"] or img["width"] == 0]
        assert not broken, f"{path}: images that did not load: {broken}"
    for doc in sorted((book.book / "executed").glob("[0-9][0-9]_*.ipynb")):
        page = pages[f"executed/{doc.stem}.html"]
        gifs = [img for img in page["images"] if img["src"].startswith("data:image/gif;base64,")]
        assert len(gifs) == gif_count(doc), f"{doc.stem}: {len(gifs)} inline videos shown, the notebook has {gif_count(doc)}"
        assert all(img["width"] > 0 for img in gifs)


def test_nothing_is_fetched_from_outside_the_book(server, pages):
    for path, page in pages.items():
        outside = [url for url in page["resources"] if not url.startswith((server, "data:", "blob:"))]
        assert not outside, f"{path} fetched {outside}: the book must work offline"
        # pydata-sphinx-theme logs its empty default colour mode as an error on every page (harmless: it falls back to auto)
        errors = [e["message"][:200] for e in page["console"]
                  if "favicon.ico" not in e["message"] and "Got invalid theme mode" not in e["message"]]
        assert not errors, f"{path}: browser errors {errors}"


def test_no_broken_internal_links(book, server, pages):
    broken, checked = [], 0
    ids_of = {path: set(page["ids"]) for path, page in pages.items()}
    for path, page in pages.items():
        for url in page["links"]:
            if not url.startswith(server + "/"):
                continue  # another site, mailto:, javascript:
            parts = urlsplit(url)
            target = unquote(parts.path).lstrip("/") or "index.html"
            if target.endswith("/"):
                target += "index.html"
            file = book.html / target
            checked += 1
            if not file.is_file():
                broken.append(f"{path}: {url} (no file {target})")
                continue
            fragment = unquote(parts.fragment)
            if fragment and file.suffix == ".html":
                ids = ids_of.get(target)
                if ids is None:  # a page outside the TOC (genindex, search): its ids from the file
                    ids = set(_static_ids(file))
                    ids_of[target] = ids
                if fragment not in ids:
                    broken.append(f"{path}: {url} (no id {fragment!r} in {target})")
    assert checked > 100
    assert not broken, f"{len(broken)} broken internal links:\n" + "\n".join(broken[:30])


def _static_ids(file: Path) -> list[str]:
    import re

    return re.findall(r'\s(?:id|name)="([^"]+)"', file.read_text(encoding="utf-8"))
