"""Build the report's tables as headers and formatted cells.

Each builder takes the parsed results.json and returns a `TableView` with
every cell already formatted, so the templates only loop. Numbers and
captions are set later by `narrative.build_context`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from report.formatting import (
    ACCURACY_DECIMALS,
    format_accuracy,
    format_count,
    format_percent,
    format_score,
    format_seconds,
    format_signed_points,
    format_timestamp,
    format_value,
    humanize_key,
    round_accuracy,
)
from report.spaces import space_rows


@dataclass(frozen=True)
class TableView:
    key: str
    headers: list[str]
    rows: list[list[str]]
    numeric: list[bool]  # per column: True right-aligns the cells
    groups: list[tuple[str, int]] = field(default_factory=list)  # (label, column span)
    number: int = 0
    caption: str = ""


def model_items(results: dict) -> list[tuple[str, dict]]:
    """Return (key, model) pairs in the order results.json lists them."""
    return list(results["models"].items())


def class_balance_table(results: dict) -> TableView:
    rows = [
        [entry["class"], format_count(entry["train_count"]),
         format_percent(entry["train_share"]), format_count(entry["test_count"]),
         format_percent(entry["test_share"])]
        for entry in results["exploration"]["class_balance"]
    ]
    return TableView(
        key="class_balance",
        headers=["Class", "Training images", "Training share", "Test images", "Test share"],
        rows=rows,
        numeric=[False, True, True, True, True],
    )


def pixel_channels_table(results: dict) -> TableView:
    rows = []
    for channel, stats in results["exploration"]["pixels"]["channels"].items():
        rows.append([
            channel.capitalize(), f"{stats['mean']:.1f}", f"{stats['std']:.1f}",
            format_percent(stats["zero_share"]), format_percent(stats["saturated_share"]),
        ])
    return TableView(
        key="pixel_channels",
        headers=["Channel", "Mean", "Standard deviation", "Share at 0", "Share at 255"],
        rows=rows,
        numeric=[False, True, True, True, True],
    )


def fourier_energy_table(results: dict) -> TableView:
    fourier = results["exploration"]["fourier"]
    rows = [
        [f"{width:g}", format_percent(low), format_percent(high)]
        for width, low, high in zip(fourier["filter_widths"], fourier["low_pass_energy_kept"],
                                    fourier["high_pass_energy_kept"])
    ]
    return TableView(
        key="fourier_energy",
        headers=["Width (cycles per pixel)", "Low-pass keeps", "High-pass keeps"],
        rows=rows,
        numeric=[True, True, True],
    )


def search_space(results: dict, model_key: str) -> dict:
    """Return the model's search space from the config, or {} when it is not recorded."""
    return results["config"].get(f"{model_key}_space") or {}


def search_space_table(results: dict, model_key: str) -> TableView:
    rows = space_rows(search_space(results, model_key))
    return TableView(
        key=f"search_space_{model_key}",
        headers=["Hyperparameter", "Searched values"],
        rows=rows,
        numeric=[False, False],
    )


# Config keys of the search and refit settings whose values have a unit that
# humanize_key cannot read from the name.
SETTING_LABELS = {
    "batch_size": "batch size (images)",
    "patience": "patience (epochs)",
    "not_learning_patience": "not learning patience (epochs)",
    "not_learning_min_delta": "not learning min delta (training accuracy gain per epoch)",
    "budget_minutes": "budget (min)",
}


def setting_label(name: str) -> str:
    """Return the row label of a search or refit setting, with its unit where it has one."""
    return SETTING_LABELS.get(name, humanize_key(name))


def _settings_table(results: dict, section: str, key: str) -> TableView:
    models = model_items(results)
    settings = {model_key: results["config"].get(model_key, {}).get(section, {})
                for model_key, _ in models}
    names: list[str] = []
    for values in settings.values():
        names.extend(name for name in values if name not in names)
    rows = []
    for name in names:
        cells = []
        for model_key, _ in models:
            value = settings[model_key].get(name)
            # An image count of None means the whole training sample.
            cells.append("all" if value is None and name.endswith("images")
                         else format_value(value))
        rows.append([setting_label(name)] + cells)
    return TableView(
        key=key,
        headers=["Setting"] + [model["label"] for _, model in models],
        rows=rows,
        numeric=[False] + [True] * len(models),
    )


