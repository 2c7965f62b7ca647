"""Time both Hyperband searches in one process and with a chief and 1, 2, ... workers.

    python benchmarks/distributed_search.py --data cifar10-jpeg.tar.xz [--preset smoke]
        [--workers 1,2] [--port 50251]

Each setup runs `run_study.py --stages search` in a fresh run folder of
its own, all processes on this machine over loopback. The table gives each
search's wall time from its stage record (for a chief: from the start of
serving to the last trial's end), the trials each worker ran, and the time
until every process has exited. The data, exploration and
preprocessing take the same time in every setup. docs/distributed.md
records the numbers.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS = ("cnn", "vit")


def _command(preset: str, data: str, run_dir: Path, *role: str) -> list[str]:
    return [sys.executable, str(ROOT / "run_study.py"), "--preset", preset, "--data", data,
            "--run-dir", str(run_dir), "--stages", "search", "--quiet", *role]


def run_setup(preset: str, data: str, workers: int, port: int, folder: Path) -> dict:
    """Run the searches with `workers` workers (0: one process); return their timings."""
    run_dir = folder / f"workers-{workers}"
    address = ["--chief-address", f"127.0.0.1:{port}"]
    if workers == 0:
        processes = [subprocess.Popen(_command(preset, data, run_dir))]
    else:
        processes = [subprocess.Popen(_command(preset, data, run_dir, "--role", "chief",
                                               *address))]
        processes += [subprocess.Popen(_command(preset, data, run_dir, "--role", "worker",
                                                "--worker-id", f"w{number}", *address))
                      for number in range(1, workers + 1)]
    start = time.monotonic()
    codes = [process.wait() for process in processes]
    seconds = time.monotonic() - start
    if any(codes):
        raise SystemExit(f"a process of the {workers}-worker setup exited with {codes}; see "
                         f"{run_dir}/study*.log")
    row = {"workers": workers, "seconds": seconds}
    for model in MODELS:
        record = json.loads((run_dir / "stages" / f"search_{model}.json").read_text())
        summary = record["record"]["summary"]
        row[model] = summary["seconds"]
        row[f"{model}_trials"] = summary["trials"]
        ran = [trial.get("tuner_id") for trial in summary["ledger"]["trials"]]
        row[f"{model}_split"] = "/".join(str(ran.count(f"w{n}"))
                                         for n in range(1, workers + 1)) or "-"
    return row


def worker_counts(text: str) -> list[int]:
    """Parse --workers: comma-separated positive counts."""
    counts = [int(part) for part in text.split(",") if part.strip()]
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"invalid worker counts {text!r}: give positive "
                                         "numbers, for example 1,2")
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the image archive or folder")
    parser.add_argument("--preset", default="smoke", help="study preset. Default: smoke")
    parser.add_argument("--workers", type=worker_counts, default=[1, 2],
                        help="worker counts to time, comma-separated. Default: 1,2")
    parser.add_argument("--port", type=int, default=50251,
                        help="the chief's first port; each setup uses two from here. "
                             "Default: 50251")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="distributed-benchmark-") as folder:
        for index, workers in enumerate([0, *args.workers]):
            rows.append(run_setup(args.preset, args.data, workers, args.port + 2 * index,
                                  Path(folder)))
    print(f"preset {args.preset}, --stages search, all processes on this machine")
    print(f"{'setup':<18} {'CNN search':>10} {'ViT search':>10} {'trials':>7} "
          f"{'per worker':>12} {'whole run':>10}")
    for row in rows:
        setup = "one process" if row["workers"] == 0 else f"chief + {row['workers']} worker(s)"
        trials = f"{row['cnn_trials']}+{row['vit_trials']}"
        split = f"{row['cnn_split']}, {row['vit_split']}"
        print(f"{setup:<18} {row['cnn']:>9.1f}s {row['vit']:>9.1f}s {trials:>7} "
              f"{split:>12} {row['seconds']:>9.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
