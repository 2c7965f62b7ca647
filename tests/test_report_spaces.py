"""Tests of the search-space tables and sentences (report/spaces.py).

Each space is written out here as results.json stores it, so every
expected row can be checked by hand against study/config.py's layout.
"""

from __future__ import annotations

import json

from report_fixture import LEGACY_CNN_SPACE, LEGACY_VIT_SPACE, make_run_dir

from report import narrative, render, spaces, tables


def _range(low, high, step=None, log=False) -> dict:
    return {"min": low, "max": high, "step": step, "log": log}


def _optimizer(name, rate, decay=(0.0, 0.0), momentum=(0.0, 0.0)) -> dict:
    return {"name": name, "learning_rate": _range(*rate, log=True),
            "weight_decay": _range(*decay, log=decay[0] > 0), "momentum": _range(*momentum)}


MODERN_CNN = {
    "name": "modern",
    "conv_blocks": {"min": 3, "max": 3, "step": 1},
    "batch_norm": [True],
    "residual": [False, True],
    "pooling": ["global_average"],
    "dense_units": {"min": 0, "max": 0, "step": 1},
    "dropout": _range(0.0, 0.3, 0.1),
    "training": {
        "optimizers": [_optimizer("adamw", (0.0005, 0.005), decay=(0.01, 0.1)),
                       _optimizer("sgd_nesterov", (0.02, 0.2), decay=(0.0005, 0.005),
                                  momentum=(0.9, 0.9))],
        "schedules": ["cosine"],
        "warmup_fraction": 0.05,
        "label_smoothing": _range(0.0, 0.2, 0.1),
    },
}

MODERN_VIT = {
    "name": "modern",
    "patch_sizes": [2, 4],
    "stems": ["patches", "conv"],
    "mlp_depth": {"min": 1, "max": 1, "step": 1},
    "mlp_ratio": 2,
    "attention_dropout": 0.0,
    "drop_path": _range(0.0, 0.2, 0.1),
    "pooling": ["global_average", "class_token"],
    "head": {"units": [], "dropout": 0.0},
    "training": {
        "optimizers": [_optimizer("adamw", (0.0003, 0.003), decay=(0.02, 0.1))],
        "schedules": ["cosine"],
        "warmup_fraction": 0.1,
        "label_smoothing": _range(0.0, 0.2, 0.1),
    },
}

ORIGINAL_VIT = {
    "name": "original",
    "patch_sizes": [4, 8, 16],
    "stems": ["patches"],
    "mlp_depth": {"min": 1, "max": 3, "step": 1},
    "mlp_ratio": 0,
    "attention_dropout": 0.1,
    "drop_path": _range(0.0, 0.0),
    "pooling": ["flatten"],
    "head": {"units": [2048, 1024], "dropout": 0.5},
    "training": {
        "optimizers": [_optimizer("adam", (1e-5, 1e-3)),
                       _optimizer("rmsprop", (1e-5, 1e-3), momentum=(0.0, 0.9))],
        "schedules": ["constant"],
        "warmup_fraction": 0.0,
        "label_smoothing": _range(0.0, 0.0),
    },
}


def _results_with(cnn_space: dict, vit_space: dict | None = None) -> dict:
    models = {"cnn": {"label": "CNN"}}
    config = {"cnn_space": cnn_space}
    if vit_space is not None:
        models["vit"] = {"label": "ViT"}
        config["vit_space"] = vit_space
    return {"config": config, "models": models}


# ---- Table rows -------------------------------------------------------------------


def test_rows_modern_cnn():
    assert spaces.space_rows(MODERN_CNN) == [
        ["conv blocks", "3 (fixed)"],
        ["batch norm", "yes (fixed)"],
        ["residual", "no or yes"],
        ["pooling", "global average (fixed)"],
        ["dense units", "none (no hidden dense layer)"],
        ["dropout", "0 to 0.3, step 0.1"],
        ["optimizer: AdamW",
         "learning rate 0.0005 to 0.005, log-uniform; weight decay 0.01 to 0.1, log-uniform"],
        ["optimizer: SGD with Nesterov momentum",
         "learning rate 0.02 to 0.2, log-uniform; weight decay 0.0005 to 0.005, "
         "log-uniform; momentum 0.9 (fixed)"],
        ["learning-rate schedule", "cosine decay to zero (fixed)"],
        ["warm-up", "linear, over the first 5% of the epochs (fixed)"],
        ["label smoothing", "0 to 0.2, step 0.1"],
    ]


