"""Distributed search: roles and addresses, lost workers, and real chief/worker processes.

The unit tests drive keras-tuner's real oracle and its gRPC server on
loopback, with workers that report made-up scores instead of training. The
process tests run the smoke study as a chief and two workers on 127.0.0.1,
and kill one worker in the middle of a trial.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import keras_tuner as kt
import pytest

from conftest import ROOT
from study.cluster import (DEFAULT_ADDRESS, ENV_ID, ENV_IP, ENV_PORT, Cluster, ClusterError,
                           parse_address, resolve_cluster)
from study.config import build_config, to_dict
from study.ledger import read_json_lines
from study.pipeline import RunFolder, RunFolderError, check_chief_manifest, config_hash
from study.search import LOST_WORKER_RERUNS, AtomicHyperbandOracle, hyperband_trial_count

TRIALS = hyperband_trial_count(2, 2)  # the smoke preset's schedule: max_epochs 2, factor 2


# ---- Roles and addresses ------------------------------------------------------------


def test_default_role_is_single():
    cluster = resolve_cluster(None, None, None, environ={})
    assert (cluster.role, cluster.tuner_id) == ("single", "tuner0")
    assert cluster.address("cnn") == DEFAULT_ADDRESS


def test_vit_search_uses_next_port():
    cluster = resolve_cluster("chief", "0.0.0.0:7000", None, environ={})
    assert (cluster.address("cnn"), cluster.address("vit")) == ("0.0.0.0:7000", "0.0.0.0:7001")


def test_keras_tuner_variables_make_a_worker():
    environ = {ENV_ID: "gpu-1", ENV_IP: "10.0.0.2", ENV_PORT: "6000"}
    cluster = resolve_cluster(None, None, None, environ=environ)
    assert (cluster.role, cluster.worker_id, cluster.port) == ("worker", "gpu-1", 6000)


def test_keras_tuner_variables_make_a_chief():
    environ = {ENV_ID: "chief", ENV_IP: "10.0.0.2", ENV_PORT: "6000"}
    assert resolve_cluster(None, None, None, environ=environ).role == "chief"


def test_variables_without_port_rejected():
    with pytest.raises(ClusterError, match="KERASTUNER_ORACLE_PORT"):
        resolve_cluster(None, None, None, environ={ENV_IP: "10.0.0.2", ENV_ID: "w"})


def test_flags_override_the_variables():
    environ = {ENV_ID: "gpu-1", ENV_IP: "10.0.0.2", ENV_PORT: "6000"}
    assert resolve_cluster("single", None, None, environ=environ).role == "single"


def test_role_flag_keeps_address_variables():
    environ = {ENV_ID: "gpu-1", ENV_IP: "10.0.0.2", ENV_PORT: "6000"}
    cluster = resolve_cluster("worker", None, None, environ=environ)
    assert (cluster.host, cluster.port, cluster.worker_id) == ("10.0.0.2", 6000, "gpu-1")


def test_bad_variable_is_named_in_the_error():
    environ = {ENV_ID: "tuner0", ENV_IP: "10.0.0.2", ENV_PORT: "6000"}
    with pytest.raises(ClusterError, match="from KERASTUNER_TUNER_ID"):
        resolve_cluster(None, None, None, environ=environ)


def test_workers_accept_the_chiefs_timeout_option():
    assert resolve_cluster("worker", None, "w1", 5.0, environ={}).worker_id == "w1"


@pytest.mark.parametrize("address", ["7000", "host:", "host:0", "host:65535", "host:port",
                                     "http://host:7000", "host:7000:1", "::1:7000"])
def test_bad_address_names_the_value(address):
    with pytest.raises(ClusterError, match=repr(address)):
        parse_address(address)


@pytest.mark.parametrize("worker_id", ["chief-2", "tuner0", "a b", "w/1", ""])
def test_invalid_worker_id_rejected(worker_id):
    with pytest.raises(ClusterError, match="worker id"):
        resolve_cluster("worker", None, worker_id, environ={})


def test_worker_id_needs_the_worker_role():
    with pytest.raises(ClusterError, match="--role worker"):
        resolve_cluster("chief", None, "w1", environ={})


def test_default_worker_id_names_host():
    cluster = resolve_cluster("worker", None, None, environ={})
    assert cluster.worker_id.startswith("worker-")
    assert cluster.worker_id.endswith(f"-{os.getpid()}")


def test_short_worker_timeout_rejected():
    with pytest.raises(ClusterError, match="--worker-timeout"):
        resolve_cluster("chief", None, None, 4.0, environ={})


def test_environment_set_then_restored(monkeypatch):
    monkeypatch.setenv(ENV_IP, "left-by-the-user")
    cluster = Cluster("worker", "127.0.0.1", 7000, "w1")
    with cluster.environment("vit"):
        assert (os.environ[ENV_ID], os.environ[ENV_PORT]) == ("w1", "7001")
    assert os.environ[ENV_IP] == "left-by-the-user"
    assert ENV_ID not in os.environ
    with Cluster().environment("cnn"):
        assert ENV_IP not in os.environ  # one process ignores keras-tuner's variables


# ---- The oracle releases a lost worker --------------------------------------------


def _oracle(tmp_path: Path) -> AtomicHyperbandOracle:
    """A Hyperband oracle over one float, max_epochs 2 and factor 2: five trials."""
    oracle = AtomicHyperbandOracle(kt.Objective("val_accuracy", "max"), max_epochs=2,
                                   factor=2, seed=1)
    space = kt.HyperParameters()
    space.Float("rate", 0.0, 1.0)
    oracle.update_space(space)
    oracle._set_project_dir(str(tmp_path), "search")
    return oracle


def test_lost_worker_trial_is_rerun_then_failed(tmp_path):
    oracle = _oracle(tmp_path)
    first = oracle.create_trial("w1")
    assert oracle.tuner_of(first.trial_id) == "w1"
    event = oracle.release_tuner("w1", "w1 was silent")
    assert event == {"trial_id": first.trial_id, "tuner_id": "w1", "action": "rerun",
                     "losses": 1}
    assert "w1" not in oracle.active_tuners()
    again = oracle.create_trial("w2")
    assert again.trial_id == first.trial_id
    for _ in range(LOST_WORKER_RERUNS):
        event = oracle.release_tuner("w2", "w2 was silent")
    assert event["action"] == "failed"
    assert oracle.trials[first.trial_id].status == "FAILED"
    assert "lost its worker 2 times" in oracle.trials[first.trial_id].message
    assert oracle.tuner_of(first.trial_id) is None


def test_release_of_an_idle_worker_returns_none(tmp_path):
    oracle = _oracle(tmp_path)
    oracle.tuner_ids.add("w1")
    assert oracle.release_tuner("w1", "silent") is None
    assert oracle.active_tuners() == []


def test_lost_runs_survive_a_reload(tmp_path):
    oracle = _oracle(tmp_path)
    trial = oracle.create_trial("w1")
    oracle.release_tuner("w1", "silent")
    reloaded = _oracle(tmp_path)
    reloaded.reload()
    assert reloaded.lost_runs == {trial.trial_id: 1}


def test_search_finished_only_after_the_whole_schedule(tmp_path):
    oracle = _oracle(tmp_path)
    assert not oracle.search_finished()
    for _ in range(TRIALS):
        trial = oracle.create_trial("w1")
        assert not oracle.search_finished()  # a trial is running
        oracle.update_trial(trial.trial_id, {"val_accuracy": 0.5})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
    assert oracle.search_finished()


def test_checking_the_schedule_draws_no_values(tmp_path):
    checked, plain = _oracle(tmp_path / "a"), _oracle(tmp_path / "b")
    checked.search_finished()
    assert checked.create_trial("w1").hyperparameters.values == \
        plain.create_trial("w1").hyperparameters.values


# ---- The chief's server and the workers' client over loopback ----------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _client(monkeypatch, port: int, tuner_id: str, heartbeat_s: float = 0.2):
    from study.distributed import WorkerOracleClient

    monkeypatch.setenv(ENV_IP, "127.0.0.1")
    monkeypatch.setenv(ENV_PORT, str(port))
    monkeypatch.setenv(ENV_ID, tuner_id)
    return WorkerOracleClient(None, heartbeat_s=heartbeat_s, idle_wait_s=0.05)


def _work(client, tuner_id: str, score: float) -> list[str]:
    """Run trials until the chief returns STOPPED, each scoring `score`; return their ids."""
    done = []
    while True:
        trial = client.create_trial(tuner_id)
        if trial.status == "STOPPED":
            return done
        if trial.status == "IDLE":
            continue
        client.update_trial(trial.trial_id, {"val_accuracy": score})
        trial.status = "COMPLETED"
        client.end_trial(trial)
        done.append(trial.trial_id)


def test_dead_worker_trial_rerun(tmp_path, monkeypatch):
    from study.distributed import serve_search

    oracle = _oracle(tmp_path)
    port = _free_port()
    events = tmp_path / "worker_events.jsonl"
    ended = []
    chief = threading.Thread(target=serve_search, args=(
        oracle, f"127.0.0.1:{port}", 1.0, events, lambda trial_id, tuner: ended.append(tuner)))
    chief.start()
    dead = _client(monkeypatch, port, "dead")
    lost_trial = dead.create_trial("dead")  # it takes a trial, then sends nothing more
    dead.close()
    done = _work(_client(monkeypatch, port, "alive"), "alive", 0.5)
    chief.join(timeout=60)

    assert not chief.is_alive()
    assert lost_trial.trial_id in done
    assert len(oracle.trials) == TRIALS
    assert {trial.status for trial in oracle.trials.values()} == {"COMPLETED"}
    assert ended == ["alive"] * TRIALS
    assert read_json_lines(events) == [{"trial_id": lost_trial.trial_id, "tuner_id": "dead",
                                        "action": "rerun", "losses": 1,
                                        "seconds_silent": pytest.approx(1.0, abs=1.5)}]


def test_heartbeat_keeps_a_slow_worker(tmp_path, monkeypatch):
    from study.distributed import serve_search

    oracle = _oracle(tmp_path)
    port = _free_port()
    events = tmp_path / "worker_events.jsonl"
    chief = threading.Thread(target=serve_search,
                             args=(oracle, f"127.0.0.1:{port}", 1.0, events))
    chief.start()
    slow = _client(monkeypatch, port, "slow")
    trial = slow.create_trial("slow")
    time.sleep(2.5)  # longer than the timeout, but the heartbeat runs every 0.2 s
    slow.update_trial(trial.trial_id, {"val_accuracy": 0.5})
    trial.status = "COMPLETED"
    slow.end_trial(trial)
    _work(slow, "slow", 0.5)
    slow.close()
    chief.join(timeout=60)
    assert not events.exists()
    assert len(oracle.trials) == TRIALS


def test_second_chief_port_rejected(tmp_path):
    from study.distributed import serve_search

    address = f"127.0.0.1:{_free_port()}"
    first = threading.Thread(target=serve_search, args=(
        _oracle(tmp_path / "first"), address, 30.0, tmp_path / "first.jsonl"), daemon=True)
    first.start()
    time.sleep(1.0)
    with pytest.raises(ClusterError, match="cannot listen on"):
        serve_search(_oracle(tmp_path / "second"), address, 30.0, tmp_path / "second.jsonl")


def test_busy_address_is_a_clear_error(tmp_path):
    from study.distributed import serve_search

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        with pytest.raises(ClusterError, match="cannot listen on"):
            serve_search(_oracle(tmp_path), address, 30.0, tmp_path / "events.jsonl")


# ---- A worker checks the chief's manifest -------------------------------------------


def _manifest(run_dir: Path, config, fingerprint: str) -> RunFolder:
    run_dir.mkdir()
    (run_dir / "manifest.json").write_text(json.dumps(
        {"config_hash": config_hash(config), "config": to_dict(config),
         "data": "chief.tar.gz", "data_fingerprint": fingerprint}))
    return RunFolder(run_dir)


def test_matching_worker_passes_manifest_check(tmp_path):
    config = build_config("smoke")
    run = _manifest(tmp_path / "run", config, "abc")
    check_chief_manifest(run, config, "abc", "data.tar.gz", wait_s=0, mismatch_wait_s=0)


def test_worker_settings_mismatch_rejected(tmp_path):
    chief = build_config("smoke")
    run = _manifest(tmp_path / "run", chief, "abc")
    worker = build_config("smoke", seed=7)
    with pytest.raises(RunFolderError, match=r"config\.seed 42 in the chief, 7 here.*"
                                             r"--config .*config\.toml"):
        check_chief_manifest(run, worker, "abc", None, wait_s=0, mismatch_wait_s=0)


def test_worker_data_mismatch_rejected(tmp_path):
    config = build_config("smoke")
    run = _manifest(tmp_path / "run", config, "abc")
    with pytest.raises(RunFolderError, match="fingerprint def from mine.tar.gz.*abc from "
                                             "chief.tar.gz"):
        check_chief_manifest(run, config, "def", "mine.tar.gz", wait_s=0, mismatch_wait_s=0)


def test_worker_without_a_chief_gives_up(tmp_path):
    with pytest.raises(RunFolderError, match="no chief recorded"):
        check_chief_manifest(RunFolder(tmp_path), build_config("smoke"), "abc", None,
                             wait_s=0)


# ---- Real processes: one chief, two workers ------------------------------------------


def _start(work: Path, data: Path, port: int, name: str, *options: str) -> subprocess.Popen:
    """Start one process of the smoke study; its output goes to `<work>/<name>.out`."""
    role = ["--role", "chief"] if name == "chief" else ["--role", "worker", "--worker-id", name]
    command = [sys.executable, str(ROOT / "run_study.py"), "--preset", "smoke",
               "--data", str(data), "--run-dir", str(work / "run"),
               "--chief-address", f"127.0.0.1:{port}", *role, *options]
    with (work / f"{name}.out").open("w") as log:
        return subprocess.Popen(command, cwd=work, stdout=log, stderr=subprocess.STDOUT)


def _finish(process: subprocess.Popen, timeout: float = 600) -> int:
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        raise


@pytest.fixture(scope="module")
def cluster_run(smoke_run, tmp_path_factory):
    """The smoke study with a chief and workers w1 and w2; returns the work folder."""
    data = smoke_run[0] / "cifar10-slice.tar.gz"
    work = tmp_path_factory.mktemp("cluster")
    port = _free_port()
    chief = _start(work, data, port, "chief", "--out", str(work / "site"))
    workers = [_start(work, data, port, name) for name in ("w1", "w2")]
    codes = [_finish(process) for process in (chief, *workers)]
    assert codes == [0, 0, 0], (work / "chief.out").read_text()[-3000:]
    return work


def test_both_workers_ran_trials_of_both_searches(cluster_run):
    for model in ("cnn", "vit"):
        for worker in ("w1", "w2"):
            runs = read_json_lines(cluster_run / "run" / "search" / model /
                                   f"trial_runs.{worker}.jsonl")
            assert runs, f"{worker} ran no {model} trial"


def test_trial_count_matches_single_process(cluster_run, smoke_run):
    single = smoke_run[2]["models"]
    results = json.loads((cluster_run / "site" / "results.json").read_text())
    for model in ("cnn", "vit"):
        ledger = results["models"][model]["search"]["ledger"]
        assert ledger["totals"]["trials"] == single[model]["search"]["trials"] == TRIALS
        assert ledger["totals"]["workers"] == ["w1", "w2"]


def test_only_the_chief_renders_the_report_once(cluster_run):
    chief_log = (cluster_run / "run" / "study.log").read_text()
    assert chief_log.count("stage report: started") == 1
    assert (cluster_run / "site" / "study.pdf").stat().st_size > 0
    for worker in ("w1", "w2"):
        worker_log = (cluster_run / "run" / f"study-{worker}.log").read_text()
        assert "stage report" not in worker_log
        assert "stage refit" not in worker_log
        assert "finished: both searches in" in (
            cluster_run / f"{worker}.out").read_text()


def test_site_names_the_workers(cluster_run):
    html = (cluster_run / "site" / "index.html").read_text()
    assert "w1" in html
    assert "w2" in html


def _wait_for_trial_of(oracle_file: Path, worker: str, timeout: float = 300) -> str:
    """Return the id of the trial that the chief's oracle.json lists for `worker`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            ongoing = json.loads(oracle_file.read_text())["ongoing_trials"]
        except (OSError, ValueError, KeyError):
            ongoing = {}
        if worker in ongoing:
            return ongoing[worker]
        time.sleep(0.2)
    raise AssertionError(f"{worker} never took a trial")


