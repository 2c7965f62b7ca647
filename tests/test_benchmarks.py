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


def test_budget_script_counts_the_quick_preset():
    command = [sys.executable, str(ROOT / "benchmarks" / "budget.py"), "--preset", "quick",
               "--cnn-rate", "1000", "--vit-rate", "2000"]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-3000:]
    # Search: 5 trials, 2 + 2 + 1 + 1 + 1 epochs on 4,000 images. Refits: 3 seeds of
    # 6 epochs on the 22,500 images left after validation. Test: 10,000 images,
    # twice for the first seed (flip TTA) and once for each other seed.
    assert ("cnn: search 5 trials, at most 7 epochs (28,000 images); 3 refit(s) of at most "
            "6 epochs (405,000 images); test 40,000 images") in completed.stdout
    # (28,000 + 405,000) / 1,000 images/s = 433 s; at 2,000 images/s, 216.5 s.
    assert "cnn: at 1,000 images/s, at most 7.2 min of training steps" in completed.stdout
    assert "vit: at 2,000 images/s, at most 3.6 min of training steps" in completed.stdout
    assert "both: at most 10.8 min of training steps" in completed.stdout


def test_budget_script_rejects_a_zero_rate():
    command = [sys.executable, str(ROOT / "benchmarks" / "budget.py"), "--cnn-rate", "0"]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 2
    assert "--cnn-rate must be a positive number of images per second, got 0.0" in completed.stderr