def test_rows_modern_vit():
    # A positive MLP ratio fixes one hidden layer, so the MLP depth has no row.
    assert spaces.space_rows(MODERN_VIT) == [
        ["patch sizes", "2 or 4"],
        ["stems", "linear patch projection or convolutional"],
        ["MLP width", "one hidden layer of 2 x the projection dimension (fixed)"],
        ["attention dropout", "none"],
        ["stochastic depth rate (last block)", "0 to 0.2, step 0.1"],
        ["pooling", "global average or class token"],
        ["head", "none"],
        ["optimizer: AdamW",
         "learning rate 0.0003 to 0.003, log-uniform; weight decay 0.02 to 0.1, log-uniform"],
        ["learning-rate schedule", "cosine decay to zero (fixed)"],
        ["warm-up", "linear, over the first 10% of the epochs (fixed)"],
        ["label smoothing", "0 to 0.2, step 0.1"],
    ]


def test_rows_original_vit_off_settings():
    rows = dict(spaces.space_rows(ORIGINAL_VIT))
    assert rows["mlp depth"] == "1 to 3"
    assert rows["MLP width"] == (
        "halves at each hidden layer, down to the projection dimension (fixed)")
    assert rows["attention dropout"] == "0.1 (fixed)"
    assert rows["stochastic depth rate (last block)"] == "none"
    assert rows["head"] == "2 dense layers of 2,048 and 1,024 units, dropout 0.5 (fixed)"
    assert rows["optimizer: Adam"] == (
        "learning rate 1e-05 to 0.001, log-uniform; no weight decay")
    assert rows["optimizer: RMSprop"] == (
        "learning rate 1e-05 to 0.001, log-uniform; no weight decay; momentum 0 to 0.9")
    assert rows["learning-rate schedule"] == "constant (fixed)"
    assert rows["warm-up"] == "none"
    assert rows["label smoothing"] == "none"


def test_rows_no_name_row():
    labels = [label for label, _ in spaces.space_rows(MODERN_CNN)]
    assert "name" not in labels
    assert "training" not in labels


def test_rows_plain_sgd_without_momentum():
    training = {"optimizers": [_optimizer("sgd", (0.01, 0.01))]}
    assert spaces.training_rows(training) == [
        ["optimizer: SGD", "learning rate 0.01 (fixed); no weight decay; no momentum"]]


def test_rows_warmup_only_for_cosine():
    both = {"schedules": ["constant", "cosine"], "warmup_fraction": 0.1}
    assert spaces.training_rows(both) == [
        ["learning-rate schedule", "constant or cosine decay to zero"],
        ["warm-up", "linear, over the first 10% of the epochs, cosine schedule only (fixed)"],
    ]
    constant = {"schedules": ["constant"], "warmup_fraction": 0.1}
    assert spaces.training_rows(constant)[1] == ["warm-up", "none"]


def test_rows_head_dropout_after_flatten():
    space = {"pooling": ["flatten"], "head": {"units": [], "dropout": 0.3}}
    assert spaces.space_rows(space)[1] == [
        "head", "no dense layer, dropout 0.3 after flatten (fixed)"]


def test_rows_legacy_keys_unchanged():
    # Spaces from before the named spaces keep their old rows.
    assert spaces.space_rows(LEGACY_CNN_SPACE) == [
        ["conv blocks", "3 (fixed)"],
        ["convs per block", "1 or 2"],
        ["filter multipliers", "1 to 2"],
        ["batch norm", "yes (fixed)"],
        ["activations", "relu or elu"],
        ["dense units", "128 to 256, step 128"],
        ["dropout", "0.2 to 0.4, step 0.1"],
        ["optimizers", "adam (fixed)"],
        ["learning rate", "0.001 to 0.003, log-uniform"],
    ]
    rows = dict(spaces.space_rows(LEGACY_VIT_SPACE))
    assert rows["mlp depth"] == "1 (fixed)"
    assert "MLP width" not in rows
    assert rows["momentum"] == "0 to 0.9, step 0.1"
    assert rows["head"] == "one dense layer of 256 units, dropout 0.3 (fixed)"


def test_table_two_columns():
    view = tables.search_space_table(_results_with(MODERN_CNN), "cnn")
    assert view.headers == ["Hyperparameter", "Searched values"]
    assert all(len(row) == 2 for row in view.rows)


def _fixture_results(tmp_path, **options) -> dict:
    run_dir = make_run_dir(tmp_path / "run", class_names=("a", "b"), **options)
    return json.loads((run_dir / "results.json").read_text(encoding="utf-8"))


def test_caption_names_space(tmp_path):
    results = _fixture_results(tmp_path)
    numbered = narrative.number_tables(results)
    cnn = numbered["search_space_cnn"].caption
    assert cnn.startswith("The modern search space of the CNN: a range")
    assert cnn.endswith("Each trial uses one of the optimizers, with the ranges in that "
                        "optimizer's row.")
    # The fixture's ViT space has one optimizer, so the caption does not mention a choice.
    assert numbered["search_space_vit"].caption.endswith("('fixed').")
    results["config"]["vit_space"] = ORIGINAL_VIT
    vit = narrative.number_tables(results)["search_space_vit"].caption
    assert vit.startswith("The original search space of the ViT: a range")


