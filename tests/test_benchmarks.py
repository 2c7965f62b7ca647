"""The benchmark scripts still run; their numbers are recorded in docs/benchmarks.md."""

import re
import subprocess
import sys

from conftest import ROOT
from report_fixture import make_run_dir


def test_throughput_script_prints_ratio():
    command = [sys.executable, str(ROOT / "benchmarks" / "throughput.py"), "--images", "256",
               "--epochs", "2", "--repeats", "1"]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    ratio = re.search(r"^ratio:\s+([0-9.]+) \(pipeline / plain\)$", completed.stdout, re.M)
    assert ratio, completed.stdout
    assert float(ratio.group(1)) > 0
    assert "256 images, 1 timed epoch(s), 1 repeat(s)" in completed.stdout


def test_throughput_script_rejects_one_epoch():
    command = [sys.executable, str(ROOT / "benchmarks" / "throughput.py"), "--epochs", "1"]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 2
    assert "--epochs must be at least 2" in completed.stderr


def test_render_time_script_prints_median(tmp_path):
    run_dir = make_run_dir(tmp_path / "run")
    command = [sys.executable, str(ROOT / "benchmarks" / "render_time.py"), "--run-dir",
               str(run_dir), "--repeats", "1"]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert re.search(r"^render 1: [0-9.]+ s \(figures [0-9.]+ s, PDF [0-9.]+ s\)$",
                     completed.stdout, re.M), completed.stdout
    assert "over 1 render(s)" in completed.stdout
