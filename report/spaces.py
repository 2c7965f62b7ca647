"""Describe a model's search space from results.json: table rows and a summary.

A space stores ranges as {"min", "max", "step", "log"} dicts and choices as
lists (study/config.py). Spaces written before the named spaces ("modern",
"original") existed have no "name" or "training" key, and keys such as a
top-level "optimizers" or "learning_rate" print as they did then.
"""

from __future__ import annotations

from report.formatting import format_value, humanize_key, join_words, list_separator

OPTIMIZER_NAMES = {"adam": "Adam", "adamw": "AdamW", "sgd": "SGD",
                   "sgd_nesterov": "SGD with Nesterov momentum", "rmsprop": "RMSprop"}
MOMENTUM_OPTIMIZERS = ("sgd", "sgd_nesterov", "rmsprop")  # Keras's Adam and AdamW have none
SCHEDULE_NAMES = {"constant": "constant", "cosine": "cosine decay to zero"}
CHOICE_NAMES = {  # table wording of the pooling and stem choices
    "global_average": "global average",
    "class_token": "class token",
    "patches": "linear patch projection",
    "conv": "convolutional",
}
SPACE_ORIGINS = {
    "modern": "the study's default, which follows the field's current practice",
    "original": "based on the 2024 CIFAR-10 notebook that this study reproduces",
}


def is_off(value: object) -> bool:
    """Return True for a range from 0 to 0, which switches its setting off."""
    return isinstance(value, dict) and value.get("min") == 0 and value.get("max") == 0


def format_space_entry(value: object) -> str:
    """Describe one search-space entry: a range dict, a list of choices, or a fixed value.

    >>> format_space_entry({"min": 1, "max": 3, "step": 1})
    '1 to 3'
    >>> format_space_entry(["relu", "elu"])
    'relu or elu'
    """
    if isinstance(value, dict) and {"min", "max"} <= value.keys():
        low, high = format_value(value["min"]), format_value(value["max"])
        if value["min"] == value["max"]:
            return f"{low} (fixed)"
        if value.get("log"):
            return f"{low} to {high}, log-uniform"
        step = value.get("step")
        return f"{low} to {high}" + (f", step {format_value(step)}" if step not in (None, 1) else "")
    if isinstance(value, list):
        items = [format_value(item) for item in value]
        if len(items) == 1:
            return f"{items[0]} (fixed)"
        return list_separator(items).join(items[:-1]) + f" or {items[-1]}"
    # Anything else (a number, or a group of fixed settings) is not searched.
    return f"{format_value(value)} (fixed)"


def _range_or_none(value: object) -> str:
    return "none" if is_off(value) else format_space_entry(value)


def _named_choices(value: object, names: dict[str, str]) -> str:
    if not isinstance(value, list):
        return format_space_entry(value)
    return format_space_entry([names.get(item, item) for item in value])


# ---- Table rows -----------------------------------------------------------------


def _pooling_choices(space: dict) -> list:
    # Spaces without a "pooling" key always flattened.
    return list(space.get("pooling") or ["flatten"])


def _head_text(head: object, space: dict) -> str:
    # The ViT's fixed classifier after the readout: dense layers (units) with
    # dropout before and after each. After 'flatten' its dropout applies even
    # without dense layers.
    if not isinstance(head, dict):
        return format_space_entry(head)
    units = [format_value(count) for count in head.get("units") or []]
    dropout = head.get("dropout") or 0
    dropout_text = f"dropout {format_value(dropout)}" if dropout else "no dropout"
    if units:
        layers = "one dense layer" if len(units) == 1 else f"{len(units)} dense layers"
        return f"{layers} of {join_words(units)} units, {dropout_text} (fixed)"
    if dropout and "flatten" in _pooling_choices(space):
        return f"no dense layer, {dropout_text} after flatten (fixed)"
    return "none"


def _mlp_width_text(ratio: object) -> str:
    if ratio:
        return f"one hidden layer of {format_value(ratio)} x the projection dimension (fixed)"
    return "halves at each hidden layer, down to the projection dimension (fixed)"


def _space_row(key: str, value: object, space: dict) -> list[str] | None:
    # One table row for a top-level key other than "name" and "training", or
    # None when the key has no effect in this space.
    if key in ("pooling", "stems"):
        return [humanize_key(key), _named_choices(value, CHOICE_NAMES)]
    if key == "dense_units" and is_off(value):
        return [humanize_key(key), "none (no hidden dense layer)"]
    if key == "drop_path":
        return ["stochastic depth rate (last block)", _range_or_none(value)]
    if key == "attention_dropout" and isinstance(value, (int, float)):
        return [humanize_key(key), f"{format_value(value)} (fixed)" if value else "none"]
    if key == "mlp_ratio":
        return ["MLP width", _mlp_width_text(value)]
    if key == "mlp_depth" and space.get("mlp_ratio"):
        return None  # a positive MLP ratio fixes one hidden layer
    if key == "head":
        return [humanize_key(key), _head_text(value, space)]
    return [humanize_key(key), _range_or_none(value)]


