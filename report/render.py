"""Render a run folder into a static site (index.html) and a PDF (study.pdf).

The report only reads the run folder. It draws the figures and renders the
Jinja2 templates in the project's `templates/` folder twice: once for the
screen, and once with `print=True` for WeasyPrint. It copies results.json
beside them and then swaps the finished folder into place, so an
interrupted render leaves the previous site as it was.

Command line: python -m report.render RUN_DIR OUT_DIR [--page-size Letter] [--force]
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import shlex
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

import jinja2
import weasyprint

from report.figures import draw_figures
from report.narrative import build_context
from report.run_folder import RESULTS_FILE, RunFolder, RunFolderError, load_run

logger = logging.getLogger("report.render")

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
PAGE_SIZES = ("A4", "Letter")
STYLESHEETS = ("site.css", "print.css")
SITE_FILE = "index.html"
PDF_FILE = "study.pdf"
KEPT_FILES = (".nojekyll", "CNAME")  # carried over from a previous site (GitHub Pages)

# Entries a previous render may have left in the output folder. Anything else
# there (a .git folder, someone's notes) makes the render stop instead of
# deleting it.
_OWN_ENTRIES = {SITE_FILE, PDF_FILE, RESULTS_FILE, "figures", *STYLESHEETS, *KEPT_FILES}


class OutputFolderError(ValueError):
    """The output folder cannot be replaced safely."""


def make_environment() -> jinja2.Environment:
    """Create the Jinja2 environment: templates/ folder, autoescape on, strict variables."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_html(context: dict, *, print_version: bool, page_size: str = "A4") -> str:
    """Render index.html from the templates. `print_version` adds the title page."""
    template = make_environment().get_template(SITE_FILE)
    return template.render(context, print=print_version, page_size=page_size)


def render_pdf(html: str, site_dir: Path, pdf_path: Path) -> None:
    """Write the PDF with WeasyPrint, resolving relative links against `site_dir`.

    Only file: and data: URLs are fetched, and a resource that cannot be
    read stops the render instead of leaving a hole in the PDF.
    """
    fetcher = weasyprint.URLFetcher(allowed_protocols=("file", "data"), fail_on_errors=True)
    document = weasyprint.HTML(string=html, base_url=str(site_dir) + os.sep,
                               url_fetcher=fetcher)
    document.write_pdf(pdf_path)


def check_output_folder(run_dir: Path, out_dir: Path, *, force: bool = False) -> None:
    """Raise OutputFolderError unless `out_dir` can be replaced.

    It can be when it is new, empty or a previous report, or with `force`
    when it contains other files, and when `probe_output_folder` can write
    beside it. A folder that contains the run folder is never replaced.
    """
    if out_dir == run_dir or out_dir in run_dir.parents:
        raise OutputFolderError(
            f"output folder {out_dir} contains the run folder {run_dir}: choose another "
            f"output folder"
        )
    if out_dir.exists():
        _check_existing_output(out_dir, force=force)
    probe_output_folder(out_dir)


def _check_existing_output(out_dir: Path, *, force: bool) -> None:
    if not out_dir.is_dir():
        raise OutputFolderError(f"output path {out_dir} exists and is not a folder: "
                                f"remove it or choose another output folder")
    foreign = sorted(entry.name for entry in out_dir.iterdir()
                     if entry.name not in _OWN_ENTRIES)
    if foreign and force:
        logger.warning("replacing %s, which contains files a report does not write: %s",
                       out_dir, ", ".join(foreign))
    elif foreign:
        raise OutputFolderError(
            f"output folder {out_dir} contains files a report does not write "
            f"({', '.join(foreign)}). Rendering would delete them, so move them, choose "
            f"another output folder, or pass --force (force=True from Python) to delete them."
        )


