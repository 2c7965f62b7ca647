"""The Hyperband ledger: built from saved tuner folders, then worded and tabled.

The tuner folders are written here by hand in keras-tuner 1.4.8's layout
(oracle.json, trial_*/trial.json) with the study's own guard log and trial
run records, so every expected count can be worked out from the lines below.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from report import ledger as report_ledger
from report.narrative import abstract_sentences, build_context, conclusion_sentences
from report.render import render_html
from report_fixture import make_run_dir
from run_study import budget_minutes, parse_args
from study.ledger import (GUARD_FILE, RUNS_FILE, build_ledger, hyperband_rounds,
                          read_json_lines)

SPACE = [
    {"class_name": "Float", "config": {"name": "learning_rate", "min_value": 1e-4,
                                       "max_value": 1e-2, "sampling": "log"}},
    {"class_name": "Choice", "config": {"name": "optimizer", "values": ["adam", "sgd"]}},
    {"class_name": "Fixed", "config": {"name": "blocks", "value": 2}},
]


def _trial(trial_id, bracket, round_num, start, target, status="COMPLETED", score=None,
           parent=None, rate=1e-3, optimizer="adam") -> dict:
    values = {"learning_rate": rate, "optimizer": optimizer, "blocks": 2,
              "tuner/epochs": target, "tuner/initial_epoch": start,
              "tuner/bracket": bracket, "tuner/round": round_num}
    if parent:
        values["tuner/trial_id"] = parent
    return {"trial_id": trial_id, "hyperparameters": {"space": SPACE, "values": values},
            "metrics": {"metrics": {}}, "score": score, "best_step": 0, "status": status,
            "message": None}


def _write_folder(folder: Path, trials: list[dict], *, max_epochs=3, factor=3, iterations=1,
                  events=(), runs=()) -> Path:
    folder.mkdir(parents=True)
    oracle = {"max_epochs": max_epochs, "factor": factor, "min_epochs": 1,
              "hyperband_iterations": iterations,
              "hyperparameters": {"space": SPACE, "values": {}}}
    (folder / "oracle.json").write_text(json.dumps(oracle))
    for trial in trials:
        (folder / f"trial_{trial['trial_id']}").mkdir()
        (folder / f"trial_{trial['trial_id']}" / "trial.json").write_text(json.dumps(trial))
    (folder / GUARD_FILE).write_text("".join(json.dumps(event) + "\n" for event in events))
    (folder / RUNS_FILE).write_text("".join(json.dumps(run) + "\n" for run in runs))
    return folder


def _run(trial_id, seconds, accuracies) -> dict:
    return {"trial_id": trial_id, "seconds": seconds, "epochs_trained": len(accuracies),
            "val_accuracy": accuracies}


def _guard(trial_id, guard, epoch) -> dict:
    return {"trial_id": trial_id, "guard": guard, "epoch": epoch, "detail": guard}


@pytest.fixture
def searched(tmp_path) -> Path:
    """max_epochs 3, factor 3: bracket 1 runs 0000-0002 for one epoch and promotes 0001
    to epoch 3 as 0003; bracket 0 runs 0004 (stopped by patience) and 0005 (NaN)."""
    trials = [
        _trial("0000", 1, 0, 0, 1, score=0.30, rate=1e-4),
        _trial("0001", 1, 0, 0, 1, score=0.40, rate=1e-3, optimizer="sgd"),
        _trial("0002", 1, 0, 0, 1, score=0.20, rate=1e-2),
        _trial("0003", 1, 1, 1, 3, score=0.55, parent="0001", rate=1e-3, optimizer="sgd"),
        _trial("0004", 0, 0, 0, 3, score=0.50, rate=3e-3),
        _trial("0005", 0, 0, 0, 3, status="FAILED", rate=9e-3),
    ]
    runs = [_run("0000", 2.0, [0.30]), _run("0001", 2.5, [0.40]), _run("0002", 1.5, [0.20]),
            _run("0003", 4.0, [0.45, 0.55]), _run("0004", 3.0, [0.50, 0.48]),
            _run("0005", 0.5, [])]
    events = [_guard("0004", "val_loss_patience", 2), _guard("0005", "nan_loss", 1)]
    return _write_folder(tmp_path / "search" / "cnn", trials, events=events, runs=runs)


# ---- Building the ledger --------------------------------------------------------


def test_rounds_max_epochs_9_factor_3():
    rounds = [tuple(step) for step in hyperband_rounds(9, 3)]
    assert rounds == [
        (2, 0, 9, 1, 0), (2, 1, 3, 3, 1), (2, 2, 1, 9, 3),
        (1, 0, 5, 3, 0), (1, 1, 2, 9, 3),
        (0, 0, 3, 9, 0),
    ]


def test_ledger_trials_from_folder(searched):
    ledger = build_ledger(searched)
    trials = {trial["trial_id"]: trial for trial in ledger["trials"]}
    assert [trial["trial_id"] for trial in ledger["trials"]] == [
        "0000", "0001", "0002", "0003", "0004", "0005"]
    assert {key: trial["outcome"] for key, trial in trials.items()} == {
        "0000": "dropped", "0001": "promoted", "0002": "dropped", "0003": "final",
        "0004": "final", "0005": "failed"}
    assert trials["0001"]["promoted_to"] == "0003"
    assert trials["0003"]["parent_trial_id"] == "0001"
    assert trials["0003"]["final_epoch"] == 3
    assert trials["0004"]["stopped_by"] == "val_loss_patience"
    assert trials["0005"]["stopped_by"] is None  # a NaN loss fails the trial
    assert trials["0005"]["guards"] == ["nan_loss"]
    assert {trial["iteration"] for trial in ledger["trials"]} == {0}
    assert trials["0003"]["hyperparameters"] == {"learning_rate": 1e-3, "optimizer": "sgd",
                                                 "blocks": 2}


def test_ledger_rounds_and_totals(searched):
    ledger = build_ledger(searched)
    rounds = [(entry["bracket"], entry["round"], entry["trials"], entry["planned_trials"],
               entry["promoted"], entry["failed"], entry["stopped_by_guard"],
               entry["epochs_trained"]) for entry in ledger["rounds"]]
    assert rounds == [(1, 0, 3, 3, 1, 0, 0, 3), (1, 1, 1, 1, 0, 0, 0, 2),
                      (0, 0, 2, 2, 0, 1, 1, 2)]
    assert ledger["rounds"][0]["best_score"] == 0.40
    assert ledger["rounds"][0]["seconds"] == pytest.approx(6.0)
    totals = ledger["totals"]
    assert totals["trials"] == totals["planned_trials"] == 6
    assert (totals["brackets"], totals["rounds"]) == (2, 3)
    assert (totals["promoted"], totals["failed"], totals["stopped_by_guard"]) == (1, 1, 1)
    assert totals["epochs_trained"] == 7  # 1 + 1 + 1 + 2 + 2 + 0
    assert totals["seconds"] == pytest.approx(13.5)
    assert ledger["budget"] == {"minutes": None, "cut_short": False,
                                "seconds_counted": None, "stopped_trial_id": None}


def test_ledger_space_kinds(searched):
    space = {entry["name"]: entry for entry in build_ledger(searched)["space"]}
    assert space["learning_rate"]["kind"] == "float"
    assert space["learning_rate"]["log"] is True
    assert space["optimizer"]["values"] == ["adam", "sgd"]
    assert space["blocks"]["kind"] == "fixed"


def test_ledger_budget_stop(tmp_path):
    trials = [_trial("0000", 1, 0, 0, 1, score=0.3), _trial("0001", 1, 0, 0, 1, score=0.35)]
    folder = _write_folder(tmp_path / "cut", trials,
                           events=[_guard("0001", "search_budget", 1)],
                           runs=[_run("0000", 30.0, [0.3]), _run("0001", 31.0, [0.35])])
    ledger = build_ledger(folder, {"minutes": 1.0, "cut_short": True, "seconds_counted": 61.5})
    assert ledger["budget"]["stopped_trial_id"] == "0001"
    assert ledger["budget"]["cut_short"] is True
    # The rounds the budget left unrun are still listed, with no trials.
    assert [(entry["trials"], entry["planned_trials"]) for entry in ledger["rounds"]] == [
        (2, 3), (0, 1), (0, 2)]
    assert ledger["totals"]["rounds"] == 1
    assert ledger["totals"]["brackets"] == 1


def test_iterations_from_bracket_order(tmp_path):
    # max_epochs 2, factor 2, two iterations: per iteration two one-epoch
    # trials in bracket 1, one promoted, then two two-epoch trials in bracket 0.
    trials = []
    for first in (0, 5):
        ids = [f"{first + offset:04d}" for offset in range(5)]
        trials += [_trial(ids[0], 1, 0, 0, 1, score=0.2), _trial(ids[1], 1, 0, 0, 1, score=0.3),
                   _trial(ids[2], 1, 1, 1, 2, score=0.4, parent=ids[1]),
                   _trial(ids[3], 0, 0, 0, 2, score=0.3), _trial(ids[4], 0, 0, 0, 2, score=0.1)]
    ledger = build_ledger(_write_folder(tmp_path / "two", trials, max_epochs=2, factor=2,
                                        iterations=2))
    assert [trial["iteration"] for trial in ledger["trials"]] == [0] * 5 + [1] * 5
    assert len(ledger["rounds"]) == 6
    assert all(entry["trials"] == entry["planned_trials"] for entry in ledger["rounds"])


def test_iterations_single_bracket(tmp_path):
    # max_epochs 1: one bracket of one one-epoch trial per iteration.
    trials = [_trial(f"000{index}", 0, 0, 0, 1, score=0.1 * index) for index in range(3)]
    ledger = build_ledger(_write_folder(tmp_path / "one", trials, max_epochs=1, iterations=3))
    assert [trial["iteration"] for trial in ledger["trials"]] == [0, 1, 2]
    assert [entry["trials"] for entry in ledger["rounds"]] == [1, 1, 1]


def test_failed_trial_leaves_round_short(tmp_path):
    # keras-tuner promotes only completed trials: with one of three failed,
    # round 1 of bracket 1 gets no trial.
    trials = [_trial("0000", 1, 0, 0, 1, score=0.3),
              _trial("0001", 1, 0, 0, 1, status="FAILED"),
              _trial("0002", 1, 0, 0, 1, score=0.2),
              _trial("0003", 0, 0, 0, 3, score=0.4), _trial("0004", 0, 0, 0, 3, score=0.5)]
    ledger = build_ledger(_write_folder(tmp_path / "short", trials))
    assert [(entry["bracket"], entry["round"]) for entry in
            report_ledger.short_rounds(ledger)] == [(1, 1)]
    assert report_ledger.shortfall_sentence(ledger) == (
        "Fewer trials than planned ran in 1 round: round 1 of bracket 1 ran 0 of 1, after "
        "1 failed trial in the round before, since keras-tuner promotes only completed "
        "trials.")


def test_rerun_record_and_cut_line(tmp_path):
    # A trial run again after a kill appends a second record; the last one counts.
    # A line cut short by a kill is skipped.
    trials = [_trial("0000", 1, 0, 0, 1, score=0.3)]
    folder = _write_folder(tmp_path / "rerun", trials,
                           runs=[_run("0000", 9.0, [0.1]), _run("0000", 2.0, [0.3])])
    with (folder / RUNS_FILE).open("a") as handle:
        handle.write('{"trial_id": "0001", "sec')
    assert len(read_json_lines(folder / RUNS_FILE)) == 2
    assert build_ledger(folder)["trials"][0]["seconds"] == 2.0


def test_ledger_missing_oracle(tmp_path):
    with pytest.raises(FileNotFoundError, match="no oracle.json in .*empty"):
        build_ledger(tmp_path / "empty")


# ---- Facts and sentences ----------------------------------------------------------


MODEL = {"label": "CNN"}


def test_best_so_far_by_epoch(searched):
    epochs, best = report_ledger.best_so_far(build_ledger(searched))
    assert epochs == [1, 2, 3, 4, 5, 6, 7]
    # 0000, 0001, 0002, then 0003's two epochs, then 0004's; 0005 trained none.
    assert best == [0.30, 0.40, 0.40, 0.45, 0.55, 0.55, 0.55]
    assert report_ledger.epochs_to_best(build_ledger(searched)) == (5, 7)


def test_best_so_far_without_records(tmp_path):
    # 0000 completed before run records existed, so its 3 planned epochs count,
    # with its score after the last; 0001 was interrupted and counts none.
    trials = [_trial("0000", 0, 0, 0, 3, score=0.6),
              _trial("0001", 0, 0, 0, 3, status="RUNNING")]
    ledger = build_ledger(_write_folder(tmp_path / "old", trials))
    assert report_ledger.best_so_far(ledger) == ([1, 2, 3], [None, None, 0.6])
    assert ledger["totals"]["unrecorded_trials"] == 1
    assert ledger["totals"]["interrupted"] == 1
    assert ledger["trials"][1]["outcome"] == "interrupted"


def test_best_trial_and_epoch(searched):
    ledger = build_ledger(searched)
    best = report_ledger.best_trial(ledger)
    assert best["trial_id"] == "0003"
    assert report_ledger.best_epoch(best) == 3  # initial epoch 1, best after its second
    assert report_ledger.best_trial_sentence(MODEL, ledger) == (
        "The best trial of the CNN, 0003, ran in round 1 of bracket 1, trained from epoch 1 "
        "to 3, and reached a validation accuracy of 55.0% at epoch 3.")


def test_schedule_and_outcome_sentences(searched):
    ledger = build_ledger(searched)
    assert report_ledger.schedule_sentence(MODEL, ledger) == (
        "For the CNN, Hyperband with max_epochs 3 and factor 3 plans 2 brackets "
        "(1 iteration), 3 rounds and 6 trials when no trial fails. The search ran 6 trials "
        "in 3 rounds of 2 brackets; together they trained 7 epochs in 13.5 s of trial wall "
        "time.")
    assert report_ledger.outcome_sentence(ledger) == (
        "Of these trials, 1 was promoted to the next round, 1 failed and 1 was stopped early "
        "by a guard (1 by validation-loss patience).")
    assert report_ledger.shortfall_sentence(ledger) is None


def test_budget_sentences(searched, tmp_path):
    ledger = build_ledger(searched)
    assert report_ledger.budget_sentence(ledger) == (
        "No wall-clock budget (--search-budget) was set for this search.")
    ledger["budget"].update(minutes=5.0, seconds_counted=100.0)
    assert report_ledger.budget_sentence(ledger) == (
        "The search finished within its wall-clock budget of 5 min, after 1 min 40 s counted.")

    trials = [_trial("0000", 1, 0, 0, 1, score=0.3), _trial("0001", 1, 0, 0, 1, score=0.35)]
    folder = _write_folder(tmp_path / "cut", trials,
                           events=[_guard("0001", "search_budget", 1)],
                           runs=[_run("0000", 30.0, [0.3]), _run("0001", 31.0, [0.35])])
    cut = build_ledger(folder, {"minutes": 1.0, "cut_short": True, "seconds_counted": 61.5})
    assert report_ledger.budget_sentence(cut) == (
        "The wall-clock budget of 1 min ran out after 1 min 02 s counted, so the budget cut "
        "the search short: it stopped trial 0001 in epoch 1. The search ran 2 of the 6 "
        "trials that the schedule plans when no trial fails, and the best trial so far was "
        "refit.")
    assert report_ledger.shortfall_sentence(cut) is None  # the budget explains the gap
    assert report_ledger.outcome_sentence(cut) == (
        "Of these trials, 0 were promoted to the next round, 0 failed and 1 was stopped early "
        "by a guard (1 by search budget).")
    # The abstract and the conclusions name the cut search too.
    results = json.loads((make_run_dir(tmp_path / "run") / "results.json").read_text())
    assert report_ledger.budget_summary(results) is None
    results["models"]["vit"]["search"]["ledger"] = cut
    summary = ("The wall-clock search budget (--search-budget) cut the search of the ViT "
               "after 2 of 6 planned trials, so the refit models come from a shortened search.")
    assert report_ledger.budget_summary(results) == summary
    assert summary in abstract_sentences(results)
    assert summary in conclusion_sentences(results)


def test_varying_hyperparameters_skip_constant(searched):
    names = [entry["name"] for entry in
             report_ledger.varying_hyperparameters(build_ledger(searched))]
    assert names == ["learning_rate", "optimizer"]  # blocks is 2 in every trial


# ---- Tables -------------------------------------------------------------------------


def _results_with(ledger: dict) -> dict:
    return {"models": {"cnn": {"label": "CNN", "search": {"ledger": ledger}}}}


def test_rounds_table_rows(searched):
    view = report_ledger.rounds_table(_results_with(build_ledger(searched)), "cnn")
    assert view.headers[:4] == ["Bracket", "Round", "Epochs", "Trials"]
    assert view.rows[0] == ["1", "0", "0 to 1", "3 of 3", "1", "0", "0", "40.0%", "6.0 s"]
    assert view.rows[1][2:4] == ["1 to 3", "1 of 1"]
    assert view.rows[-1] == ["All", "", "", "6 of 6", "1", "1", "1", "55.0%", "13.5 s"]


def test_trials_table_sort_keys(searched):
    ledger = build_ledger(searched)
    table = report_ledger.trials_table(MODEL, ledger, 4, "caption", "ledger_trials_cnn")
    view = table.view
    assert view.headers[-2:] == ["Learning rate", "Optimizer"]
    assert view.numeric[-2:] == [True, False]
    failed = view.rows[5]
    assert failed[6] == "failed"
    assert failed[8] == "n/a"
    # An undefined score sorts last; scores sort as numbers.
    assert table.sort_keys[5][8] == ""
    assert float(table.sort_keys[3][8]) == 0.55
    assert view.rows[3][3] == "0001"
    assert view.number == 4


# ---- Context and templates ---------------------------------------------------------


def test_context_none_without_ledger(tmp_path):
    results = json.loads((make_run_dir(tmp_path / "old", legacy=True)
                          / "results.json").read_text())
    assert report_ledger.ledger_context(results, {}) is None
    html = render_html(build_context(results, {}), print_version=False)
    assert 'id="ledger"' not in html
    assert "The Hyperband ledger" not in html


def test_site_and_print_tables_share_numbers(tmp_path):
    results = json.loads((make_run_dir(tmp_path / "run") / "results.json").read_text())
    context = build_context(results, {})
    models = context["ledger"]["models"]
    assert [model["key"] for model in models] == ["cnn", "vit"]
    rounds = models[0]["rounds_table"].number
    assert models[0]["trials_table"].view.number == rounds + 1
    assert models[0]["trials_print_table"].number == rounds + 1
    assert models[1]["rounds_table"].number == rounds + 2

    site = render_html(context, print_version=False)
    assert '<section id="ledger">' in site
    assert f'<table id="table-{rounds + 1}" class="sortable">' in site
    assert f"Table {rounds}.</span> Rounds of the CNN search" in site
    assert f"Table {rounds + 1}.</span> Every trial of the CNN search" in site
    assert "<script>" in site
    assert '<li><a href="#ledger">The Hyperband ledger</a></li>' in site

    printed = render_html(context, print_version=True)
    assert f"Table {rounds}.</span> Rounds of the CNN search" in printed
    assert f"Table {rounds + 1}.</span> Every trial of the CNN search" in printed
    assert "<th>Hyperparameters</th>" in printed
    assert "<script>" not in printed


def test_print_trials_join_hyperparameters(searched):
    ledger = build_ledger(searched)
    site = report_ledger.trials_table(MODEL, ledger, 4, "caption", "ledger_trials_cnn").view
    printed = report_ledger.trials_print_table(MODEL, ledger, "ledger_trials_cnn")
    varying = len(site.headers) - len(printed.headers) + 1
    assert printed.headers[-1] == "Hyperparameters"
    assert len(printed.rows) == len(site.rows)
    for site_row, printed_row in zip(site.rows, printed.rows):
        assert printed_row[:-1] == site_row[:-varying]
        for header, value in zip(site.headers[-varying:], site_row[-varying:]):
            assert f"{header.lower()} {value}" in printed_row[-1]


# ---- Command line -----------------------------------------------------------------------


def test_search_budget_option():
    assert parse_args(["--search-budget", "2.5"]).search_budget == 2.5
    assert parse_args([]).search_budget is None
    for text in ("0", "-3", "nan", "inf", "ten"):
        with pytest.raises(argparse.ArgumentTypeError, match="positive number of minutes"):
            budget_minutes(text)


@pytest.fixture
def distributed(tmp_path) -> Path:
    """Trial 0001 ran on w1, which was lost; w2 reran it. Only w2's run and guards count."""
    trials = [_trial("0000", 0, 0, 0, 3, score=0.30),
              _trial("0001", 0, 0, 0, 3, score=0.40, rate=2e-3)]
    folder = _write_folder(tmp_path / "cnn", trials)
    lost_run = {**_run("0001", 9.0, [0.1]), "tuner_id": "w1", "finished": 100.0}
    files = {
        "trial_runs.w1.jsonl": [{**_run("0000", 2.0, [0.30]), "tuner_id": "w1",
                                 "finished": 50.0}, lost_run],
        "trial_runs.w2.jsonl": [{**_run("0001", 3.0, [0.2, 0.4]), "tuner_id": "w2",
                                 "finished": 200.0}],
        "guard_events.w1.jsonl": [{**_guard("0001", "val_loss_patience", 1), "tuner_id": "w1"}],
    }
    for name, records in files.items():
        (folder / name).write_text("".join(json.dumps(record) + "\n" for record in records))
    (folder / "worker_events.jsonl").write_text(json.dumps(
        {"trial_id": "0001", "tuner_id": "w1", "action": "rerun", "losses": 1}) + "\n")
    return folder


