"""The Hyperband ledger section: its facts, sentences, tables and template context.

Reads `models.<key>.search.ledger` from results.json, which study.ledger
builds from the tuner's own trial records. A run folder made before the
ledger existed has none, so `ledger_context` returns None and the
templates leave the section out. Every sentence states counts taken from
the ledger, and comparisons use the values as the report prints them.
"""

from __future__ import annotations

from dataclasses import dataclass

from report.formatting import (
    format_accuracy,
    format_count,
    format_seconds,
    format_value,
    humanize_key,
    join_words,
)
from report.layout import ledger_hyperparameters_key
from report.tables import TableView, model_items

GUARD_NAMES = {  # guard event names (study.search) as the report prints them
    "val_loss_patience": "validation-loss patience",
    "not_learning": "not learning",
    "time_limit": "trial time limit",
    "search_budget": "search budget",
    "nan_loss": "NaN loss",
}
OUTCOME_NAMES = {
    "promoted": "promoted",
    "final": "last round",
    "dropped": "not promoted",
    "failed": "failed",
    "interrupted": "not finished",
}


@dataclass(frozen=True)
class SortableTable:
    """A table the site sorts by a click on a column header, with each cell's sort key."""

    view: TableView
    sort_keys: list[list[str]]  # per cell: a number or text to sort by; "" sorts last


def model_ledgers(results: dict) -> list[tuple[str, dict, dict]]:
    """Return (key, model, ledger) for each model whose search recorded a ledger."""
    return [(key, model, model["search"]["ledger"]) for key, model in model_items(results)
            if (model.get("search") or {}).get("ledger")]


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """Write a count with its noun: "1 trial", "3 trials", "0 trials"."""
    word = noun if count == 1 else (plural or noun + "s")
    return f"{format_count(count)} {word}"


def _the(model: dict) -> str:
    return f"the {model['label']}"


def guard_name(guard: str) -> str:
    return GUARD_NAMES.get(guard, humanize_key(guard))


# ---- Facts ----------------------------------------------------------------------


def scored_trials(ledger: dict) -> list[dict]:
    """Return the completed trials with a validation accuracy, in the order they ran."""
    return [trial for trial in ledger["trials"]
            if trial["status"] == "COMPLETED" and trial["score"] is not None]


def best_trial(ledger: dict) -> dict | None:
    """Return the trial with the highest score (the first of any tie), as keras-tuner ranks them."""
    trials = scored_trials(ledger)
    return max(trials, key=lambda trial: trial["score"]) if trials else None


def best_epoch(trial: dict) -> int | None:
    """Return the epoch (counted from 1) at which a trial reached its score, when recorded."""
    values = [value for value in trial.get("val_accuracy") or [] if value is not None]
    if not values:
        return None
    offset = trial["val_accuracy"].index(max(values))
    return trial["initial_epoch"] + offset + 1


def _trial_epochs(trial: dict) -> tuple[int, list[float | None]]:
    # Epochs a trial trained and the validation accuracy after each. A
    # completed trial without a run record counts its planned epochs, with its
    # score at the end; any other trial without one counts none.
    if trial["epochs_trained"] is not None:
        return trial["epochs_trained"], list(trial.get("val_accuracy") or [])
    if trial["status"] != "COMPLETED":
        return 0, []
    planned = max(0, (trial["target_epochs"] or 0) - trial["initial_epoch"])
    return planned, [None] * max(planned - 1, 0) + ([trial["score"]] if planned else [])


def best_so_far(ledger: dict) -> tuple[list[int], list[float | None]]:
    """Return the search's best validation accuracy after every epoch trained, in run order.

    The first list counts the epochs trained by all trials so far, the
    second gives the highest validation accuracy that any completed trial
    had reached by then (None before the first). Epochs of failed trials
    count, but their accuracies do not, as keras-tuner discards them.

    >>> best_so_far({"trials": [
    ...     {"status": "COMPLETED", "score": 0.5, "epochs_trained": 2, "initial_epoch": 0,
    ...      "target_epochs": 2, "val_accuracy": [0.5, 0.4]},
    ...     {"status": "FAILED", "score": None, "epochs_trained": 1, "initial_epoch": 0,
    ...      "target_epochs": 2, "val_accuracy": [0.9]}]})
    ([1, 2, 3], [0.5, 0.5, 0.5])
    """
    epochs, best, total, current = [], [], 0, None
    for trial in ledger["trials"]:
        trained, accuracies = _trial_epochs(trial)
        counts = trial["status"] == "COMPLETED" and trial["score"] is not None
        for index in range(trained):
            total += 1
            value = accuracies[index] if index < len(accuracies) else None
            if counts and value is not None and (current is None or value > current):
                current = value
            epochs.append(total)
            best.append(current)
    return epochs, best


