"""Tests of the calibration and errors section: facts, sentences, tables, figures, render.

Hand-made results check the numbers and words; the synthetic run folder of
tests/report_fixture.py checks loading, drawing and rendering.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from pathlib import Path
from xml.etree import ElementTree

import matplotlib
import numpy as np
import pytest

from report_fixture import MISTAKES_SHOWN, make_run_dir

from report import calibration, narrative, render
from report.run_folder import RunFolderError, load_run, mistake_images_key

CLASSES = ["cat", "dog", "ship"]
# Rows true, columns predicted: 6 mistakes, dog -> cat twice and ship -> dog twice.
MATRIX = [[4, 1, 0], [2, 3, 1], [0, 2, 5]]

needs_pdftotext = pytest.mark.skipif(shutil.which("pdftotext") is None,
                                     reason="pdftotext (poppler-utils) is not installed")


def _bin(low: float, images: int, accuracy: float, confidence: float) -> dict:
    return {"low": low, "high": low + 0.1, "images": images, "accuracy": accuracy,
            "confidence": confidence}


def _calibration(ece: float, bins: list[dict], bin_count: int = 10) -> dict:
    return {"ece": ece, "bins": bins, "bin_count": bin_count}


# Mean confidence (2 * 0.9 + 2 * 0.7) / 4 = 0.8 against accuracy (2 * 0.5 + 2 * 1.0) / 4 = 0.75.
OVERCONFIDENT = _calibration(0.3, [_bin(0.9, 2, 0.5, 0.9), _bin(0.7, 2, 1.0, 0.7)])
# Mean confidence 0.6 against accuracy 0.75.
UNDERCONFIDENT = _calibration(0.15, [_bin(0.6, 4, 0.75, 0.6)])


def _model(label: str, calibration_numbers: dict, matrix=MATRIX, mistakes=None) -> dict:
    return {"label": label, "calibration": calibration_numbers, "confusion_matrix": matrix,
            "confident_mistakes": [] if mistakes is None else mistakes}


def _results(*models: dict) -> dict:
    return {"data": {"class_names": CLASSES},
            "models": {model["label"].lower(): model for model in models}}


def _mistake(index: int, true: str, predicted: str, confidence: float) -> dict:
    return {"index": index, "true": true, "predicted": predicted, "confidence": confidence}


# ---- Confidence against accuracy --------------------------------------------------


def test_gap_weighted_by_bin_counts():
    gap = calibration.confidence_gap(OVERCONFIDENT)
    assert gap.mean_confidence == pytest.approx(0.8)
    assert gap.accuracy == pytest.approx(0.75)
    assert gap.points == 5.0
    assert (gap.bins_below, gap.bins_above, gap.bins_filled) == (1, 1, 2)


def test_sentence_overconfident():
    sentence = calibration.calibration_sentence(_model("CNN", OVERCONFIDENT))
    assert sentence == (
        "The CNN has an ECE of 0.300. Its mean confidence, 80.0%, is above its accuracy, "
        "75.0%, so it is overconfident by 5.0 percentage points on average. The accuracy is "
        "below the mean confidence in 1 and above it in 1 of its 2 filled bins.")


def test_sentence_underconfident():
    sentence = calibration.calibration_sentence(_model("ViT", UNDERCONFIDENT))
    assert "Its mean confidence, 60.0%, is below its accuracy, 75.0%" in sentence
    assert "underconfident by 15.0 percentage points" in sentence
    assert "in 0 and above it in 1 of its 1 filled bin." in sentence


def test_sentence_neither_at_printed_value():
    # 0.7501 and 0.7504 both print as 75.0%, so the model is called neither.
    numbers = _calibration(0.0003, [_bin(0.7, 10000, 0.7501, 0.7504)])
    sentence = calibration.calibration_sentence(_model("CNN", numbers))
    assert "both 75.0%, so on average it is neither overconfident nor underconfident" in sentence


def test_comparison_names_lower_ece():
    results = _results(_model("CNN", OVERCONFIDENT), _model("ViT", UNDERCONFIDENT))
    assert calibration.comparison_sentence(results) == (
        "On these test images, the ViT is better calibrated: its ECE is 0.150 against 0.300 "
        "for the CNN.")


def test_comparison_equal_at_three_decimals():
    results = _results(_model("CNN", _calibration(0.1502, OVERCONFIDENT["bins"])),
                       _model("ViT", UNDERCONFIDENT))
    assert calibration.comparison_sentence(results) == (
        "Both models have the same ECE to three decimals, 0.150.")


def test_comparison_three_models_shared_lowest():
    results = _results(_model("CNN", UNDERCONFIDENT), _model("ViT", UNDERCONFIDENT),
                       _model("MLP", OVERCONFIDENT))
    assert calibration.comparison_sentence(results) == (
        "The CNN and the ViT share the lowest ECE, 0.150.")


def test_comparison_none_with_one_model():
    assert calibration.comparison_sentence(_results(_model("CNN", OVERCONFIDENT))) is None


def test_method_names_bin_count():
    results = _results(_model("CNN", OVERCONFIDENT), _model("ViT", UNDERCONFIDENT))
    assert "into 10 equal-width confidence bins" in calibration.method_sentence(results)


def test_method_bin_counts_differ():
    results = _results(_model("CNN", OVERCONFIDENT),
                       _model("ViT", _calibration(0.15, UNDERCONFIDENT["bins"], bin_count=15)))
    assert ("equal-width confidence bins (10 for the CNN and 15 for the ViT)"
            in calibration.method_sentence(results))


# ---- Confused pairs ------------------------------------------------------------


def test_ranked_confusions_by_hand():
    pairs, tied = calibration.ranked_confusions(MATRIX, CLASSES)
    assert [(pair.true_class, pair.predicted_class, pair.count) for pair in pairs] == [
        ("dog", "cat", 2), ("ship", "dog", 2), ("cat", "dog", 1), ("dog", "ship", 1)]
    assert [pair.share for pair in pairs] == [2 / 6, 2 / 7, 1 / 5, 1 / 6]
    assert tied == 0


def test_ranked_confusions_ties_past_limit():
    pairs, tied = calibration.ranked_confusions(MATRIX, CLASSES, limit=3)
    assert pairs[-1].count == 1
    assert tied == 1  # dog -> ship also has 1 image


def test_ranked_first_matches_narrative():
    # The evaluation section names narrative.most_confused_pairs' first pair.
    first = narrative.most_confused_pairs(MATRIX, CLASSES)[0]
    pairs, _ = calibration.ranked_confusions(MATRIX, CLASSES)
    assert (pairs[0].true_class, pairs[0].predicted_class) == (first.true_class,
                                                               first.predicted_class)


def test_ranked_confusions_none_when_diagonal():
    assert calibration.ranked_confusions(np.diag([3, 4, 5]), CLASSES) == ([], 0)


def test_pairs_sentence_counts_share():
    sentence = calibration.pairs_sentence(_model("CNN", OVERCONFIDENT), CLASSES)
    assert sentence == ("The 4 most frequent confusions of the CNN account for 6 of its 6 "
                        "misclassified test images (100.0%).")


def test_pairs_sentence_tied_pairs():
    matrix = [[5, 1, 1], [1, 5, 1], [1, 1, 5]]
    sentence = calibration.pairs_sentence(_model("CNN", OVERCONFIDENT, matrix), CLASSES)
    assert sentence.startswith("The 5 most frequent confusions of the CNN account for 5 of "
                               "its 6 misclassified test images (83.3%).")
    assert sentence.endswith("Another pair has 1 image, as many as the last pair listed.")


def test_pairs_sentence_no_mistake():
    sentence = calibration.pairs_sentence(_model("CNN", OVERCONFIDENT, np.diag([2, 2, 2])),
                                          CLASSES)
    assert sentence == "The CNN misclassified no test image."


def test_shared_pairs_named():
    other = [[5, 0, 0], [2, 4, 0], [0, 0, 7]]
    results = _results(_model("CNN", OVERCONFIDENT), _model("ViT", UNDERCONFIDENT, other))
    assert calibration.shared_pairs_sentence(results) == (
        "The pair true dog predicted as cat is listed among the most frequent confusions of "
        "both models.")


def test_shared_pairs_none_in_common():
    other = [[5, 0, 2], [0, 6, 0], [0, 0, 7]]
    results = _results(_model("CNN", OVERCONFIDENT), _model("ViT", UNDERCONFIDENT, other))
    assert calibration.shared_pairs_sentence(results) == (
        "No class pair is listed among the most frequent confusions of both models.")


def test_pairs_table_rows():
    results = _results(_model("CNN", OVERCONFIDENT))
    view = calibration.confused_pairs_table(results, "cnn")
    assert view.key == "confused_pairs_cnn"
    assert view.rows[0] == ["1", "dog", "cat", "2", "33.3%"]
    assert len(view.rows) == 4


def test_pairs_table_none_without_mistakes():
    results = _results(_model("CNN", OVERCONFIDENT, np.diag([2, 2, 2])))
    assert calibration.confused_pairs_table(results, "cnn") is None
    assert [view.key for view in calibration.table_views(results)] == ["calibration"]


# ---- Mistakes and the calibration table --------------------------------------------


def test_mistakes_sentence_some_shown():
    mistakes = [_mistake(7, "dog", "cat", 0.934), _mistake(2, "ship", "dog", 0.81)]
    sentence = calibration.mistakes_sentence(_model("CNN", OVERCONFIDENT, mistakes=mistakes),
                                             gallery_drawn=True)
    assert sentence == (
        "For the CNN, the gallery shows the 2 of its 6 mistakes with the highest confidence, "
        "most confident first. The most confident one is a test image of class dog predicted "
        "as cat with probability 93.4%, and the last one shown has probability 81.0%.")


def test_mistakes_sentence_only_mistake():
    matrix = [[3, 0, 0], [1, 3, 0], [0, 0, 3]]
    model = _model("ViT", OVERCONFIDENT, matrix, [_mistake(4, "dog", "cat", 0.5)])
    sentence = calibration.mistakes_sentence(model, gallery_drawn=True)
    assert sentence == ("For the ViT, the gallery shows its only mistake: a test image of "
                        "class dog predicted as cat with probability 50.0%.")


def test_mistakes_sentence_gallery_missing():
    model = _model("CNN", OVERCONFIDENT, mistakes=[_mistake(7, "dog", "cat", 0.9)])
    sentence = calibration.mistakes_sentence(model, gallery_drawn=False)
    assert sentence.endswith("The run folder has no images of these mistakes, so the "
                             "gallery is left out.")


def test_mistakes_sentence_none_wrong():
    model = _model("CNN", OVERCONFIDENT, np.diag([2, 2, 2]))
    assert calibration.mistakes_sentence(model, gallery_drawn=False) == (
        "The CNN misclassified no test image, so it has no mistakes to show.")


def test_calibration_table_rows():
    results = _results(_model("CNN", OVERCONFIDENT), _model("ViT", UNDERCONFIDENT))
    view = calibration.calibration_table(results)
    assert view.rows == [["CNN", "0.300", "80.0%", "75.0%", "+5.0", "2 of 10"],
                         ["ViT", "0.150", "60.0%", "75.0%", "\u221215.0", "1 of 10"]]


# ---- Run folder, context and figures ---------------------------------------------


def _rewrite(run_dir: Path, change) -> None:
    path = run_dir / "results.json"
    results = json.loads(path.read_text(encoding="utf-8"))
    change(results)
    path.write_text(json.dumps(results), encoding="utf-8")


def test_run_folder_loads_mistake_images(tmp_path):
    run = load_run(make_run_dir(tmp_path / "run", image_side=8))
    for key in ("cnn", "vit"):
        images = run.arrays[mistake_images_key(key)]
        assert images.shape == (MISTAKES_SHOWN, 8, 8, 3)
        assert images.dtype == np.uint8


def test_run_folder_missing_images_omits_gallery(tmp_path, caplog):
    run_dir = make_run_dir(tmp_path / "run")
    (run_dir / "predictions_vit.npz").unlink()
    with caplog.at_level(logging.WARNING, logger="report.run_folder"):
        run = load_run(run_dir)
    assert mistake_images_key("vit") not in run.arrays
    assert mistake_images_key("cnn") in run.arrays
    assert "gallery of models.vit is left out" in caplog.text


def test_run_folder_image_count_mismatch(tmp_path):
    run_dir = make_run_dir(tmp_path / "run")
    _rewrite(run_dir, lambda results: results["models"]["cnn"]["confident_mistakes"].pop())
    with pytest.raises(RunFolderError, match=r"expected uint8 \(5, H, W, C\).*"
                                             r"--restart evaluation_cnn"):
        load_run(run_dir)


def test_run_folder_unknown_mistake_class(tmp_path):
    run_dir = make_run_dir(tmp_path / "run")

    def rename(results):
        results["models"]["vit"]["confident_mistakes"][0]["predicted"] = "zebra"

    _rewrite(run_dir, rename)
    with pytest.raises(RunFolderError, match=r"confident_mistakes\[0\]\.predicted is 'zebra'"):
        load_run(run_dir)


def test_run_folder_empty_bins_rejected(tmp_path):
    run_dir = make_run_dir(tmp_path / "run")
    _rewrite(run_dir, lambda results: results["models"]["cnn"]["calibration"].update(bins=[]))
    with pytest.raises(RunFolderError, match="models.cnn.calibration.bins must be a non-empty"):
        load_run(run_dir)


def test_context_none_for_older_run(tmp_path):
    run = load_run(make_run_dir(tmp_path / "run", legacy=True))
    context = narrative.build_context(run.results, {})
    assert context["calibration"] is None
    html = render.render_html(context, print_version=False)
    assert 'id="calibration"' not in html
    assert 'href="#calibration"' not in html


def test_figures_drawn_per_model(tmp_path):
    run = load_run(make_run_dir(tmp_path / "run"))
    written = {}

    def target(key):
        written[key] = tmp_path / f"{key}.png"
        return written[key]

    calibration.draw_calibration_figures(run.results, run.arrays, target)
    assert sorted(written) == ["mistakes_cnn", "mistakes_vit", "reliability"]
    for path in written.values():
        assert path.stat().st_size > 1000


def test_gallery_titles_show_names_literally(tmp_path):
    mistakes = [_mistake(0, "price $5", "x$^$", 0.875), _mistake(1, "_ship", "a$b$c", 0.5)]
    images = np.zeros((2, 4, 4, 3), dtype=np.uint8)
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        calibration.plot_confident_mistakes(images, mistakes, tmp_path / "gallery.svg")
    tree = ElementTree.parse(tmp_path / "gallery.svg")
    texts = ["".join(element.itertext())
             for element in tree.iter("{http://www.w3.org/2000/svg}text")]
    joined = "\n".join(texts)
    for expected in ("price $5 \u2192", "x$^$", "87.5%", "_ship \u2192", "a$b$c", "50.0%"):
        assert expected in joined, expected


# ---- Rendered site and PDF ------------------------------------------------------


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    root = tmp_path_factory.mktemp("calibration")
    run_dir = make_run_dir(root / "run")
    paths = render.render_report(run_dir, root / "site")
    results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    return {"paths": paths, "results": results,
            "html": paths["site"].read_text(encoding="utf-8")}


def test_render_section_and_contents(rendered):
    html = rendered["html"]
    assert '<section id="calibration">' in html
    assert '<a href="#calibration">Calibration and errors</a>' in html
    # The section comes after the evaluation section.
    assert html.index('id="evaluation"') < html.index('id="calibration"')


def test_render_figures_in_section(rendered):
    html = rendered["html"]
    section = html[html.index('<section id="calibration">'):]
    section = section[:section.index("</section>")]
    for key in ("reliability", "mistakes_cnn", "mistakes_vit"):
        assert f'src="figures/{key}.png"' in section, key
        assert (rendered["paths"]["site"].parent / "figures" / f"{key}.png").is_file()
    assert "Calibration on the test images" in section
    assert "The most frequent confusions of the CNN" in section
    assert "The most frequent confusions of the ViT" in section


def test_render_sentences_from_results(rendered):
    html = rendered["html"]
    for model in rendered["results"]["models"].values():
        ece = f"{model['calibration']['ece']:.3f}"
        assert f"The {model['label']} has an ECE of {ece}." in html


@needs_pdftotext
def test_pdf_has_section(rendered):
    text = subprocess.run(["pdftotext", "-layout", str(rendered["paths"]["pdf"]), "-"],
                          check=True, capture_output=True, text=True).stdout
    assert "Calibration and errors" in text
    assert "Most confident mistakes" in text
    assert "Most confused class pairs" in text
    assert "Reliability diagrams on the test images" in text
    for model in rendered["results"]["models"].values():
        assert f"{model['calibration']['ece']:.3f}" in text
