"""Progress lines for the long stages: how far a search or a refit is, and the time left.

The lines go through `logging`, so they reach the terminal (unless
--quiet) and the run folder's study.log alike. The time left is an
estimate from the mean time per epoch so far; early stopping can only
shorten the work that remains.
"""

from __future__ import annotations

import math


def format_duration(seconds: float) -> str:
    """Format a duration for a progress line.

    >>> format_duration(42.4), format_duration(185), format_duration(3720)
    ('42 s', '3 min 05 s', '1 h 02 min')
    """
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def seconds_left(elapsed: float, done: float, total: float) -> float | None:
    """Estimate the seconds for the rest of `total` units of work at the rate so far.

    Returns None before any unit is done.

    >>> seconds_left(30.0, 3, 10)
    70.0
    """
    if done <= 0:
        return None
    return elapsed / done * max(total - done, 0)


def search_progress(name: str, finished: int, expected: int, best: float | None,
                    elapsed: float, epochs_done: int, epochs_planned: int,
                    budget_s: float | None = None) -> str:
    """Describe a Hyperband search after a trial: trials, best score and time left.

    `epochs_planned` is the most epochs the schedule trains; with a budget
    (`budget_s`, seconds) the time left is at most what the budget leaves.
    """
    best_text = "none completed yet" if best is None or math.isnan(best) else f"{best:.4f}"
    left = seconds_left(elapsed, epochs_done, epochs_planned)
    if budget_s is not None:
        budget_left = max(budget_s - elapsed, 0.0)
        left = budget_left if left is None else min(left, budget_left)
    left_text = "" if left is None else f", at most about {format_duration(left)} left"
    return (f"{name} search: trial {finished} of about {expected} done, best val_accuracy so "
            f"far {best_text}; {format_duration(elapsed)} elapsed{left_text}")


def refit_progress(epochs_done: int, max_epochs: int, elapsed: float,
                   epochs_this_run: int) -> str:
    """Describe a refit after an epoch: elapsed time and the time left at most.

    `epochs_this_run` counts the epochs this process trained, so a refit
    resumed from its backup does not count the earlier epochs' time as zero.

    >>> refit_progress(2, 6, 30.0, 2)
    '30 s elapsed, at most about 1 min 00 s left'
    """
    left = seconds_left(elapsed, epochs_this_run, epochs_this_run + max_epochs - epochs_done)
    left_text = "" if left is None else f", at most about {format_duration(left)} left"
    return f"{format_duration(elapsed)} elapsed{left_text}"
