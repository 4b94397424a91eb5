"""`docshift rollback --run` and the recorded version, in sequences the model walk (tests/model) found broken."""

import signal
from datetime import datetime, timedelta, timezone

from docshift.demo import seed_users
from tests.helpers import collection_fingerprint


def expire_lease(env) -> None:
    env.ledger.update_one({"_id": "lock"}, {"$set": {"expires_at": datetime.now(timezone.utc) - timedelta(hours=1)}})


def test_an_interrupted_rollback_of_the_latest_run_moves_the_version_back_when_it_is_finished(env):
    seed_users(env.db, 300, seed=31)
    before = collection_fingerprint(env.db.users)
    assert env.run("migrate", "2").returncode == 0
    run_2 = env.ledger.find_one({"kind": "history", "version": 2})["_id"]

    killed = env.run("rollback", "--run", run_2, extra={"DOCSHIFT_FAULT": "rollback-batch:1"})
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    expire_lease(env)
    refused = env.run("migrate", "2")
    assert refused.returncode == 1 and f"docshift rollback --run {run_2}" in refused.stderr

    again = env.run("rollback", "--run", run_2)

    assert again.returncode == 0, again.stdout + again.stderr
    assert "database is at version 1" in again.stdout
    assert env.ledger.find_one({"_id": "current"})["version"] == 1
    assert collection_fingerprint(env.db.users) == before
    assert env.ledger.find_one({"_id": run_2})["outcome"] == "rolled_back"
