import dataclasses
import json
import os
import signal
import sys
import time
import tomllib
import weakref

import numpy as np
import pytest

from study.config import build_config
from study.data import ImageDataset
from study.config_file import resolve_config
from study.pipeline import (CONFIG_FILE, STAGES, Heartbeat, Manifest, RunFolder,
                            RunFolderError, StageTimer, changed_keys, data_fingerprint,
                            downstream, planned_stages, restart_stages, stage_table,
                            stages_affected)
from study.stop import StopRequested, raise_if_requested, stop_on_signals


def _finish(run: RunFolder, *stages: str) -> None:
    for stage in stages:
        run.save_stage(stage, {"seconds": 1.0, "record": {}})


def _manifest(run, config, restart=None, fingerprint="f1"):
    manifest = Manifest(run, config, "data.tar.xz", restart)
    manifest.check_config()
    manifest.check_data(fingerprint)
    manifest.commit(fingerprint)
    return manifest


def test_downstream_and_restart_expansion():
    assert downstream("refit_vit") == ["refit_vit", "evaluation_vit", "seeds_vit"]
    assert downstream("evaluation_cnn") == ["evaluation_cnn"]
    assert downstream("exploration") == ["exploration"]
    assert restart_stages("search") == ["search_cnn", "refit_cnn", "evaluation_cnn", "seeds_cnn",
                                        "search_vit", "refit_vit", "evaluation_vit", "seeds_vit"]
    assert restart_stages("evaluation") == ["evaluation_cnn", "evaluation_vit"]
    assert restart_stages("seeds") == ["seeds_cnn", "seeds_vit"]
    assert restart_stages("all") == list(STAGES)
    assert restart_stages(None) == []
    with pytest.raises(ValueError, match="'report'"):
        restart_stages("report")


def test_stages_affected_by_key():
    assert stages_affected("config.cnn.refit.max_epochs") == ["refit_cnn", "evaluation_cnn",
                                                              "seeds_cnn"]
    assert stages_affected("config.cnn.refit.seeds") == ["seeds_cnn"]
    assert stages_affected("config.evaluation.bootstrap_resamples") == ["evaluation_cnn",
                                                                        "evaluation_vit"]
    assert stages_affected("config.vit_space.heads") == ["search_vit", "refit_vit",
                                                         "evaluation_vit", "seeds_vit"]
    assert stages_affected("config.vit.search.factor")[0] == "search_vit"
    assert stages_affected("config.exploration.histogram_bins") == ["exploration"]
    assert stages_affected("config.preset") == []
    assert stages_affected("config.augmentation.flip") == list(STAGES[1:])
    assert stages_affected("config.seed") == list(STAGES)


def test_same_config_accepted_and_created_kept(tmp_path):
    run = RunFolder(tmp_path / "run")
    config = build_config("smoke")
    first = _manifest(run, config)
    _finish(run, "exploration", "search_cnn")
    created = (run.root / "manifest.json").read_text()
    again = _manifest(run, config)
    assert again.restart == []
    assert (run.root / "manifest.json").read_text() == created
    assert first.present == []


def test_commit_stores_config_toml(tmp_path):
    run = RunFolder(tmp_path / "run")
    config = build_config("smoke", 5, cnn_space="original")
    _manifest(run, config)
    stored = tomllib.loads((run.root / CONFIG_FILE).read_text())
    assert resolve_config(stored) == config


@pytest.mark.parametrize(("requested", "expected"), [
    (None, [*STAGES, "report"]),
    (["report"], [*STAGES, "report"]),
    (["exploration"], ["exploration"]),
    (["search_cnn"], ["search_cnn"]),
    (["seeds_vit"], ["search_vit", "refit_vit", "evaluation_vit", "seeds_vit"]),
    (["refit"], ["search_cnn", "refit_cnn", "search_vit", "refit_vit"]),
    (["evaluation_cnn", "exploration"],
     ["exploration", "search_cnn", "refit_cnn", "evaluation_cnn"]),
])
def test_planned_stages_add_needed(requested, expected):
    assert planned_stages(requested) == expected


def test_planned_stages_unknown_name():
    with pytest.raises(ValueError, match="unknown stage 'plots'"):
        planned_stages(["plots"])


