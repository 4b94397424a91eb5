"""kill -9 in the middle of a migration, then a re-run: it resumes from the checkpoint and ends as an uninterrupted run."""

import os
import signal
import time
from datetime import timedelta

import pytest

from docshift.ledger import now
from docshift.demo import seed_users
from docshift.ledger import as_utc, now
from tests.helpers import collection_fingerprint, expected_after_all_ups, fingerprint

N, BATCH, LEASE = 4000, 200, 3


def wait_for_checkpoint(env, proc, version, done, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        checkpoint = env.ledger.find_one({"_id": "checkpoint"})
        if checkpoint and checkpoint["version"] == version and checkpoint.get("done", 0) >= done:
            return checkpoint
        assert proc.poll() is None, f"migrate ended before the kill point: {proc.stdout.read()}"
        time.sleep(0.02)
    raise AssertionError("kill point not reached")


@pytest.mark.parametrize("version,done", [(2, 400), (3, 2000), (5, 3600)], ids=["early-in-2", "middle-of-3", "late-in-5"])
def test_kill_9_then_rerun_resumes_from_checkpoint(env, version, done):
    seed_users(env.db, N, seed=version)
    expected = fingerprint(expected_after_all_ups(env.db.users.find(), env.migrations))
    lease = {"DOCSHIFT_LOCK_LEASE_SECONDS": str(LEASE)}
    proc = env.start("migrate", "--batch-size", str(BATCH), extra=lease)
    wait_for_checkpoint(env, proc, version, done)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    at_kill = env.ledger.find_one({"_id": "checkpoint"})
    assert at_kill["version"] == version and 0 < at_kill["done"] < N

    lock = env.ledger.find_one({"_id": "lock"})  # the dead run still holds it until its lease runs out
    assert lock and str(proc.pid) in lock["owner"] and as_utc(lock["expires_at"]) > now() - timedelta(seconds=1)
    time.sleep(LEASE + 0.5)

    resumed = env.run("migrate", "--batch-size", str(BATCH), extra=lease)

    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    entry = env.ledger.find_one({"kind": "history", "version": version})
    assert entry["resumed"] == 1 and entry["outcome"] == "applied" and entry["_id"] == at_kill["run_id"]
    # each document is read once, except at most one batch written but not yet checkpointed at the kill
    assert N - BATCH <= entry["documents"] <= N and N - BATCH <= entry["changed"] <= N
    assert collection_fingerprint(env.db.users, drop={"updated_at"}) == expected
    assert env.ledger.find_one({"_id": "current"})["version"] == 5
    assert env.ledger.find_one({"_id": "checkpoint"}) is None and env.ledger.find_one({"_id": "lock"}) is None


def test_a_second_migrate_is_refused_while_one_runs(env):
    seed_users(env.db, 3000, seed=2)
    first = env.start("migrate", "--batch-size", "100")
    wait_for_checkpoint(env, first, 2, 100)

    second = env.run("migrate")

    assert second.returncode == 1
    assert "another migration run holds the lock" in second.stderr and f":{first.pid}:" in second.stderr
    assert first.wait(timeout=600) == 0
    assert env.db.users.count_documents({"schema_version": 5}) == 3000
    assert len(list(env.ledger.find({"kind": "history"}))) == 4  # the refused run recorded nothing


def test_unlock_breaks_a_dead_runs_lock(env):
    seed_users(env.db, 300, seed=1)
    env.ledger.insert_one({"_id": "lock", "owner": "ghost-host:4242:flow-run x", "acquired_at": now(),
                           "expires_at": now().replace(year=2099)})
    refused = env.run("migrate")
    assert refused.returncode == 1 and "ghost-host:4242" in refused.stderr
    assert env.db.users.count_documents({"schema_version": {"$exists": True}}) == 0

    unlocked = env.run("unlock")
    assert unlocked.returncode == 0 and "ghost-host:4242" in unlocked.stdout
    assert env.run("migrate", "2").returncode == 0
    assert env.db.users.count_documents({"schema_version": 2}) == 300


def test_interrupted_up_is_undone_when_migrating_below_it(env):
    seed_users(env.db, 2000, seed=9)
    original = collection_fingerprint(env.db.users)
    proc = env.start("migrate", "2", "--batch-size", "100", extra={"DOCSHIFT_LOCK_LEASE_SECONDS": "2"})
    wait_for_checkpoint(env, proc, 2, 600)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert env.db.users.count_documents({"schema_version": 2}) > 0
    time.sleep(2.5)

    undo = env.run("migrate", "1")

    assert undo.returncode == 0, undo.stdout + undo.stderr
    assert collection_fingerprint(env.db.users) == original
    outcomes = {(e["direction"], e["outcome"]) for e in env.ledger.find({"kind": "history"})}
    assert outcomes == {("up", "abandoned"), ("down", "reverted")}
    assert env.ledger.find_one({"_id": "current"})["version"] == 1
