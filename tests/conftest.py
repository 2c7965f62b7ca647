"""Shared test setup: the project root on sys.path, quiet TensorFlow, and the smoke study.

`smoke_run` runs the whole smoke study once per test session, through the
CLI, on a slice of the real CIFAR-10 images (50 training and 20 test images
per class) cut from the JPEG archive beside the checkout.
"""

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# The real CIFAR-10 images, kept beside the checkout and never committed.
SHARED_ARCHIVE = ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.xz"

PER_CLASS = {"train": 50, "test": 20}  # images per class in the smoke slice


def cut_slice(source: Path, target: Path) -> None:
    copied: dict[tuple[str, str], int] = {}
    with tarfile.open(source, "r|xz") as tar, tarfile.open(target, "w:gz") as out:
        for member in tar:
            parts = Path(member.name).parts
            if not member.isfile() or len(parts) < 4:
                continue
            key = (parts[-3], parts[-2])
            if copied.get(key, 0) >= PER_CLASS.get(parts[-3], 0):
                continue
            copied[key] = copied.get(key, 0) + 1
            out.addfile(member, io.BytesIO(tar.extractfile(member).read()))


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """Run the smoke study twice, the second time reusing every stage.

    Returns the work folder, both finished processes and the first run's results.
    """
    if not SHARED_ARCHIVE.exists():
        pytest.fail(f"the CIFAR-10 archive is missing at {SHARED_ARCHIVE}")
    work = tmp_path_factory.mktemp("e2e")
    data = work / "cifar10-slice.tar.gz"
    cut_slice(SHARED_ARCHIVE, data)
    command = [sys.executable, str(ROOT / "run_study.py"), "--preset", "smoke",
               "--data", str(data), "--out", str(work / "site"),
               "--run-dir", str(work / "run")]
    completed = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=900)
    assert completed.returncode == 0, completed.stderr[-4000:]
    first_results = json.loads((work / "site" / "results.json").read_text())
    rerun = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-4000:]
    return work, completed, first_results, rerun
