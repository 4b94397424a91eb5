"""Restoring the backup of a run whose documents were updated on the server by `_id` ranges: the backup holds only
the pre-images that run saved, so `restore` refuses to call the run undone and names `rollback --run`, which undoes
the ranges; and documents ahead of the recorded version (as such a restore used to leave them) are drift that
`status`, `verify` and `migrate` name, never documents a run quietly takes as its own."""

from docshift.demo import seed_users
from tests.support.env import only_default_plan
from tests.support.fingerprints import database_snapshot, raw_snapshot

N = 300


def applied_run(env) -> dict:
    return env.ledger.find_one({"kind": "history", "version": 2, "direction": "up"})


def seeded(env) -> dict:
    only_default_plan(env)
    seed_users(env.db, N, seed=21)
    had_plan = [d["_id"] for d in env.db.users.find().sort("_id", 1).limit(3)]
    env.db.users.update_many({"_id": {"$in": had_plan}}, {"$set": {"plan": "gold"}})  # these go per document
    return raw_snapshot(env.db.users)


def test_restore_of_a_server_side_run_is_refused_and_names_rollback_which_undoes_the_ranges(env):
    before = seeded(env)
    assert env.cli("migrate").returncode == 0
    run = applied_run(env)["_id"]
    snapshot = database_snapshot(env.db)

    refused = env.cli("restore", run)

    assert refused.returncode == 1 and refused.stdout == "", refused.stdout
    [line] = refused.stderr.splitlines()
    assert line.startswith("docshift: error: ") and f"`docshift rollback --run {run}`" in line, line
    assert "nothing was restored" in line and "ranges" in line, line
    assert database_snapshot(env.db) == snapshot  # nothing written: documents, ledger, backups
    assert env.cli("restore", run, "--keep-version").returncode == 1  # nor put back as if behind

    undone = env.cli("rollback", "--run", run)
    assert undone.returncode == 0, undone.stdout + undone.stderr
    assert raw_snapshot(env.db.users) == before
    assert "drift           none" in env.cli("status").stdout


def test_documents_ahead_of_the_recorded_version_are_drift_and_migrate_names_them(env):
    """What a restore of such a backup used to leave: the record moved back to 1, the ranges' documents still at 2."""
    seeded(env)
    assert env.cli("migrate").returncode == 0
    env.ledger.update_one({"_id": "current"}, {"$set": {"version": 1}})

    status = env.cli("status")
    assert f"drift           users: {N:,} documents ahead of version 1 ({N:,} at 2)" in status.stdout, status.stdout
    assert "carries them up" not in status.stdout
    verify = env.cli("verify")
    assert verify.returncode == 1
    assert f"users: {N:,} documents ahead of version 1" in verify.stdout, verify.stdout

    run = env.cli("migrate")

    assert run.returncode == 0, run.stdout + run.stderr
    assert "database is now at version 2" not in run.stdout
    last = run.stdout.strip().splitlines()[-1]
    assert f"{N:,} documents" in last and "ahead" in last and "`docshift verify 2`" in last, run.stdout
    assert "drift           none" in env.cli("status").stdout
    assert env.cli("verify").returncode == 0


def test_documents_of_an_unfinished_run_are_not_drift(env):
    """A run killed mid-way leaves its documents at the new version while the record stays: what they are is an
    unfinished run (status says so), not drift."""
    seed_users(env.db, N, seed=22)

    killed = env.run("migrate", "2", "--batch-size", "50", extra={"DOCSHIFT_FAULT": "checkpoint-saved:2"})

    assert killed.returncode != 0
    assert env.db.users.count_documents({"schema_version": 2}) == 100
    env.expire_lease()
    status = env.cli("status")
    assert "unfinished run" in status.stdout and "drift           none" in status.stdout, status.stdout
