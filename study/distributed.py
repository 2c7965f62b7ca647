"""Spread each Hyperband search over processes with keras-tuner's chief/worker mode.

keras-tuner 1.4.8 serves the chief's oracle over gRPC, and worker tuners
pull trials from it (study.cluster sets its environment variables). This
module adds what a study needs on top of that engine:

- `serve_search`: the chief's server loop. Unlike keras-tuner's
  `start_server`, it stops its server when the search ends, so the next
  search can be served. It also releases a worker that has gone silent
  (`LeasedOracleServicer` notes when each worker was last heard from), so
  one dead worker cannot stall the chief.
- `WorkerOracleClient`: a worker's client. It sends a heartbeat while a
  trial trains and pauses before asking again when Hyperband has no trial
  ready, instead of keras-tuner's tight polling loop.

The oracle decides what happens to a lost worker's trial (see
`AtomicHyperbandOracle.release_tuner` in study.search).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from concurrent import futures
from pathlib import Path

import grpc
# keras-tuner 1.4.8 exports no public name for its gRPC parts.
from keras_tuner.src import protos
from keras_tuner.src.distribute.oracle_chief import OracleServicer, exit_chief
from keras_tuner.src.distribute.oracle_client import OracleClient
from keras_tuner.src.engine.trial import TrialStatus

from study.cluster import HEARTBEAT_SECONDS, ClusterError

log = logging.getLogger(__name__)

IDLE_WAIT_SECONDS = 1.0  # a worker's pause when Hyperband waits for running trials
POLL_SECONDS = 1.0  # how often the chief looks for finished searches and lost workers


class LeasedOracleServicer(OracleServicer):
    """keras-tuner's oracle servicer that also notes when each worker was last heard from.

    A worker counts as heard when it requests a trial (its id is in the
    request) and when it reports on, or sends a heartbeat for, its trial.
    `on_trial_end(trial_id)` is called after the oracle records a result.
    A result for a trial that no worker owns any more (its worker was
    declared lost, then sent the result after all) is logged and dropped.
    """

    def __init__(self, oracle, on_trial_end=None):
        super().__init__(oracle)
        self.on_trial_end = on_trial_end
        self.last_heard: dict[str, float] = {}
        self._lock = threading.Lock()

    def heard(self, tuner_id: str | None) -> None:
        if tuner_id:
            with self._lock:
                self.last_heard[tuner_id] = time.monotonic()

    def silent_tuners(self, timeout_s: float) -> list[tuple[str, float]]:
        """Return (tuner id, seconds silent) for each registered worker silent over `timeout_s`."""
        now = time.monotonic()
        with self._lock:
            heard = dict(self.last_heard)
        return [(tuner_id, now - heard[tuner_id]) for tuner_id in self.oracle.active_tuners()
                if tuner_id in heard and now - heard[tuner_id] > timeout_s]

    def forget(self, tuner_id: str) -> None:
        with self._lock:
            self.last_heard.pop(tuner_id, None)

    def CreateTrial(self, request, context):
        if request.tuner_id not in self.last_heard:
            log.info("worker %s joined the search", request.tuner_id)
        self.heard(request.tuner_id)
        return super().CreateTrial(request, context)

    def UpdateTrial(self, request, context):
        self.heard(self.oracle.tuner_of(request.trial_id))
        return super().UpdateTrial(request, context)

    def GetTrial(self, request, context):
        self.heard(self.oracle.tuner_of(request.trial_id))
        return super().GetTrial(request, context)

    def EndTrial(self, request, context):
        trial_id = request.trial.trial_id
        owner = self.oracle.tuner_of(trial_id)
        if owner is None:
            log.warning("dropped the result of trial %s: its worker was declared lost and the "
                        "trial was given to another worker or marked failed", trial_id)
            return protos.get_service().EndTrialResponse()
        self.heard(owner)
        response = super().EndTrial(request, context)
        if self.on_trial_end is not None:
            self.on_trial_end(trial_id, owner)
        return response


def serve_search(oracle, address: str, worker_timeout_s: float, events_path: Path,
                 on_trial_end=None) -> None:
    """Serve `oracle` at `address` until its search ends and every worker has left.

    A worker silent for more than `worker_timeout_s` is released through
    `oracle.release_tuner`; each release is logged and appended to
    `events_path`. Raises ClusterError when the address cannot be bound.
    """
    servicer = LeasedOracleServicer(oracle, on_trial_end)
    # One thread, as in keras-tuner: the oracle handles one request at a time anyway.
    # gRPC lets servers share a port by default (SO_REUSEPORT). A second chief on
    # the same port would then take half the workers, so binding must fail instead.
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1),
                         options=[("grpc.so_reuseport", 0)])
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError:
        bound = 0
    if not bound:
        raise ClusterError(f"the chief cannot listen on {address}: the port is in use or the "
                           "host is not an address of this machine; choose another "
                           "--chief-address (the next port is used too)")
    server.start()
    log.info("serving the search at %s; waiting for workers", address)
    try:
        while not (servicer.stop_triggered and exit_chief(oracle)):
            time.sleep(POLL_SECONDS)
            for tuner_id, silent in servicer.silent_tuners(worker_timeout_s):
                _release(oracle, servicer, tuner_id, silent, events_path)
    finally:
        server.stop(grace=None)


def _release(oracle, servicer: LeasedOracleServicer, tuner_id: str, silent: float,
             events_path: Path) -> None:
    reason = f"worker {tuner_id} was not heard from for {silent:.0f} s"
    event = oracle.release_tuner(tuner_id, reason)
    servicer.forget(tuner_id)
    if event is None:
        log.warning("%s; it held no trial and is no longer waited for", reason)
        return
    event["seconds_silent"] = round(silent, 1)
    with events_path.open("a") as handle:
        handle.write(json.dumps(event) + "\n")
    if event["action"] == "rerun":
        log.warning("%s; its trial %s goes to the next worker that asks", reason,
                    event["trial_id"])
    else:
        log.warning("%s; its trial %s lost its worker %d times and is marked failed", reason,
                    event["trial_id"], event["losses"])


class WorkerOracleClient(OracleClient):
    """keras-tuner's worker client with a heartbeat and a pause while Hyperband waits."""

    def __init__(self, oracle, heartbeat_s: float = HEARTBEAT_SECONDS,
                 idle_wait_s: float = IDLE_WAIT_SECONDS):
        super().__init__(oracle)
        self.heartbeat_s = heartbeat_s
        self.idle_wait_s = idle_wait_s
        self.current_trial: str | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="heartbeat to the chief",
                                        daemon=True)
        self._thread.start()

    def create_trial(self, tuner_id):
        trial = super().create_trial(tuner_id)
        running = trial.status == TrialStatus.RUNNING
        self.current_trial = trial.trial_id if running else None
        if trial.status == TrialStatus.IDLE:
            time.sleep(self.idle_wait_s)
        return trial

    def end_trial(self, trial):
        super().end_trial(trial)
        self.current_trial = None

    def close(self) -> None:
        """Stop the heartbeat."""
        self._done.set()

    def _beat(self) -> None:
        while not self._done.wait(self.heartbeat_s):
            trial_id = self.current_trial
            if trial_id is None:
                continue
            try:
                self.stub.GetTrial(protos.get_service().GetTrialRequest(trial_id=trial_id),
                                   timeout=self.heartbeat_s)
            except grpc.RpcError as error:
                log.warning("no response from the chief to a heartbeat for trial %s (%s)",
                            trial_id, error.code().name)
