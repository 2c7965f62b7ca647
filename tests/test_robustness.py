"""Tests of the frequency-robustness check: the filtered passes and the report's section.

The study half runs NumPy classifiers whose results on filtered images can
be worked out by hand. One test runs a small Keras model, to check that the
unfiltered pass gives the main evaluation's predictions. The report half
uses hand-made scores and the synthetic run folder of tests/report_fixture.py.
"""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest

from report_fixture import make_run_dir

from report import figures, narrative, render
from report import robustness as report_robustness
from study.config import EvaluationSettings
from study.robustness import evaluate_robustness, robustness_scores, scale_for_model

SIDE = 8


# ---- Hand-made images and classifiers -------------------------------------------------


def _flat(value: float) -> np.ndarray:
    return np.full((SIDE, SIDE, 3), value)


def _checkerboard(amplitude: float) -> np.ndarray:
    # The pattern +a, -a on alternate pixels sits at the Nyquist frequency, (0.5, 0.5).
    rows, columns = np.indices((SIDE, SIDE))
    sign = np.where((rows + columns) % 2 == 0, 1.0, -1.0)
    return np.repeat((amplitude * sign)[..., None], 3, axis=2)


def _brightness_classifier(images: np.ndarray) -> np.ndarray:
    # Class 1 when the mean scaled value is above mid-grey: needs the zero frequency.
    bright = images.mean(axis=(1, 2, 3)) > 0.5
    return np.stack([~bright, bright], axis=1).astype(float)


def _texture_classifier(images: np.ndarray) -> np.ndarray:
    # Class 1 when neighbouring pixels differ: needs the highest frequencies.
    contrast = np.abs(np.diff(images, axis=2)).mean(axis=(1, 2, 3)) > 0.1
    return np.stack([~contrast, contrast], axis=1).astype(float)


# ---- Scaling ---------------------------------------------------------------------------


def test_scale_matches_pipeline_for_uint8():
    images = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1)
    scaled = scale_for_model(images)
    assert scaled.dtype == np.float32
    assert np.array_equal(scaled, images.astype(np.float32) / np.float32(255.0))
    assert scaled.max() == 1.0


def test_scale_keeps_values_outside_range():
    scaled = scale_for_model(np.array([-51.0, 306.0]))
    assert scaled[0] == pytest.approx(-0.2)
    assert scaled[1] == pytest.approx(1.2)


# ---- Filtered passes ----------------------------------------------------------------------


def test_brightness_survives_low_pass_only():
    # The low-pass gain is 1 at the zero frequency, so the mean stays. The
    # high-pass removes it, so both images read as dark: one of two is right.
    images = np.stack([_flat(0.0), _flat(255.0)])
    scores = robustness_scores(_brightness_classifier, images, np.array([0, 1]),
                               [0.02, 0.32], classes=2)
    assert scores["unfiltered_accuracy"] == 1.0
    assert scores["low_pass_accuracy"] == [1.0, 1.0]
    assert scores["high_pass_accuracy"] == [0.5, 0.5]


def test_texture_survives_high_pass_only():
    # At (0.5, 0.5) the low-pass gain is exp(-0.5 / (2 w^2)): 0.087 at w = 0.32
    # and about 0 at w = 0.02, so the checkerboard's contrast falls below the
    # classifier's threshold. The high-pass gain there is 1 minus that.
    images = np.stack([_flat(128.0), _flat(128.0) + _checkerboard(100.0)])
    scores = robustness_scores(_texture_classifier, images, np.array([0, 1]),
                               [0.02, 0.32], classes=2)
    assert scores["unfiltered_accuracy"] == 1.0
    assert scores["low_pass_accuracy"] == [0.5, 0.5]
    assert scores["high_pass_accuracy"] == [1.0, 1.0]


def test_scores_record_sample_and_chance():
    images = np.stack([_flat(0.0), _flat(255.0), _flat(10.0)])
    def four_classes(batch):  # classes 2 and 3 are never predicted
        return np.pad(_brightness_classifier(batch), ((0, 0), (0, 2)))

    scores = robustness_scores(four_classes, images, np.array([0, 1, 1]),
                               (0.04, 0.08, 0.16), classes=4)
    assert scores["images"] == 3
    assert scores["widths"] == [0.04, 0.08, 0.16]
    assert scores["chance"] == 0.25
    assert scores["unfiltered_accuracy"] == pytest.approx(2 / 3)
    assert len(scores["low_pass_accuracy"]) == 3
    assert len(scores["high_pass_accuracy"]) == 3