def epochs_to_best(ledger: dict) -> tuple[int, int] | None:
    """Return (epochs trained when the final best was first reached, epochs in all)."""
    epochs, best = best_so_far(ledger)
    if not epochs or best[-1] is None:
        return None
    return epochs[best.index(best[-1])], epochs[-1]


def guard_counts(ledger: dict) -> dict[str, int]:
    """Count the trials each guard stopped early, in the order the guards first fired."""
    counts: dict[str, int] = {}
    for trial in ledger["trials"]:
        if trial.get("stopped_by"):
            counts[trial["stopped_by"]] = counts.get(trial["stopped_by"], 0) + 1
    return counts


def short_rounds(ledger: dict) -> list[dict]:
    """Return the planned rounds that ran fewer trials than the schedule gives them."""
    return [entry for entry in ledger["rounds"]
            if entry["planned_trials"] is not None and entry["trials"] < entry["planned_trials"]]


def varying_hyperparameters(ledger: dict) -> list[dict]:
    """Return the space entries whose value differs among the scored trials.

    Each entry has `name`, `kind` ('float', 'int', 'choice', 'boolean' or
    'fixed'), `log` and, for choices, `values`. A hyperparameter that the
    space does not describe is numeric when all its values are numbers.
    """
    trials = scored_trials(ledger)
    described = {entry["name"]: entry for entry in ledger.get("space") or []}
    names = list(described)
    for trial in trials:
        names += [name for name in trial["hyperparameters"] if name not in names]
    varying = []
    for name in names:
        values = [trial["hyperparameters"][name] for trial in trials
                  if name in trial["hyperparameters"]]
        if len({repr(value) for value in values}) < 2:
            continue
        entry = described.get(name)
        if entry is None:
            numeric = all(isinstance(value, (int, float)) and not isinstance(value, bool)
                          for value in values)
            entry = {"name": name, "kind": "float" if numeric else "choice", "log": False}
        varying.append(entry)
    return varying


# ---- Sentences ------------------------------------------------------------------


def schedule_sentence(model: dict, ledger: dict) -> str:
    """State what Hyperband's schedule plans and what the search ran of it."""
    totals = ledger["totals"]
    iterations = ledger["iterations"]
    plan = (f"For {_the(model)}, Hyperband with max_epochs {ledger['max_epochs']} and factor "
            f"{ledger['factor']} plans {counted(totals['planned_brackets'], 'bracket')} "
            f"({counted(iterations, 'iteration')}), "
            f"{counted(totals['planned_rounds'], 'round')} and "
            f"{counted(totals['planned_trials'], 'trial')} when no trial fails.")
    ran = (f"The search ran {counted(totals['trials'], 'trial')} in "
           f"{counted(totals['rounds'], 'round')} of {counted(totals['brackets'], 'bracket')}; "
           f"together they trained {counted(totals['epochs_trained'], 'epoch')} in "
           f"{format_seconds(totals['seconds'])} of trial wall time.")
    return f"{plan} {ran}"


def _were(count: int) -> str:
    return "was" if count == 1 else "were"


def outcome_sentence(ledger: dict) -> str:
    """Count the trials promoted, failed, stopped early by each guard and left unfinished."""
    totals = ledger["totals"]
    parts = [f"{format_count(totals['promoted'])} {_were(totals['promoted'])} promoted to "
             "the next round",
             f"{format_count(totals['failed'])} failed"]
    stops = guard_counts(ledger)
    stopped = f"{format_count(totals['stopped_by_guard'])} {_were(totals['stopped_by_guard'])} "
    stopped += "stopped early by a guard"
    if stops:
        stopped += " (" + join_words([f"{format_count(count)} by {guard_name(guard)}"
                                      for guard, count in stops.items()]) + ")"
    parts.append(stopped)
    if totals["interrupted"]:
        parts.append(f"{format_count(totals['interrupted'])} {_were(totals['interrupted'])} "
                     "interrupted and never finished")
    return f"Of these trials, {join_words(parts)}."