def test_stage_table_states(tmp_path):
    run = RunFolder(tmp_path / "run")
    _finish(run, "exploration")
    (run.root / "search" / "cnn").mkdir(parents=True)
    lines = stage_table(run.root).splitlines()
    states = {line.split()[0]: line.split()[1] for line in lines[1:11]}
    assert states["exploration"] == "finished"
    assert states["search_cnn"] == "partial"
    assert states["refit_cnn"] == "not"
    assert lines[10].split()[:3] == ["report", "not", "run"]


def test_stage_table_marks_stale(tmp_path):
    run = RunFolder(tmp_path / "run")
    config = build_config("smoke")
    _manifest(run, config)
    _finish(run, "exploration", "search_cnn", "refit_cnn")
    changed = dataclasses.replace(config, cnn=dataclasses.replace(
        config.cnn, refit=dataclasses.replace(config.cnn.refit, max_epochs=9)))
    states = {line.split()[0]: line.split()[1]
              for line in stage_table(run.root, changed).splitlines()[1:11]}
    assert states["exploration"] == "finished"
    assert states["search_cnn"] == "finished"
    assert states["refit_cnn"] == "stale"
    assert "a run rejects them unless --restart refit_cnn" in stage_table(run.root, changed)
    unchanged = stage_table(run.root, config).splitlines()[1:11]
    assert [line.split()[1] for line in unchanged].count("stale") == 0


def test_changed_refit_setting_names_key_and_stage(tmp_path):
    run = RunFolder(tmp_path / "run")
    config = build_config("smoke")
    _manifest(run, config)
    _finish(run, "exploration", "search_cnn", "refit_cnn", "evaluation_cnn")
    refit = dataclasses.replace(config.cnn.refit, max_epochs=7)
    changed = dataclasses.replace(config, cnn=dataclasses.replace(config.cnn, refit=refit))
    with pytest.raises(RunFolderError) as error:
        Manifest(run, changed, "data.tar.xz").check_config()
    message = str(error.value)
    assert "config.cnn.refit.max_epochs 2 -> 7" in message
    assert "(refit_cnn, evaluation_cnn)" in message
    assert "--restart refit_cnn" in message
    # With the restart the refit and evaluation go; the search stays.
    _manifest(run, changed, restart="refit_cnn")
    assert run.present_stages() == ["exploration", "search_cnn"]


def test_changed_space_named_first(tmp_path):
    run = RunFolder(tmp_path / "run")
    _manifest(run, build_config("smoke"))
    _finish(run, "exploration", "search_cnn")
    original = build_config("smoke", cnn_space="original")
    with pytest.raises(RunFolderError) as error:
        Manifest(run, original, "data.tar.xz").check_config()
    message = str(error.value)
    assert "from other settings (config.cnn_space.name 'modern' -> 'original', " in message
    assert "--restart search_cnn" in message


def test_accelerator_and_tta_keys_pick_stages():
    assert stages_affected("config.accelerator.xla") == list(STAGES[1:])
    assert stages_affected("config.evaluation.flip_tta") == ["evaluation_cnn", "evaluation_vit"]


def test_changed_setting_of_absent_stage_accepted(tmp_path):
    run = RunFolder(tmp_path / "run")
    config = build_config("smoke")
    _manifest(run, config)
    _finish(run, "exploration")
    heads = dataclasses.replace(config.vit_space, heads=(1,))
    _manifest(run, dataclasses.replace(config, vit_space=heads))
    assert run.present_stages() == ["exploration"]


def test_partial_search_counts_as_present(tmp_path):
    run = RunFolder(tmp_path / "run")
    config = build_config("smoke")
    _manifest(run, config)
    (run.root / "search" / "vit").mkdir(parents=True)
    heads = dataclasses.replace(config.vit_space, heads=(1,))
    with pytest.raises(RunFolderError, match="--restart search_vit"):
        Manifest(run, dataclasses.replace(config, vit_space=heads), None).check_config()


def test_seed_change_suggests_restart_all(tmp_path):
    run = RunFolder(tmp_path / "run")
    config = build_config("smoke")
    _manifest(run, config)
    _finish(run, "exploration", "search_cnn")
    with pytest.raises(RunFolderError, match="config.seed 42 -> 5.*--restart all"):
        Manifest(run, dataclasses.replace(config, seed=5), None).check_config()


