"""Write run-folder files so that a process killed mid-write never leaves a partial file."""

from __future__ import annotations

import os
from pathlib import Path


def write_text_atomically(path: str | Path, text: str) -> None:
    """Write `text` to a temporary file beside `path`, then rename it over `path`.

    The rename is atomic on POSIX file systems, so readers see the old or the
    new content. A killed process leaves at most the `.tmp` file behind.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