def workers_sentence(ledger: dict) -> str | None:
    """Name the workers of a distributed search, their trial counts and any worker lost.

    Returns None for a search that one process ran.
    """
    workers = ledger["totals"].get("workers") or []
    if not workers:
        return None
    ran = [trial.get("tuner_id") for trial in ledger["trials"]]
    counts = [f"{worker} ran {counted(ran.count(worker), 'trial')}" for worker in workers]
    text = (f"{counted(len(workers), 'worker process', 'worker processes')} ran the trials "
            f"for a chief: {join_words(counts)}. The search time counts from the moment the "
            "chief began to serve trials, so it includes any wait for the first worker.")
    for trial in ledger["trials"]:
        for event in trial.get("lost_workers") or []:
            if event["action"] == "rerun":
                text += (f" Worker {event['tuner_id']} stopped sending heartbeats during "
                         f"trial {trial['trial_id']}, so the trial was run again")
                text += f" by {trial['tuner_id']}." if trial.get("tuner_id") else "."
            else:
                text += (f" Trial {trial['trial_id']} was marked failed after losing its "
                         f"worker {format_count(event['losses'])} times (the last was "
                         f"{event['tuner_id']}).")
    return text


def _round_name(entry: dict, iterations: int) -> str:
    name = f"round {entry['round']} of bracket {entry['bracket']}"
    return name + f" in iteration {entry['iteration'] + 1}" if iterations > 1 else name


def shortfall_sentence(ledger: dict) -> str | None:
    """Name the rounds that ran fewer trials than planned, or return None when none did.

    A search the budget cut short is left to `budget_sentence`. For a later
    round, the failed trials of the round before are given, because
    keras-tuner promotes only completed trials.
    """
    if ledger["budget"]["cut_short"]:
        return None
    short = short_rounds(ledger)
    if not short:
        return None
    by_key = {(entry["iteration"], entry["bracket"], entry["round"]): entry
              for entry in ledger["rounds"]}
    described = []
    for entry in short:
        text = (f"{_round_name(entry, ledger['iterations'])} ran "
                f"{format_count(entry['trials'])} of {format_count(entry['planned_trials'])}")
        before = by_key.get((entry["iteration"], entry["bracket"], entry["round"] - 1))
        if before is not None and before["failed"]:
            text += (f", after {counted(before['failed'], 'failed trial')} in the round "
                     "before, since keras-tuner promotes only completed trials")
        described.append(text)
    noun = "round" if len(short) == 1 else "rounds"
    return f"Fewer trials than planned ran in {len(short)} {noun}: {'; '.join(described)}."


def budget_sentence(ledger: dict) -> str:
    """Say whether a wall-clock budget was set and whether it ended the search early."""
    budget, totals = ledger["budget"], ledger["totals"]
    minutes = budget.get("minutes")
    if minutes is None:
        return "No wall-clock budget (--search-budget) was set for this search."
    counted_text = format_seconds(budget.get("seconds_counted"))
    if not budget["cut_short"]:
        return (f"The search finished within its wall-clock budget of {minutes:g} min, "
                f"after {counted_text} counted.")
    text = (f"The wall-clock budget of {minutes:g} min ran out after {counted_text} counted, "
            f"so the budget cut the search short")
    stopped = budget.get("stopped_trial_id")
    if stopped is not None:
        trial = next((item for item in ledger["trials"] if item["trial_id"] == stopped), None)
        epoch = f" in epoch {trial['final_epoch']}" if trial and trial["final_epoch"] else ""
        text += f": it stopped trial {stopped}{epoch}"
    text += (f". The search ran {format_count(totals['trials'])} of the "
             f"{format_count(totals['planned_trials'])} trials that the schedule plans when no "
             "trial fails, and the best trial so far was refit.")
    return text


