"""The expand-contract phases of migration 5 from the command line: order, refusals, approval, windows, rollback.

The commands run in-process; a cleanup that waits for a person's approval runs as a `docshift` process while the
test answers through the Prefect API, as the UI would.
"""

import pytest

from docshift.demo import seed_users
from tests.support.fingerprints import by_user, database_snapshot, raw_snapshot
from tests.support.prefect_api import paused_cleanup_run, resume

NO_SOAK = {"DOCSHIFT_SOAK_SECONDS": "0"}


@pytest.fixture
def at_4(env):
    seed_users(env.db, 600, seed=21)
    assert env.cli("migrate", "4").returncode == 0
    return env


def refused(env, *args, message, extra=None):
    before = database_snapshot(env.db)
    result = env.cli(*args, extra=extra)
    assert result.returncode == 1 and message in result.stderr, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert database_snapshot(env.db) == before


def ok(env, *args, extra=None):
    result = env.cli(*args, extra=extra)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_phases_run_in_order_and_end_as_the_one_step_migration(at_4):
    env = at_4
    with_email = env.db.users.count_documents({"email": {"$exists": True}})
    refused(env, "phase", "backfill", "5", message="backfill of migration 5 waits for expand")
    refused(env, "phase", "contract", "5", message="contract of migration 5 waits for backfill")
    refused(env, "phase", "expand", "3", message="migration 3 declares no expand-contract phases")

    ok(env, "phase", "expand", "5")
    refused(env, "migrate", message="migration 5 is being applied in expand-contract phases (expand done)")
    ok(env, "phase", "backfill", "5", "--batch-size", "100")
    assert env.db.users.count_documents({"schema_version": 5}) == 600
    assert env.db.users.count_documents({"email": {"$exists": True}, "email_address": {"$exists": True}}) == with_email

    # the old application keeps writing version-4 documents until contract: contract waits for them
    env.db.users.insert_one({"user_id": "late_writer", "name": "Late Writer", "email": "late@example.com", "schema_version": 4})
    refused(env, "phase", "contract", "5", message="1 are still at version 4")
    ok(env, "phase", "backfill", "5")
    ok(env, "phase", "contract", "5")
    refused(env, "phase", "cleanup", "5", "--approve", message="waits for the soak time after contract")
    status = ok(env, "status")
    assert "phases of 5     expand, backfill, contract done; next: cleanup" in status.stdout
    backfilled = raw_snapshot(env.db.users)

    cleaned = ok(env, "phase", "cleanup", "5", "--approve", extra=NO_SOAK)

    assert "cleanup of migration 5 completed" in cleaned.stdout
    assert env.db.users.count_documents({"email": {"$exists": True}}) == 0
    assert env.db.users.count_documents({"email_address": {"$exists": True}}) == with_email + 1
    assert env.cli("verify", "5").returncode == 0
    cleanup_run = env.ledger.find_one({"kind": "history", "phase": "cleanup"})
    assert cleanup_run["outcome"] == "applied" and cleanup_run["changed"] == with_email + 1

    # the destructive phase stays reversible: its pre-images come back exactly
    ok(env, "rollback", "--run", cleanup_run["_id"])
    assert raw_snapshot(env.db.users) == backfilled
    assert "cleanup" not in env.ledger.find_one({"_id": "phases:5"})


def test_phases_end_where_the_one_step_up_ends(env, mongodb_uri):
    seed_users(env.db, 400, seed=22)
    ok(env, "migrate", "4")
    other = env.db.client[env.database + "_one_step"]
    seed_users(other, 400, seed=22)
    try:
        ok(env, "migrate", extra={"DOCSHIFT_DATABASE": other.name})
        for phase in ("expand", "backfill", "contract"):
            ok(env, "phase", phase, "5")
        ok(env, "phase", "cleanup", "5", "--approve", extra=NO_SOAK)
        assert by_user(env.db.users) == by_user(other.users)
    finally:
        env.db.client.drop_database(other.name)


