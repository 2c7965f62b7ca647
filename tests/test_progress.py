"""Progress lines of the search and the refit: durations and the time left."""

import math

import pytest

from study.progress import format_duration, refit_progress, search_progress, seconds_left


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0 s"), (59.4, "59 s"), (59.6, "1 min 00 s"), (125, "2 min 05 s"),
    (3599, "59 min 59 s"), (3600, "1 h 00 min"), (7380, "2 h 03 min"), (-3, "0 s"),
])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_seconds_left_at_rate_so_far():
    assert seconds_left(40.0, 4, 10) == 60.0


def test_seconds_left_none_before_work():
    assert seconds_left(5.0, 0, 10) is None


def test_seconds_left_never_negative():
    assert seconds_left(50.0, 12, 10) == 0.0


def test_search_progress_line():
    line = search_progress("cnn", 3, 5, 0.45678, 70.0, 7, 17)
    # 7 epochs in 70 s leaves 10 epochs, about 100 s.
    assert line == ("cnn search: trial 3 of about 5 done, best val_accuracy so far 0.4568; "
                    "1 min 10 s elapsed, at most about 1 min 40 s left")


def test_search_progress_budget_caps_time_left():
    line = search_progress("vit", 1, 5, 0.3, 60.0, 1, 17, budget_s=90.0)
    assert line.endswith("1 min 00 s elapsed, at most about 30 s left")


def test_search_progress_no_completed_trial():
    line = search_progress("vit", 1, 5, math.nan, 10.0, 0, 17)
    assert "best val_accuracy so far none completed yet" in line
    assert line.endswith("10 s elapsed")


def test_refit_progress_line():
    # Two epochs in 30 s, four to go: about 60 s.
    assert refit_progress(2, 6, 30.0, 2) == "30 s elapsed, at most about 1 min 00 s left"


def test_refit_progress_resumed():
    # Resumed after epoch 3: one epoch this run in 20 s, 3 to go.
    assert refit_progress(4, 7, 20.0, 1) == "20 s elapsed, at most about 1 min 00 s left"