def test_chunks_give_same_scores():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (7, SIDE, SIDE, 3), dtype=np.uint8)
    labels = rng.integers(0, 2, 7)
    sizes = []

    def texture(batch):
        sizes.append(len(batch))
        assert batch.dtype == np.float32
        return _texture_classifier(batch)

    whole = robustness_scores(texture, images, labels, [0.04, 0.16], classes=2)
    sizes.clear()
    chunked = robustness_scores(texture, images, labels, [0.04, 0.16], classes=2, chunk=3)
    assert chunked == whole
    # Three chunks (3, 3, 1), each unfiltered and through 2 filters at 2 widths.
    assert sizes == [3] * 5 + [3] * 5 + [1] * 5


def test_wrong_score_shape_rejected():
    images = np.stack([_flat(0.0), _flat(255.0)])
    with pytest.raises(ValueError, match=r"shape \(2, 2\) for 2 images, expected \(2, 3\)"):
        robustness_scores(_brightness_classifier, images, np.array([0, 1]), [0.1], classes=3)


def test_mismatched_labels_rejected():
    with pytest.raises(ValueError, match="got 1 images and 2 labels"):
        robustness_scores(_brightness_classifier, np.stack([_flat(0.0)]), np.array([0, 1]),
                          [0.1], classes=2)


# ---- Settings ------------------------------------------------------------------------------


def _test_split(per_class: int = 4):
    images = np.stack([_flat(0.0)] * per_class + [_flat(255.0)] * per_class).astype(np.uint8)
    return images, np.repeat([0, 1], per_class)


def test_sample_is_stratified_and_timed():
    images, labels = _test_split()
    seen = []

    def classifier(batch):
        seen.append(len(batch))
        return _brightness_classifier(batch)

    settings = EvaluationSettings(robustness_widths=(0.08,), robustness_images=4)
    scores = evaluate_robustness("cnn", classifier, images, labels, settings, 2, seed=0)
    assert scores["images"] == 4
    assert seen == [4, 4, 4]
    assert scores["unfiltered_accuracy"] == 1.0
    assert scores["seconds"] >= 0.0


def test_all_images_when_none():
    images, labels = _test_split()
    settings = EvaluationSettings(robustness_widths=(0.08,), robustness_images=None)
    scores = evaluate_robustness("vit", _brightness_classifier, images, labels, settings, 2, 0)
    assert scores["images"] == 8


def test_empty_widths_skip_check():
    images, labels = _test_split()
    settings = EvaluationSettings(robustness_widths=())
    assert evaluate_robustness("cnn", _brightness_classifier, images, labels, settings, 2,
                               0) is None


def test_bad_widths_rejected():
    images, labels = _test_split()
    settings = EvaluationSettings(robustness_widths=(0.08, 0.0, -1.0))
    with pytest.raises(ValueError, match=r"robustness_widths contains \[0.0, -1.0\]"):
        evaluate_robustness("cnn", _brightness_classifier, images, labels, settings, 2, 0)


def test_bad_image_count_rejected():
    images, labels = _test_split()
    settings = EvaluationSettings(robustness_images=0)
    with pytest.raises(ValueError, match="robustness_images is 0"):
        evaluate_robustness("cnn", _brightness_classifier, images, labels, settings, 2, 0)


def test_keras_unfiltered_matches_pipeline():
    # The unfiltered pass must give the model the main evaluation's inputs, bit for bit.
    keras = pytest.importorskip("keras")
    from study.inputs import make_dataset

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((SIDE, SIDE, 3)), keras.layers.Conv2D(4, 3),
                              keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(3, activation="softmax")])
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (40, SIDE, SIDE, 3), dtype=np.uint8)
    labels = rng.integers(0, 3, 40)
    pipeline = model.predict(make_dataset(images, labels, 16), verbose=0)
    direct = model.predict(scale_for_model(images), batch_size=16, verbose=0)
    assert np.array_equal(pipeline, direct)

    scores = robustness_scores(lambda batch: model.predict(batch, batch_size=16, verbose=0),
                               images, labels, [0.08], classes=3)
    assert scores["unfiltered_accuracy"] == np.mean(pipeline.argmax(axis=1) == labels)


