"""The whole study on a slice of the real CIFAR-10 images, through the CLI.

The slice (50 training and 20 test images per class) is cut from the JPEG
archive beside the checkout. The smoke preset trains one or two epochs, so
the accuracies are near chance and the checks are about the outputs.
"""

import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

from conftest import ROOT, SHARED_ARCHIVE
from study.results import REQUIRED_KEYS, lookup

PER_CLASS = {"train": 50, "test": 20}
SECTION_TITLES = ("Data", "Exploration", "Preprocessing", "Models and search", "Refit",
                  "Evaluation", "Conclusions", "Reproducibility")


def _cut_slice(source: Path, target: Path) -> None:
    copied: dict[tuple[str, str], int] = {}
    with tarfile.open(source, "r|xz") as tar, tarfile.open(target, "w:gz") as out:
        for member in tar:
            parts = Path(member.name).parts
            if not member.isfile() or len(parts) < 4:
                continue
            key = (parts[-3], parts[-2])
            if copied.get(key, 0) >= PER_CLASS.get(parts[-3], 0):
                continue
            copied[key] = copied.get(key, 0) + 1
            out.addfile(member, io.BytesIO(tar.extractfile(member).read()))


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    if not SHARED_ARCHIVE.exists():
        pytest.fail(f"the CIFAR-10 archive is missing at {SHARED_ARCHIVE}")
    work = tmp_path_factory.mktemp("e2e")
    data = work / "cifar10-slice.tar.gz"
    _cut_slice(SHARED_ARCHIVE, data)
    command = [sys.executable, str(ROOT / "run_study.py"), "--preset", "smoke",
               "--data", str(data), "--out", str(work / "site"),
               "--run-dir", str(work / "run")]
    completed = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=900)
    assert completed.returncode == 0, completed.stderr[-4000:]
    first_results = json.loads((work / "site" / "results.json").read_text())
    rerun = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-4000:]
    return work, completed, first_results, rerun


class _ImageSources(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sources = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.sources.append(dict(attrs).get("src"))


def test_site_images_exist(smoke_run):
    work, *_ = smoke_run
    index = work / "site" / "index.html"
    assert index.is_file()
    parser = _ImageSources()
    parser.feed(index.read_text())
    assert len(parser.sources) >= 8
    for source in parser.sources:
        assert not source.startswith(("/", "http")), f"{source} is not a relative link"
        assert (index.parent / source).is_file(), f"{source} is missing"


def test_results_has_documented_keys(smoke_run):
    work, *_ = smoke_run
    results = json.loads((work / "site" / "results.json").read_text())
    for key in REQUIRED_KEYS:
        lookup(results, key)
    assert results["config"]["preset"] == "smoke"
    assert results["data"]["class_names"][0] == "airplane"
    assert results["data"]["used"]["test"] == 200
    assert 0.0 <= results["models"]["cnn"]["test"]["accuracy"] <= 1.0


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="pdftotext (poppler-utils) missing")
def test_pdf_has_sections_and_accuracies(smoke_run):
    work, *_ = smoke_run
    pdf = work / "site" / "study.pdf"
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True)
    pages = int(re.search(r"Pages:\s+(\d+)", info.stdout).group(1))
    assert pages >= 4
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True,
                          text=True, check=True).stdout
    for title in SECTION_TITLES:
        assert title in text, f"section {title!r} missing from the PDF"
    results = json.loads((work / "site" / "results.json").read_text())
    for name in ("cnn", "vit"):
        accuracy = results["models"][name]["test"]["accuracy"]
        assert f"{accuracy:.4f}" in text or f"{100 * accuracy:.1f}%" in text


def test_cli_prints_output_paths(smoke_run):
    work, completed, *_ = smoke_run
    assert f"site: {work / 'site' / 'index.html'}" in completed.stdout
    assert "stage search_cnn: finished" in completed.stderr
    assert (work / "run" / "study.log").is_file()


def test_rerun_reuses_stages(smoke_run):
    work, _, first, rerun = smoke_run
    again = json.loads((work / "site" / "results.json").read_text())
    assert "stage search_cnn: reused from an earlier run" in rerun.stderr
    assert "refit_vit" in again["timings"]["reused"]
    assert again["timings"]["stages"]["search_cnn"] == first["timings"]["stages"]["search_cnn"]
    assert again["models"]["cnn"]["test"] == first["models"]["cnn"]["test"]
    assert again["created"] == first["created"]


def test_render_only_needs_no_tensorflow(smoke_run, tmp_path):
    work, *_ = smoke_run
    # A tensorflow package that fails on import proves the path never loads it.
    blocker = tmp_path / "blocker" / "tensorflow"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('render-only imported TensorFlow')\n")
    command = [sys.executable, str(ROOT / "run_study.py"), "--render-only",
               "--run-dir", str(work / "run"), "--out", str(tmp_path / "site")]
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "blocker")}
    completed = subprocess.run(command, cwd=work, capture_output=True, text=True,
                               timeout=300, env=env)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert (tmp_path / "site" / "study.pdf").is_file()
    assert (tmp_path / "site" / "index.html").read_text() == (
        work / "site" / "index.html").read_text()
