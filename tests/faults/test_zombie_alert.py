"""A `docshift migrate` process killed with kill -9: the zombie automation of `docshift alerts setup` marks its
flow run Crashed three missed heartbeats (30 s each) later, and the notification names the run."""

import os
import signal

import pytest

from docshift.demo import seed_users
from tests.support.alerts import HEARTBEAT, HOOK, alerts_set_up
from tests.support.receiver import receiving
from tests.support.waiting import process_alive, wait_for_checkpoint


@pytest.fixture
def receiver(prefect_api):
    with receiving(HOOK) as server, alerts_set_up(server, prefect_api["PREFECT_API_URL"]):
        yield server


@pytest.mark.slow  # up to 90 s for the heartbeats to be missed
def test_a_killed_run_is_crashed_by_the_zombie_automation_and_notified(env, receiver):
    seed_users(env.db, 3000, seed=22)
    proc = env.start("migrate", "2", "--batch-size", "100", extra=HEARTBEAT)
    checkpoint = wait_for_checkpoint(env.db, 2, 200, alive=lambda: process_alive(proc))
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    flow_run_id = env.ledger.find_one({"_id": checkpoint["run_id"]})["flow_run_id"]

    # three missed heartbeats of 30 s: at most 90 s after the kill, plus the trigger's evaluation
    note = receiver.wait_for(f"/runs/flow-run/{flow_run_id}", "state: Crashed", timeout=150)

    assert f"database: {env.database}\nmigration: 2\nphase: -\nstate: Crashed\n" in note["body"]
    assert "reason: Flow run marked as crashed due to missing heartbeats." in note["body"]
