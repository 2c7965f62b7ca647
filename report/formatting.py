"""Format numbers the one way the report prints them.

Sentences compare the printed values, not the raw floats, so every helper
that prints a kind of number has a matching `round_*` that returns the value
the reader gets.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone

ACCURACY_DECIMALS = 1  # accuracies and their differences: "65.1%", "6.8 percentage points"
PERCENT_DECIMALS = 2  # shares of images or pixels: "10.00%", "0.39%"
SCORE_DECIMALS = 3  # precision, recall, F1 and AUC: "0.681"


def round_percent(share: float, decimals: int = PERCENT_DECIMALS) -> float:
    """Return `share` (a fraction) as the percentage the report prints."""
    return round(float(share) * 100.0, decimals)


def format_percent(share: float | None, decimals: int = PERCENT_DECIMALS) -> str:
    """Format a fraction as a percentage: 0.0039 -> "0.39%"."""
    if share is None:
        return "n/a"
    return f"{round_percent(share, decimals):.{decimals}f}%"


def round_accuracy(accuracy: float) -> float:
    """Return an accuracy (a fraction) as the percentage the report prints: 65.1."""
    return round_percent(accuracy, ACCURACY_DECIMALS)


def format_accuracy(accuracy: float | None) -> str:
    """Format an accuracy as a percentage: 0.6512 -> "65.1%"."""
    return format_percent(accuracy, ACCURACY_DECIMALS)


def format_points(points: float, decimals: int = ACCURACY_DECIMALS) -> str:
    """Format a difference of percentages: 6.8 -> "6.8 percentage points"."""
    unit = "percentage point" if round(points, decimals) == 1 else "percentage points"
    return f"{points:.{decimals}f} {unit}"


def format_signed_points(points: float, decimals: int = ACCURACY_DECIMALS) -> str:
    """Format a change in percentage points with its sign: "+1.5", "−0.5", "0.0"."""
    rounded = round(points, decimals)
    if rounded == 0:
        return f"{0.0:.{decimals}f}"
    sign = "+" if rounded > 0 else "\u2212"  # U+2212, the minus sign
    return f"{sign}{abs(rounded):.{decimals}f}"


def round_score(value: float) -> float:
    return round(float(value), SCORE_DECIMALS)


def format_score(value: float | None) -> str:
    """Format a score in [0, 1] such as an AUC, or "undefined" for None or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "undefined"
    return f"{round_score(value):.{SCORE_DECIMALS}f}"


def format_count(count: int | None, none_text: str = "all") -> str:
    """Format an integer with thousands separators, or `none_text` for None."""
    if count is None:
        return none_text
    return f"{int(count):,}"


def format_seconds(seconds: float | None) -> str:
    """Format a duration: "8.0 s", "1 min 35 s" or "2 h 05 min"."""
    if seconds is None:
        return "n/a"
    seconds = float(seconds)
    if seconds < 60.0:
        return f"{seconds:.1f} s"
    whole = int(round(seconds))
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def format_value(value: object) -> str:
    """Format a config or hyperparameter value for a table cell.

    Integers get thousands separators ("4,000"), so do not pass a seed or a
    year here: the tables print those with str().
    """
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        # A whole number such as a 3600.0 s limit prints like an int ("3,600"),
        # where .4g would print 12000.0 as "1.2e+04".
        if value.is_integer() and abs(value) < 1e15:
            return f"{value:,.0f}"
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        items = [format_value(item) for item in value]
        return "[" + list_separator(items).join(items) + "]"
    if isinstance(value, dict):
        items = [f"{key}: {format_value(item)}" for key, item in value.items()]
        return list_separator(items).join(items)
    return str(value)


def list_separator(items: list[str]) -> str:
    """Return "; " when an item contains a comma, such as "2,048", else ", "."""
    return "; " if any("," in item for item in items) else ", "


def format_scientific(value: float) -> str:
    """Format a small error such as 2.1e-13."""
    return f"{float(value):.1e}"


def join_words(words: list[str]) -> str:
    """Join names as English prose: "a", "a and b", "a, b and c"."""
    if not words:
        return ""
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " and " + words[-1]


def humanize_key(key: str) -> str:
    """Turn a config key such as "trial_time_limit_s" into "trial time limit (s)"."""
    if key.endswith("_s"):
        return key[:-2].replace("_", " ") + " (s)"
    return key.replace("_", " ")


def format_timestamp(text: str) -> str:
    """Format an ISO 8601 timestamp as "2026-12-04 20:10 UTC"; other text is returned as is."""
    try:
        moment = datetime.fromisoformat(str(text))
    except ValueError:
        return str(text)
    if moment.tzinfo is None:
        return moment.strftime("%Y-%m-%d %H:%M")
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
