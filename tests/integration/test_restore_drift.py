"""Issue 12, item 2: `restore` keeps the ledger true, and documents behind the recorded version ("drift": restored
from an old backup, or written at an old version by old application code) are shown by `status` and `verify` and
carried up by `migrate`, which never reports a version that documents have not reached."""

import re

from docshift.demo import seed_users
from tests.support.fingerprints import collection_fingerprint, database_snapshot, fingerprint
from tests.support.orders import add_orders_migrations, expected_orders, seed_orders

N, BATCH = 600, "150"  # formerly 2000 in batches of 500: still four batches per migration
LATE = 2000
"""Orders of the test whose `up` writes as old code for o-1500: past the 1,000 the pre-flight transforms in memory
(DOCSHIFT_PLAN_CHECK_DOCUMENTS), so that the write lands inside the run."""


def backup_of(env, version: int) -> str:
    return env.db["_backups"].find_one({"version": version, "direction": "up"})["_id"]


def recorded(env) -> int:
    return env.ledger.find_one({"_id": "current"})["version"]


def test_restoring_an_older_run_is_refused_unless_kept_and_migrate_then_carries_the_documents_up(env):
    add_orders_migrations(env.migrations)
    seed_users(env.db, 200, seed=41)
    seed_orders(env.db, N, seed=41)
    original = list(env.db.orders.find())
    assert env.cli("migrate", "7", "--batch-size", BATCH).returncode == 0
    backup = backup_of(env, 6)  # orders as they were before migration 6: at version 1
    before = database_snapshot(env.db)

    refused = env.cli("restore", backup)

    assert refused.returncode == 1 and refused.stdout == ""
    [line] = refused.stderr.splitlines()
    assert line.startswith(f"docshift: error: backup {backup} holds orders documents ({N:,} at version 1) but the "
                           f"ledger records orders at version 7"), line
    assert f"`docshift restore {backup} --keep-version`" in line and "`docshift migrate 5`" in line
    assert database_snapshot(env.db) == before

    kept = env.cli("restore", backup, "--keep-version")

    assert kept.returncode == 0, kept.stderr
    assert f"{N:,} of them are behind the recorded version 7: the next `docshift migrate` carries them up" in kept.stdout
    assert recorded(env) == 7 and env.db.orders.count_documents({"schema_version": {"$exists": False}}) == N
    status = env.cli("status")
    assert f"drift           orders: {N:,} documents behind version 7 ({N:,} at 1)" in status.stdout, status.stdout
    verify = env.cli("verify")
    assert verify.returncode == 1
    assert (f"FAIL  documents behind or ahead of their collection's recorded version (drift): expected 0, found orders: {N:,}"
            in verify.stdout), verify.stdout
    plan = env.cli("plan")
    assert re.search(rf"up +6 orders: Total in cents \(transformative, {N:,} documents, applied before", plan.stdout), plan.stdout

    carried = env.cli("migrate", "--batch-size", BATCH)

    assert carried.returncode == 0, carried.stdout + carried.stderr
    rows = [r.split("│") for r in carried.stdout.splitlines() if r.startswith("│ ")]
    assert [(r[1].strip(), r[2].strip(), r[3].strip()) for r in rows] == [
        ("6", "up again", f"{N:,}"), ("7", "up again", f"{N:,}"), ("8", "up", f"{N:,}")]
    assert "database is now at version 8" in carried.stdout
    assert collection_fingerprint(env.db.orders, exact=False) == fingerprint(expected_orders(original, env.migrations, 8))
    assert "drift           none" in env.cli("status").stdout
    assert env.cli("verify").returncode == 0


def test_restoring_the_latest_run_moves_the_recorded_version_back_with_the_documents(env):
    add_orders_migrations(env.migrations, without_users=True)
    seed_orders(env.db, N, seed=42)
    original = collection_fingerprint(env.db.orders, exact=False)
    assert env.cli("migrate", "7", "--batch-size", BATCH).returncode == 0
    backup = backup_of(env, 7)

    restored = env.cli("restore", backup)

    assert restored.returncode == 0, restored.stderr
    assert f"run {backup} is undone: the database is recorded at version 6 again (was 7)" in restored.stdout
    assert recorded(env) == 6 and env.ledger.find_one({"_id": backup})["outcome"] == "restored"
    assert env.db.orders.count_documents({"schema_version": 6}) == N
    status = env.cli("status")
    assert "current version 6" in status.stdout and "pending         7, 8" in status.stdout
    assert "drift           none" in status.stdout
    assert env.cli("migrate", "1").returncode == 0  # the downs of 6 find their pre-images as before
    assert collection_fingerprint(env.db.orders, exact=False) == original


