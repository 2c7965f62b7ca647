"""The whole study on a slice of the real CIFAR-10 images, through the CLI.

The study runs once per test session (conftest's `smoke_run`). The smoke
preset trains one or two epochs, so the accuracies are near chance and the
checks are about the outputs.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from html.parser import HTMLParser

import numpy as np
import pytest

from conftest import ROOT
from study.data import load_dataset, subsample
from study.results import REQUIRED_KEYS, lookup

SECTION_TITLES = ("Data", "Exploration", "Preprocessing", "Models and search", "Refit",
                  "Evaluation", "Conclusions", "Reproducibility")


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
    # The smoke spaces offer every stem and readout; none of their trials may fail.
    for name in ("cnn", "vit"):
        assert results["models"][name]["search"]["failed"] == 0, name


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
        # The flip-TTA score is printed beside the single-pass one.
        flipped = results["models"][name]["flip_tta"]["accuracy"]
        assert f"{100 * flipped:.1f}%" in text
    assert "The modern search space of the CNN" in text
    assert "Flip test-time augmentation (TTA) averages" in text


def test_calibration_in_results_site_pdf(smoke_run):
    work, *_ = smoke_run
    results = json.loads((work / "site" / "results.json").read_text())
    config = results["config"]
    class_names = results["data"]["class_names"]
    # The test split the run evaluated, to match each gallery image with its mistake.
    dataset = subsample(load_dataset(work / "cifar10-slice.tar.gz"), config["train_images"],
                        config["test_images"], config["seed"])
    for name in ("cnn", "vit"):
        model = results["models"][name]
        assert model["calibration"]["bin_count"] == 15
        assert sum(entry["images"] for entry in model["calibration"]["bins"]) == 200
        mistakes = model["confident_mistakes"]
        assert 0 < len(mistakes) <= config["evaluation"]["mistakes_shown"]
        confidences = [mistake["confidence"] for mistake in mistakes]
        assert confidences == sorted(confidences, reverse=True)
        with np.load(work / "run" / f"predictions_{name}.npz") as saved:
            images, y_score = saved["mistake_images"], saved["y_score"]
        assert images.shape == (len(mistakes), 32, 32, 3)
        for position, mistake in enumerate(mistakes):
            index = mistake["index"]
            assert mistake["true"] == class_names[dataset.y_test[index]]
            assert y_score[index].argmax() != dataset.y_test[index]
            assert np.array_equal(images[position], dataset.x_test[index])

    page = (work / "site" / "index.html").read_text()
    assert '<section id="calibration">' in page
    assert '<a href="#calibration">Calibration and errors</a>' in page
    for key in ("reliability", "mistakes_cnn", "mistakes_vit"):
        assert f'src="figures/{key}.png"' in page, key
        assert (work / "site" / "figures" / f"{key}.png").is_file(), key
    assert "Calibration on the test images, over 15 equal-width confidence bins." in page
    for name in ("cnn", "vit"):
        model = results["models"][name]
        assert f"The {model['label']} has an ECE of {model['calibration']['ece']:.3f}." in page
        assert f"The most frequent confusions of the {model['label']}:" in page

    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) missing")
    text = subprocess.run(["pdftotext", "-layout", str(work / "site" / "study.pdf"), "-"],
                          capture_output=True, text=True, check=True).stdout
    flat = " ".join(text.split())
    for title in ("Calibration and errors", "Most confident mistakes",
                  "Most confused class pairs", "Reliability diagrams on the test images",
                  "Calibration on the test images, over 15 equal-width confidence bins."):
        assert title in flat, title
    for name in ("cnn", "vit"):
        model = results["models"][name]
        assert f"The {model['label']} has an ECE of {model['calibration']['ece']:.3f}." in flat
        assert f"The most frequent confusions of the {model['label']}:" in flat


def test_robustness_in_results_site_pdf(smoke_run):
    work, *_ = smoke_run
    results = json.loads((work / "site" / "results.json").read_text())
    for name in ("cnn", "vit"):
        scores = results["models"][name]["robustness"]
        assert scores["widths"] == [0.02, 0.04, 0.08, 0.16, 0.32]
        assert scores["images"] == 200  # the smoke preset filters every test image
        assert len(scores["low_pass_accuracy"]) == 5
        assert len(scores["high_pass_accuracy"]) == 5
        # The unfiltered pass scales the images as the test pipeline does, so it
        # gets the test accuracy (a one-image tolerance for float round-off).
        accuracy = results["models"][name]["test"]["accuracy"]
        assert abs(scores["unfiltered_accuracy"] - accuracy) <= 1 / 200

    page = (work / "site" / "index.html").read_text()
    assert '<section id="robustness">' in page
    assert '<a href="#robustness">Frequency robustness</a>' in page
    assert 'src="figures/robustness.png"' in page
    assert (work / "site" / "figures" / "robustness.png").is_file()
    assert "Accuracy on all 200 test images through each Gaussian filter." in page
    assert "Mean share of the margin over chance" in page

    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) missing")
    text = subprocess.run(["pdftotext", "-layout", str(work / "site" / "study.pdf"), "-"],
                          capture_output=True, text=True, check=True).stdout
    assert "Frequency robustness" in text
    assert "against the width of the Gaussian" in text  # the figure caption
    assert "Mean share of the margin over chance" in text  # the table's last row


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="pdftotext (poppler-utils) missing")
def test_uncertainty_in_results_site_pdf(smoke_run):
    work, *_ = smoke_run
    results = json.loads((work / "site" / "results.json").read_text())
    for name in ("cnn", "vit"):
        model = results["models"][name]
        low, high = model["intervals"]["accuracy"]
        assert low <= model["test"]["accuracy"] <= high
        assert len(model["intervals"]["per_class_recall"]) == 10
        assert model["seeds"]["count"] == 1
    comparison = results["comparison"]
    only = comparison["only_a"] + comparison["only_b"]
    assert 0 < only <= results["data"]["used"]["test"]
    html = (work / "site" / "index.html").read_text()
    text = subprocess.run(["pdftotext", "-layout", str(work / "site" / "study.pdf"), "-"],
                          capture_output=True, text=True, check=True).stdout
    flat = " ".join(text.split())
    for page in (html, flat):
        assert "Uncertainty" in page
        assert "Paired comparison of the two models on the same test images." in page
        assert "Recall per class with its bootstrap interval over the test images." in page
        assert "McNemar" in page
        assert "Each model was refit once, with seed 42" in page
    # The smoke models are near chance, and the winner sentence follows the test.
    verdict = "is more accurate than" if (
        comparison["p_value"] < 0.05 and (comparison["interval"][0] > 0
                                          or comparison["interval"][1] < 0)) else (
        "There is no clear difference between")
    assert verdict in html
    assert verdict in flat


def test_ledger_in_results_site_pdf(smoke_run):
    work, *_ = smoke_run
    results = json.loads((work / "site" / "results.json").read_text())
    labels = {}
    for name in ("cnn", "vit"):
        search = results["models"][name]["search"]
        ledger = search["ledger"]
        labels[name] = results["models"][name]["label"]
        # Smoke: max_epochs 2, factor 2 plans 2 + 1 trials in bracket 1 and 2 in bracket 0.
        assert ledger["totals"]["planned_trials"] == 5
        assert len(ledger["trials"]) == search["trials"]
        assert ledger["totals"]["seconds"] > 0
        assert ledger["budget"]["minutes"] is None
        best = max((t for t in ledger["trials"] if t["score"] is not None),
                   key=lambda t: t["score"])
        assert best["trial_id"] == search["best_trial_id"]

    page = (work / "site" / "index.html").read_text()
    assert '<section id="ledger">' in page
    assert '<a href="#ledger">The Hyperband ledger</a>' in page
    for key in ("ledger_halving", "ledger_best_so_far", "ledger_hyperparameters_cnn"):
        assert f'src="figures/{key}.png"' in page, key
        assert (work / "site" / "figures" / f"{key}.png").is_file(), key
    assert page.count('class="sortable"') == 2
    for name, label in labels.items():
        assert f"Every trial of the {label} search" in page
        assert f"Rounds of the {label} search" in page
        for trial in results["models"][name]["search"]["ledger"]["trials"]:
            assert f'data-sort="{float(int(trial["trial_id"]))!r}">{trial["trial_id"]}<' in page

    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) missing")
    text = subprocess.run(["pdftotext", "-layout", str(work / "site" / "study.pdf"), "-"],
                          capture_output=True, text=True, check=True).stdout
    flat = " ".join(text.split())
    for phrase in ("The Hyperband ledger", "Successive halving in each search",
                   "Best validation accuracy of the completed trials so far",
                   "No wall-clock budget (--search-budget) was set for this search."):
        assert phrase in flat, phrase
    for label in labels.values():
        assert f"Rounds of the {label} search" in flat
        assert f"For the {label}, Hyperband with max_epochs 2 and factor 2 plans" in flat
        # The PDF prints the trial table too, under the site's number.
        assert f"Every trial of the {label} search" in flat
        number = re.search(rf"Table (\d+)\.</span> Every trial of the {label} search", page)
        assert f"Table {number.group(1)}. Every trial of the {label} search" in flat


def test_cli_prints_output_paths(smoke_run):
    work, completed, *_ = smoke_run
    assert f"site: {work / 'site' / 'index.html'}" in completed.stdout
    # The summary table: a header, one row per model with its printed accuracy, the verdict.
    results = json.loads((work / "site" / "results.json").read_text())
    lines = completed.stdout.splitlines()
    assert lines[0].startswith("model")
    for row, model in zip(lines[1:3], results["models"].values()):
        assert row.split()[:2] == [model["label"], f"{100 * model['test']['accuracy']:.1f}%"]
    assert lines[3].startswith("verdict: ")
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


def _run_and_kill(command, cwd, marker):
    """Start the CLI, SIGKILL it as soon as `marker` appears in its log; return the log."""
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    lines = []
    try:
        for line in process.stderr:
            lines.append(line)
            if marker in line:
                process.send_signal(signal.SIGKILL)
                break
    finally:
        process.wait(timeout=600)
        process.stderr.close()
    log = "".join(lines)
    assert process.returncode == -signal.SIGKILL, f"no {marker!r} before the end:\n{log[-3000:]}"
    return log


def test_sigkill_at_any_stage_resumes_to_same_results(smoke_run):
    work, _, uninterrupted, _ = smoke_run
    kill = work / "killed"
    command = [sys.executable, str(ROOT / "run_study.py"), "--preset", "smoke",
               "--data", str(work / "cifar10-slice.tar.gz"), "--out", str(kill / "site"),
               "--run-dir", str(kill / "run")]
    _run_and_kill(command, work, "cnn trial 0001:")  # during the CNN search
    refit_log = _run_and_kill(command, work, "vit refit epoch 1/")  # during the ViT refit
    assert "cnn search: continuing from" in refit_log
    render_log = _run_and_kill(command, work, "stage report: started")
    assert "vit refit: resuming after epoch" in render_log
    assert not (kill / "site" / "index.html").exists()
    final = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=900)
    assert final.returncode == 0, final.stderr[-4000:]

    results = json.loads((kill / "site" / "results.json").read_text())
    for name in ("cnn", "vit"):
        model, reference = results["models"][name], uninterrupted["models"][name]
        assert model["search"]["trials"] == reference["search"]["trials"]
        assert model["best_hyperparameters"] == reference["best_hyperparameters"]
        assert model["test"] == reference["test"]
        assert model["refit"]["history"] == reference["refit"]["history"]
    assert not (kill / "run" / "backup" / "refit_vit").exists()
    assert results["models"]["vit"]["refit"]["resumed_at_epoch"] >= 1
    page = (kill / "site" / "index.html").read_text()
    assert "The ViT refit was interrupted and continued from its backup after" in page

    # Over the four invocations, each cached stage and each trial finished once.
    log = (kill / "run" / "study.log").read_text()
    for stage in ("exploration", "search_cnn", "refit_cnn", "evaluation_cnn", "search_vit",
                  "refit_vit", "evaluation_vit"):
        assert log.count(f"stage {stage}: finished") == 1, stage
    trials = re.findall(r"(cnn|vit) trial (\d+): ", log)
    assert len(trials) == len(set(trials))
    expected = sum(uninterrupted["models"][name]["search"]["trials"] for name in ("cnn", "vit"))
    assert len(trials) == expected


def test_sigkill_during_render_keeps_old_site(smoke_run):
    work, *_ = smoke_run
    out = work / "rerendered"
    command = [sys.executable, str(ROOT / "run_study.py"), "--render-only",
               "--run-dir", str(work / "run"), "--out", str(out)]
    first = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-3000:]
    page = (out / "index.html").read_text()
    pdf = (out / "study.pdf").read_bytes()
    _run_and_kill(command, work, "figures in")  # while the PDF is being written
    assert (out / "index.html").read_text() == page
    assert (out / "study.pdf").read_bytes() == pdf
    again = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    leftovers = [p.name for p in work.iterdir() if p.name.startswith(".rerendered")]
    assert leftovers == []


def test_changed_seed_refused_with_restart_hint(smoke_run):
    work, *_ = smoke_run
    command = [sys.executable, str(ROOT / "run_study.py"), "--preset", "smoke", "--seed", "7",
               "--data", str(work / "cifar10-slice.tar.gz"), "--out", str(work / "site"),
               "--run-dir", str(work / "run")]
    refused = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=300)
    assert refused.returncode == 1
    assert "config.seed 42 -> 7" in refused.stderr
    assert "--restart all" in refused.stderr
    # Nothing was removed: the finished study is still complete.
    assert (work / "run" / "stages" / "evaluation_vit.json").is_file()


def test_site_in_headless_chromium(smoke_run):
    import browser  # tests/browser.py: the checks of test_browser.py, on the real site

    browser.require_browser()
    work, *_ = smoke_run
    problems = browser.check_site(work / "site", label="smoke")
    failed = {check: found for check, found in problems.items() if found}
    assert failed == {}


def test_smoke_pdf_embeds_figures_and_fonts(smoke_run):
    from pdf_tools import font_rows, image_rows, require_tools, site_image_sources

    require_tools("pdfimages", "pdffonts")
    work, *_ = smoke_run
    pdf = work / "site" / "study.pdf"
    figures = site_image_sources(work / "site" / "index.html")
    assert figures
    assert len(image_rows(pdf)) == len(figures)
    fonts = font_rows(pdf)
    assert fonts
    assert [font["name"] for font in fonts if font["emb"] != "yes"] == []


def test_stored_config_and_progress_lines(smoke_run):
    import tomllib

    from study.config import to_dict
    from study.config_file import resolve_config

    work, completed, first_results, _ = smoke_run
    stored = tomllib.loads((work / "run" / "config.toml").read_text())
    assert to_dict(resolve_config(stored)) == first_results["config"]
    assert "resolved config (stored in" in completed.stderr
    assert re.search(r"cnn search: trial 1 of about \d+ done, best val_accuracy so far",
                     completed.stderr)
    assert re.search(r"vit refit epoch 1/\d+: .* elapsed", completed.stderr)
    log_text = (work / "run" / "study.log").read_text()
    assert "summary:\nmodel" in log_text
    assert "pdf:  " in log_text