def search_settings_table(results: dict) -> TableView:
    return _settings_table(results, "search", "search_settings")


def refit_settings_table(results: dict) -> TableView:
    return _settings_table(results, "refit", "refit_settings")


def search_outcome_table(results: dict) -> TableView:
    models = model_items(results)
    fields = [
        ("Trials", lambda m: format_count(m["search"].get("trials"), "n/a")),
        ("Completed", lambda m: format_count(m["search"].get("completed"), "n/a")),
        ("Failed", lambda m: format_count(m["search"].get("failed"), "n/a")),
        # Guard-stopped trials still report a score, so they count as completed.
        ("Completed but stopped early by a guard",
         lambda m: format_count(m["search"].get("stopped_by_guard"), "n/a")),
        ("Best trial", lambda m: str(m["search"].get("best_trial_id", "n/a"))),
        ("Best validation accuracy",
         lambda m: format_accuracy(m["search"].get("best_val_accuracy"))),
        ("Search time", lambda m: format_seconds(m["search"].get("seconds"))),
        ("Parameters of the best model", lambda m: format_count(m.get("parameters"), "n/a")),
    ]
    rows = [[name] + [cell(model) for _, model in models] for name, cell in fields]
    return TableView(
        key="search_outcome",
        headers=["Search outcome"] + [model["label"] for _, model in models],
        rows=rows,
        numeric=[False] + [True] * len(models),
    )


def best_hyperparameters_table(results: dict, model_key: str) -> TableView:
    chosen = results["models"][model_key]["best_hyperparameters"]
    return TableView(
        key=f"best_hyperparameters_{model_key}",
        headers=["Hyperparameter", "Chosen value"],
        rows=[[humanize_key(name), format_value(value)] for name, value in chosen.items()],
        numeric=[False, True],
    )


def refit_outcome_table(results: dict) -> TableView:
    models = model_items(results)
    fields = [
        ("Epochs run", lambda m: format_count(m["refit"]["epochs_run"], "n/a")),
        ("Best epoch", lambda m: format_count(m["refit"]["best_epoch"], "n/a")),
        ("Best validation accuracy",
         lambda m: format_accuracy(m["refit"].get("best_val_accuracy"))),
        ("Refit time", lambda m: format_seconds(m["refit"].get("seconds"))),
    ]
    rows = [[name] + [cell(model) for _, model in models] for name, cell in fields]
    return TableView(
        key="refit_outcome",
        headers=["Refit outcome"] + [model["label"] for _, model in models],
        rows=rows,
        numeric=[False] + [True] * len(models),
    )


def test_table(results: dict) -> TableView:
    rows = []
    for _, model in model_items(results):
        test, roc = model["test"], model["roc"]
        rows.append([
            model["label"], format_accuracy(test["accuracy"]), f"{test['loss']:.3f}",
            format_count(test.get("images"), "n/a"), format_score(roc["micro_auc"]),
            format_score(roc["macro_auc"]),
        ])
    return TableView(
        key="test",
        headers=["Model", "Test accuracy", "Test loss", "Test images", "Micro-average AUC",
                 "Macro-average AUC"],
        rows=rows,
        numeric=[False, True, True, True, True, True],
    )


def flip_tta_models(results: dict) -> list[tuple[str, dict]]:
    """Return the (key, model) pairs that have flip test-time augmentation scores."""
    return [(key, model) for key, model in model_items(results) if model.get("flip_tta")]


def flip_tta_change_points(model: dict) -> float:
    """Return the flip-TTA accuracy minus the single-pass one, both as printed, in points."""
    change = (round_accuracy(model["flip_tta"]["accuracy"])
              - round_accuracy(model["test"]["accuracy"]))
    return round(change, ACCURACY_DECIMALS)