def test_documents_written_at_an_old_version_during_a_run_are_never_reported_as_migrated(env):
    """Old application code inserts an order at version 6 while migration 8 runs (here: migration 8's `up` does it
    for one order, so that the write lands inside the run), and another one after it. The run completes (a document
    old code writes is not the run's failure) but its last line names them instead of claiming version 8."""
    add_orders_migrations(env.migrations, without_users=True)
    seed_orders(env.db, LATE, seed=43)
    assert env.cli("migrate", "7", "--batch-size", "500").returncode == 0
    path = env.migrations / "0008_order_currency.py"
    path.write_text(path.read_text().replace("def up(doc):\n", (
        "def up(doc):\n"
        "    if doc['order_id'] == 'o-1500':\n"
        "        import pymongo, os\n"
        "        pymongo.MongoClient(os.environ['DOCSHIFT_MONGODB_URI'])[os.environ['DOCSHIFT_DATABASE']].orders.update_one(\n"
        "            {'_id': 'old-code-1'}, {'$setOnInsert': {'order_id': 'old-1', 'total_cents': 100, 'status': 'PAID',\n"
        "                                                   'schema_version': 6}}, upsert=True)\n")))

    run = env.cli("migrate", "--batch-size", "500")

    assert run.returncode == 0, run.stdout + run.stderr  # the run completes (its own check counts what it left)
    assert "database is now at version" not in run.stdout
    assert run.stdout.strip().splitlines()[-1] == (
        "the database is recorded at version 8, but documents are behind it (drift): orders: 1 documents behind "
        "version 8 (1 at 6); the next `docshift migrate` carries them up"), run.stdout
    env.db.orders.insert_one({"_id": "old-code-2", "order_id": "old-2", "total": 3.5, "status": "new"})  # at 1, after
    assert "orders: 2 documents behind version 8 (1 at 1, 1 at 6)" in env.cli("status").stdout
    assert env.cli("verify", "8").returncode == 1

    again = env.cli("migrate", "--batch-size", "500")

    assert again.returncode == 0, again.stdout + again.stderr
    assert "database is now at version 8" in again.stdout
    assert env.db.orders.count_documents({"schema_version": 8}) == LATE + 2
    assert env.db.orders.find_one({"_id": "old-code-2"}) == {
        "_id": "old-code-2", "order_id": "old-2", "total_cents": 350, "state": "new", "currency": "EUR", "schema_version": 8}
    assert env.cli("verify").returncode == 0


def test_a_restore_past_a_destructive_migration_says_where_its_removed_fields_come_back_from(env):
    seed_users(env.db, 300, seed=43)
    assert env.cli("migrate", "3").returncode == 0
    at_3 = collection_fingerprint(env.db.users, drop={"updated_at"})
    assert env.cli("migrate", "5").returncode == 0
    backup = backup_of(env, 5)  # users as they were before migration 5: through 4, which removed deprecated_field
    # (2, 3 and 4 each take values back from pre-images on the way down: `updated_at`, and 4 its removed field)

    restored = env.cli("restore", backup)

    assert restored.returncode == 0, restored.stderr
    assert ("What the `down` of migrations 2, 3, 4 takes from pre-images is not in the backup: docshift keeps the "
            "pre-images these documents had when it was made" in restored.stdout), restored.stdout
    assert env.db.users.count_documents({"deprecated_field": {"$exists": True}}) == 0
    assert env.cli("migrate", "3").returncode == 0
    assert collection_fingerprint(env.db.users, drop={"updated_at"}) == at_3


def test_a_restored_document_s_down_gives_back_what_it_held_at_the_backup_not_what_a_later_run_read(env):
    """Issue 12 (soak seed 8): values that the restore took away must not come back through a later run's pre-images."""
    seed_users(env.db, 300, seed=44)
    assert env.cli("migrate", "5").returncode == 0
    backup = backup_of(env, 5)  # users through migration 4, which removed deprecated_field: its values are pre-images
    assert env.cli("migrate", "3").returncode == 0
    at_3 = collection_fingerprint(env.db.users, drop={"updated_at"})
    env.db.users.update_many({}, {"$set": {"deprecated_field": "written after the backup"}})
    assert env.cli("migrate", "5").returncode == 0  # a second up of 4, whose pre-images hold the later value

    for _ in range(2):  # the same restore twice keeps the pre-images once
        restored = env.cli("restore", backup, "--keep-version")
        assert restored.returncode == 0, restored.stderr
    pruned = env.cli("backups", "prune", "--keep-last", "0")  # what the restore kept is needed: it stays
    assert pruned.returncode == 0 and pruned.stdout.count(f"{backup}.restored-") == 1, pruned.stdout + pruned.stderr
    assert env.cli("migrate", "5").returncode == 0  # carries the restored users from 4 to 5
    assert env.cli("migrate", "3").returncode == 0

    assert env.db.users.count_documents({"deprecated_field": "written after the backup"}) == 0
    assert collection_fingerprint(env.db.users, drop={"updated_at"}) == at_3
