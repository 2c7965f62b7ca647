import dataclasses

import pytest

from study.config import build_config
from study.pipeline import RunFolder, RunFolderError, StageTimer, _check_manifest, changed_keys


def test_changed_config_refused(tmp_path):
    run = RunFolder(tmp_path / "run")
    config = build_config("smoke")
    _check_manifest(run, config, "data.tar.xz")
    _check_manifest(run, config, "data.tar.xz")  # same config: accepted
    # Before any stage finishes, another config simply takes the folder over.
    _check_manifest(run, dataclasses.replace(config, seed=5), "data.tar.xz")
    _check_manifest(run, config, "data.tar.xz")
    run.save_stage("exploration", {})
    changed = dataclasses.replace(config, seed=1, train_images=300)
    with pytest.raises(RunFolderError, match="differ in config.seed, config.train_images;"):
        _check_manifest(run, changed, "data.tar.xz")
    with pytest.raises(RunFolderError, match="another --run-dir"):
        _check_manifest(run, config, "other.tar.xz")


def test_cached_stage_reused_with_time(tmp_path):
    run = RunFolder(tmp_path)
    calls = []

    def compute():
        calls.append(1)
        return {"value": 3}

    first = StageTimer()
    assert first.cached(run, "search_cnn", compute) == {"value": 3}
    assert first.reused == []
    again = StageTimer()
    assert again.cached(run, "search_cnn", compute) == {"value": 3}
    assert len(calls) == 1
    assert again.reused == ["search_cnn"]
    assert again.seconds["search_cnn"] == first.seconds["search_cnn"]


def test_failed_stage_not_saved(tmp_path):
    run = RunFolder(tmp_path)

    def broken():
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        StageTimer().cached(run, "refit_cnn", broken)
    assert run.load_stage("refit_cnn") is None


def test_changed_keys_dotted():
    before = {"config": {"cnn": {"search": {"max_epochs": 2}}, "seed": 1}, "data": "a"}
    after = {"config": {"cnn": {"search": {"max_epochs": 3}}, "seed": 1}, "data": "b"}
    assert changed_keys(before, after) == ["config.cnn.search.max_epochs", "data"]
    assert changed_keys(before, before) == []
