"""The terminal summary printed when a study ends."""

import json

from report.summary import summary_lines
from report_fixture import make_run_dir


def _results(tmp_path, **options):
    run_dir = make_run_dir(tmp_path / "run", **options)
    return json.loads((run_dir / "results.json").read_text())


def test_summary_rows_and_verdict(tmp_path):
    # Fixture: CNN 65.1% and ViT 58.3% on 200 images, intervals of +-3 points,
    # seeds losing 0.5 points each, stage times 70 + 95 s (CNN) and 60 + 50 s (ViT).
    lines = summary_lines(_results(tmp_path))
    assert lines[0].split() == ["model", "test", "accuracy", "95%", "interval", "over",
                                "seeds", "macro", "AUC", "search+refits"]
    assert lines[1].split()[:2] == ["CNN", "65.1%"]
    assert "62.1% to 68.1%" in lines[1]
    assert "64.6% ± 0.50 pts (3 seeds)" in lines[1]
    assert lines[1].endswith("2 min 45 s")
    assert lines[2].split()[:2] == ["ViT", "58.3%"]
    assert lines[3].startswith("verdict: the CNN is more accurate than the ViT (McNemar p")
    # The columns line up: each header starts where its cells start.
    start = lines[0].index("95% interval")
    assert lines[1][start:].startswith("62.1%")


def test_summary_without_comparison_or_seeds(tmp_path):
    lines = summary_lines(_results(tmp_path, legacy=True))
    assert len(lines) == 3
    assert "one seed" in lines[1]
    assert "n/a" in lines[1]