def _optimizer_row(optimizer: dict) -> list[str]:
    name = str(optimizer.get("name", "unnamed"))
    parts = []
    if "learning_rate" in optimizer:
        parts.append(f"learning rate {format_space_entry(optimizer['learning_rate'])}")
    if "weight_decay" in optimizer:
        decay = optimizer["weight_decay"]
        parts.append("no weight decay" if is_off(decay)
                     else f"weight decay {format_space_entry(decay)}")
    if name in MOMENTUM_OPTIMIZERS and "momentum" in optimizer:
        momentum = optimizer["momentum"]
        parts.append("no momentum" if is_off(momentum)
                     else f"momentum {format_space_entry(momentum)}")
    return [f"optimizer: {OPTIMIZER_NAMES.get(name, name)}", "; ".join(parts) or "defaults"]


def _warmup_text(training: dict) -> str:
    fraction = training.get("warmup_fraction") or 0
    schedules = training.get("schedules") or []
    # Only the cosine schedule warms up.
    if not fraction or "cosine" not in schedules:
        return "none"
    text = f"linear, over the first {round(fraction * 100, 2):g}% of the epochs"
    if len(schedules) > 1:
        text += ", cosine schedule only"
    return text + " (fixed)"


def training_rows(training: dict) -> list[list[str]]:
    """Return the rows of a "training" entry: one per optimizer, then schedule and loss."""
    rows = [_optimizer_row(optimizer) for optimizer in training.get("optimizers") or []]
    for key, value in training.items():
        if key == "optimizers":
            continue
        if key == "schedules":
            rows.append(["learning-rate schedule", _named_choices(value, SCHEDULE_NAMES)])
        elif key == "warmup_fraction":
            rows.append(["warm-up", _warmup_text(training)])
        else:
            rows.append([humanize_key(key), _range_or_none(value)])
    return rows


def space_rows(space: dict) -> list[list[str]]:
    """Return the (hyperparameter, searched values) rows of a search space, in its order."""
    rows = []
    for key, value in space.items():
        if key == "name":
            continue  # the caption and the sentence above the table name the space
        if key == "training" and isinstance(value, dict):
            rows.extend(training_rows(value))
            continue
        row = _space_row(key, value, space)
        if row is not None:
            rows.append(row)
    return rows


# ---- Summary sentences -------------------------------------------------------------


def join_choices(words: list[str]) -> str:
    """Join alternatives as English prose: "a", "a or b", "a, b or c"."""
    if len(words) < 2:
        return "".join(words)
    return ", ".join(words[:-1]) + " or " + words[-1]


def _amount(noun: str, value: object) -> str | None:
    # "label smoothing up to 0.2" for a range from 0, None when the range is off.
    if not isinstance(value, dict) or is_off(value):
        return None
    low, high = format_value(value["min"]), format_value(value["max"])
    if value["min"] == value["max"]:
        return f"{noun} of {low}"
    if value["min"] == 0:
        return f"{noun} up to {high}"
    return f"{noun} of {low} to {high}"


def _options_phrase(choices: object, only_true: str, true_or_false: str) -> str | None:
    # For a list of booleans: `only_true` when True is the only choice,
    # `true_or_false` when both are, None when True is not a choice.
    choices = list(choices) if isinstance(choices, list) else []
    if True not in choices:
        return None
    return true_or_false if False in choices else only_true


def _unit_range(value: dict) -> str:
    low, high = format_value(value["min"]), format_value(value["max"])
    return low if value["min"] == value["max"] else f"{low} to {high}"


def _dense_units_phrase(value: object) -> str | None:
    if not isinstance(value, dict):
        return None
    if is_off(value):
        return "no hidden dense layer"
    if value["min"] == 0:
        return f"an optional hidden dense layer of up to {format_value(value['max'])} units"
    return f"a hidden dense layer of {_unit_range(value)} units"


def _readout_phrase(space: dict) -> str | None:
    pooling = _pooling_choices(space)
    if "patch_sizes" in space:  # a transformer reads tokens
        names = {"flatten": "the flattened tokens", "global_average": "the mean token",
                 "class_token": "a class token"}
        return f"a readout of {join_choices([names.get(item, item) for item in pooling])}"
    names = {"flatten": "a flattened feature map", "global_average": "global average pooling"}
    return join_choices([names.get(item, item) for item in pooling])


