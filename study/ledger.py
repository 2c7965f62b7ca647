"""Build the Hyperband ledger of one search from the files in its tuner folder.

The ledger records what Hyperband did in each bracket and round. For every
trial it gives the epochs trained, whether the trial was promoted to the
next round, failed or was stopped early by a guard, and its wall time.
It reads only JSON files, never keras-tuner or TensorFlow, so it can be
built and tested without training.

Files read in `<run_dir>/search/<name>/`:
- `oracle.json`: keras-tuner 1.4.8's HyperbandOracle state, for
  max_epochs, factor, hyperband_iterations and the search space;
- `trial_*/trial.json`: each trial's status, score and `tuner/*` values;
- `guard_events.jsonl`: one line per guard that stopped or failed a trial;
- `trial_runs.jsonl`: one line per finished trial with its wall seconds,
  the epochs it trained and its validation accuracy after each of them;
- `worker_events.jsonl`: in a distributed search, one line per worker the
  chief declared lost while it ran a trial, and whether that trial was
  rerun or marked failed.

study.search writes these beside keras-tuner's own files. In a distributed
search each worker keeps its own guard and run files
(`trial_runs.<worker id>.jsonl`); the ledger reads them all.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

log = logging.getLogger(__name__)

ORACLE_FILE = "oracle.json"
GUARD_FILE = "guard_events.jsonl"
RUNS_FILE = "trial_runs.jsonl"
WORKER_EVENTS_FILE = "worker_events.jsonl"
SINGLE_TUNER = "tuner0"  # keras-tuner's id of the tuner of a one-process search
BUDGET_GUARD = "search_budget"  # the guard event of a trial stopped by --search-budget
NAN_GUARD = "nan_loss"  # the one guard that fails a trial instead of stopping it

FAILED_STATUSES = ("FAILED", "INVALID")
UNFINISHED_STATUSES = ("RUNNING", "IDLE")


class PlannedRound(NamedTuple):
    """One round of one Hyperband bracket, as keras-tuner 1.4.8 schedules it."""

    bracket: int  # keras-tuner's number: the highest starts the most trials
    round: int
    trials: int  # trials the round runs when none fails
    epochs: int  # epoch each of its trials trains up to
    initial_epoch: int  # epoch its trials continue from (0 in round 0)


def hyperband_rounds(max_epochs: int, factor: int) -> Iterator[PlannedRound]:
    """Yield the rounds of one Hyperband iteration in the order keras-tuner 1.4.8 runs them.

    With E = ceil(1 + log_factor(max_epochs)), round r of bracket s (s from
    s_max down to 0) runs ceil(E / (s + 1) * factor**(s - r)) trials, each
    trained to ceil(max_epochs / factor**(s - r)) epochs. A round r > 0
    trial continues its parent from the epochs of round r - 1.

    >>> [tuple(round) for round in hyperband_rounds(3, 3)]
    [(1, 0, 3, 1, 0), (1, 1, 1, 3, 1), (0, 0, 2, 3, 0)]
    """
    brackets, epochs = 0, float(max_epochs)
    while epochs >= 1:
        epochs /= factor
        brackets += 1
    end_size = math.ceil(1 + math.log(max_epochs, factor))
    for bracket in range(brackets - 1, -1, -1):
        reached = 0
        for round_num in range(bracket + 1):
            trials = math.ceil(end_size / (bracket + 1) * factor ** (bracket - round_num))
            target = math.ceil(max_epochs / factor ** (bracket - round_num))
            yield PlannedRound(bracket, round_num, trials, target, reached)
            reached = target


def read_json_lines(path: Path) -> list[dict]:
    """Read a JSON-lines file, skipping a line that a killed process cut short."""
    records = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                log.warning("skipping an incomplete line in %s: %r", path, line[:80])
    return records


def tuner_file(tuner_dir: Path, name: str, tuner_id: str) -> Path:
    """Return the path of one tuner's copy of a JSON-lines file (GUARD_FILE, RUNS_FILE).

    >>> tuner_file(Path("s"), RUNS_FILE, "tuner0").name, tuner_file(Path("s"), RUNS_FILE, "w1").name
    ('trial_runs.jsonl', 'trial_runs.w1.jsonl')
    """
    if tuner_id == SINGLE_TUNER:
        return Path(tuner_dir) / name
    stem, suffix = name.rsplit(".", 1)
    return Path(tuner_dir) / f"{stem}.{tuner_id}.{suffix}"


def read_tuner_lines(tuner_dir: Path, name: str) -> list[dict]:
    """Read every tuner's copy of a JSON-lines file, oldest record first.

    Records that carry their `finished` time are ordered by it, so the last
    record of a trial run twice (once by a worker that was then lost) is the
    one that counts.
    """
    stem, suffix = name.rsplit(".", 1)
    paths = sorted(Path(tuner_dir).glob(f"{stem}*.{suffix}"))
    records = [record for path in paths for record in read_json_lines(path)]
    return sorted(records, key=lambda record: record.get("finished") or 0.0)


def read_trials(tuner_dir: Path) -> list[dict]:
    """Read every `trial_*/trial.json` of a tuner folder, sorted by trial id."""
    trials = []
    for path in sorted(Path(tuner_dir).glob("trial_*/trial.json")):
        try:
            trials.append(json.loads(path.read_text()))
        except json.JSONDecodeError as error:
            raise ValueError(f"{path} is not valid JSON ({error}); the search folder is "
                             "damaged, so rerun the search with --restart") from error
    return sorted(trials, key=lambda trial: trial["trial_id"])


def search_space(oracle: dict) -> list[dict]:
    """Describe each hyperparameter of the oracle's space: name, kind, log scale, choices."""
    kinds = {"Float": "float", "Int": "int", "Choice": "choice", "Boolean": "boolean",
             "Fixed": "fixed"}
    space = []
    for entry in oracle.get("hyperparameters", {}).get("space", []):
        config = entry["config"]
        if config["name"].startswith("tuner/"):
            continue
        item = {"name": config["name"], "kind": kinds.get(entry["class_name"], "other"),
                "log": config.get("sampling") == "log"}
        if "values" in config:
            item["values"] = list(config["values"])
        space.append(item)
    return space


