"""The distributed-search examples: every run_study.py command parses, and chief and workers agree.

Commands come from the bash blocks of docs/distributed.md, from the
container args of examples/distributed/kubernetes.yaml, and from running the
two shell scripts in examples/distributed/ with stand-ins for `python` and
`nvidia-smi` that record what they were called with.
"""

import json
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

import run_study
from conftest import ROOT
from study.cluster import ClusterError, resolve_cluster

DOC = ROOT / "docs" / "distributed.md"
EXAMPLES = ROOT / "examples" / "distributed"
MANIFEST = EXAMPLES / "kubernetes.yaml"
MULTI_GPU = EXAMPLES / "multi_gpu.sh"
SLURM_ARRAY = EXAMPLES / "slurm_array.sh"

ROLES = ("chief", "worker")
ENVIRONMENT_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
SCRIPT_TIMEOUT_S = 60


@dataclass
class Launch:
    """One run_study.py process of an example: its role, chief address and parsed options."""

    role: str
    host: str
    port: int
    worker_id: str | None
    args: object
    source: str


def split_command(words: list[str]) -> tuple[dict[str, str], list[str]]:
    """Split a shell command into its leading VAR=value assignments and run_study.py's arguments."""
    env = {}
    for word in words:
        if not ENVIRONMENT_ASSIGNMENT.match(word):
            break
        name, _, value = word.partition("=")
        env[name] = value
    position = next(index for index, word in enumerate(words) if word.endswith("run_study.py"))
    argv = words[position + 1:]
    if argv and argv[-1] == "&":
        argv = argv[:-1]
    return env, argv


def parse_launch(env: dict[str, str], argv: list[str], source: str) -> Launch:
    """Parse one command as run_study.py does, with `env` as its keras-tuner variables."""
    words = shlex.join(argv)
    try:
        args = run_study.parse_args(argv)
    except SystemExit as error:
        pytest.fail(f"run_study.py rejects {words!r} from {source} (exit status {error.code})")
    try:
        cluster = resolve_cluster(args.role, args.chief_address, args.worker_id,
                                  args.worker_timeout, environ=env)
    except ClusterError as error:
        pytest.fail(f"{source}: {words!r} has no valid role and address: {error}")
    return Launch(cluster.role, cluster.host, cluster.port, cluster.worker_id, args, source)


def assert_one_study(launches: list[Launch]) -> None:
    """Check that the launches of one example form a study: a chief and workers on one port."""
    roles = {launch.role for launch in launches}
    assert roles == set(ROLES), f"{launches[0].source}: roles {sorted(roles)}, expected both"
    ports = {launch.port for launch in launches}
    assert len(ports) == 1, f"{launches[0].source}: chief and workers use ports {sorted(ports)}"


# docs/distributed.md


def bash_blocks_by_section(text: str) -> dict[str, list[str]]:
    """Return the ```bash blocks of a Markdown page, grouped under their `## ` heading."""
    sections: dict[str, list[str]] = {}
    heading = ""
    block: list[str] | None = None
    for line in text.splitlines():
        if block is not None:
            if line.strip() == "```":
                sections.setdefault(heading, []).append("\n".join(block))
                block = None
            else:
                block.append(line)
        elif line.startswith("## "):
            heading = line[3:].strip()
        elif line.strip() == "```bash":
            block = []
    return sections


def study_commands(block: str) -> list[list[str]]:
    """Return the words of each run_study.py command in a shell block, continuation lines joined."""
    joined = block.replace("\\\n", " ")
    commands = []
    for line in joined.splitlines():
        words = shlex.split(line, comments=True)
        if any(word.endswith("run_study.py") for word in words):
            commands.append(words)
    return commands


@pytest.fixture(scope="module")
def doc_launches() -> dict[str, list[Launch]]:
    sections = bash_blocks_by_section(DOC.read_text(encoding="utf-8"))
    launches = {}
    for heading, blocks in sections.items():
        source = f"{DOC.name}, section {heading!r}"
        found = [parse_launch(*split_command(words), source)
                 for block in blocks for words in study_commands(block)]
        if found:
            launches[heading] = found
    return launches


