"""The report's uncertainty section: intervals, seeds, and a winner only when supported."""

import json
from pathlib import Path

from report import narrative, render, uncertainty
from report_fixture import make_run_dir


def _results(tmp_path: Path, **options) -> dict:
    run_dir = make_run_dir(tmp_path / "run", **options)
    return json.loads((run_dir / "results.json").read_text(encoding="utf-8"))


def test_p_value_format():
    assert uncertainty.format_p_value(0.0004) == "p < 0.001"
    assert uncertainty.format_p_value(0.021484375) == "p = 0.0215"
    assert uncertainty.format_p_value(1.0) == "p = 1"


def test_winner_named_on_clear_gap(tmp_path):
    # 200 test images, a gap of 15 points: 30 + 10 images right for one model
    # only, an interval of 11 to 19 points.
    results = _results(tmp_path, accuracies={"cnn": 0.5, "vit": 0.65})
    found = uncertainty.verdict(results)
    assert (found.leader, found.runner_up) == ("vit", "cnn")
    assert (found.only_leader, found.only_runner_up) == (40, 10)
    assert found.supported
    sentence = narrative.winner_sentence(results)
    assert sentence.startswith("The ViT is more accurate than the CNN: 65.0% against 50.0% "
                               "on the same 200 test images.")
    assert "+11.0 to +19.0 points" in sentence
    assert "(40 only by the ViT, 10 only by the CNN) gives p < 0.001" in sentence
    rows = dict(uncertainty.comparison_table(results).rows)
    assert rows["Verdict"] == "the ViT is more accurate"
    assert rows["Accuracy gap, ViT minus CNN (points)"] == "+15.0"


def test_no_clear_difference_on_zero_interval(tmp_path):
    results = _results(tmp_path, accuracies={"cnn": 0.52, "vit": 0.5})
    sentence = narrative.winner_sentence(results)
    assert sentence.startswith("There is no clear difference between the CNN and the ViT "
                               "(52.0% against 50.0% on the same 200 test images)")
    assert "interval of the gap, -2.0 to +6.0 points, includes zero" in sentence.replace(
        "\u2212", "-")
    assert dict(uncertainty.comparison_table(results).rows)["Verdict"] == "no clear difference"
    assert "no clear difference" in narrative.abstract_sentences(results)[-1]


def test_winner_blocked_by_high_p_value(tmp_path):
    results = _results(tmp_path)
    results["comparison"].update(interval=[0.01, 0.12], p_value=0.2)
    found = uncertainty.verdict(results)
    assert found.interval_excludes_zero and not found.test_rejects
    assert "gives p = 0.2, not below 0.05" in narrative.winner_sentence(results)


def test_winner_blocked_by_seed_means(tmp_path):
    results = _results(tmp_path, accuracies={"cnn": 0.5, "vit": 0.65})
    results["models"]["cnn"]["seeds"]["accuracy"]["mean"] = 0.7
    assert not uncertainty.verdict(results).supported
    assert ("the mean accuracy over the seeds ranks the CNN first"
            in narrative.winner_sentence(results))


def test_spread_over_seeds_sentence_and_tables(tmp_path):
    # Seeds 42, 43, 44 lose 0.5 points each: mean 0.5 below the first, sd 0.5 points.
    results = _results(tmp_path, accuracies={"cnn": 0.6, "vit": 0.5})
    text = narrative.uncertainty_sentence(results)
    assert "Resampling the test images 1,000 times gives 95% bootstrap intervals" in text
    assert "57.0% to 63.0% for the CNN" in text
    assert "Over 3 refits of the CNN (seeds 42, 43 and 44) the test accuracy is 59.5% ± 0.50" in text
    table = uncertainty.uncertainty_table(results)
    assert table.rows[0][:3] == ["CNN", "60.0%", "57.0% to 63.0%"]
    assert table.rows[0][5:7] == ["3", "59.5% ± 0.50"]
    assert len(uncertainty.seeds_table(results).rows) == 6


def test_one_seed_has_no_seed_table(tmp_path):
    results = _results(tmp_path, seeds=1)
    text = narrative.uncertainty_sentence(results)
    assert "Each model was refit once, with seed" in text
    assert uncertainty.seeds_table(results) is None
    assert uncertainty.uncertainty_table(results).rows[0][6] == "65.1%"


def test_recall_intervals_table_has_a_row_per_class(tmp_path):
    results = _results(tmp_path, class_names=("a", "b", "c"))
    results["models"]["vit"]["intervals"]["per_class_recall"][1] = None
    table = uncertainty.recall_intervals_table(results)
    assert [row[0] for row in table.rows] == ["a", "b", "c"]
    assert table.rows[1][4] == "undefined"
    assert table.groups == [("", 1), ("CNN", 2), ("ViT", 2)]


def test_legacy_results_keep_older_sentences(tmp_path):
    results = _results(tmp_path, legacy=True)
    assert uncertainty.verdict(results) is None
    assert narrative.winner_sentence(results).startswith("The CNN has the higher test accuracy")
    assert "binomial standard error" in narrative.uncertainty_sentence(results)
    numbered = narrative.number_tables(results)
    assert not {"comparison", "uncertainty", "seeds", "recall_intervals"} & set(numbered)


def test_rendered_page_has_the_uncertainty_subsection(tmp_path):
    results = _results(tmp_path)
    html = render.render_html(narrative.build_context(results, {}), print_version=False)
    assert "<h3>Uncertainty</h3>" in html
    for caption in ("Paired comparison of the two models", "Every refit of the best",
                    "Recall per class with its bootstrap interval"):
        assert caption in html


def test_auc_leader_with_overlapping_intervals_is_qualified(tmp_path):
    results = _results(tmp_path)
    models = results["models"]
    models["cnn"]["roc"]["macro_auc"], models["vit"]["roc"]["macro_auc"] = 0.66, 0.60
    models["cnn"]["intervals"]["macro_auc"] = [0.62, 0.70]
    models["vit"]["intervals"]["macro_auc"] = [0.55, 0.63]
    assert narrative.auc_comparison_sentence(results) == (
        "The CNN has the higher macro-average AUC, 0.660 against 0.600 for the ViT, but the "
        "bootstrap intervals overlap, so the test images do not show this gap clearly.")
    models["vit"]["intervals"]["macro_auc"] = [0.55, 0.61]
    assert narrative.auc_comparison_sentence(results).endswith("0.600 for the ViT.")
