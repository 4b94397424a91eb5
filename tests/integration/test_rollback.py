"""`docshift rollback --run`: exact restores after a crash, after an interrupted rollback, and of the latest run."""

import os
import signal
import time

from docshift.demo import seed_users
from tests.helpers import collection_fingerprint
from tests.integration.conftest import raw_snapshot
from tests.integration.test_crash_resume import wait_for_checkpoint

LEASE = {"DOCSHIFT_LOCK_LEASE_SECONDS": "2"}


def kill(proc):
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(2.5)  # the dead run's lease runs out


def test_kill_9_during_rollback_then_rollback_again_is_complete_and_exact(env):
    seed_users(env.db, 4000, seed=13)
    assert env.run("migrate", "2").returncode == 0
    before = collection_fingerprint(env.db.users)
    env.break_split_name(["user_3900"], "late")
    proc = env.start("migrate", "--batch-size", "100", extra=LEASE)
    deadline = time.monotonic() + 300
    while not (env.ledger.find_one({"_id": "checkpoint", "rolling_back": True})):
        assert proc.poll() is None and time.monotonic() < deadline, "the automatic rollback did not start"
        time.sleep(0.01)
    kill(proc)
    run_id = env.ledger.find_one({"_id": "checkpoint"})["run_id"]
    assert env.db.users.count_documents({"schema_version": 3}) > 0  # the rollback was cut short

    refused = env.run("migrate", extra=LEASE)
    assert refused.returncode == 1 and f"docshift rollback --run {run_id}" in refused.stderr
    status = env.run("status")
    assert status.returncode == 0 and f"rollback of run {run_id}" in status.stdout and "late" in status.stdout

    again = env.run("rollback", "--run", run_id, extra=LEASE)

    assert again.returncode == 0, again.stdout + again.stderr
    assert collection_fingerprint(env.db.users) == before
    entry = env.ledger.find_one({"_id": run_id})
    assert entry["outcome"] == "rolled_back" and "late" in entry["error"]
    assert env.ledger.find_one({"_id": "current"})["version"] == 2 and env.ledger.find_one({"_id": "checkpoint"}) is None
    assert env.run("rollback", "--run", run_id).returncode == 1  # nothing left to roll back


def test_rollback_of_a_killed_migration_instead_of_resuming_it(env):
    seed_users(env.db, 3000, seed=14)
    before = collection_fingerprint(env.db.users)
    proc = env.start("migrate", "2", "--batch-size", "100", extra=LEASE)
    checkpoint = wait_for_checkpoint(env, proc, 2, 1000)
    kill(proc)

    result = env.run("rollback", "--run", checkpoint["run_id"], extra=LEASE)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "documents restored" in result.stdout
    assert collection_fingerprint(env.db.users) == before
    assert env.ledger.find_one({"_id": "current"}) is None  # never moved


def test_rollback_of_the_latest_finished_run_rewinds_the_version_exactly(env):
    seed_users(env.db, 800, seed=15)
    assert env.run("migrate", "3").returncode == 0
    at_3 = raw_snapshot(env.db.users)
    assert env.run("migrate", "4").returncode == 0
    run_4 = env.ledger.find_one({"kind": "history", "version": 4})["_id"]
    run_3 = env.ledger.find_one({"kind": "history", "version": 3})["_id"]

    not_latest = env.run("rollback", "--run", run_3)
    assert not_latest.returncode == 1 and "not the latest change" in not_latest.stderr and "migrate to version 2" in not_latest.stderr

    edited = env.db.users.find_one({"deprecated_field": {"$exists": False}, "schema_version": 4, "email": {"$exists": True}})
    env.db.users.update_one({"_id": edited["_id"]}, {"$set": {"email": "changed-after-the-run@example.com"}})

    result = env.run("rollback", "--run", run_4)

    assert result.returncode == 0, result.stderr
    assert "799 documents restored from its backup, 1 written since undone" in result.stdout
    after = raw_snapshot(env.db.users)
    assert {i: b for i, b in after.items() if i != edited["_id"]} == {i: b for i, b in at_3.items() if i != edited["_id"]}
    doc = env.db.users.find_one({"_id": edited["_id"]})
    assert doc["email"] == "changed-after-the-run@example.com" and doc["schema_version"] == 3  # the newer write is kept
    assert env.ledger.find_one({"_id": "current"})["version"] == 3
    assert env.run("migrate").returncode == 0 and env.db.users.count_documents({"schema_version": 5}) == 800


def test_unknown_run_is_refused(env):
    seed_users(env.db, 10, seed=1)
    result = env.run("rollback", "--run", "v9-up-nope")
    assert result.returncode == 1 and "no run 'v9-up-nope'" in result.stderr
