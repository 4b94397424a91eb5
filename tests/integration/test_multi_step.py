"""One migration of several steps (`migrations = [...]` of one version) on the session's server through the `docshift`
command line: an enum renamed in three collections, three indexes, applied and reverted together, byte for byte; a
failure in the third step undoes the first two; `plan`, `history` and `rollback --run` per step."""

from tests.support.env import only_migrations
from tests.support.fingerprints import raw_snapshot

COLLECTIONS = ("users", "orders", "invoices")

RENAME_ENUM = """\
def up(doc):
    return {**doc, "status": "dormant"} if doc.get("status") == "inactive" else doc


def down(doc, pre_image):
    return {**doc, "status": "inactive"} if doc.get("status") == "dormant" else doc


migrations = [
    docshift.Migration(version=2, description="inactive users are dormant", collection="users", kind="transformative",
                       up=up, down=down),
    docshift.Migration(version=2, description="inactive orders are dormant", collection="orders",
                       kind="transformative", update={"$set": {"status": "dormant"}}, filter={"status": "inactive"}),
    docshift.Migration(version=2, description="inactive invoices are dormant", collection="invoices",
                       kind="transformative", up=up, down=down),
]
"""

LATER = """\
migration = docshift.Migration(version=3, description="orders get a note", collection="orders", kind="additive",
                               update={"$set": {"note": ""}})
"""

THREE_INDEXES = """\
migrations = [
    docshift.Migration(version=2, description="users by email", collection="users",
                       operation=docshift.CreateIndex(keys=[("email", 1)])),
    docshift.Migration(version=2, description="orders by user", collection="orders",
                       operation=docshift.CreateIndex(keys=[("user", 1), ("day", -1)])),
    docshift.Migration(version=2, description="invoices by number", collection="invoices",
                       operation=docshift.CreateIndex(keys=[("number", 1)], unique=True)),
]
"""

THIRD_FAILS = RENAME_ENUM.replace('''collection="invoices",
                       kind="transformative", up=up, down=down)''', '''collection="invoices",
                       kind="transformative", up=fails_on_150, down=down)''').replace("migrations = [", '''\
def fails_on_150(doc):
    if doc["_id"] == 150:
        raise ValueError("no such status")
    return up(doc)


migrations = [''')