def flip_tta_table(results: dict) -> TableView | None:
    """Compare single-pass and flip-TTA test scores, or return None when no model has them."""
    models = flip_tta_models(results)
    if not models:
        return None
    rows = []
    for _, model in models:
        tta = model["flip_tta"]
        rows.append([
            model["label"], format_accuracy(model["test"]["accuracy"]),
            format_accuracy(tta["accuracy"]), format_signed_points(flip_tta_change_points(model)),
            format_count(tta.get("changed_predictions"), "n/a"),
            format_score(model["roc"].get("macro_auc")), format_score(tta.get("macro_auc")),
        ])
    return TableView(
        key="flip_tta",
        headers=["Model", "Single pass", "Flip TTA", "Change (points)", "Predictions changed",
                 "Single pass", "Flip TTA"],
        rows=rows,
        numeric=[False, True, True, True, True, True, True],
        groups=[("", 1), ("Test accuracy", 3), ("", 1), ("Macro-average AUC", 2)],
    )


def per_class_table(results: dict) -> TableView:
    models = model_items(results)
    class_names = results["data"]["class_names"]
    rows = []
    for index, name in enumerate(class_names):
        support = models[0][1]["per_class"][index].get("support")
        row = [name, format_count(support, "n/a")]
        for _, model in models:
            scores = model["per_class"][index]
            row += [format_score(scores["precision"]), format_score(scores["recall"]),
                    format_score(scores["f1"])]
        rows.append(row)
    return TableView(
        key="per_class",
        headers=["Class", "Test images"] + ["Precision", "Recall", "F1"] * len(models),
        rows=rows,
        numeric=[False, True] + [True] * 3 * len(models),
        groups=[("", 2)] + [(model["label"], 3) for _, model in models],
    )


def per_class_auc_table(results: dict) -> TableView:
    models = model_items(results)
    rows = [
        [name] + [format_score(model["roc"]["per_class_auc"].get(name)) for _, model in models]
        for name in results["data"]["class_names"]
    ]
    return TableView(
        key="per_class_auc",
        headers=["Class"] + [f"{model['label']} AUC" for _, model in models],
        rows=rows,
        numeric=[False] + [True] * len(models),
    )


def _gpu_text(gpus: list) -> str:
    if not gpus:
        return "none"
    names = []
    for gpu in gpus:
        if isinstance(gpu, dict):
            names.append(str(gpu.get("name") or gpu.get("device_name") or format_value(gpu)))
        else:
            names.append(str(gpu))
    return ", ".join(names)


POLICY_DETAILS = {  # Keras dtype policies: the compute dtype and the variable dtype
    "mixed_bfloat16": "bfloat16 compute, float32 variables",
    "mixed_float16": "float16 compute, float32 variables",
}


def _accelerator_rows(used: dict, requested: dict) -> list[list[str]]:
    # `used` is what the run applied (environment.accelerator), `requested`
    # the auto/on/off settings it came from (config.accelerator). Runs from
    # before a value was recorded lack its key and get no row for it.
    rows = []
    if "policy" in used:
        policy = str(used["policy"])
        detail = POLICY_DETAILS.get(policy)
        text = f"{policy}: {detail}" if detail else policy
        if "mixed_precision" in requested:
            text += f" (mixed precision setting: {requested['mixed_precision']})"
        rows.append(["Dtype policy", text])
    if "xla" in used:
        text = "on" if used["xla"] else "off"
        if "xla" in requested:
            text += f" (XLA setting: {requested['xla']})"
        rows.append(["XLA compilation", text])
    if "replicas" in used:
        replicas = int(used["replicas"])
        text = str(replicas)
        if replicas > 1:
            text += " (MirroredStrategy: one per GPU, each batch split among them)"
        rows.append(["Training replicas", text])
    return rows


FINGERPRINT_LABEL = ("Data fingerprint (SHA-256 of the sampled images and labels, "
                     "first 16 hex digits)")


def _refit_seed_rows(results: dict) -> list[list[str]]:
    # One row per model with refits over seeds, in the order they ran. Runs
    # from before the seed refits record none, and get no rows.
    rows = []
    for _, model in model_items(results):
        runs = (model.get("seeds") or {}).get("runs") or []
        if runs:
            seeds = ", ".join(str(run.get("seed", "n/a")) for run in runs)
            rows.append([f"Refit seeds ({model['label']})", seeds])
    return rows