def probe_output_folder(out_dir: Path) -> None:
    """Raise OutputFolderError unless files can be written beside `out_dir`.

    The render builds the new site in a temporary folder next to `out_dir`
    and renames it into place, so this creates, writes and removes a small
    file in the nearest existing folder above `out_dir`. That catches
    missing permissions and read-only file systems (even for root) before
    any work is done, and on most file systems a disk that is already full.
    """
    out_dir = Path(out_dir)
    folder = out_dir.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise OutputFolderError(
            f"cannot create the output folder {out_dir}: {folder} is a file, not a "
            f"folder. Move that file or choose another output folder."
        )
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=f".{out_dir.name}.probe-") as probe:
            probe.write(b"probe")
            probe.flush()
    except OSError as error:
        raise OutputFolderError(
            f"cannot write the output folder {out_dir}: creating a file in {folder} "
            f"failed ({error.strerror or error}). Make {folder} writable or choose "
            f"another output folder."
        ) from error


def _write_site(run: RunFolder, site_dir: Path, page_size: str) -> None:
    started = time.perf_counter()
    figures = draw_figures(run.results, run.arrays, site_dir)
    logger.info("drew %d figures in %.1f s", len(figures), time.perf_counter() - started)

    context = build_context(run.results, figures)
    (site_dir / SITE_FILE).write_text(
        render_html(context, print_version=False, page_size=page_size), encoding="utf-8"
    )
    for stylesheet in STYLESHEETS:
        shutil.copyfile(TEMPLATES_DIR / stylesheet, site_dir / stylesheet)
    shutil.copyfile(run.path / RESULTS_FILE, site_dir / RESULTS_FILE)

    started = time.perf_counter()
    render_pdf(render_html(context, print_version=True, page_size=page_size),
               site_dir, site_dir / PDF_FILE)
    logger.info("wrote %s in %.1f s", PDF_FILE, time.perf_counter() - started)


def _carry_kept_files(old_dir: Path, site_dir: Path) -> None:
    for name in KEPT_FILES:
        if (old_dir / name).is_file():
            shutil.copy2(old_dir / name, site_dir / name)
    (site_dir / ".nojekyll").touch()


def _swap_into_place(site_dir: Path, out_dir: Path) -> None:
    # NOTE: two renames, not one atomic exchange. If the process dies between
    # them, out_dir is missing and the previous site sits in ".<name>.old-*"
    # beside it. Neither folder is ever half-written.
    if not out_dir.exists():
        os.rename(site_dir, out_dir)
        return
    aside = out_dir.with_name(f".{out_dir.name}.old-{uuid.uuid4().hex[:8]}")
    os.rename(out_dir, aside)
    try:
        os.rename(site_dir, out_dir)
    except OSError:
        os.rename(aside, out_dir)
        raise
    try:
        shutil.rmtree(aside)
    except OSError as error:
        logger.warning("could not delete the previous site at %s: %s", aside, error)


def _recover_interrupted_render(out_dir: Path) -> None:
    """Tidy what a render killed part-way left beside `out_dir`.

    A killed render leaves its temporary `.<name>.new-*` folder, and one
    killed between the two renames of `_swap_into_place` leaves `out_dir`
    missing and the previous site in `.<name>.old-*`. The first is deleted;
    the second is moved back, so the old site is never lost.
    """
    # NOTE: assumes one render per output folder at a time; a second render
    # running into the same folder would see the first one's folders here.
    if not out_dir.parent.is_dir():
        return
    for partial in out_dir.parent.glob(f".{out_dir.name}.new-*"):
        logger.warning("removing %s, a partial site left by an interrupted render", partial)
        shutil.rmtree(partial, ignore_errors=True)
    previous = sorted(out_dir.parent.glob(f".{out_dir.name}.old-*"),
                      key=lambda path: path.stat().st_mtime)
    if previous and not out_dir.exists():
        logger.warning("restoring the previous site from %s, which an interrupted render "
                       "had moved aside", previous[-1])
        os.rename(previous.pop(), out_dir)
    for leftover in previous:
        shutil.rmtree(leftover, ignore_errors=True)


