"""How the command line handles a run folder it cannot write, a full disk and bad options."""

import errno
import json
import re
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import run_study
from conftest import ROOT
from report_fixture import make_run_dir
from study.pipeline import RunFolder


def _tiny_tree(root):
    rng = np.random.default_rng(0)
    for split, count in (("train", 12), ("test", 4)):
        for name in ("cat", "dog"):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


def test_run_folder_under_a_file(tmp_path, capsys):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    code = run_study.main(["--preset", "smoke", "--run-dir", str(blocker / "run"),
                           "--out", str(tmp_path / "site")])
    assert code == 1
    message = capsys.readouterr().err
    assert f"cannot write the run folder {blocker / 'run'}" in message
    assert "choose another --run-dir" in message


def test_disk_full_keeps_finished_stages(tmp_path, monkeypatch, capsys):
    data = _tiny_tree(tmp_path / "data")
    run_dir = tmp_path / "run"
    saved = RunFolder.save_stage

    def full_after_exploration(self, stage, record):
        if stage != "exploration":
            raise OSError(errno.ENOSPC, "No space left on device", str(self.stage_file(stage)))
        saved(self, stage, record)

    monkeypatch.setattr(RunFolder, "save_stage", full_after_exploration)
    # The search fails to record first; the smoke search itself runs on 24 images.
    code = run_study.main(["--preset", "smoke", "--data", str(data), "--run-dir", str(run_dir),
                           "--out", str(tmp_path / "site")])
    assert code == 1
    # The CLI logs to stderr (pytest's capture at the time it was set up).
    message = capsys.readouterr().err
    assert "stages/search_cnn.json: No space left on device" in message
    assert "run the same command again" in message
    assert RunFolder(run_dir).load_stage("exploration") is not None