def _search_process_rows(results: dict) -> list[list[str]]:
    # A distributed search ran its trials in worker processes, possibly on other
    # machines; the rows above describe the chief's.
    workers = sorted({worker for _, model in model_items(results)
                      for worker in ((model.get("search") or {}).get("ledger") or {})
                      .get("totals", {}).get("workers", [])})
    if not workers:
        return []
    return [["Search trials run by", f"{len(workers)} worker process"
             f"{'' if len(workers) == 1 else 'es'} ({', '.join(workers)}) for a chief; "
             "the hardware rows describe the chief's machine"]]


def environment_table(results: dict) -> TableView:
    """List the run's manifest: settings, seeds, data fingerprint, software and hardware."""
    config, environment = results["config"], results["environment"]
    rows = [
        ["Preset", str(config.get("preset", "n/a"))],
        ["Seed", str(config.get("seed", "n/a"))],
        *_refit_seed_rows(results),
        ["Run created", format_timestamp(results.get("created", "n/a"))],
    ]
    fingerprint = results["data"].get("fingerprint")
    if fingerprint:  # runs from before the fingerprint was recorded have none
        rows.append([FINGERPRINT_LABEL, str(fingerprint)])
    rows += [
        ["Python", str(environment.get("python", "n/a"))],
        ["Platform", str(environment.get("platform", "n/a"))],
        ["Processor", str(environment.get("processor") or "n/a")],
        ["CPU cores", format_count(environment.get("cpu_count"), "n/a")],
        ["GPUs", _gpu_text(environment.get("gpus") or [])],
    ]
    rows += _accelerator_rows(environment.get("accelerator") or {},
                              config.get("accelerator") or {})
    rows += _search_process_rows(results)
    return TableView(key="environment", headers=["Item", "Value"], rows=rows,
                     numeric=[False, False])


def packages_table(results: dict) -> TableView:
    packages = results["environment"].get("packages", {})
    return TableView(
        key="packages",
        headers=["Package", "Version"],
        rows=[[name, str(version)] for name, version in sorted(packages.items())],
        numeric=[False, False],
    )


def stage_name(stage: str, results: dict) -> str:
    """Turn a timings stage key into its display name: "search_cnn" -> "Search (CNN)"."""
    labels = {key: model["label"] for key, model in model_items(results)}
    prefix, _, suffix = stage.rpartition("_")
    if prefix and suffix in labels:
        step = STEP_NAMES.get(prefix, humanize_key(prefix).capitalize())
        return f"{step} ({labels[suffix]})"
    return STEP_NAMES.get(stage, humanize_key(stage).capitalize())


STEP_NAMES = {"seeds": "Refits with further seeds", "comparison": "Paired comparison"}


def reused_stages(results: dict) -> list[str]:
    """Return the stage keys whose outputs came from an earlier invocation (none if unset)."""
    return list(results["timings"].get("reused") or [])


def resumed_stages(results: dict) -> dict[str, float]:
    """Return the stages finished after an interruption, with the seconds spent before it."""
    return dict(results["timings"].get("resumed") or {})


def timings_table(results: dict) -> TableView:
    timings = results["timings"]
    total = timings.get("total_seconds")
    reused = reused_stages(results)
    resumed = resumed_stages(results)
    rows = []
    for stage, seconds in timings.get("stages", {}).items():
        share = format_percent(seconds / total, 1) if total else "n/a"
        name = stage_name(stage, results)
        marks = [mark for mark, listed in (("resumed", resumed), ("reused", reused))
                 if stage in listed]
        if marks:
            name += f" ({', '.join(marks)})"
        rows.append([name, format_seconds(seconds), share])
    rows.append(["Total", format_seconds(total), format_percent(1.0, 1) if total else "n/a"])
    return TableView(
        key="timings",
        headers=["Stage", "Wall time", "Share of total"],
        rows=rows,
        numeric=[False, True, True],
    )
