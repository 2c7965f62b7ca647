"""Checks of the rendered PDF: contents, page count, figures, fonts, page size, pixels.

Fast and TensorFlow-free: the synthetic run of tests/report_fixture.py is
rendered once per page size. The checks read the PDF with poppler-utils
(pdftotext, pdfinfo, pdffonts, pdfimages, pdftoppm). They are skipped when a
tool is missing, and fail instead when STUDY_REQUIRE_PDF_TOOLS=1 (see
pdf_tools.require_tools).
"""

from __future__ import annotations

import html
import json
import math
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pdf_tools import (
    font_rows,
    image_rows,
    page_info,
    page_text,
    page_texts,
    require_tools,
    site_image_sources,
)
from report_fixture import make_run_dir

from report import narrative, tables
from report.render import render_report

# Page sizes in points as pdfinfo prints them, rounded.
PAGE_POINTS = {"A4": (595, 842), "Letter": (612, 792)}
# The text area of a page in millimetres: the page less print.css's @page
# margins (18mm at the top and sides, 20mm at the bottom).
TEXT_AREA_MM = {"A4": (210 - 36, 297 - 38), "Letter": (215.9 - 36, 279.4 - 38)}
MM_PER_INCH = 25.4
FIGURE_DPI = 150  # print.css's image-resolution
FIGURE_MAX_HEIGHT_MM = 200  # print.css's max-height of figure images
# An upper estimate of the characters one page holds. Tables use 8.5pt, the
# smallest print font. At a line height of 1.2 that gives 72 lines of A4 text,
# and at an average glyph width of half an em 116 characters per line.
MAX_CHARACTERS_PER_PAGE = 9000
# Rendered at 40 dpi, the title page has about 1% of its pixels darker than
# mid-grey and a page with a figure several times more.
PREVIEW_DPI = 40
MIN_DARK_SHARE = 0.003
MIN_COLOUR_SHARE = 0.005


@dataclass(frozen=True)
class RenderedSite:
    pdf: Path
    index: Path
    results: dict
    page_size: str


@pytest.fixture(scope="module")
def poppler():
    """Skip (or fail, see pdf_tools) the PDF checks before any rendering when a tool is missing."""
    require_tools("pdftotext", "pdfinfo", "pdffonts", "pdfimages", "pdftoppm")


@pytest.fixture(scope="module")
def render_site(tmp_path_factory, poppler):
    """Return a function that renders the synthetic run at a page size, once per size."""
    run_dir = make_run_dir(tmp_path_factory.mktemp("pdf-run") / "run")
    sites: dict[str, RenderedSite] = {}

    def render(page_size: str) -> RenderedSite:
        if page_size not in sites:
            out_dir = tmp_path_factory.mktemp(f"pdf-{page_size}") / "site"
            paths = render_report(run_dir, out_dir, page_size=page_size)
            results = json.loads(paths["results"].read_text(encoding="utf-8"))
            sites[page_size] = RenderedSite(paths["pdf"], paths["site"], results, page_size)
        return sites[page_size]

    return render


@pytest.fixture
def a4(render_site) -> RenderedSite:
    return render_site("A4")


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _contents_entries(index: Path) -> list[str]:
    markup = index.read_text(encoding="utf-8")
    contents = markup[markup.index('<ol class="contents">'):]
    contents = contents[:contents.index("</ol>")]
    titles = re.findall(r'<a href="#[^"]+">([^<]+)</a>', contents)
    return [html.unescape(title) for title in titles]


def _headings(index: Path, tag: str) -> list[str]:
    markup = index.read_text(encoding="utf-8")
    return [html.unescape(text) for text in re.findall(rf"<{tag}>([^<]+)</{tag}>", markup)]


def _first_page_alone_on_a_line(pages: list[str], text: str) -> int | None:
    # 1-based number of the first page after the title page where `text` is a line of its own.
    for number, page in enumerate(pages[1:], start=2):
        if text in _lines(page):
            return number
    return None