def _trial_row(trial: dict, runs: dict[str, dict], guards: dict[str, list[str]]) -> dict:
    values = trial["hyperparameters"]["values"]
    trial_id = trial["trial_id"]
    run = runs.get(trial_id, {})
    initial = int(values.get("tuner/initial_epoch", 0))
    trained = run.get("epochs_trained")
    return {
        "trial_id": trial_id,
        "bracket": values.get("tuner/bracket"),
        "round": values.get("tuner/round"),
        "status": trial["status"],
        "score": trial.get("score"),
        "parent_trial_id": values.get("tuner/trial_id"),
        "initial_epoch": initial,
        "target_epochs": values.get("tuner/epochs"),
        "epochs_trained": trained,
        "final_epoch": None if trained is None else initial + trained,
        "val_accuracy": run.get("val_accuracy", []),
        "seconds": run.get("seconds"),
        "tuner_id": run.get("tuner_id"),
        "guards": guards.get(trial_id, []),
        "hyperparameters": {key: value for key, value in values.items()
                            if not key.startswith("tuner/")},
    }


def _assign_iterations(rows: list[dict], round0_sizes: dict[int, int]) -> None:
    """Number each trial's Hyperband iteration from the order the trials were created.

    keras-tuner does not record the iteration. Round-0 trials of one
    iteration run bracket by bracket from the highest number down, so a new
    iteration starts when a round-0 trial's bracket is above the previous
    one's, or equal to it after that bracket's round 0 is full. A promoted
    trial belongs to its parent's iteration and bracket.
    """
    by_id = {row["trial_id"]: row for row in rows}
    iteration, previous, filled = 0, None, 0
    for row in rows:
        if row["parent_trial_id"]:
            parent = by_id.get(row["parent_trial_id"])
            row["iteration"] = parent["iteration"] if parent else iteration
            if parent:
                row["bracket"] = parent["bracket"]
            continue
        bracket = row["bracket"]
        starts_iteration = previous is not None and (
            bracket > previous
            or (bracket == previous and filled >= round0_sizes.get(bracket, math.inf)))
        if starts_iteration:
            iteration += 1
        filled = filled + 1 if bracket == previous and not starts_iteration else 1
        previous = bracket
        row["iteration"] = iteration