def test_caption_legacy_unnamed(tmp_path):
    numbered = narrative.number_tables(_fixture_results(tmp_path, legacy=True))
    assert numbered["search_space_vit"].caption == (
        "Search space of the ViT: a range ('a to b'), a choice ('x or y'), or a value the "
        "search does not vary ('fixed').")


# ---- Summary sentences ------------------------------------------------------------


def test_summary_modern_cnn():
    assert narrative.space_sentence(_results_with(MODERN_CNN), "cnn") == (
        "The CNN searches the modern search space, the study's default, which follows the "
        "field's current practice. Its candidates use batch normalization, plain or residual "
        "blocks, global average pooling, and no hidden dense layer. The optimizer is AdamW "
        "with weight decay or SGD with Nesterov momentum and weight decay. The learning rate "
        "rises linearly during a warm-up, then falls to zero along a half cosine. Training "
        "uses label smoothing up to 0.2.")


def test_summary_modern_vit():
    results = _results_with(MODERN_CNN, MODERN_VIT)
    assert narrative.space_sentence(results, "vit") == (
        "The ViT searches the modern search space, the study's default, which follows the "
        "field's current practice. Its candidates use patches of 2 or 4 pixels a side, a "
        "linear patch projection or a convolutional stem, a readout of the mean token or a "
        "class token, and stochastic depth up to 0.2. The optimizer is AdamW with weight "
        "decay. The learning rate rises linearly during a warm-up, then falls to zero along "
        "a half cosine. Training uses label smoothing up to 0.2.")


def test_summary_original_vit():
    results = _results_with(MODERN_CNN, ORIGINAL_VIT)
    assert narrative.space_sentence(results, "vit") == (
        "The ViT searches the original search space, based on the 2024 CIFAR-10 notebook "
        "that this study reproduces. Its candidates use patches of 4, 8 or 16 pixels a side, "
        "a linear patch projection, a readout of the flattened tokens, and a dense head of "
        "2,048 and 1,024 units. The optimizer is Adam or RMSprop with momentum up to 0.9. "
        "The learning rate stays constant.")


def test_summary_residual_only_when_searched():
    plain = dict(MODERN_CNN, residual=[False])
    sentence = narrative.space_sentence(_results_with(plain), "cnn")
    assert "residual" not in sentence
    assert "Its candidates use batch normalization, global average pooling and no hidden " \
           "dense layer." in sentence
    always = dict(MODERN_CNN, residual=[True])
    assert "batch normalization, residual blocks," in (
        narrative.space_sentence(_results_with(always), "cnn"))


def test_summary_options_that_can_be_off():
    space = {"name": "custom", "batch_norm": [False, True], "pooling": ["flatten"],
             "dense_units": {"min": 0, "max": 256, "step": 128},
             "training": {"optimizers": [_optimizer("sgd", (0.01, 0.1), decay=(0.0, 0.01))],
                          "schedules": ["constant", "cosine"], "warmup_fraction": 0.0,
                          "label_smoothing": _range(0.1, 0.1)}}
    assert narrative.space_sentence(_results_with(space), "cnn") == (
        "The CNN searches the custom search space. Its candidates use optional batch "
        "normalization, a flattened feature map and an optional hidden dense layer of up to "
        "256 units. The optimizer is SGD with weight decay up to 0.01. The learning rate "
        "either stays constant or falls from its peak to zero along a half cosine. Training "
        "uses label smoothing of 0.1.")


def test_summary_none_without_name():
    assert narrative.space_sentence(_results_with(LEGACY_CNN_SPACE), "cnn") is None
    assert narrative.space_sentence({"config": {}, "models": {"cnn": {"label": "CNN"}}},
                                    "cnn") is None


# ---- Rendered site ----------------------------------------------------------------


def _site_html(results: dict) -> str:
    return render.render_html(narrative.build_context(results, {}), print_version=False)


def test_site_shows_space_sentences(tmp_path):
    html = _site_html(_fixture_results(tmp_path))
    assert "<p>The CNN searches the modern search space" in html
    assert "<p>The ViT searches the modern search space" in html
    assert "<td>optimizer: SGD with Nesterov momentum</td>" in html
    assert "The modern search space of the CNN:" in html
    assert "<td>name</td>" not in html
    assert "<td>training</td>" not in html


def test_site_legacy_spaces_render(tmp_path):
    html = _site_html(_fixture_results(tmp_path, legacy=True))
    assert "searches the" not in html
    assert "<td>optimizers</td>" in html
    assert "Search space of the CNN:" in html
