"""This process's place in a distributed search: alone, the chief or one worker.

`resolve_cluster` reads the command line (--role, --chief-address,
--worker-id, --worker-timeout) or, without --role, keras-tuner's variables
KERASTUNER_TUNER_ID, KERASTUNER_ORACLE_IP and KERASTUNER_ORACLE_PORT. The
chief serves the CNN search on PORT and the ViT search on PORT + 1, so a
worker that finishes the first search can wait for the second. This module
imports neither keras-tuner nor gRPC, so the command line stays fast;
study.distributed has the server and the client.
"""

from __future__ import annotations

import math
import os
import re
import socket
from contextlib import contextmanager
from dataclasses import dataclass

from study.config_file import ConfigError

ROLES = ("single", "chief", "worker")
DEFAULT_HOST = "127.0.0.1"  # loopback: nothing outside this machine can connect
DEFAULT_PORT = 50051
DEFAULT_ADDRESS = f"{DEFAULT_HOST}:{DEFAULT_PORT}"
PORT_OFFSETS = {"cnn": 0, "vit": 1}  # each model's search has its own port
DEFAULT_WORKER_TIMEOUT_S = 120.0
HEARTBEAT_SECONDS = 5.0  # how often a training worker sends the chief a heartbeat
WORKER_ID = re.compile(r"[A-Za-z0-9._-]+")
ENV_ID, ENV_IP, ENV_PORT = ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP",
                            "KERASTUNER_ORACLE_PORT")


class ClusterError(ConfigError):
    """A role, address or worker id that cannot work."""


@dataclass(frozen=True)
class Cluster:
    """This process's place in a search: alone, the chief or one worker."""

    role: str = "single"
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    worker_id: str | None = None
    worker_timeout_s: float = DEFAULT_WORKER_TIMEOUT_S

    @property
    def tuner_id(self) -> str:
        return "chief" if self.role == "chief" else self.worker_id or "tuner0"

    def address(self, model: str) -> str:
        """Return the HOST:PORT of one model's search."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port + PORT_OFFSETS[model]}"

    def describe(self) -> str:
        if self.role == "single":
            return "one process"
        if self.role == "chief":
            return (f"chief, serving the searches at {self.address('cnn')} (CNN) and "
                    f"{self.address('vit')} (ViT)")
        return f"worker {self.worker_id} of the chief at {self.address('cnn')}"

    @contextmanager
    def environment(self, model: str):
        """Set keras-tuner's variables for one model's search; restore them afterwards."""
        saved = {name: os.environ.get(name) for name in (ENV_ID, ENV_IP, ENV_PORT)}
        for name in saved:
            os.environ.pop(name, None)
        if self.role != "single":
            os.environ[ENV_ID] = self.tuner_id
            os.environ[ENV_IP] = self.host
            os.environ[ENV_PORT] = str(self.port + PORT_OFFSETS[model])
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


ADDRESS = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):([0-9]+)")


def parse_address(text: str, source: str = "--chief-address") -> tuple[str, int]:
    """Split HOST:PORT (an IPv6 host in brackets); the port leaves room for PORT + 1.

    `source` names where the text came from, for the error message.

    >>> parse_address("10.0.0.5:6000")
    ('10.0.0.5', 6000)
    >>> parse_address("[::1]:6000")
    ('::1', 6000)
    """
    match = ADDRESS.fullmatch(text)
    last = 65535 - max(PORT_OFFSETS.values())
    if not match or not 1 <= int(match.group(2)) <= last:
        example = (f"{source} {DEFAULT_ADDRESS}" if source.startswith("--")
                   else f"{ENV_IP}=127.0.0.1 {ENV_PORT}={DEFAULT_PORT}")
        raise ClusterError(
            f"chief address {text!r} from {source} is not HOST:PORT (a host name or IP "
            f"address without a scheme, and a port from 1 to {last}, as the ViT search uses "
            f"PORT + 1); for example {example}")
    return match.group(1).removeprefix("[").removesuffix("]"), int(match.group(2))


def check_worker_id(worker_id: str, source: str = "--worker-id") -> str:
    """Return the id when a worker may use it; raise ClusterError naming the rule it breaks."""
    if not WORKER_ID.fullmatch(worker_id):
        raise ClusterError(f"worker id {worker_id!r} from {source} may contain only letters, "
                           "digits, '.', '_' and '-', because it names the worker's files; "
                           "for example gpu-0")
    if "chief" in worker_id or worker_id == "tuner0":
        raise ClusterError(f"worker id {worker_id!r} from {source} is reserved: keras-tuner "
                           "treats an id containing 'chief' as the chief, and 'tuner0' names "
                           f"a single process; choose another id in {source}")
    return worker_id


def default_worker_id() -> str:
    """Return worker-<host name>-<process id>, with characters a worker id cannot use replaced."""
    return "worker-" + re.sub(r"[^A-Za-z0-9._-]", "-", f"{socket.gethostname()}-{os.getpid()}")


def resolve_cluster(role: str | None, address: str | None, worker_id: str | None,
                    worker_timeout_s: float | None = None,
                    environ: dict | None = None) -> Cluster:
    """Build the Cluster from the command line, then keras-tuner's variables, then defaults.

    Each option falls back on its variable: --role on KERASTUNER_TUNER_ID
    ("chief" in it makes the chief, any other id a worker) once
    KERASTUNER_ORACLE_IP is set, --chief-address on KERASTUNER_ORACLE_IP and
    KERASTUNER_ORACLE_PORT, and a worker's --worker-id on KERASTUNER_TUNER_ID.
    Raises ClusterError naming a value that cannot work and where it came from.
    """
    environ = os.environ if environ is None else environ
    env_id = environ.get(ENV_ID)
    address_source = "--chief-address"
    if ENV_IP in environ:
        if ENV_PORT not in environ or (role is None and env_id is None):
            raise ClusterError(f"{ENV_IP} is set, so {ENV_PORT} and {ENV_ID} must be set "
                               "too; set them, or pass --role, --chief-address and "
                               "--worker-id instead")
        if role is None:
            role = "chief" if "chief" in env_id else "worker"
        if address is None:
            address = f"{environ[ENV_IP]}:{environ[ENV_PORT]}"
            address_source = f"{ENV_IP} and {ENV_PORT}"
    role = role or "single"
    if role not in ROLES:
        raise ClusterError(f"role {role!r} is unknown: choose one of {', '.join(ROLES)}")
    if role != "worker" and worker_id is not None:
        raise ClusterError(f"--worker-id {worker_id} names a worker, but the role is {role}; "
                           "add --role worker or leave --worker-id out")
    host, port = parse_address(address or DEFAULT_ADDRESS, address_source)
    timeout = DEFAULT_WORKER_TIMEOUT_S if worker_timeout_s is None else worker_timeout_s
    # Only the chief watches the workers; the others accept the option, so that
    # one set of options can start every process.
    if role == "chief" and not (math.isfinite(timeout) and timeout > 2 * HEARTBEAT_SECONDS):
        raise ClusterError(f"worker timeout {timeout:g} s cannot work: workers send a "
                           f"heartbeat every {HEARTBEAT_SECONDS:g} s, so give a finite number "
                           f"above {2 * HEARTBEAT_SECONDS:g}, for example --worker-timeout 120")
    if role != "worker":
        return Cluster(role, host, port, None, timeout)
    if worker_id is not None:
        worker_id = check_worker_id(worker_id)
    elif env_id is not None and ENV_IP in environ:
        worker_id = check_worker_id(env_id, ENV_ID)
    else:
        worker_id = default_worker_id()
    return Cluster(role, host, port, worker_id, timeout)
