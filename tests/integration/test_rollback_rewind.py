"""`docshift rollback --run` and the recorded version, in sequences the model walk (tests/model) found broken."""

import signal

from docshift.demo import seed_users
from tests.support.fingerprints import collection_fingerprint
from tests.support.fingerprints import raw_snapshot


def test_an_interrupted_rollback_of_the_latest_run_moves_the_version_back_when_it_is_finished(env):
    seed_users(env.db, 300, seed=31)
    before = collection_fingerprint(env.db.users)
    assert env.cli("migrate", "2").returncode == 0
    run_2 = env.ledger.find_one({"kind": "history", "version": 2})["_id"]

    killed = env.run("rollback", "--run", run_2, extra={"DOCSHIFT_FAULT": "rollback-batch:1"})
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    env.expire_lease()
    refused = env.cli("migrate", "2")
    assert refused.returncode == 1 and f"docshift rollback --run {run_2}" in refused.stderr

    again = env.cli("rollback", "--run", run_2)

    assert again.returncode == 0, again.stdout + again.stderr
    assert "database is at version 1" in again.stdout
    assert env.ledger.find_one({"_id": "current"})["version"] == 1
    assert collection_fingerprint(env.db.users) == before
    assert env.ledger.find_one({"_id": run_2})["outcome"] == "rolled_back"


def test_rolling_back_the_run_that_retried_quarantined_documents_is_refused_with_what_to_run(env):
    seed_users(env.db, 300, seed=32)
    assert env.cli("migrate", "2").returncode == 0
    original = env.break_split_name(["user_10", "user_250"], "cannot split")
    assert env.cli("migrate", "--max-failures", "2").returncode == 0
    (env.migrations / "0003_split_name.py").write_text(original)
    assert env.cli("migrate", "--allow-changed").returncode == 0
    retry = env.ledger.find_one({"kind": "history", "version": 5, "recorded_before": 5})
    assert retry is not None and retry["outcome"] == "applied" and retry["changed"] == 2
    before = raw_snapshot(env.db.users)

    refused = env.cli("rollback", "--run", retry["_id"])

    assert refused.returncode == 1
    assert "retried" in refused.stderr and "`docshift migrate 4`" in refused.stderr, refused.stderr
    assert raw_snapshot(env.db.users) == before and env.ledger.find_one({"_id": "current"})["version"] == 5
    assert env.cli("migrate", "4").returncode == 0  # what it said to run
    assert env.db.users.count_documents({"schema_version": 4}) == 300


def test_rolling_back_the_run_that_undid_an_interrupted_run_is_refused_with_what_to_run(env):
    """migrate 3 killed before it changed anything, then `migrate 2` undoes its partial step (a `down` of 3 that
    changes nothing and leaves the version at 2); rolling that back used to move the version to 3 with every user
    still at 2."""
    seed_users(env.db, 300, seed=33)
    assert env.cli("migrate", "2").returncode == 0
    killed = env.run("migrate", "3", extra={"DOCSHIFT_FAULT": "backup:1"})
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    env.expire_lease()
    assert env.cli("migrate", "2").returncode == 0
    undo = env.ledger.find_one({"kind": "history", "version": 3, "direction": "down"})
    assert undo["outcome"] == "reverted" and undo["undoes"] is not None
    before = raw_snapshot(env.db.users)

    refused = env.cli("rollback", "--run", undo["_id"])

    assert refused.returncode == 1
    assert "interrupted run" in refused.stderr and "`docshift migrate 3`" in refused.stderr, refused.stderr
    assert raw_snapshot(env.db.users) == before and env.ledger.find_one({"_id": "current"})["version"] == 2
    assert env.cli("migrate", "3").returncode == 0  # what it said to run
    assert env.db.users.count_documents({"schema_version": 3}) == 300


def test_rolling_back_the_latest_run_takes_back_documents_the_application_inserted_at_its_version_since(env):
    """The application's new code inserts a user at version 2 after `migrate 2`; `rollback --run` of that run moved
    the version back to 1 and left the new user at 2, silently."""
    seed_users(env.db, 200, seed=34)
    assert env.cli("migrate", "2").returncode == 0
    run_2 = env.ledger.find_one({"kind": "history", "version": 2})["_id"]
    new_user = {**env.db.users.find_one({"schema_version": 2}), "_id": "inserted-at-2", "email": "new@example.com"}
    env.db.users.insert_one(new_user)

    result = env.cli("rollback", "--run", run_2)

    assert result.returncode == 0, result.stdout + result.stderr
    assert env.ledger.find_one({"_id": "current"})["version"] == 1
    assert env.db.users.count_documents({"schema_version": {"$exists": True}}) == 0
    back = env.db.users.find_one({"_id": "inserted-at-2"})
    assert "preferences" not in back and back["email"] == "new@example.com"  # migration 2's down, without a pre-image
    assert "1 written since undone" in result.stdout


def test_rolling_back_a_down_leaves_documents_written_at_its_older_version_as_drift_then_down_gives_them_back(env):
    """The model walk's order 121 and customer 101: a document the application inserted, or changed, at a down run's
    older version, carried up by the down's rollback with `up` and no pre-image, could not get back at the next down
    what `up` dropped (the next down took an older run's pre-image). It stays where the application wrote it (drift,
    reported), and `migrate` carries it up with its pre-image saved first."""
    seed_users(env.db, 300, seed=33)
    assert env.cli("migrate", "4").returncode == 0
    assert env.cli("migrate", "3").returncode == 0  # the down of 4
    down_run = env.ledger.find_one({"kind": "history", "version": 4, "direction": "down"})["_id"]
    app_doc = {**env.db.users.find_one({"schema_version": 3}, {"_id": 0}), "user_id": "app_1", "deprecated_field": "kept"}
    inserted = env.db.users.insert_one(app_doc).inserted_id  # old code writes at version 3 meanwhile: a new user,
    changed = env.db.users.find_one({"schema_version": 3, "user_id": {"$ne": "app_1"}})["_id"]
    env.db.users.update_one({"_id": changed}, {"$set": {"deprecated_field": "set by old code"}})  # and a field up drops
    before = raw_snapshot(env.db.users)

    rolled_back = env.cli("rollback", "--run", down_run)

    assert rolled_back.returncode == 0, rolled_back.stdout + rolled_back.stderr
    assert "database is at version 4" in rolled_back.stdout
    assert "drift: users: 2 documents behind version 4" in rolled_back.stdout
    after = raw_snapshot(env.db.users)
    assert after[inserted] == before[inserted] and after[changed] == before[changed]  # left as the application wrote them
    assert "2 documents behind version 4" in env.cli("status").stdout
    carried = env.cli("migrate", "4")
    assert carried.returncode == 0, carried.stdout + carried.stderr
    assert env.db.users.count_documents({"_id": {"$in": [inserted, changed]}, "schema_version": 4}) == 2
    assert env.cli("migrate", "3").returncode == 0
    after = raw_snapshot(env.db.users)  # deprecated_field back from the carry-up's pre-images, not the first run's
    assert after[inserted] == before[inserted] and after[changed] == before[changed]