def test_doc_has_study_commands(doc_launches):
    count = sum(len(launches) for launches in doc_launches.values())
    assert count >= 10, f"only {count} run_study.py commands found in {DOC.name}"


def test_doc_commands_set_role(doc_launches):
    for launches in doc_launches.values():
        for launch in launches:
            assert launch.role in ROLES, f"{launch.source}: role {launch.role!r}"


def test_doc_sections_agree_on_port(doc_launches):
    for launches in doc_launches.values():
        ports = {launch.port for launch in launches}
        assert len(ports) == 1, f"{launches[0].source}: ports {sorted(ports)}"


def test_doc_worker_ids_distinct(doc_launches):
    for launches in doc_launches.values():
        ids = [launch.worker_id for launch in launches if launch.role == "worker"]
        assert len(ids) == len(set(ids)), f"{launches[0].source}: worker ids {ids}"


def test_doc_examples_pair_chief_and_workers(doc_launches):
    for heading in ("Options", "One machine: a chief and two workers", "Several machines",
                    "One machine with several GPUs"):
        assert heading in doc_launches, f"no run_study.py command under {heading!r}"
        assert_one_study(doc_launches[heading])


def test_doc_workers_share_run_dir(doc_launches):
    for launches in doc_launches.values():
        run_dirs = {launch.args.run_dir for launch in launches}
        assert len(run_dirs) == 1, f"{launches[0].source}: run folders {sorted(map(str, run_dirs))}"


# examples/distributed/kubernetes.yaml


@pytest.fixture(scope="module")
def manifest() -> dict[tuple[str, str], dict]:
    documents = [document for document in yaml.safe_load_all(MANIFEST.read_text(encoding="utf-8"))
                 if document]
    return {(document["kind"], document["metadata"]["name"]): document for document in documents}