# ---- Text -------------------------------------------------------------------------


def test_pdf_title_and_headings(a4):
    pages = page_texts(a4.pdf)
    assert a4.results["title"] in " ".join(pages[0].split())
    for heading in _headings(a4.index, "h2"):
        assert _first_page_alone_on_a_line(pages, heading), heading
    flowing = " ".join(" ".join(pages).split())
    for heading in _headings(a4.index, "h3"):
        assert heading in flowing, heading


def test_pdf_contents_page_numbers(a4):
    pages = page_texts(a4.pdf)
    entries = _contents_entries(a4.index)
    assert len(entries) >= 8
    for entry in entries:
        # "  3. Data ...............  2": number, title, dot leader, page number.
        found = re.search(rf"^\s*\d+\.\s+{re.escape(entry)}\s*\.{{3,}}\s*(\d+)\s*$", pages[0],
                          re.MULTILINE)
        assert found, f"contents entry {entry!r} without a page number"
        assert int(found.group(1)) == _first_page_alone_on_a_line(pages, entry), entry


def test_pdf_running_header_and_footer(a4):
    title = a4.results["title"]
    count, _ = page_info(a4.pdf)
    first = _lines(page_text(a4.pdf, 1))
    assert first[0] != title
    assert not any(line.startswith("Page 1 of") for line in first)
    for number in (2, count):
        lines = _lines(page_text(a4.pdf, number))
        assert lines[0] == title, f"page {number}"
        assert lines[-1] == f"Page {number} of {count}"


def test_pdf_manifest_rows(a4):
    text = " ".join(" ".join(page_texts(a4.pdf)).split())
    fingerprint = a4.results["data"]["fingerprint"]
    assert re.fullmatch(r"[0-9a-f]{16}", fingerprint)
    assert f"{tables.FINGERPRINT_LABEL} {fingerprint}" in text
    for model in a4.results["models"].values():
        seeds = ", ".join(str(run["seed"]) for run in model["seeds"]["runs"])
        assert f"Refit seeds ({model['label']}) {seeds}" in text
    assert "batch size (images)" in text
    assert "patience (epochs)" in text


def test_manifest_without_fingerprint(tmp_path):
    # Runs from before the data fingerprint was recorded get no row for it.
    results = json.loads((make_run_dir(tmp_path / "run") / "results.json").read_text())
    del results["data"]["fingerprint"]
    view = narrative.number_tables(results)["environment"]
    assert tables.FINGERPRINT_LABEL not in [label for label, _ in view.rows]
    assert "fingerprint" not in view.caption


# ---- Layout -----------------------------------------------------------------------


def _figure_pages_lower_bound(site: RenderedSite) -> float:
    # Pages that the figures fill on their own, at the size print.css gives them.
    column_mm, height_mm = TEXT_AREA_MM[site.page_size]
    total_mm = 0.0
    for source in site_image_sources(site.index):
        with Image.open(site.index.parent / source) as image:
            width_px, height_px = image.size
        width_mm = width_px / FIGURE_DPI * MM_PER_INCH
        shown_mm = height_px / FIGURE_DPI * MM_PER_INCH
        total_mm += shown_mm * min(1.0, column_mm / width_mm, FIGURE_MAX_HEIGHT_MM / shown_mm)
    return total_mm / height_mm


def test_pdf_page_count_within_bounds(a4):
    """The body holds all figures and text, and no block wastes more than a page.

    Lower bound: the title page, plus the pages the figures would fill alone,
    plus the text at the densest a page can hold it. Upper bound: the title
    page, one page per figure and per table, and two per section for its
    prose. A figure or table avoids page breaks inside it, so it leaves at
    most one page partly empty. Every fixture table has 20 rows or fewer, so
    none spans pages.
    """
    count, _ = page_info(a4.pdf)
    pages = page_texts(a4.pdf)
    assert len(pages) == count

    characters = sum(len("".join(page.split())) for page in pages[1:])
    body = _figure_pages_lower_bound(a4) + characters / MAX_CHARACTERS_PER_PAGE
    lower = 1 + math.ceil(body)
    figures = len(site_image_sources(a4.index))
    tables = len(re.findall(r"^Table \d+\. ", "\n".join(_lines("\n".join(pages))),
                            re.MULTILINE))
    sections = len(_headings(a4.index, "h2"))
    upper = 1 + figures + tables + 2 * sections
    assert lower <= count <= upper, (lower, count, upper)