def _outcome(row: dict, children: dict[str, str]) -> str:
    # One word per trial: failed, interrupted, promoted, final or dropped.
    if row["status"] in FAILED_STATUSES:
        return "failed"
    if row["status"] in UNFINISHED_STATUSES:
        return "interrupted"
    if row["trial_id"] in children:
        return "promoted"
    if row["round"] == row["bracket"]:
        return "final"  # the bracket's last round, trained to max_epochs
    return "dropped"


def stopped_by(row: dict) -> str | None:
    """Return the guard that stopped a trial early, or None (a NaN loss fails it instead)."""
    stops = [guard for guard in row["guards"] if guard != NAN_GUARD]
    return stops[0] if stops else None


def _round_summary(planned: PlannedRound | None, key: tuple[int, int, int],
                   rows: list[dict]) -> dict:
    scores = [row["score"] for row in rows if row["status"] == "COMPLETED"
              and row["score"] is not None and math.isfinite(row["score"])]
    seconds = [row["seconds"] for row in rows if row["seconds"] is not None]
    epochs = [row["epochs_trained"] for row in rows if row["epochs_trained"] is not None]
    iteration, bracket, round_num = key
    return {
        "iteration": iteration,
        "bracket": bracket,
        "round": round_num,
        "planned_trials": planned.trials if planned else None,
        "trials": len(rows),
        "epochs": planned.epochs if planned else max(
            (row["target_epochs"] or 0 for row in rows), default=None),
        "initial_epoch": planned.initial_epoch if planned else None,
        "promoted": sum(row["outcome"] == "promoted" for row in rows),
        "failed": sum(row["outcome"] == "failed" for row in rows),
        "stopped_by_guard": sum(stopped_by(row) is not None for row in rows),
        "best_score": max(scores) if scores else None,
        "epochs_trained": sum(epochs),
        "seconds": sum(seconds) if seconds else None,
    }


def _rounds(rows: list[dict], schedule: list[PlannedRound], iterations: int) -> list[dict]:
    """Summarise every planned round, run or not, and any round run outside the plan."""
    grouped: dict[tuple[int, int, int], list[dict]] = {}
    for row in rows:
        grouped.setdefault((row["iteration"], row["bracket"], row["round"]), []).append(row)
    planned = {(iteration, step.bracket, step.round): step
               for iteration in range(iterations) for step in schedule}
    keys = list(planned) + [key for key in grouped if key not in planned]
    return [_round_summary(planned.get(key), key, grouped.get(key, [])) for key in keys]


def _totals(rows: list[dict], rounds: list[dict]) -> dict:
    ran = [entry for entry in rounds if entry["trials"]]
    planned = [entry for entry in rounds if entry["planned_trials"] is not None]
    seconds = [row["seconds"] for row in rows if row["seconds"] is not None]
    return {
        "trials": len(rows),
        "planned_trials": sum(entry["planned_trials"] for entry in planned),
        "brackets": len({(entry["iteration"], entry["bracket"]) for entry in ran}),
        "planned_brackets": len({(entry["iteration"], entry["bracket"]) for entry in planned}),
        "rounds": len(ran),
        "planned_rounds": len(planned),
        "completed": sum(row["status"] == "COMPLETED" for row in rows),
        "promoted": sum(row["outcome"] == "promoted" for row in rows),
        "failed": sum(row["outcome"] == "failed" for row in rows),
        "interrupted": sum(row["outcome"] == "interrupted" for row in rows),
        "stopped_by_guard": sum(stopped_by(row) is not None for row in rows),
        "epochs_trained": sum(row["epochs_trained"] or 0 for row in rows),
        # Completed trials without a run record (from a search begun before
        # trial_runs.jsonl existed): their epochs and times are unknown.
        "unrecorded_trials": sum(row["epochs_trained"] is None and row["status"] == "COMPLETED"
                                 for row in rows),
        "seconds": sum(seconds),
        "workers": sorted({row["tuner_id"] for row in rows
                           if row["tuner_id"] not in (None, SINGLE_TUNER)}),
        "rerun_after_lost_worker": sum(any(event["action"] == "rerun"
                                           for event in row["lost_workers"]) for row in rows),
        "failed_after_lost_worker": sum(any(event["action"] == "failed"
                                            for event in row["lost_workers"]) for row in rows),
    }


