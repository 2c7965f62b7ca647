"""The short summary that run_study.py prints in the terminal when a study ends.

It has one row per model (test accuracy with its bootstrap interval, the
spread over seeds, macro AUC, and the time of the search and all refits)
and the verdict of the paired comparison. Every value comes from results.json in the report's own
formats, so the terminal and the report never disagree.
"""

from __future__ import annotations

from report import uncertainty
from report.formatting import format_accuracy, format_score, format_seconds
from report.tables import model_items

HEADERS = ("model", "test accuracy", "interval", "over seeds", "macro AUC",
           "search+refits")


def _training_seconds(results: dict, key: str) -> float | None:
    """Sum the search, refit and seed stages of one model, as timings.stages records them."""
    stages = results.get("timings", {}).get("stages", {})
    parts = [stages.get(f"{step}_{key}") for step in ("search", "refit", "seeds")]
    known = [seconds for seconds in parts if seconds is not None]
    return sum(known) if known else None


def _row(results: dict, key: str, model: dict) -> list[str]:
    intervals = (model.get("intervals") or {}).get("accuracy")
    interval = (f"{format_accuracy(intervals[0])} to {format_accuracy(intervals[1])}"
                if intervals else "n/a")
    seeds = model.get("seeds") or {}
    if (seeds.get("count") or 1) > 1:
        accuracy = seeds["accuracy"]
        spread = (f"{format_accuracy(accuracy['mean'])} ± {100 * accuracy['sd']:.2f} pts "
                  f"({seeds['count']} seeds)")
    else:
        spread = "one seed"
    return [model["label"], format_accuracy(model["test"]["accuracy"]), interval, spread,
            format_score(model["roc"].get("macro_auc")),
            format_seconds(_training_seconds(results, key))]


def summary_lines(results: dict) -> list[str]:
    """Return the summary as lines of text: an aligned table, then the verdict."""
    headers = list(HEADERS)
    levels = [model["intervals"]["confidence"] for _, model in model_items(results)
              if model.get("intervals")]
    if levels:
        headers[2] = f"{100 * levels[0]:g}% interval"
    rows = [headers] + [_row(results, key, model) for key, model in model_items(results)]
    widths = [max(len(row[column]) for row in rows) for column in range(len(HEADERS))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
             for row in rows]
    found = uncertainty.verdict(results)
    if found is not None:
        models = results["models"]
        leader, runner_up = models[found.leader]["label"], models[found.runner_up]["label"]
        if found.supported:
            lines.append(f"verdict: the {leader} is more accurate than the {runner_up} "
                         f"(McNemar {uncertainty.format_p_value(found.p_value)})")
        else:
            lines.append(f"verdict: no clear difference between the {leader} and the "
                         f"{runner_up} (McNemar {uncertainty.format_p_value(found.p_value)})")
    return lines
