"""kill -9 in the middle of a migration, then a re-run: it resumes from the checkpoint and ends as an uninterrupted run.

The migration that is killed is a real `docshift` process; the re-run is the command in-process. The dead run's
lease is expired by writing it into the past (Env.expire_lease) instead of being slept out.
"""

import os
import signal
from datetime import timedelta

import pytest

from docshift.demo import seed_users
from docshift.ledger import as_utc, now
from tests.support.fingerprints import collection_fingerprint, expected_after_all_ups, fingerprint
from tests.support.waiting import process_alive, wait_for_checkpoint

N, BATCH = 2000, 200  # formerly 4000: ten batches per migration; killed two batches in, half-way, two batches before the end


@pytest.mark.parametrize("version,done", [(2, 2 * BATCH), (3, N // 2), (5, N - 2 * BATCH)], ids=["early-in-2", "middle-of-3", "late-in-5"])
def test_kill_9_then_rerun_resumes_from_checkpoint(env, version, done):
    seed_users(env.db, N, seed=version)
    expected = fingerprint(expected_after_all_ups(env.db.users.find(), env.migrations))
    proc = env.start("migrate", "--batch-size", str(BATCH))
    wait_for_checkpoint(env.db, version, done, alive=lambda: process_alive(proc))
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    at_kill = env.ledger.find_one({"_id": "checkpoint"})
    assert at_kill["version"] == version and 0 < at_kill["done"] < N

    lock = env.ledger.find_one({"_id": "lock"})  # the dead run still holds it until its lease runs out
    assert lock and str(proc.pid) in lock["owner"] and as_utc(lock["expires_at"]) > now() - timedelta(seconds=1)
    env.expire_lease()

    resumed = env.cli("migrate", "--batch-size", str(BATCH))

    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    entry = env.ledger.find_one({"kind": "history", "version": version})
    assert entry["resumed"] == 1 and entry["outcome"] == "applied" and entry["_id"] == at_kill["run_id"]
    # each document is read once, except at most one batch written but not yet checkpointed at the kill
    assert N - BATCH <= entry["documents"] <= N and N - BATCH <= entry["changed"] <= N
    assert collection_fingerprint(env.db.users, drop={"updated_at"}) == expected
    assert env.ledger.find_one({"_id": "current"})["version"] == 5
    assert env.ledger.find_one({"_id": "checkpoint"}) is None and env.ledger.find_one({"_id": "lock"}) is None


def test_a_second_migrate_is_refused_while_one_runs(env):
    seed_users(env.db, 1000, seed=2)  # formerly 3000: the first run is still at migration 2 when the second starts
    first = env.start("migrate", "--batch-size", "100")
    wait_for_checkpoint(env.db, 2, 100, alive=lambda: process_alive(first))

    second = env.cli("migrate")

    assert second.returncode == 1
    assert "another migration run holds the lock" in second.stderr and f":{first.pid}:" in second.stderr
    assert first.wait(timeout=600) == 0
    assert env.db.users.count_documents({"schema_version": 5}) == 1000
    assert len(list(env.ledger.find({"kind": "history"}))) == 4  # the refused run recorded nothing


def test_interrupted_up_is_undone_when_migrating_below_it(env):
    seed_users(env.db, 2000, seed=9)
    original = collection_fingerprint(env.db.users)
    proc = env.start("migrate", "2", "--batch-size", "100")
    wait_for_checkpoint(env.db, 2, 600, alive=lambda: process_alive(proc))
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert env.db.users.count_documents({"schema_version": 2}) > 0
    env.expire_lease()

    undo = env.cli("migrate", "1")

    assert undo.returncode == 0, undo.stdout + undo.stderr
    assert collection_fingerprint(env.db.users) == original
    outcomes = {(e["direction"], e["outcome"]) for e in env.ledger.find({"kind": "history"})}
    assert outcomes == {("up", "abandoned"), ("down", "reverted")}
    assert env.ledger.find_one({"_id": "current"})["version"] == 1
