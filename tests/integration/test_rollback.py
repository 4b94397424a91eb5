"""`docshift rollback --run` (in-process) of the latest finished run, and of one that does not exist."""

from docshift.demo import seed_users
from tests.support.fingerprints import raw_snapshot


def test_rollback_of_the_latest_finished_run_rewinds_the_version_exactly(env):
    seed_users(env.db, 800, seed=15)
    assert env.cli("migrate", "3").returncode == 0
    at_3 = raw_snapshot(env.db.users)
    assert env.cli("migrate", "4").returncode == 0
    run_4 = env.ledger.find_one({"kind": "history", "version": 4})["_id"]
    run_3 = env.ledger.find_one({"kind": "history", "version": 3})["_id"]

    not_latest = env.cli("rollback", "--run", run_3)
    assert not_latest.returncode == 1 and "not the latest change" in not_latest.stderr and "migrate to version 2" in not_latest.stderr

    edited = env.db.users.find_one({"deprecated_field": {"$exists": False}, "schema_version": 4, "email": {"$exists": True}})
    env.db.users.update_one({"_id": edited["_id"]}, {"$set": {"email": "changed-after-the-run@example.com"}})

    result = env.cli("rollback", "--run", run_4)

    assert result.returncode == 0, result.stderr
    assert "799 documents restored from its backup, 1 written since undone" in result.stdout
    after = raw_snapshot(env.db.users)
    assert {i: b for i, b in after.items() if i != edited["_id"]} == {i: b for i, b in at_3.items() if i != edited["_id"]}
    doc = env.db.users.find_one({"_id": edited["_id"]})
    assert doc["email"] == "changed-after-the-run@example.com" and doc["schema_version"] == 3  # the newer write is kept
    assert env.ledger.find_one({"_id": "current"})["version"] == 3
    assert env.cli("migrate").returncode == 0 and env.db.users.count_documents({"schema_version": 5}) == 800


def test_unknown_run_is_refused(env):
    seed_users(env.db, 10, seed=1)
    result = env.cli("rollback", "--run", "v9-up-nope")
    assert result.returncode == 1 and "no run 'v9-up-nope'" in result.stderr