def no_budget() -> dict:
    """Return the budget entry of a search run without --search-budget."""
    return {"minutes": None, "cut_short": False, "seconds_counted": None,
            "stopped_trial_id": None}


def build_ledger(tuner_dir: Path, budget: dict | None = None) -> dict:
    """Build the ledger of the search whose keras-tuner files are in `tuner_dir`.

    `budget` is the wall-clock budget's outcome from study.search (minutes,
    cut_short, seconds_counted); None means no budget was set. Returns the
    dict of `ledger_from_records`. Raises FileNotFoundError when the folder
    has no oracle.json, and ValueError when a trial.json cannot be read.
    """
    tuner_dir = Path(tuner_dir)
    oracle_path = tuner_dir / ORACLE_FILE
    if not oracle_path.is_file():
        raise FileNotFoundError(f"no {ORACLE_FILE} in {tuner_dir}: it is not a keras-tuner "
                                "search folder, or its search never started")
    return ledger_from_records(
        json.loads(oracle_path.read_text()), read_trials(tuner_dir),
        read_tuner_lines(tuner_dir, GUARD_FILE), read_tuner_lines(tuner_dir, RUNS_FILE),
        budget, read_json_lines(tuner_dir / WORKER_EVENTS_FILE))


def _events_of_final_runs(events: list[dict], by_trial: dict[str, dict]) -> list[dict]:
    """Return the guard events without those of a trial's runs that do not count.

    A trial run twice (its first worker was lost) counts the run recorded
    last; the events of the other tuner's run are left out.
    """
    final = []
    for event in events:
        counted = by_trial.get(event["trial_id"], {}).get("tuner_id")
        tuner = event.get("tuner_id")
        if tuner is None or counted is None or tuner == counted:
            final.append(event)
    return final


def ledger_from_records(oracle: dict, trials: list[dict], events: list[dict],
                        runs: list[dict], budget: dict | None = None,
                        lost_workers: list[dict] | None = None) -> dict:
    """Build a ledger from the parsed contents of a tuner folder's files.

    `oracle` is oracle.json, `trials` the trial.json contents in creation
    order, `events` the guard log, `runs` the trial run records (the last
    one of a trial counts) and `lost_workers` the chief's worker events.
    Returns a JSON-ready dict: the Hyperband settings, the search space, one
    entry per trial and one per planned round (and per round run outside the
    plan), totals, and the budget's outcome with the trial it stopped.
    """
    max_epochs, factor = int(oracle["max_epochs"]), int(oracle["factor"])
    iterations = int(oracle.get("hyperband_iterations") or 1)
    schedule = list(hyperband_rounds(max_epochs, factor))

    by_trial = {record["trial_id"]: record for record in runs}
    events = _events_of_final_runs(events, by_trial)
    guards: dict[str, list[str]] = {}
    for event in events:
        names = guards.setdefault(event["trial_id"], [])
        if event["guard"] not in names:
            names.append(event["guard"])
    rows = [_trial_row(trial, by_trial, guards) for trial in trials]
    for row in rows:
        row["lost_workers"] = [event for event in lost_workers or []
                               if event["trial_id"] == row["trial_id"]]

    _assign_iterations(rows, {step.bracket: step.trials for step in schedule
                              if step.round == 0})
    children = {row["parent_trial_id"]: row["trial_id"] for row in rows
                if row["parent_trial_id"]}
    for row in rows:
        row["outcome"] = _outcome(row, children)
        row["promoted_to"] = children.get(row["trial_id"])
        row["stopped_by"] = stopped_by(row)

    rounds = _rounds(rows, schedule, iterations)
    budget_entry = dict(budget) if budget else no_budget()
    budget_entry["stopped_trial_id"] = next(
        (event["trial_id"] for event in events if event["guard"] == BUDGET_GUARD), None)
    return {
        "max_epochs": max_epochs,
        "factor": factor,
        "iterations": iterations,
        "space": search_space(oracle),
        "trials": rows,
        "rounds": rounds,
        "totals": _totals(rows, rounds),
        "budget": budget_entry,
    }