# ---- The lean ---------------------------------------------------------------------------------


def _scores(unfiltered, low, high, images=100, chance=0.1, widths=None) -> dict:
    return {"images": images, "widths": widths or [0.04 * 2**i for i in range(len(low))],
            "chance": chance, "unfiltered_accuracy": unfiltered,
            "low_pass_accuracy": low, "high_pass_accuracy": high}


def _model(label: str, scores: dict) -> dict:
    return {"label": label, "test": {"images": scores["images"]}, "robustness": scores}


def _results(*models: dict) -> dict:
    return {"models": {model["label"].lower(): model for model in models}}


def test_lean_shares_by_hand():
    # Margin 0.5: low shares (0.5, 1.0), high shares (0.0, 0.5).
    lean = report_robustness.frequency_lean(_scores(0.6, [0.35, 0.6], [0.1, 0.35]))
    assert lean.low_share == pytest.approx(0.75)
    assert lean.high_share == pytest.approx(0.25)
    assert lean.gap_points() == 50.0
    variance = (0.35 * 0.65 * 2 + 0.6 * 0.4 + 0.1 * 0.9) / 100
    assert lean.standard_error == pytest.approx(math.sqrt(variance) / (2 * 0.5))


def test_lean_none_near_chance():
    assert report_robustness.frequency_lean(_scores(0.14, [0.12], [0.11])) is None
    sentence = report_robustness.lean_sentence(_model("ViT", _scores(0.14, [0.12], [0.11])))
    assert "less than 5 percentage points above the chance level of 10.0%" in sentence


def test_lean_sentence_names_end():
    model = _model("CNN", _scores(0.6, [0.35, 0.6], [0.1, 0.35]))
    sentence = report_robustness.lean_sentence(model)
    assert "keeps 75.0% of its margin over chance through the low-pass" in sentence
    assert "25.0% through the high-pass" in sentence
    assert "the noise level of 17.7 percentage points" in sentence
    assert sentence.endswith("so the CNN leans on low frequencies.")


def test_lean_sentence_high_end():
    model = _model("CNN", _scores(0.6, [0.1, 0.35], [0.35, 0.6], images=10_000))
    assert report_robustness.lean_sentence(model).endswith(
        "so the CNN leans on high frequencies.")


def test_lean_sentence_small_gap_alike():
    # High shares (0.46, 1.0): a mean of 0.73 against 0.75 through the low-pass.
    model = _model("CNN", _scores(0.6, [0.35, 0.6], [0.33, 0.6]))
    sentence = report_robustness.lean_sentence(model)
    assert "The gap of 2.0 percentage points is below the noise level" in sentence
    assert "about as well with either end of the spectrum" in sentence


def test_comparison_names_low_leaner():
    cnn = _model("CNN", _scores(0.6, [0.2, 0.5], [0.3, 0.5], images=2000))
    vit = _model("ViT", _scores(0.6, [0.4, 0.6], [0.1, 0.3], images=2000))
    sentence = report_robustness.comparison_sentence(_results(cnn, vit))
    assert sentence.startswith(
        "The ViT leans more on low frequencies than the CNN, and the CNN more on high")
    # CNN gap: (0.2 + 0.8) / 2 - (0.4 + 0.8) / 2 = -0.1; ViT: 0.8 - 0.2 = 0.6.
    assert "\u221210.0 percentage points for the CNN and +60.0 for the ViT" in sentence
    assert "a difference of 70.0 percentage points, above the noise level" in sentence


def test_comparison_alike_when_gaps_close():
    cnn = _model("CNN", _scores(0.6, [0.35, 0.6], [0.1, 0.35]))
    vit = _model("ViT", _scores(0.7, [0.4, 0.7], [0.1, 0.4]))
    sentence = report_robustness.comparison_sentence(_results(cnn, vit))
    assert sentence.startswith("The two models respond alike to the filters.")
    assert "a difference of 0.0 percentage points, below the noise level" in sentence