# Errors that mean the file system has no room left for the report.
_NO_SPACE_ERRNOS = {errno.ENOSPC, errno.EDQUOT}


def _no_space_error(error: OSError, run_dir: Path, out_dir: Path, *, had_site: bool,
                    force: bool) -> OutputFolderError:
    previous = " The previous site there is unchanged." if had_site else ""
    arguments = ["python", "run_study.py", "--render-only", "--run-dir", str(run_dir),
                 "--out", str(out_dir)]
    command = shlex.join(arguments + (["--force"] if force else []))
    return OutputFolderError(
        f"ran out of space while writing the report into {out_dir} "
        f"({error.strerror or error}).{previous} The run's results in "
        f"{run_dir / RESULTS_FILE} are safe. Free some space, then rebuild the report "
        f"with: {command}"
    )


def render_report(run_dir: Path, out_dir: Path, *, page_size: str = "A4",
                  force: bool = False) -> dict[str, Path]:
    """Render the site and PDF of `run_dir` into `out_dir`, replacing it whole.

    Returns the paths of index.html ("site"), study.pdf ("pdf") and the
    copied results.json ("results"). Raises RunFolderError for an invalid
    run folder, ValueError for an unknown page size, and OutputFolderError
    when `out_dir` contains the run folder, contains files a report does
    not write and `force` is False, cannot be written, or when the disk
    fills up during the render. A failed render removes its temporary
    folder and leaves a previous site in `out_dir` as it was.
    """
    if page_size not in PAGE_SIZES:
        raise ValueError(f"page size {page_size!r} is not supported: use one of "
                         f"{', '.join(PAGE_SIZES)}")
    started = time.perf_counter()
    run_dir, out_dir = Path(run_dir).resolve(), Path(out_dir).resolve()
    _recover_interrupted_render(out_dir)
    check_output_folder(run_dir, out_dir, force=force)
    run = load_run(run_dir)
    logger.info("rendering %s into %s (page size %s)", run_dir, out_dir, page_size)

    had_site = out_dir.exists()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    site_dir = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.new-", dir=out_dir.parent))
    try:
        os.chmod(site_dir, 0o755)  # mkdtemp makes the folder private, but a site must be readable
        _write_site(run, site_dir, page_size)
        _carry_kept_files(out_dir, site_dir)
        _swap_into_place(site_dir, out_dir)
    except OSError as error:
        shutil.rmtree(site_dir, ignore_errors=True)
        if error.errno in _NO_SPACE_ERRNOS:
            raise _no_space_error(error, run_dir, out_dir, had_site=had_site,
                                  force=force) from error
        raise
    except BaseException:
        shutil.rmtree(site_dir, ignore_errors=True)
        raise

    logger.info("report written to %s in %.1f s", out_dir, time.perf_counter() - started)
    return {
        "site": out_dir / SITE_FILE,
        "pdf": out_dir / PDF_FILE,
        "results": out_dir / RESULTS_FILE,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m report.render",
        description="Render a study run folder into a static site and a PDF.",
    )
    parser.add_argument("run_dir", type=Path, help="run folder holding results.json and "
                        "exploration.npz")
    parser.add_argument("out_dir", type=Path, help="output folder, replaced whole except for "
                        ".nojekyll and CNAME")
    parser.add_argument("--page-size", choices=PAGE_SIZES, default="A4",
                        help="PDF page size (default: A4)")
    parser.add_argument("--force", action="store_true",
                        help="replace the output folder even if it contains files a report "
                        "does not write (they are deleted)")
    parser.add_argument("--quiet", action="store_true", help="log warnings and errors only")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # WeasyPrint logs every layout step at INFO. Its warnings still show.
    logging.getLogger("weasyprint.progress").setLevel(logging.WARNING)
    try:
        paths = render_report(args.run_dir, args.out_dir, page_size=args.page_size,
                              force=args.force)
    except (RunFolderError, OutputFolderError) as error:
        logger.error("%s", error)
        return 2
    print(paths["site"])
    print(paths["pdf"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