def ok(env, *args):
    result = env.cli(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def seed(env, n=300):
    """Each collection with every form of the field: the old value, others, null, missing, a wrong type."""
    values = ["inactive", "active", None, 3, "inactive ", "INACTIVE"]
    for name in COLLECTIONS:
        env.db[name].insert_many([{"_id": i, "n": i, **({} if i % 7 == 0 else {"status": values[i % len(values)]}),
                                   "email": f"u{i}@x", "user": i % 13, "day": i % 5, "number": f"N{i}"}
                                  for i in range(n)])


def exact(env) -> dict:
    return {name: raw_snapshot(env.db[name]) for name in COLLECTIONS}


def entries(env) -> list[dict]:
    return sorted(env.ledger.find({"kind": "history"}), key=lambda e: e["started_at"])


def test_enum_renamed_in_three_collections_by_one_migration_and_back_byte_for_byte(env):
    only_migrations(env, **{"0002_dormant": RENAME_ENUM, "0003_note": LATER})
    seed(env)
    before = exact(env)

    plan = ok(env, "plan", "2").stdout
    for line in ("up   2 users: inactive users are dormant (transformative, 300 documents)",
                 "up   2 orders: inactive orders are dormant (transformative, 300 documents)",
                 "up   2 invoices: inactive invoices are dormant (transformative, 300 documents)"):
        assert line in plan, plan
    assert plan.index("2 users:") < plan.index("2 orders:") < plan.index("2 invoices:")

    ok(env, "migrate")
    assert env.ledger.find_one({"_id": "current"})["version"] == 3
    for name in COLLECTIONS:
        docs = list(env.db[name].find())
        assert sum(d.get("status") == "dormant" for d in docs) == 42 and not any(d.get("status") == "inactive" for d in docs)
        assert {d["schema_version"] for d in docs} == ({3} if name == "orders" else {2})
    assert [(e["version"], e["collection"], e.get("part"), e["outcome"]) for e in entries(env)] == [
        (2, "users", 0, "applied"), (2, "orders", 1, "applied"), (2, "invoices", 2, "applied"), (3, "orders", 0, "applied")]
    history = ok(env, "history").stdout
    assert all(name in history for name in COLLECTIONS), history

    ok(env, "migrate", "1")
    assert env.ledger.find_one({"_id": "current"})["version"] == 1
    assert exact(env) == before  # every byte back, key order included
    reverted = [(e["version"], e["collection"]) for e in entries(env) if e["outcome"] == "reverted"]
    assert reverted == [(3, "orders"), (2, "invoices"), (2, "orders"), (2, "users")]  # downs in reverse order


def test_three_indexes_by_one_migration_and_dropped_by_its_down(env):
    only_migrations(env, **{"0002_indexes": THREE_INDEXES})
    seed(env)
    before = exact(env)

    plan = ok(env, "plan").stdout
    assert "create index email_1 (email: 1) on users" in plan
    assert "create index user_1_day_-1 (user: 1, day: -1) on orders" in plan
    assert "create unique index number_1 (number: 1) on invoices" in plan

    ok(env, "migrate")
    assert "email_1" in env.db.users.index_information()
    assert "user_1_day_-1" in env.db.orders.index_information()
    assert env.db.invoices.index_information()["number_1"].get("unique")
    assert env.ledger.find_one({"_id": "current"})["version"] == 2

    refused = env.cli("rollback", "--run", entries(env)[-1]["_id"])  # the step that finished migration 2: not alone
    assert refused.returncode == 1 and "reverted together" in refused.stderr, refused.stderr

    ok(env, "migrate", "1")
    for name in COLLECTIONS:
        assert list(env.db[name].index_information()) == ["_id_"]
    assert exact(env) == before
    assert [(e["collection"], e["direction"]) for e in entries(env)][3:] == [
        ("invoices", "down"), ("orders", "down"), ("users", "down")]


def test_a_failure_in_the_third_step_undoes_the_first_two(env):
    only_migrations(env, **{"0002_dormant": THIRD_FAILS})
    seed(env)
    before = exact(env)

    result = env.cli("migrate")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "no such status" in result.stderr and "were undone too" in result.stderr, result.stderr
    assert "users, orders" in result.stderr
    assert exact(env) == before  # every byte of the first two steps' collections back
    assert (env.ledger.find_one({"_id": "current"}) or {"version": 1})["version"] == 1
    assert env.ledger.find_one({"_id": "checkpoint"}) is None
    assert [(e["collection"], e["direction"], e["outcome"]) for e in entries(env)] == [
        ("users", "up", "applied"), ("orders", "up", "applied"), ("invoices", "up", "rolled_back"),
        ("orders", "down", "reverted"), ("users", "down", "reverted")]
    assert "current version 1" in ok(env, "status").stdout


def test_loader_refuses_two_steps_on_one_collection_and_mixed_versions(env):
    twice = RENAME_ENUM.replace('collection="invoices"', 'collection="users"')
    mixed = RENAME_ENUM.replace('version=2, description="inactive invoices', 'version=3, description="inactive invoices')
    for source, message in ((twice, "two steps change the documents of users"), (mixed, "versions 2, 2, 3")):
        only_migrations(env, **{"0002_dormant": source})
        result = env.cli("plan")
        assert result.returncode == 1 and message in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


KILL_IN_A_LATER_STEP = {"DOCSHIFT_FAULT": "batch-written:10", "DOCSHIFT_LOCK_LEASE_SECONDS": "2",
                        "DOCSHIFT_BATCH_SIZE": "40"}


def test_a_run_killed_in_a_later_step_is_undone_whole_by_migrate_down_then_applied_again(env):
    only_migrations(env, **{"0002_dormant": RENAME_ENUM})
    seed(env)
    before = exact(env)

    killed = env.run("migrate", extra=KILL_IN_A_LATER_STEP)  # kill -9 inside step 2 or 3: step 1 is done
    assert killed.returncode != 0
    checkpoint = env.ledger.find_one({"_id": "checkpoint"})
    assert checkpoint["version"] == 2 and checkpoint["part"] >= 1, checkpoint
    assert (env.ledger.find_one({"_id": "current"}) or {"version": 1})["version"] == 1  # not moved before the last step
    assert env.db.users.count_documents({"status": "dormant"}) == 42
    env.expire_lease()
    status = ok(env, "status").stdout
    assert f"up 2 (step {checkpoint['part'] + 1} of 3: {checkpoint['collection']})" in status, status

    ok(env, "migrate", "1")  # takes back the interrupted step and the steps of 2 before it
    assert exact(env) == before
    assert env.ledger.find_one({"_id": "checkpoint"}) is None
    assert (env.ledger.find_one({"_id": "current"}) or {"version": 1})["version"] == 1

    ok(env, "migrate")
    assert env.ledger.find_one({"_id": "current"})["version"] == 2
    assert [env.db[name].count_documents({"status": "dormant", "schema_version": 2}) for name in COLLECTIONS] == [42] * 3


def test_a_run_killed_between_two_steps_is_undone_whole_or_resumed(env):
    only_migrations(env, **{"0002_dormant": RENAME_ENUM})
    seed(env)
    before = exact(env)

    killed = env.run("migrate", extra={"DOCSHIFT_FAULT": "step-recorded:1", "DOCSHIFT_LOCK_LEASE_SECONDS": "2"})
    assert killed.returncode != 0  # kill -9 after step 1 was recorded, before step 2 began
    assert env.db.users.count_documents({"status": "dormant"}) == 42
    env.expire_lease()
    status = env.cli("status").stdout
    ok(env, "migrate", "1")
    assert exact(env) == before, status

    killed = env.run("migrate", extra={"DOCSHIFT_FAULT": "step-recorded:1", "DOCSHIFT_LOCK_LEASE_SECONDS": "2"})
    assert killed.returncode != 0
    env.expire_lease()
    ok(env, "migrate")
    assert [env.db[name].count_documents({"status": "dormant", "schema_version": 2}) for name in COLLECTIONS] == [42] * 3
    ok(env, "migrate", "1")
    assert exact(env) == before