def test_pdf_figure_captions_beside_figures(a4):
    pages = page_texts(a4.pdf)
    for number, image in enumerate(image_rows(a4.pdf), start=1):
        page = pages[int(image["page"]) - 1]
        assert re.search(rf"^\s*Figure {number}\. ", page, re.MULTILINE), f"Figure {number}"


def test_pdf_short_tables_on_one_page(a4):
    # A table of 20 rows or fewer has its first and last row below its caption, on one page.
    pages = page_texts(a4.pdf)
    checked = 0
    for view in narrative.number_tables(a4.results).values():
        caption = re.compile(rf"^\s*Table {view.number}\. ", re.MULTILINE)
        found = [match for match in map(caption.search, pages) if match]
        if not found or len(view.rows) > 20:
            continue  # a screen-only table, or one allowed to split between rows
        assert len(found) == 1, f"Table {view.number}"
        below = found[0].string[found[0].end():]
        for row in (view.rows[0], view.rows[-1]):
            assert row[0] in below, f"Table {view.number}: row {row[0]!r}"
        checked += 1
    assert checked >= 10


# ---- Embedded figures and fonts ------------------------------------------------------


def test_pdf_embeds_every_figure(a4):
    assert len(image_rows(a4.pdf)) == len(site_image_sources(a4.index))


def test_site_figures_link_full_size(a4):
    # On the site each figure opens its full-size image; the PDF has no such links.
    page = a4.index.read_text()
    linked = re.findall(r'<a href="(figures/[^"]+)"><img src="\1"', page)
    assert sorted(linked) == sorted(site_image_sources(a4.index))


def test_pdf_embeds_every_font(a4):
    fonts = font_rows(a4.pdf)
    assert fonts
    for font in fonts:
        assert font["emb"] == "yes", font["name"]


@pytest.mark.parametrize("page_size", sorted(PAGE_POINTS))
def test_pdf_page_size(render_site, page_size):
    _, (width, height) = page_info(render_site(page_size).pdf)
    assert (round(width), round(height)) == PAGE_POINTS[page_size]


# ---- Pixels --------------------------------------------------------------------------


def _preview(pdf: Path, page: int, folder: Path) -> np.ndarray:
    prefix = folder / f"page-{page}"
    subprocess.run(["pdftoppm", "-r", str(PREVIEW_DPI), "-png", "-f", str(page), "-l", str(page),
                    "-singlefile", str(pdf), str(prefix)], check=True, capture_output=True)
    with Image.open(prefix.with_suffix(".png")) as image:
        return np.asarray(image.convert("RGB"), dtype=np.int16)


def test_pdf_pages_not_blank(a4, tmp_path):
    images = image_rows(a4.pdf)
    assert images, "the PDF embeds no image"
    figure_page = int(images[0]["page"])
    for page in (1, figure_page):
        pixels = _preview(a4.pdf, page, tmp_path)
        grey = pixels.mean(axis=2)
        assert grey.min() < grey.max(), f"page {page} is a single colour"
        assert (grey < 128).mean() > MIN_DARK_SHARE, f"page {page} has almost no dark pixels"
    # The figure's bars, lines or images are in colour; text alone is grey.
    colourful = (pixels.max(axis=2) - pixels.min(axis=2)) > 60
    assert colourful.mean() > MIN_COLOUR_SHARE, f"page {figure_page} shows no coloured figure"