def test_backfill_over_three_windows_equals_one_uninterrupted_run(env):
    seed_users(env.db, 2000, seed=23)
    ok(env, "migrate", "4")
    once = env.db.client[env.database + "_once"]
    seed_users(once, 2000, seed=23)
    try:
        paced = {"DOCSHIFT_BATCH_PAUSE_SECONDS": "0.15"}  # the runs' length: mostly pauses, whatever the machine's load
        one_db = {"DOCSHIFT_DATABASE": once.name}
        ok(env, "migrate", "4", extra=one_db)
        ok(env, "phase", "expand", "5", extra=one_db)
        ok(env, "phase", "backfill", "5", "--batch-size", "100", extra={**one_db, **paced})
        seconds = once["_migrations"].find_one({"kind": "history", "phase": "backfill"})["duration_s"]
        window = 1.0 + seconds / 5  # start-up allowance plus about a fifth of the work: three windows or more

        ok(env, "phase", "expand", "5")
        runs = []
        while not runs or "paused" in runs[-1]:
            result = ok(env, "phase", "backfill", "5", "--batch-size", "100", "--window-minutes", str(window / 60),
                        extra=paced)
            runs.append(result.stdout)
            checkpoint = env.ledger.find_one({"_id": "checkpoint"})
            if "paused" in result.stdout:
                entry = env.ledger.find_one({"_id": checkpoint["run_id"]})
                assert entry["outcome"] == "paused" and checkpoint["done"] == entry["documents"] <= 2000  # 2000: sweeps left
                assert env.ledger.find_one({"_id": "lock"}) is None
                status = ok(env, "status")
                assert f"backfill 5, paused at {checkpoint['done']:,} of 2,000 documents done" in status.stdout
            assert len(runs) <= 30, "the backfill makes no progress from one window to the next"

        assert len(runs) >= 3, runs
        entries = list(env.ledger.find({"kind": "history", "phase": "backfill"}))
        assert len(entries) == 1 and entries[0]["resumed"] == len(runs) - 1 and entries[0]["outcome"] == "applied"
        assert by_user(env.db.users) == by_user(once.users)
    finally:
        env.db.client.drop_database(once.name)


@pytest.fixture
def contracted(at_4):
    for phase in ("expand", "backfill", "contract"):
        ok(at_4, "phase", phase, "5")
    return at_4


def test_cleanup_pauses_for_approval_and_completes_once_approved(contracted):
    env = contracted
    proc = env.start("phase", "cleanup", "5", "--approval-timeout", "120", extra=NO_SOAK)
    run_id = paused_cleanup_run(env.vars["PREFECT_API_URL"])
    assert env.db.users.count_documents({"email": {"$exists": True}}) > 0  # nothing removed while it waits

    resume(env.vars["PREFECT_API_URL"], run_id, {"approve": True, "approver": "on-call"})
    output, _ = proc.communicate(timeout=300)

    assert proc.returncode == 0, output
    assert "cleanup of migration 5 completed" in output
    assert env.db.users.count_documents({"email": {"$exists": True}}) == 0
    assert "cleanup" in env.ledger.find_one({"_id": "phases:5"})


def test_cleanup_without_approval_times_out_and_removes_nothing(contracted):
    env = contracted
    before = database_snapshot(env.db)

    result = env.cli("phase", "cleanup", "5", "--approval-timeout", "3", extra=NO_SOAK)

    assert result.returncode == 1
    assert "cleanup of migration 5 was not approved within 3 s" in result.stderr and "nothing was removed" in result.stderr
    assert database_snapshot(env.db) == before


def test_cleanup_refused_by_the_approver_removes_nothing(contracted):
    env = contracted
    before = database_snapshot(env.db)
    proc = env.start("phase", "cleanup", "5", "--approval-timeout", "120", extra=NO_SOAK)
    resume(env.vars["PREFECT_API_URL"], paused_cleanup_run(env.vars["PREFECT_API_URL"]), {"approve": False, "approver": "dba"})
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 1 and "cleanup of migration 5 was refused by dba; nothing was removed" in output
    assert database_snapshot(env.db) == before