def test_other_data_refused_then_restarted(tmp_path):
    run = RunFolder(tmp_path / "run")
    config = build_config("smoke")
    _manifest(run, config, fingerprint="aaaa")
    _finish(run, "exploration", "search_cnn")
    (run.root / "results.json").write_text("{}")
    with pytest.raises(RunFolderError, match="other data.*aaaa.*bbbb.*--restart all"):
        _manifest(run, config, fingerprint="bbbb")
    assert run.present_stages() == ["exploration", "search_cnn"]
    _manifest(run, config, restart="all", fingerprint="bbbb")
    assert run.present_stages() == []
    assert not (run.root / "results.json").exists()


def test_data_fingerprint_sees_one_pixel():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (4, 2, 2, 3), dtype=np.uint8)
    y = np.array([0, 1, 0, 1])
    data = ImageDataset(x, y, x.copy(), y, ("a", "b"), "test")
    same = ImageDataset(x.copy(), y.copy(), x.copy(), y.copy(), ("a", "b"), "elsewhere")
    assert data_fingerprint(data) == data_fingerprint(same)
    x2 = x.copy()
    x2[3, 1, 1, 2] ^= 1
    assert data_fingerprint(data) != data_fingerprint(ImageDataset(x2, y, x, y, ("a", "b"), ""))
    renamed = ImageDataset(x, y, x, y, ("a", "c"), "test")
    assert data_fingerprint(data) != data_fingerprint(renamed)


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


def test_heartbeat_records_elapsed(tmp_path):
    path = tmp_path / "stages" / "search_cnn.elapsed"
    with Heartbeat(path, earlier=3.0, interval=0.05):
        time.sleep(0.3)
        recorded = json.loads(path.read_text())["seconds"]
    assert 3.1 <= recorded < 3.3


def test_interrupted_stage_adds_earlier_time(tmp_path):
    run = RunFolder(tmp_path)
    run.elapsed_file("refit_cnn").parent.mkdir(parents=True)
    run.elapsed_file("refit_cnn").write_text(json.dumps({"seconds": 12.5}))
    timer = StageTimer()
    timer.cached(run, "refit_cnn", lambda: {"value": 1})
    assert 12.5 <= timer.seconds["refit_cnn"] < 13.0
    assert timer.resumed == {"refit_cnn": 12.5}
    assert not run.elapsed_file("refit_cnn").exists()
    # A later invocation reuses the stage and still reports the resume.
    again = StageTimer()
    again.cached(run, "refit_cnn", lambda: {"value": 2})
    assert again.resumed == {"refit_cnn": 12.5}
    assert again.seconds["refit_cnn"] == timer.seconds["refit_cnn"]


def test_elapsed_file_makes_stage_present(tmp_path):
    run = RunFolder(tmp_path)
    run.elapsed_file("exploration").parent.mkdir(parents=True)
    run.elapsed_file("exploration").write_text("{}")
    assert run.present_stages() == ["exploration"]
    run.remove_stage("exploration")
    assert run.present_stages() == []


def test_stop_signal_raised_once_received():
    with stop_on_signals():
        with pytest.raises(StopRequested) as stopped:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)  # the handler runs between bytecodes of this loop
        assert stopped.value.signum == signal.SIGTERM
        # Had that first raise been lost (inside a weakref callback), the
        # request is still pending and the next check raises it.
        with pytest.raises(StopRequested):
            raise_if_requested()
    raise_if_requested()  # outside the block the request is cleared


def test_lost_stop_traceback_silenced(monkeypatch):
    reported = []
    monkeypatch.setattr(sys, "unraisablehook", lambda unraisable: reported.append(
        type(unraisable.exc_value).__name__))

    class Holder:
        pass

    def drop(error):
        # An exception raised in a weakref callback is "unraisable": Python
        # passes it to sys.unraisablehook instead of raising it.
        def callback(_):
            raise error
        holder = Holder()
        reference = weakref.ref(holder, callback)
        del holder
        assert reference() is None

    with stop_on_signals():
        drop(StopRequested(signal.SIGINT))
        drop(ValueError("a real problem"))
    assert reported == ["ValueError"]
