"""Issue 12, item 7: `rehearse` says that it rehearsed, lists the documents that would fail (id, error, where) and
never claims that the database changed version; its report keeps ids whole on an 80-column terminal."""

from tests.support.fingerprints import database_snapshot
from tests.support.orders import add_orders_migrations, break_state, seed_orders

FAILING = ["o-17", "o-230"]


def test_a_rehearsal_lists_the_documents_that_would_fail_and_claims_no_version(env):
    add_orders_migrations(env.migrations, without_users=True)
    seed_orders(env.db, 400, seed=61)
    assert env.cli("migrate", "6").returncode == 0
    break_state(env.migrations, FAILING)
    ids = {d["order_id"]: d["_id"] for d in env.db.orders.find({"order_id": {"$in": FAILING}})}
    before = database_snapshot(env.db)

    result = env.cli("rehearse", "--max-failures", "5", extra={"COLUMNS": "80"})

    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "rehearsal on a copy of" in out and "orders: 400" in out
    assert "2 document(s) of" in out and "would fail:" in out
    for order_id, _id in ids.items():
        assert (f"migration 7 up orders _id={_id!r}: migration 7 up raised ValueError: no state for {order_id} "
                f"(document _id={_id!r}) [at 0007_order_state.py" in out.replace(str(env.migrations) + "/", "")), out
    assert "docshift quarantine" not in out and "is now at version" not in out
    assert f"rehearsal only: {env.database} was not changed and is still at version 6; `docshift migrate 8` would take " \
           f"it to version 8 with these documents quarantined" in out
    assert database_snapshot(env.db) == before
    for line in out.splitlines():  # 80 columns: the report is printed one record per block, ids whole
        assert len(line) <= 80 or "_id=" in line or "rehearsal" in line, line
    for run_line in [line for line in out.splitlines() if line.startswith("migration ")]:
        assert run_line.split()[1] in ("6", "7", "8")
    assert "backup _docshift_backup.v7-up-" in out


def test_a_failing_rehearsal_says_so_lists_the_document_and_the_source_is_untouched(env):
    add_orders_migrations(env.migrations, without_users=True)
    seed_orders(env.db, 400, seed=62)
    assert env.cli("migrate", "6").returncode == 0
    break_state(env.migrations, FAILING)
    before = database_snapshot(env.db)

    result = env.cli("rehearse")

    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("docshift: error: the rehearsal failed, so `docshift migrate` would fail the same way: "
                           "migration 7 (up) failed and was rolled back"), line
    assert "1 document(s) of" in result.stdout and "no state for o-17" in result.stdout
    assert f"rehearsal only: {env.database} was not changed and is still at version 6" in result.stdout
    assert "docshift quarantine" not in result.stdout + result.stderr and "is now at version" not in result.stdout
    assert database_snapshot(env.db) == before
