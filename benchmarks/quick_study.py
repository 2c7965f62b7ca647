"""Measure the quick preset end to end: wall time, test accuracies, peak memory.

    python benchmarks/quick_study.py --data ../shared/data/cifar10-jpeg.tar.xz

Runs `run_study.py --quick` in a fresh run folder as a child process, so the
time includes TensorFlow's start-up and the report, and the peak resident
memory is the child's own.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="data path passed to run_study.py")
    parser.add_argument("--preset", default="quick", choices=("smoke", "quick", "full"))
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--cnn-space", choices=("modern", "original"), default="modern")
    parser.add_argument("--vit-space", choices=("modern", "original"), default="modern")
    parser.add_argument("--keep", type=Path, default=None, metavar="DIR",
                        help="write the run folder and the site under DIR (which must not "
                             "exist) and keep them; by default both are deleted")
    args = parser.parse_args()
    if args.keep is not None and args.keep.exists():
        parser.error(f"--keep {args.keep} already exists; pass a new folder")

    with tempfile.TemporaryDirectory(prefix="study-bench-") as scratch:
        work = str(args.keep or scratch)
        command = [sys.executable, str(ROOT / "run_study.py"), "--preset", args.preset,
                   "--data", args.data, "--seed", str(args.seed),
                   "--cnn-space", args.cnn_space, "--vit-space", args.vit_space,
                   "--run-dir", f"{work}/run", "--out", f"{work}/site"]
        start = time.monotonic()
        completed = subprocess.run(command, cwd=ROOT)
        seconds = time.monotonic() - start
        if completed.returncode != 0:
            print(f"run_study.py failed with exit code {completed.returncode}", file=sys.stderr)
            return completed.returncode
        results = json.loads(Path(work, "site", "results.json").read_text())

    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux
    print(f"machine:        {platform.machine()}, {os.cpu_count()} CPUs, "
          f"GPUs: {', '.join(results['environment']['gpus']) or 'none'}")
    print(f"preset:         {args.preset}, seed {args.seed}, spaces: CNN {args.cnn_space}, "
          f"ViT {args.vit_space}")
    print(f"end to end:     {seconds:.0f} s (results.json total without the report: "
          f"{results['timings']['total_seconds']:.0f} s)")
    for stage, stage_seconds in results["timings"]["stages"].items():
        print(f"  {stage:<16}{stage_seconds:7.1f} s")
    for name, model in results["models"].items():
        print(f"{model['label']:<16}test accuracy {model['test']['accuracy']:.4f} on "
              f"{model['test']['images']} images, macro AUC {model['roc']['macro_auc']:.4f}, "
              f"{model['parameters']:,} parameters")
        if "flip_tta" in model:
            print(f"{'':<16}with flip TTA {model['flip_tta']['accuracy']:.4f}")
        if model.get("intervals", {}).get("accuracy"):
            low, high = model["intervals"]["accuracy"]
            print(f"{'':<16}95% bootstrap interval of the accuracy {low:.4f} to {high:.4f}")
        seeds = model.get("seeds") or {}
        if seeds.get("count", 1) > 1:
            accuracy, auc = seeds["accuracy"], seeds["macro_auc"]
            print(f"{'':<16}over {seeds['count']} seeds: accuracy {accuracy['mean']:.4f} "
                  f"+- {accuracy['sd']:.4f}, macro AUC {auc['mean']:.4f} +- {auc['sd']:.4f}")
    comparison = results.get("comparison")
    if comparison:
        low, high = comparison["interval"]
        print(f"comparison:     {' minus '.join(comparison['models'])} accuracy "
              f"{comparison['accuracy_difference']:+.4f} ({low:+.4f} to {high:+.4f}); "
              f"McNemar {comparison['only_a']} vs {comparison['only_b']}, "
              f"p = {comparison['p_value']:.3g}")
    print(f"peak memory:    {peak_mib:.0f} MiB resident")
    return 0


if __name__ == "__main__":
    sys.exit(main())
