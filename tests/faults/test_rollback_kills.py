"""`docshift rollback --run` after kill -9: exact restores after a crashed migration and after an interrupted rollback.

The killed runs are real `docshift` processes; what follows them runs in-process. A dead run's lease is expired by
writing it into the past (Env.expire_lease) instead of being slept out.
"""

import os
import signal
import time

from docshift.demo import seed_users
from tests.support.fingerprints import collection_fingerprint
from tests.support.waiting import process_alive, wait_for_checkpoint


def kill(env, proc):
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    env.expire_lease()  # the dead run's lease runs out


def test_kill_9_during_rollback_then_rollback_again_is_complete_and_exact(env):
    seed_users(env.db, 2000, seed=13)  # formerly 4000: the rollback still has 19 batches to be cut short in
    assert env.cli("migrate", "2").returncode == 0
    before = collection_fingerprint(env.db.users)
    env.break_split_name(["user_1900"], "late")
    proc = env.start("migrate", "--batch-size", "100")
    deadline = time.monotonic() + 300
    while not (env.ledger.find_one({"_id": "checkpoint", "rolling_back": True})):
        assert proc.poll() is None and time.monotonic() < deadline, "the automatic rollback did not start"
        time.sleep(0.01)
    kill(env, proc)
    run_id = env.ledger.find_one({"_id": "checkpoint"})["run_id"]
    assert env.db.users.count_documents({"schema_version": 3}) > 0  # the rollback was cut short

    refused = env.cli("migrate")
    assert refused.returncode == 1 and f"docshift rollback --run {run_id}" in refused.stderr
    status = env.cli("status")
    assert status.returncode == 0 and f"rollback of run {run_id}" in status.stdout and "late" in status.stdout

    again = env.cli("rollback", "--run", run_id)

    assert again.returncode == 0, again.stdout + again.stderr
    assert collection_fingerprint(env.db.users) == before
    entry = env.ledger.find_one({"_id": run_id})
    assert entry["outcome"] == "rolled_back" and "late" in entry["error"]
    assert env.ledger.find_one({"_id": "current"})["version"] == 2 and env.ledger.find_one({"_id": "checkpoint"}) is None
    assert env.cli("rollback", "--run", run_id).returncode == 1  # nothing left to roll back


def test_rollback_of_a_killed_migration_instead_of_resuming_it(env):
    seed_users(env.db, 1500, seed=14)  # formerly 3000: killed after 5 of 15 batches
    before = collection_fingerprint(env.db.users)
    proc = env.start("migrate", "2", "--batch-size", "100")
    checkpoint = wait_for_checkpoint(env.db, 2, 500, alive=lambda: process_alive(proc))
    kill(env, proc)

    result = env.cli("rollback", "--run", checkpoint["run_id"])

    assert result.returncode == 0, result.stdout + result.stderr
    assert "documents restored" in result.stdout
    assert collection_fingerprint(env.db.users) == before
    assert env.ledger.find_one({"_id": "current"}) is None  # never moved