def budget_summary(results: dict) -> str | None:
    """Name the searches a wall-clock budget cut short, for the abstract and conclusions."""
    cut = []
    for model in results["models"].values():
        ledger = (model.get("search") or {}).get("ledger")
        if ledger and ledger["budget"]["cut_short"]:
            totals = ledger["totals"]
            cut.append(f"{_the(model)} after {format_count(totals['trials'])} of "
                       f"{format_count(totals['planned_trials'])} planned trials")
    if not cut:
        return None
    return (f"The wall-clock search budget (--search-budget) cut the search of "
            f"{join_words(cut)}, so the refit models come from a shortened search.")


def best_trial_sentence(model: dict, ledger: dict) -> str | None:
    """Describe the best trial: its bracket and round, epochs, score and any early stop."""
    trial = best_trial(ledger)
    if trial is None:
        return None
    span = f"from epoch {trial['initial_epoch']} to {trial['final_epoch']}" if (
        trial["final_epoch"] is not None) else f"up to epoch {trial['target_epochs']}"
    text = (f"The best trial of {_the(model)}, {trial['trial_id']}, ran in round "
            f"{trial['round']} of bracket {trial['bracket']}, trained {span}, and reached a "
            f"validation accuracy of {format_accuracy(trial['score'])}")
    epoch = best_epoch(trial)
    text += f" at epoch {epoch}." if epoch is not None else "."
    if trial.get("stopped_by"):
        text += f" The {guard_name(trial['stopped_by'])} guard stopped it early."
    return text


def ledger_sentences(model: dict, ledger: dict) -> list[str]:
    """Collect the ledger's sentences for one model, in reading order."""
    sentences = [schedule_sentence(model, ledger), outcome_sentence(ledger)]
    workers = workers_sentence(ledger)
    if workers:
        sentences.append(workers)
    shortfall = shortfall_sentence(ledger)
    if shortfall:
        sentences.append(shortfall)
    sentences.append(budget_sentence(ledger))
    best = best_trial_sentence(model, ledger)
    if best:
        sentences.append(best)
    return sentences


# ---- Tables ---------------------------------------------------------------------


def _trials_cell(entry: dict) -> str:
    if entry["planned_trials"] is None:
        return format_count(entry["trials"])
    return f"{format_count(entry['trials'])} of {format_count(entry['planned_trials'])}"


def rounds_table(results: dict, model_key: str) -> TableView:
    """Summarise a model's search per planned round, with a total row (the PDF's table)."""
    ledger = results["models"][model_key]["search"]["ledger"]
    iterations = ledger["iterations"] > 1
    rows = []
    for entry in ledger["rounds"]:
        epochs = (f"{entry['initial_epoch']} to {entry['epochs']}"
                  if entry["initial_epoch"] is not None else str(entry["epochs"]))
        row = [str(entry["bracket"]), str(entry["round"]), epochs, _trials_cell(entry),
               format_count(entry["promoted"]), format_count(entry["failed"]),
               format_count(entry["stopped_by_guard"]), format_accuracy(entry["best_score"]),
               format_seconds(entry["seconds"])]
        rows.append(([str(entry["iteration"] + 1)] if iterations else []) + row)
    totals = ledger["totals"]
    best = best_trial(ledger)
    total = ["All", "", "", f"{format_count(totals['trials'])} of "
             f"{format_count(totals['planned_trials'])}", format_count(totals["promoted"]),
             format_count(totals["failed"]), format_count(totals["stopped_by_guard"]),
             format_accuracy(best["score"] if best else None), format_seconds(totals["seconds"])]
    rows.append(([""] if iterations else []) + total)
    headers = ["Bracket", "Round", "Epochs", "Trials", "Promoted", "Failed", "Stopped early",
               "Best validation accuracy", "Trial wall time"]
    numeric = [True, True, True, True, True, True, True, True, True]
    return TableView(
        key=f"ledger_rounds_{model_key}",
        headers=(["Iteration"] if iterations else []) + headers,
        rows=rows,
        numeric=([True] if iterations else []) + numeric,
    )


def _header(name: str) -> str:
    text = humanize_key(name)
    return text[:1].upper() + text[1:]