def job_container(job: dict) -> dict:
    containers = job["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, f"{job['metadata']['name']}: {len(containers)} containers"
    return containers[0]


def container_launch(job: dict, index: int = 0) -> Launch:
    """Parse the run_study.py command of a Job's container for the pod of completion `index`."""
    container = job_container(job)
    words = [word.replace("$(JOB_COMPLETION_INDEX)", str(index))
             for word in container["command"] + container["args"]]
    env = {variable["name"]: variable.get("value", "") for variable in container.get("env", [])}
    _, argv = split_command(words)
    return parse_launch(env, argv, f"{MANIFEST.name}, Job {job['metadata']['name']}")


def jobs_by_role(manifest: dict) -> dict[str, dict]:
    jobs = {}
    for (kind, _), document in manifest.items():
        if kind == "Job":
            jobs[container_launch(document).role] = document
    assert set(jobs) == set(ROLES), f"Jobs for roles {sorted(jobs)}, expected one each"
    return jobs


def test_manifest_chief_and_workers(manifest):
    jobs = jobs_by_role(manifest)
    assert_one_study([container_launch(jobs["chief"]), container_launch(jobs["worker"], 3)])


def test_manifest_service_exposes_both_ports(manifest):
    jobs = jobs_by_role(manifest)
    chief = container_launch(jobs["chief"])
    worker = container_launch(jobs["worker"])
    service_name = worker.host
    service = manifest.get(("Service", service_name))
    assert service is not None, f"workers connect to {service_name!r}, which no Service names"
    service_ports = {port["port"] for port in service["spec"]["ports"]}
    assert service_ports == {chief.port, chief.port + 1}
    target_ports = {port.get("targetPort", port["port"]) for port in service["spec"]["ports"]}
    container_ports = {port["containerPort"] for port in job_container(jobs["chief"])["ports"]}
    assert target_ports <= container_ports


def test_manifest_service_selects_chief_only(manifest):
    jobs = jobs_by_role(manifest)
    worker = container_launch(jobs["worker"])
    selector = manifest[("Service", worker.host)]["spec"]["selector"]
    chief_labels = jobs["chief"]["spec"]["template"]["metadata"]["labels"]
    worker_labels = jobs["worker"]["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= chief_labels.items()
    assert not selector.items() <= worker_labels.items()


def test_manifest_workers_indexed(manifest):
    workers = jobs_by_role(manifest)["worker"]
    assert workers["spec"]["completionMode"] == "Indexed"
    completions = workers["spec"]["completions"]
    ids = {container_launch(workers, index).worker_id for index in range(completions)}
    assert len(ids) == completions


def test_manifest_shares_run_folder(manifest):
    jobs = jobs_by_role(manifest)
    launches = {role: container_launch(job) for role, job in jobs.items()}
    assert launches["chief"].args.run_dir == launches["worker"].args.run_dir
    assert launches["chief"].args.config == launches["worker"].args.config
    claims = [document for (kind, _), document in manifest.items()
              if kind == "PersistentVolumeClaim"]
    assert len(claims) == 1
    assert "ReadWriteMany" in claims[0]["spec"]["accessModes"]
    for role, job in jobs.items():
        volumes = {volume["name"]: volume for volume in job["spec"]["template"]["spec"]["volumes"]}
        mounts = [mount for mount in job_container(job)["volumeMounts"]
                  if volumes[mount["name"]].get("persistentVolumeClaim", {}).get("claimName")
                  == claims[0]["metadata"]["name"]]
        assert mounts, f"the {role} Job does not mount {claims[0]['metadata']['name']}"
        run_dir = launches[role].args.run_dir
        assert any(run_dir.is_relative_to(mount["mountPath"]) for mount in mounts), run_dir


def test_manifest_config_resolves(manifest, tmp_path):
    config_maps = [document for (kind, _), document in manifest.items() if kind == "ConfigMap"]
    assert len(config_maps) == 1
    for name, text in config_maps[0]["data"].items():
        path = tmp_path / name
        path.write_text(text)
        config = run_study.build_study_config(run_study.parse_args(["--config", str(path)]))
        assert config.preset in ("smoke", "quick", "full")


# examples/distributed/*.sh, run with stand-ins


FAKE_PYTHON = """\
import json, os, sys, time
from pathlib import Path

records = Path(os.environ["FAKE_RECORD_DIR"])
words = sys.argv[1:]
record = {"words": words, "pid": os.getpid(),
          "env": {name: os.environ[name] for name in ("CUDA_VISIBLE_DEVICES",
                                                      "TF_FORCE_GPU_ALLOW_GROWTH")
                  if name in os.environ}}
(records / f"{os.getpid()}.json").write_text(json.dumps(record))
if "worker" in words:
    time.sleep(float(os.environ.get("FAKE_WORKER_SECONDS", "0")))
    sys.exit(0)
deadline = time.monotonic() + 30
expected = int(os.environ.get("FAKE_WORKERS", "0")) + 1
while len(list(records.glob("*.json"))) < expected and time.monotonic() < deadline:
    time.sleep(0.05)
sys.exit(int(os.environ.get("FAKE_CHIEF_STATUS", "0")))
"""


@pytest.fixture
def fakes(tmp_path) -> dict[str, str]:
    """Write the stand-in python and nvidia-smi and return the environment that selects them."""
    bin_dir = tmp_path / "bin"
    records = tmp_path / "records"
    bin_dir.mkdir()
    records.mkdir()
    python = bin_dir / "python"
    python.write_text(f"#!{sys.executable}\n{FAKE_PYTHON}")
    nvidia_smi = bin_dir / "nvidia-smi"
    nvidia_smi.write_text('#!/usr/bin/env bash\nprintf "%s\\n" ${FAKE_GPUS:-}\n')
    for program in (python, nvidia_smi):
        program.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHON": str(python),
            "FAKE_RECORD_DIR": str(records), "LOG_DIR": str(tmp_path / "logs")}


def recorded_launches(env: dict[str, str], source: str) -> list[tuple[Launch, dict]]:
    """Parse every command the stand-in python recorded, with the record itself."""
    results = []
    for path in sorted(Path(env["FAKE_RECORD_DIR"]).glob("*.json")):
        record = json.loads(path.read_text())
        launch = parse_launch(*split_command(record["words"]), source)
        results.append((launch, record))
    return results


def process_gone(pid: int) -> bool:
    """Return whether a process has exited (a zombie counts as exited)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


def run_script(script: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(script), *args], env=env, capture_output=True, text=True,
                          timeout=SCRIPT_TIMEOUT_S)


def count_study_commands(script: Path) -> int:
    return script.read_text(encoding="utf-8").count("run_study.py --role")


def test_multi_gpu_one_worker_per_gpu(fakes):
    env = {**fakes, "FAKE_GPUS": "0 1", "FAKE_WORKERS": "2", "PORT": "50071"}
    result = run_script(MULTI_GPU, env, "--preset", "smoke")
    assert result.returncode == 0, result.stderr
    launches = recorded_launches(env, MULTI_GPU.name)
    assert len(launches) == 3
    assert_one_study([launch for launch, _ in launches])
    assert len({launch.role for launch, _ in launches}) == count_study_commands(MULTI_GPU)
    workers = [(launch, record) for launch, record in launches if launch.role == "worker"]
    assert sorted(record["env"]["CUDA_VISIBLE_DEVICES"] for _, record in workers) == ["0", "1"]
    assert len({launch.worker_id for launch, _ in workers}) == 2
    for launch, record in launches:
        assert launch.port == 50071
        assert launch.args.preset == "smoke"
        if launch.role == "chief":
            assert "CUDA_VISIBLE_DEVICES" not in record["env"]
            assert record["env"]["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"


def test_multi_gpu_stops_workers(fakes):
    env = {**fakes, "FAKE_GPUS": "0 1", "FAKE_WORKERS": "2", "FAKE_WORKER_SECONDS": "30",
           "FAKE_CHIEF_STATUS": "3"}
    started = time.monotonic()
    result = run_script(MULTI_GPU, env, "--preset", "smoke")
    assert result.returncode == 3, result.stderr
    assert time.monotonic() - started < 25, "the script waited for the workers to finish"
    for launch, record in recorded_launches(env, MULTI_GPU.name):
        if launch.role == "worker":
            assert process_gone(record["pid"]), f"worker {launch.worker_id} is still running"


def test_multi_gpu_without_gpus(fakes):
    result = run_script(MULTI_GPU, {**fakes, "FAKE_GPUS": ""}, "--preset", "smoke")
    assert result.returncode == 1
    assert "nvidia-smi lists no GPU" in result.stderr
    assert not list(Path(fakes["FAKE_RECORD_DIR"]).glob("*.json"))


def slurm_environment(fakes: dict[str, str], tmp_path: Path, task: int) -> dict[str, str]:
    return {**fakes, "RUN_DIR": str(tmp_path / "run"), "SLURM_ARRAY_JOB_ID": "4242",
            "SLURM_ARRAY_TASK_ID": str(task), "SLURM_SUBMIT_DIR": str(tmp_path),
            "STUDY_OPTIONS": "--preset smoke --seed 7", "PORT": "50081"}


def test_slurm_chief_then_worker(fakes, tmp_path):
    chief = run_script(SLURM_ARRAY, slurm_environment(fakes, tmp_path, 0))
    assert chief.returncode == 0, chief.stderr
    host_file = tmp_path / "run" / "chief-host-4242"
    chief_host = host_file.read_text().strip()
    assert chief_host

    worker = run_script(SLURM_ARRAY, slurm_environment(fakes, tmp_path, 2))
    assert worker.returncode == 0, worker.stderr

    launches = [launch for launch, _ in recorded_launches(fakes, SLURM_ARRAY.name)]
    assert_one_study(launches)
    assert len(launches) == count_study_commands(SLURM_ARRAY)
    by_role = {launch.role: launch for launch in launches}
    assert by_role["chief"].host == "0.0.0.0"
    assert by_role["worker"].host == chief_host
    assert by_role["worker"].worker_id == "worker-2"
    for launch in launches:
        assert launch.port == 50081
        assert launch.args.run_dir == tmp_path / "run"
        assert (launch.args.preset, launch.args.seed) == ("smoke", 7)


def test_slurm_worker_without_chief(fakes, tmp_path):
    env = {**slurm_environment(fakes, tmp_path, 1), "CHIEF_WAIT_SECONDS": "0"}
    result = run_script(SLURM_ARRAY, env)
    assert result.returncode == 1
    assert "chief-host-4242 did not appear" in result.stderr
    assert not list(Path(fakes["FAKE_RECORD_DIR"]).glob("*.json"))