def test_distributed_ledger_keeps_the_rerun(distributed):
    ledger = build_ledger(distributed)
    rerun = ledger["trials"][1]
    assert (rerun["tuner_id"], rerun["seconds"], rerun["epochs_trained"]) == ("w2", 3.0, 2)
    assert rerun["guards"] == []
    assert [event["tuner_id"] for event in rerun["lost_workers"]] == ["w1"]
    assert ledger["trials"][0]["lost_workers"] == []


def test_distributed_ledger_totals(distributed):
    totals = build_ledger(distributed)["totals"]
    assert totals["workers"] == ["w1", "w2"]
    assert (totals["rerun_after_lost_worker"], totals["failed_after_lost_worker"]) == (1, 0)
    assert totals["seconds"] == 5.0


def test_workers_sentence_names_counts_and_the_rerun(distributed):
    text = report_ledger.workers_sentence(build_ledger(distributed))
    assert text.startswith("2 worker processes ran the trials for a chief: w1 ran 1 trial "
                           "and w2 ran 1 trial.")
    assert "Worker w1 stopped sending heartbeats during trial 0001, so the trial was run " \
        "again by w2." in text


def test_one_process_search_has_no_workers_sentence(searched):
    assert report_ledger.workers_sentence(build_ledger(searched)) is None
