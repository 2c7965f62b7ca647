"""Figure keys, their order in the report, and the display choices captions describe.

`figures.py` draws with these settings and `narrative.py` writes captions
from them, so a caption cannot describe a different figure than the one
drawn.
"""

from __future__ import annotations

FIGURES_FOLDER = "figures"

FOURIER_CHANNEL = 1  # index into RGB: amplitude and phase are shown for green
CHANNEL_NAMES = ("red", "green", "blue")
FILTER_IMAGES_SHOWN = 5  # columns of the low- and high-pass figures, at most
FOURIER_IMAGES_SHOWN = 10  # columns of the Fourier figure, at most


def confusion_figure_key(model_key: str) -> str:
    return f"confusion_{model_key}"


def ledger_hyperparameters_key(model_key: str) -> str:
    return f"ledger_hyperparameters_{model_key}"


def mistakes_figure_key(model_key: str) -> str:
    """Return the key of a model's gallery of its most confident mistakes."""
    return f"mistakes_{model_key}"


def figure_keys(model_keys: list[str]) -> list[str]:
    """Return every figure key in the order the figures appear in the report."""
    return [
        "class_balance",
        "pixel_histograms",
        "samples",
        "fourier",
        "low_pass",
        "high_pass",
        "ledger_halving",
        "ledger_best_so_far",
        *[ledger_hyperparameters_key(key) for key in model_keys],
        "learning_curves",
        *[confusion_figure_key(key) for key in model_keys],
        "per_class_f1",
        "roc",
        "reliability",
        *[mistakes_figure_key(key) for key in model_keys],
        "robustness",
    ]


def figure_file(key: str) -> str:
    """Return the figure's path relative to the site root, e.g. "figures/roc.png".

    Model keys come from results.json, so characters outside [A-Za-z0-9_-]
    are replaced to keep the file name portable.
    """
    safe = "".join(char if char.isascii() and (char.isalnum() or char in "_-") else "_"
                   for char in key)
    return f"{FIGURES_FOLDER}/{safe}.png"