def test_comparison_skipped_near_chance():
    cnn = _model("CNN", _scores(0.6, [0.35, 0.6], [0.1, 0.35]))
    vit = _model("ViT", _scores(0.12, [0.11, 0.12], [0.1, 0.1]))
    results = _results(cnn, vit)
    assert "not compared, because the unfiltered accuracy of the ViT" in (
        report_robustness.comparison_sentence(results))
    assert report_robustness.conclusion_sentence(results) is None


def test_comparison_needs_two_models():
    cnn = _model("CNN", _scores(0.6, [0.35, 0.6], [0.1, 0.35]))
    assert report_robustness.comparison_sentence(_results(cnn)) is None


def test_range_sentence_sorts_widths():
    scores = _scores(0.6, [0.5, 0.2], [0.1, 0.4], widths=[0.32, 0.02])
    sentence = report_robustness.range_sentence(_model("CNN", scores))
    assert "low-pass filters its accuracy is 20.0% at width 0.02 and 50.0% at 0.32" in sentence
    assert "high-pass filters 40.0% at width 0.02 and 10.0% at 0.32" in sentence


# ---- Table, context and rendering --------------------------------------------------------------


def test_table_rows_and_missing_width():
    cnn = _model("CNN", _scores(0.6, [0.35, 0.6], [0.1, 0.35], widths=[0.04, 0.08]))
    vit = _model("ViT", _scores(0.12, [0.11], [0.1], widths=[0.04]))
    (view,) = report_robustness.table_views(_results(cnn, vit))
    assert view.groups == [("", 1), ("CNN", 2), ("ViT", 2)]
    assert view.rows[0] == ["No filter", "60.0%", "60.0%", "12.0%", "12.0%"]
    assert view.rows[1] == ["0.04", "35.0%", "10.0%", "11.0%", "10.0%"]
    assert view.rows[2] == ["0.08", "60.0%", "35.0%", "n/a", "n/a"]
    assert view.rows[3] == ["Mean share of the margin over chance", "75.0%", "25.0%", "n/a",
                            "n/a"]


def test_sample_text_stratified():
    model = _model("CNN", _scores(0.6, [0.35], [0.1], images=2000))
    model["test"]["images"] = 10_000
    assert report_robustness.sample_text(_results(model)) == (
        "a stratified sample of 2,000 of the 10,000 test images")


def test_context_absent_without_scores(tmp_path):
    results = json.loads((make_run_dir(tmp_path / "run") / "results.json").read_text())
    old = copy.deepcopy(results)
    for model in old["models"].values():
        del model["robustness"]
    context = narrative.build_context(old, {})
    assert not context["robustness"]
    assert "robustness" not in context["tables"]
    assert report_robustness.figure_texts(old) == {}
    assert report_robustness.robustness_curves(old) == []
    html = render.render_html(context, print_version=False)
    assert 'id="robustness"' not in html
    assert "Frequency robustness" not in html


def test_section_rendered_with_scores(tmp_path):
    results = json.loads((make_run_dir(tmp_path / "run") / "results.json").read_text())
    context = narrative.build_context(results, {"robustness": "figures/robustness.png"})
    html = render.render_html(context, print_version=False)
    assert '<section id="robustness">' in html
    assert '<a href="#robustness">Frequency robustness</a>' in html
    assert 'src="figures/robustness.png"' in html
    table = context["tables"]["robustness"]
    assert f'id="table-{table.number}"' in html
    # Tables are numbered in page order: the robustness table comes before the appendix.
    assert table.number < context["tables"]["environment"].number
    assert context["tables"]["per_class_auc"].number < table.number
    assert "The ViT leans more on low frequencies than the CNN" in html
    assert any("leans more on low frequencies" in sentence
               for sentence in context["conclusions"])


def test_figure_drawn_last(tmp_path):
    run = make_run_dir(tmp_path / "run")
    results = json.loads((run / "results.json").read_text())
    arrays = dict(np.load(run / "exploration.npz"))
    written = figures.draw_figures(results, arrays, tmp_path / "site")
    assert written[report_robustness.FIGURE_KEY] == "figures/robustness.png"
    png = tmp_path / "site" / "figures" / "robustness.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    numbered = narrative.number_figures(results, written)
    assert numbered["robustness"].number == len(numbered)