def _stem_phrase(stems: object) -> str | None:
    names = {"patches": "a linear patch projection", "conv": "a convolutional stem"}
    if not isinstance(stems, list) or not stems:
        return None
    return join_choices([names.get(stem, stem) for stem in stems])


def _head_phrase(space: dict) -> str | None:
    head = space.get("head")
    if not isinstance(head, dict) or not head.get("units"):
        return None
    units = [format_value(count) for count in head["units"]]
    return f"a dense head of {join_words(units)} units"


def architecture_phrases(space: dict) -> list[str]:
    """List the space's notable architecture choices, each as a noun phrase."""
    phrases = [
        _options_phrase(space.get("batch_norm"), "batch normalization",
                        "optional batch normalization"),
        _options_phrase(space.get("residual"), "residual blocks", "plain or residual blocks"),
    ]
    if isinstance(space.get("patch_sizes"), list):
        sizes = [format_value(size) for size in space["patch_sizes"]]
        phrases.append(f"patches of {join_choices(sizes)} pixels a side")
    phrases.append(_stem_phrase(space.get("stems")))
    phrases.append(_readout_phrase(space))
    if "dense_units" in space:
        phrases.append(_dense_units_phrase(space["dense_units"]))
    phrases.append(_head_phrase(space))
    phrases.append(_amount("stochastic depth", space.get("drop_path")))
    return [phrase for phrase in phrases if phrase]


def _presence(noun: str, value: object) -> str | None:
    # "weight decay" for a range that starts above 0, "weight decay up to 0.1"
    # for one that starts at 0, None when the range is off. The table gives
    # the bounds.
    if not isinstance(value, dict) or is_off(value):
        return None
    if value["min"] == 0:
        return f"{noun} up to {format_value(value['max'])}"
    return noun


def _optimizer_phrase(optimizer: dict) -> str:
    name = str(optimizer.get("name", "unnamed"))
    base = "SGD" if name == "sgd_nesterov" else OPTIMIZER_NAMES.get(name, name)
    extras = ["Nesterov momentum"] if name == "sgd_nesterov" else []
    if name in ("sgd", "rmsprop"):
        extras.append(_presence("momentum", optimizer.get("momentum")))
    extras.append(_presence("weight decay", optimizer.get("weight_decay")))
    extras = [extra for extra in extras if extra]
    return f"{base} with {join_words(extras)}" if extras else base


def _schedule_sentence(training: dict) -> str | None:
    schedules = list(training.get("schedules") or [])
    if not schedules:
        return None
    cosine = ("rises linearly during a warm-up, then falls to zero along a half cosine"
              if training.get("warmup_fraction") else
              "falls from its peak to zero along a half cosine")
    phrases = {"constant": "stays constant", "cosine": cosine}
    described = [phrases.get(schedule, f"follows the {schedule} schedule")
                 for schedule in schedules]
    if len(described) == 1:
        return f"The learning rate {described[0]}."
    return f"The learning rate either {join_choices(described)}."


def training_sentences(training: dict) -> list[str]:
    """Describe the optimizers, the learning-rate schedule and the label smoothing."""
    sentences = []
    optimizers = [_optimizer_phrase(option) for option in training.get("optimizers") or []]
    if optimizers:
        sentences.append(f"The optimizer is {join_choices(optimizers)}.")
    schedule = _schedule_sentence(training)
    if schedule:
        sentences.append(schedule)
    smoothing = _amount("label smoothing", training.get("label_smoothing"))
    if smoothing:
        sentences.append(f"Training uses {smoothing}.")
    return sentences


def _join_phrases(phrases: list[str]) -> str:
    # A serial comma keeps "a or b, c or d, and e" from reading as "d and e".
    if len(phrases) > 2 and any(" or " in phrase for phrase in phrases):
        return ", ".join(phrases[:-1]) + ", and " + phrases[-1]
    return join_words(phrases)


def space_name_phrase(name: str) -> str:
    """Name a search space for a sentence: "the modern search space, the study's default, …"."""
    origin = SPACE_ORIGINS.get(name)
    return f"the {name} search space" + (f", {origin}" if origin else "")


def space_summary(subject: str, space: dict) -> str | None:
    """Summarise a named search space in a few sentences, or return None for an unnamed one.

    `subject` is the model as the sentence starts with it, e.g. "The CNN".
    Only choices the space contains are named: "residual blocks" appears
    only when its residual choices include True.
    """
    name = space.get("name")
    if not name:
        return None
    sentences = [f"{subject} searches {space_name_phrase(str(name))}."]
    architecture = architecture_phrases(space)
    if architecture:
        sentences.append(f"Its candidates use {_join_phrases(architecture)}.")
    training = space.get("training")
    if isinstance(training, dict):
        sentences.extend(training_sentences(training))
    return " ".join(sentences)