def _number_key(value: float | int | None) -> str:
    return "" if value is None else repr(float(value))


def _hyperparameter_cell(value: object) -> tuple[str, str]:
    # (shown text, sort key): numbers sort by value, everything else as text.
    if value is None:
        return "n/a", ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return format_value(value), _number_key(value)
    text = format_value(value)
    return text, text


def trials_table(model: dict, ledger: dict, number: int, caption: str,
                 key: str) -> SortableTable:
    """List every trial with its place in the schedule, outcome, score, time, worker (in a
    distributed search) and varying hyperparameters (the site's table, sortable by any
    column)."""
    varying = varying_hyperparameters(ledger)
    distributed = bool(ledger["totals"].get("workers"))  # a Worker column names who ran each
    headers = ["Trial", "Bracket", "Round", "Continues", "Epochs", "Trained", "Outcome",
               "Stopped by", "Validation accuracy", "Wall time"]
    numeric = [True, True, True, True, True, True, False, False, True, True]
    rows, keys = [], []
    for trial in ledger["trials"]:
        guard = trial.get("stopped_by")
        cells = [
            (trial["trial_id"], _number_key(int(trial["trial_id"]))
             if trial["trial_id"].isdigit() else trial["trial_id"]),
            (str(trial["bracket"]), _number_key(trial["bracket"])),
            (str(trial["round"]), _number_key(trial["round"])),
            (trial["parent_trial_id"] or "", trial["parent_trial_id"] or ""),
            (f"{trial['initial_epoch']} to {trial['target_epochs']}",
             _number_key(trial["target_epochs"])),
            (format_count(trial["epochs_trained"], "n/a"), _number_key(trial["epochs_trained"])),
            (OUTCOME_NAMES.get(trial["outcome"], trial["outcome"]), trial["outcome"]),
            (guard_name(guard) if guard else "", guard_name(guard) if guard else ""),
            (format_accuracy(trial["score"]), _number_key(trial["score"])),
            (format_seconds(trial["seconds"]), _number_key(trial["seconds"])),
        ]
        if distributed:
            worker = trial.get("tuner_id") or ""
            cells.append((worker, worker))
        cells += [_hyperparameter_cell(trial["hyperparameters"].get(entry["name"]))
                  for entry in varying]
        rows.append([text for text, _ in cells])
        keys.append([sort for _, sort in cells])
    if distributed:
        headers.append("Worker")
        numeric.append(False)
    headers += [_header(entry["name"]) for entry in varying]
    numeric += [entry["kind"] in ("float", "int") for entry in varying]
    view = TableView(key=key, headers=headers, rows=rows, numeric=numeric, number=number,
                     caption=caption)
    return SortableTable(view, keys)


def trials_print_table(model: dict, ledger: dict, key: str) -> TableView:
    """Return the trial table for print: the site's columns, with the hyperparameters in one.

    A page has no room for one column per varying hyperparameter, so each
    row lists them as "name value" pairs in its last cell.
    """
    varying = [entry["name"] for entry in varying_hyperparameters(ledger)]
    site = trials_table(model, ledger, 0, "", key).view
    fixed = len(site.headers) - len(varying)
    rows = [row[:fixed] + ["; ".join(f"{_header(name).lower()} {value}"
                                     for name, value in zip(varying, row[fixed:]))]
            for row in site.rows]
    return TableView(key=key, headers=site.headers[:fixed] + ["Hyperparameters"], rows=rows,
                     numeric=site.numeric[:fixed] + [False])


def table_captions(results: dict) -> dict[str, str]:
    """Return the caption of each model's rounds and trials tables, keyed like the tables."""
    captions = {}
    for key, model, ledger in model_ledgers(results):
        captions[f"ledger_trials_{key}"] = _trials_caption(model)
        captions[f"ledger_rounds_{key}"] = (
            f"Rounds of the {model['label']} search, one row per round Hyperband plans. "
            "Epochs gives the epoch its trials continue from and the epoch they train up to; "
            "Trials counts those run against those planned; wall time sums the trials' times.")
    return captions


def _trials_caption(model: dict) -> str:
    return (f"Every trial of the {model['label']} search, in the order they ran. Continues "
            "names the trial whose weights a promoted trial trains on from; Trained counts "
            "the epochs it trained, fewer than planned when a guard stopped it or it failed. "
            "Each row ends with the hyperparameters that differ between trials.")


