"""Read a rendered PDF with poppler's command-line tools (poppler-utils).

Shared by test_pdf.py (the synthetic run) and test_end_to_end.py (the real
smoke run). `require_tools` skips a test when a tool is missing, or fails it
when the environment variable STUDY_REQUIRE_PDF_TOOLS is 1, as CI sets it, so
a missing tool cannot pass CI unnoticed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

REQUIRE_VARIABLE = "STUDY_REQUIRE_PDF_TOOLS"


def require_tools(*names: str) -> None:
    """Skip the calling test unless every named tool is on PATH (fail under CI's setting)."""
    missing = [name for name in names if shutil.which(name) is None]
    if not missing:
        return
    message = f"poppler-utils tools not found on PATH: {', '.join(missing)}"
    if os.environ.get(REQUIRE_VARIABLE) == "1":
        pytest.fail(f"{message}. {REQUIRE_VARIABLE}=1 requires them: install poppler-utils.")
    pytest.skip(message)


def _run(*command: str) -> str:
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def page_texts(pdf: Path) -> list[str]:
    """Return the text of each page, laid out as printed (pdftotext -layout)."""
    text = _run("pdftotext", "-layout", str(pdf), "-")
    # pdftotext ends every page with a form feed, so the last item is empty.
    return text.split("\f")[:-1]


def page_text(pdf: Path, page: int) -> str:
    """Return the laid-out text of one page (1-based)."""
    return _run("pdftotext", "-layout", "-f", str(page), "-l", str(page), str(pdf), "-")


def page_info(pdf: Path) -> tuple[int, tuple[float, float]]:
    """Return the page count and the first page's (width, height) in points, from pdfinfo."""
    info = _run("pdfinfo", str(pdf))
    pages = int(re.search(r"^Pages:\s+(\d+)", info, re.MULTILINE).group(1))
    size = re.search(r"^Page size:\s+([\d.]+) x ([\d.]+) pts", info, re.MULTILINE)
    return pages, (float(size.group(1)), float(size.group(2)))


def font_rows(pdf: Path) -> list[dict[str, str]]:
    """Return pdffonts' rows as dicts keyed by its column names (name, type, emb, ...)."""
    # pdffonts prints a header line, a line of dashes and one line per font.
    # Each run of dashes starts a column, which runs up to the next one, so
    # values with spaces ("CID TrueType") stay whole.
    listing = _run("pdffonts", str(pdf))
    lines = listing.splitlines()
    rule = next(index for index, line in enumerate(lines) if line.startswith("---"))
    starts = [match.start() for match in re.finditer(r"-+", lines[rule])]
    bounds = list(zip(starts, starts[1:] + [None]))

    def cells(line: str) -> list[str]:
        return [line[start:end].strip() for start, end in bounds]

    names = cells(lines[rule - 1])
    return [dict(zip(names, cells(line))) for line in lines[rule + 1:] if line.strip()]


def image_rows(pdf: Path) -> list[dict[str, str]]:
    """Return pdfimages -list rows of type "image", leaving out soft masks and stencils.

    A PNG with an alpha channel is stored as an image plus an "smask" row,
    so counting only image rows counts each embedded picture once.
    """
    # Below a header and a line of dashes, every value is one word except the
    # object ID ("145 0"), which the header also writes as two words.
    lines = _run("pdfimages", "-list", str(pdf)).splitlines()
    names = lines[0].split()
    rows = [dict(zip(names, line.split())) for line in lines[2:] if line.strip()]
    return [row for row in rows if row["type"] == "image"]


class _ImageTags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sources: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.sources.append(dict(attrs).get("src") or "")


def site_image_sources(index_html: Path) -> list[str]:
    """Return the src of every <img> tag of the site's index.html, in page order."""
    parser = _ImageTags()
    parser.feed(index_html.read_text(encoding="utf-8"))
    return parser.sources
