"""Time the report: figures, site and PDF rendered from a finished run folder.

    python benchmarks/render_time.py --run-dir runs/quick [--repeats 3]

Renders the run folder's results.json into a fresh temporary folder
`--repeats` times, in this process and without TensorFlow. For each render
it prints the wall time and the times of its figures and its PDF (from the
renderer's log), then the median wall time.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from report.render import render_report  # noqa: E402


class PhaseTimes(logging.Handler):
    """Keep the seconds that the renderer logs for its figures and its PDF."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.phases: dict[str, float] = {}

    def emit(self, record):
        message = record.getMessage()
        if message.startswith("drew "):
            self.phases["figures"] = float(message.split(" in ")[-1].rstrip(" s"))
        elif message.startswith("wrote ") and " in " in message:
            self.phases["pdf"] = float(message.split(" in ")[-1].rstrip(" s"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, default=Path("runs/quick"),
                        help="a finished run folder with results.json (default: runs/quick)")
    parser.add_argument("--repeats", type=int, default=3, help="renders to time")
    args = parser.parse_args()
    if not (args.run_dir / "results.json").is_file():
        parser.error(f"no results.json in {args.run_dir}: run the study first or pass the "
                     "--run-dir of a finished run")

    handler = PhaseTimes()
    logger = logging.getLogger("report")
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    totals = []
    for repeat in range(1, args.repeats + 1):
        with tempfile.TemporaryDirectory(prefix="render-bench-") as work:
            start = time.perf_counter()
            render_report(args.run_dir, Path(work) / "site")
            totals.append(time.perf_counter() - start)
        figures, pdf = handler.phases.get("figures", 0.0), handler.phases.get("pdf", 0.0)
        print(f"render {repeat}: {totals[-1]:.2f} s (figures {figures:.1f} s, PDF {pdf:.1f} s)")
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs")
    print(f"median:  {statistics.median(totals):.2f} s over {args.repeats} render(s) of "
          f"{args.run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