# ---- Figures --------------------------------------------------------------------


def figure_texts(results: dict) -> dict[str, tuple[str, str]]:
    """Return (caption, alt text) of each ledger figure, keyed like report.layout's keys."""
    ledgers = model_ledgers(results)
    if not ledgers:
        return {}
    halving_facts = "; ".join([
        f"the {model['label']} search ran {counted(ledger['totals']['trials'], 'trial')} and "
        f"promoted {format_count(ledger['totals']['promoted'])}"
        for _, model, ledger in ledgers])
    texts = {
        "ledger_halving": (
            "Successive halving in each search: one line per trial, from the epoch it starts "
            "at to the epoch it stopped at, coloured by bracket, with a faint line on to the "
            "epoch it was planned to reach. A dotted line joins a promoted trial to its "
            "continuation in the next round. A cross marks a failed trial, an open diamond a "
            f"trial a guard stopped early, and a star the best trial. "
            f"{halving_facts[:1].upper() + halving_facts[1:]}.",
            "Timeline of every Hyperband trial per model: epochs on the horizontal axis, one "
            "row per trial.",
        ),
        "ledger_best_so_far": (
            "Best validation accuracy of the completed trials so far, against the epochs "
            "trained by all trials in the order they ran. " + _best_so_far_facts(ledgers)
            + _unrecorded_fact(ledgers),
            "Step chart of the best validation accuracy so far against cumulative epochs, "
            "one line per model.",
        ),
    }
    for key, model, ledger in ledgers:
        texts[ledger_hyperparameters_key(key)] = (
            f"Validation accuracy of the {format_count(len(scored_trials(ledger)))} completed "
            f"trials of the {model['label']} search against each hyperparameter that differs "
            "between them. Hyperparameters searched on a log scale have a log axis. Colour "
            "gives the epoch each trial trained up to: scores reached after different numbers "
            "of epochs are not directly comparable.",
            f"Scatter and strip plots of {model['label']} trial scores against each "
            "hyperparameter.",
        )
    return texts


def _unrecorded_fact(ledgers: list[tuple[str, dict, dict]]) -> str:
    count = sum(ledger["totals"].get("unrecorded_trials", 0) for _, _, ledger in ledgers)
    if not count:
        return ""
    return (f" {counted(count, 'completed trial')} without a record of the epochs "
            f"{'it' if count == 1 else 'they'} trained {_were(count)} counted with "
            "the epochs planned for them.")


def _best_so_far_facts(ledgers: list[tuple[str, dict, dict]]) -> str:
    facts = []
    for _, model, ledger in ledgers:
        reached = epochs_to_best(ledger)
        best = best_trial(ledger)
        if reached is None or best is None:
            continue
        facts.append(f"{_the(model)} reached its best, {format_accuracy(best['score'])}, after "
                     f"{format_count(reached[0])} of its {counted(reached[1], 'epoch')}")
    if not facts:
        return ""
    text = join_words(facts)
    return text[:1].upper() + text[1:] + "."


# ---- Context --------------------------------------------------------------------


def ledger_context(results: dict, tables: dict[str, TableView]) -> dict | None:
    """Build the ledger section's context, or return None when no model has a ledger.

    `tables` are the report's numbered tables. Both media print each model's
    rounds table and trial table under the same numbers: the site's trial
    table sorts by any column, and the PDF's lists the hyperparameters in
    one column.
    """
    ledgers = model_ledgers(results)
    if not ledgers:
        return None
    models = []
    for key, model, ledger in ledgers:
        rounds = tables[f"ledger_rounds_{key}"]
        models.append({
            "key": key,
            "label": model["label"],
            "sentences": ledger_sentences(model, ledger),
            "rounds_table": rounds,
            "trials_table": trials_table(model, ledger, tables[f"ledger_trials_{key}"].number,
                                         _trials_caption(model), f"ledger_trials_{key}"),
            "trials_print_table": tables[f"ledger_trials_{key}"],
            "hyperparameters_figure": ledger_hyperparameters_key(key),
        })
    return {"models": models}