def test_search_survives_killed_worker(smoke_run, tmp_path):
    data = smoke_run[0] / "cifar10-slice.tar.gz"
    port = _free_port()
    chief = _start(tmp_path, data, port, "chief", "--stages", "search",
                   "--worker-timeout", "20")
    victim = _start(tmp_path, data, port, "w1")
    survivor = _start(tmp_path, data, port, "w2")
    lost_trial = _wait_for_trial_of(tmp_path / "run" / "search" / "cnn" / "oracle.json", "w1")
    victim.send_signal(signal.SIGKILL)
    victim.wait()

    assert _finish(chief) == 0, (tmp_path / "chief.out").read_text()[-3000:]
    assert _finish(survivor) == 0
    record = json.loads((tmp_path / "run" / "stages" / "search_cnn.json").read_text())
    ledger = record["record"]["summary"]["ledger"]
    rows = {row["trial_id"]: row for row in ledger["trials"]}
    assert len(rows) == TRIALS
    assert rows[lost_trial]["lost_workers"][0]["tuner_id"] == "w1"
    assert rows[lost_trial]["lost_workers"][0]["action"] == "rerun"
    assert rows[lost_trial]["status"] == "COMPLETED"
    assert rows[lost_trial]["tuner_id"] == "w2"
    assert "w1 was not heard from" in (tmp_path / "run" / "study.log").read_text()