def test_render_only_with_restart_refused(capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_study.parse_args(["--render-only", "--restart", "refit"])
    assert exit_info.value.code == 2
    assert "pass one of them" in capsys.readouterr().err


def test_restart_choice_checked(capsys):
    with pytest.raises(SystemExit):
        run_study.parse_args(["--restart", "report"])
    assert "invalid choice: 'report'" in capsys.readouterr().err


def test_sigterm_ends_like_ctrl_c(tmp_path):
    data = _tiny_tree(tmp_path / "data")
    command = [sys.executable, str(ROOT / "run_study.py"), "--preset", "smoke",
               "--data", str(data), "--run-dir", str(tmp_path / "run"),
               "--out", str(tmp_path / "site")]
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    lines = []
    for line in process.stderr:
        lines.append(line)
        if "stage search_cnn: started" in line:
            process.send_signal(signal.SIGTERM)
    process.wait(timeout=300)
    log = "".join(lines)
    assert process.returncode == 128 + signal.SIGTERM, log[-3000:]
    assert "interrupted; run the same command again" in log
    assert RunFolder(tmp_path / "run").load_stage("exploration") is not None


def test_cli_options_reach_the_results(tmp_path):
    data = _tiny_tree(tmp_path / "data")
    run_dir = tmp_path / "run"
    code = run_study.main(["--preset", "smoke", "--data", str(data), "--run-dir", str(run_dir),
                           "--out", str(tmp_path / "site"), "--cnn-space", "original",
                           "--vit-space", "original", "--no-flip-tta", "--xla", "off",
                           "--seeds", "2"])
    assert code == 0
    results = json.loads((run_dir / "results.json").read_text())
    assert results["config"]["cnn_space"]["name"] == "original"
    assert results["config"]["vit_space"]["pooling"] == ["flatten"]
    assert results["config"]["evaluation"]["flip_tta"] is False
    # The preset's other evaluation settings survive the option.
    assert results["config"]["evaluation"]["bootstrap_resamples"] == 200
    assert results["environment"]["accelerator"] == {"policy": "float32", "xla": False,
                                                     "replicas": 1}
    seed = results["config"]["seed"]
    for key, model in results["models"].items():
        assert "flip_tta" not in model
        assert model["best_hyperparameters"]["optimizer"] in ("adam", "rmsprop")
        assert "schedule" in model["best_hyperparameters"]
        runs = model["seeds"]["runs"]
        assert [run["seed"] for run in runs] == [seed, seed + 1]
        assert runs[0]["accuracy"] == model["test"]["accuracy"]
        assert model["seeds"]["accuracy"]["mean"] == pytest.approx(
            (runs[0]["accuracy"] + runs[1]["accuracy"]) / 2)
        assert model["seeds"]["accuracy"]["sd"] is not None
        folder = run_dir / "seeds" / key
        assert (folder / f"seed-{seed + 1}.json").exists()
        assert (folder / "models" / f"{key}_seed{seed + 1}.keras").exists()
        assert not (folder / "backup").exists() or not any((folder / "backup").iterdir())
        low, high = model["intervals"]["accuracy"]
        assert low <= model["test"]["accuracy"] <= high
    comparison = results["comparison"]
    assert comparison["models"] == ["cnn", "vit"]
    assert 0.0 <= comparison["p_value"] <= 1.0
    site = (tmp_path / "site" / "index.html").read_text()
    assert "Every refit of the best configurations, one row per seed." in site


def test_seeds_below_one_refused(capsys):
    assert run_study.main(["--preset", "smoke", "--seeds", "0"]) == 2
    assert "--seeds must be at least 1" in capsys.readouterr().err


def test_unknown_space_refused(capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_study.parse_args(["--vit-space", "tiny"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'tiny'" in capsys.readouterr().err


def test_render_only_warns_about_training_options(tmp_path, capsys):
    run_dir = make_run_dir(tmp_path / "run", class_names=("a", "b"))
    code = run_study.main(["--render-only", "--run-dir", str(run_dir), "--out",
                           str(tmp_path / "site"), "--seeds", "4"])
    assert code == 0
    err = capsys.readouterr().err
    assert "--render-only redraws the results" in err
    assert "so --seeds has no effect" in err


def test_stages_exploration_only_quiet(tmp_path, capsys):
    data = _tiny_tree(tmp_path / "data")
    run_dir = tmp_path / "run"
    code = run_study.main(["--preset", "smoke", "--data", str(data), "--run-dir", str(run_dir),
                           "--out", str(tmp_path / "site"), "--stages", "exploration",
                           "--quiet"])
    assert code == 0
    captured = capsys.readouterr()
    assert " INFO " not in captured.err
    assert "stages exploration finished in" in captured.out
    assert (run_dir / "stages" / "exploration.json").is_file()
    assert not (run_dir / "stages" / "search_cnn.json").exists()
    assert not (run_dir / "results.json").exists()
    assert not (tmp_path / "site").exists()
    log_text = (run_dir / "study.log").read_text()
    assert "resolved config" in log_text
    assert "still to run: search_cnn" in log_text
    assert (run_dir / "config.toml").is_file()


def test_list_stages_shows_run_folder_state(tmp_path, capsys):
    run_dir = tmp_path / "run"
    RunFolder(run_dir).save_stage("exploration", {"seconds": 1.0, "record": {}})
    assert run_study.main(["--list-stages", "--run-dir", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert f"state in {run_dir}" in out
    assert "exploration      finished" in out
    assert "search_cnn       not run" in out
    assert "report" in out


def test_unknown_stage_refused(capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_study.parse_args(["--stages", "exploration,plots"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "invalid stage 'plots'" in err
    assert "see --list-stages" in err


def test_render_only_with_stages_refused(capsys):
    with pytest.raises(SystemExit):
        run_study.parse_args(["--render-only", "--stages", "report"])
    assert "--stages has nothing to run" in capsys.readouterr().err


def test_render_only_letter_page_size(tmp_path):
    run_dir = make_run_dir(tmp_path / "run", class_names=("a", "b"))
    code = run_study.main(["--render-only", "--run-dir", str(run_dir), "--out",
                           str(tmp_path / "site"), "--page-size", "Letter", "--quiet"])
    assert code == 0
    if shutil.which("pdfinfo") is None:
        pytest.skip("pdfinfo (poppler-utils) is not installed")
    info = subprocess.run(["pdfinfo", str(tmp_path / "site" / "study.pdf")],
                          capture_output=True, text=True, check=True).stdout
    assert "612 x 792 pts" in info


def test_page_sizes_match_renderer():
    from report.render import PAGE_SIZES

    assert run_study.PAGE_SIZES == PAGE_SIZES


def test_help_gives_every_option_a_default_or_switch(capsys):
    with pytest.raises(SystemExit):
        run_study.parse_args(["--help"])
    text = capsys.readouterr().out
    for option in ("--preset", "--config", "--data", "--out", "--run-dir", "--stages",
                   "--page-size", "--seed", "--cnn-space", "--vit-space", "--seeds",
                   "--no-flip-tta", "--mixed-precision", "--xla", "--search-budget"):
        assert option in text
    assert text.count("Default") >= 14
    assert "minutes" in text
    assert "config.toml" in text


@pytest.mark.parametrize(("setting", "expected"), [
    ("[vit_space]\npatch_sizes = [3]", "none of the patch sizes [3] divides the image side 8"),
    ('[cnn_space]\nactivations = ["swishy"]', "unknown CNN activation 'swishy'"),
])
def test_space_unfit_for_data_stops_early(tmp_path, capsys, setting, expected):
    data = _tiny_tree(tmp_path / "data")
    config = tmp_path / "study.toml"
    config.write_text('preset = "smoke"\n' + setting + "\n")
    run_dir = tmp_path / "run"
    code = run_study.main(["--config", str(config), "--data", str(data), "--run-dir",
                           str(run_dir), "--out", str(tmp_path / "site")])
    assert code == 2
    err = capsys.readouterr().err
    assert "the search spaces do not suit the data" in err
    assert expected in err
    assert not (run_dir / "search").exists()


def test_unexpected_error_logged_to_file(tmp_path, monkeypatch, capsys):
    data = _tiny_tree(tmp_path / "data")
    run_dir = tmp_path / "run"

    def broken(*args, **kwargs):
        raise RuntimeError("exploration broke")

    monkeypatch.setattr("study.exploration.explore", broken)
    code = run_study.main(["--preset", "smoke", "--data", str(data), "--run-dir",
                           str(run_dir), "--out", str(tmp_path / "site")])
    assert code == 1
    log_text = (run_dir / "study.log").read_text()
    assert "the study failed with an unexpected error" in log_text
    assert "RuntimeError: exploration broke" in log_text


def test_quiet_hides_native_start_up_lines(tmp_path):
    # A fresh process, so TensorFlow is imported (and prints) during the run.
    data = _tiny_tree(tmp_path / "data")
    run_dir = tmp_path / "run"
    completed = subprocess.run(
        [sys.executable, str(ROOT / "run_study.py"), "--preset", "smoke", "--data", str(data),
         "--run-dir", str(run_dir), "--stages", "exploration", "--quiet"],
        capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-2000:]
    for line in completed.stderr.splitlines():
        assert re.match(r"\d\d:\d\d:\d\d (WARNING|ERROR) ", line), line
    assert "stages exploration finished" in completed.stdout
