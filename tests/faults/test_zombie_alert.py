"""A worker killed with kill -9 during a `prefect deployment run`: the zombie automation of `docshift alerts setup`
marks its flow run Crashed three missed heartbeats (30 s each) later, the notification names the run, and a new
run resumes the checkpoint.

One test for both, since each waits the same 90 s for the heartbeats to be missed."""

import contextlib
import os
import re
import signal
import time

import pytest

from docshift.demo import seed_users
from docshift.dump import RAW
from tests.support.alerts import HEARTBEAT, HOOK, alerts_set_up
from tests.support.fingerprints import collection_fingerprint, expected_after_all_ups, fingerprint
from tests.support.paths import ROOT
from tests.support.prefect_api import deploy_all, flow_run_state, prefect, start_worker, stop_worker
from tests.support.receiver import receiving
from tests.support.waiting import descendants, wait_for_checkpoint


@pytest.fixture
def receiver(prefect_api):
    with receiving(HOOK) as server, alerts_set_up(server, prefect_api["PREFECT_API_URL"]):
        yield server


@pytest.mark.slow  # the run is Crashed 90 s after its last heartbeat
@pytest.mark.deployment
def test_a_killed_worker_s_run_is_crashed_by_the_zombie_automation_notified_and_a_new_run_resumes(env, receiver):
    seed_users(env.db, 1500, seed=32)  # formerly 3000: killed at 500 of them, in migration 3
    expected = fingerprint(expected_after_all_ups(env.db.users.with_options(codec_options=RAW).find(), env.migrations))
    env.vars.update({**HEARTBEAT, "DOCSHIFT_LOCK_LEASE_SECONDS": "2", "DOCSHIFT_PROJECT_DIR": str(ROOT),
                     "PREFECT_WORKER_QUERY_SECONDS": "2"})
    deploy_all(env.vars)
    worker = start_worker(env.vars)
    try:
        started = prefect(env.vars, "deployment", "run", "migrate/docshift-demo", "--param", 'options={"batch_size": 100}')
        assert started.returncode == 0, started.stdout + started.stderr
        flow_run_id = re.search(r"UUID: ([0-9a-f-]{36})", started.stdout).group(1)
        wait_for_checkpoint(env.db, 3, 500, alive=lambda: worker.poll() is None, poll=0.05)
    finally:
        for pid in descendants(worker.pid):  # the worker and the flow-run process it started
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        worker.wait()
    holder = env.ledger.find_one({"_id": "lock"})
    assert holder and f"flow-run {flow_run_id}" in holder["owner"]  # the dead run's lock is left behind

    # three missed heartbeats of 30 s: at most 90 s after the kill, plus the trigger's evaluation
    note = receiver.wait_for(f"/runs/flow-run/{flow_run_id}", "state: Crashed", timeout=240)
    assert f"database: {env.database}\nmigration: 3\nphase: -\nstate: Crashed\n" in note["body"]
    assert "reason: Flow run marked as crashed due to missing heartbeats." in note["body"]
    deadline = time.monotonic() + 30
    while (state := flow_run_state(env.vars["PREFECT_API_URL"], flow_run_id)) != "CRASHED":
        assert time.monotonic() < deadline, f"flow run {state}, not CRASHED"
        time.sleep(1)

    worker = start_worker(env.vars)  # the crashed run freed the deployment's concurrency slot; its lock has expired by now
    try:
        resumed = prefect(env.vars, "deployment", "run", "migrate/docshift-demo", "--param", 'options={"batch_size": 100}', "--watch",
                          "--watch-timeout", "300", timeout=360)
    finally:
        stop_worker(worker)

    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert collection_fingerprint(env.db.users, drop={"updated_at"}) == expected
    entry = env.ledger.find_one({"kind": "history", "version": 3})
    assert entry["resumed"] == 1 and entry["outcome"] == "applied"
    assert env.ledger.find_one({"_id": "current"})["version"] == 5
