"""Collection-level steps on the session's server (FerretDB, or the one DOCSHIFT_TEST_MONGODB_URI names) through the `docshift` command line: indexes, renames, dropped and copied
collections as versioned migrations with their own down, recorded in the history, shown by `plan`, rolled back."""

from pathlib import Path

import bson

from docshift import dump
from docshift.engine.operations import actions_in
from docshift.servers import is_ferretdb
from tests.support.env import only_migrations
from tests.support.fingerprints import database_snapshot, raw_snapshot

KILL_AFTER_DROP = {"DOCSHIFT_FAULT": "collection-kept:1", "DOCSHIFT_LOCK_LEASE_SECONDS": "2"}
FAIL_AFTER_ACTION = {"DOCSHIFT_FAULT": "operation-done:1:raise"}


def ok(env, *args, extra=None):
    result = env.cli(*args, extra=extra)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def refused(env, *args, extra=None):
    """The command fails with one line; with an injected fault (read once per process) in a process of its own."""
    result = env.run(*args, extra=extra) if extra else env.cli(*args)
    assert result.returncode == 1, result.stdout + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result.stderr


def history(env) -> list[dict]:
    """The history entries, oldest first, with their journaled actions read back."""
    entries = sorted(env.ledger.find({"kind": "history"}), key=lambda e: e["started_at"])
    return [{**e, "actions": actions_in(e)} for e in entries]


def indexes(coll) -> dict:
    return {ix["name"]: (dict(ix["key"]), bool(ix.get("unique"))) for ix in coll.list_indexes()}


def products(env, n=300, duplicate=False):
    env.db.products.insert_many([{"_id": i, "sku": f"S{i}", "price": i * 1.25, "tags": ["a", str(i)]} for i in range(n)])
    if duplicate:
        env.db.products.insert_many([{"_id": n, "sku": "S7"}, {"_id": n + 1, "sku": "S7"}])


UNIQUE_SKU = """\
migration = docshift.Migration(version=2, description="SKUs are unique", collection="products", kind="additive",
                               operation=docshift.CreateIndex(keys=[("sku", 1)], unique=True))
"""


def test_unique_index_refused_naming_duplicates_then_created_shown_by_plan_and_dropped_by_down(env):
    only_migrations(env, **{"0002_unique_sku": UNIQUE_SKU})
    products(env, duplicate=True)
    untouched = database_snapshot(env.db)

    for command in (("plan",), ("migrate",)):
        error = refused(env, *command)
        assert "unique index sku_1 cannot be created" in error and "sku='S7' (3 documents: _id 7, 300, 301)" in error
        assert database_snapshot(env.db) == untouched  # nothing written, not even a history entry

    env.db.products.delete_many({"_id": {"$in": [300, 301]}})
    plan = ok(env, "plan")
    assert "up   2 products: SKUs are unique (additive, 300 documents)" in plan.stdout
    assert "create unique index sku_1 (sku: 1) on products" in plan.stdout
    before = raw_snapshot(env.db.products)

    ok(env, "migrate")
    assert indexes(env.db.products)["sku_1"] == ({"sku": 1}, True)
    [entry] = history(env)
    assert (entry["direction"], entry["outcome"], entry["verification"]) == ("up", "applied", "passed")
    assert entry["actions"][0]["do"] == "create_index"
    assert "pass  index sku_1 of products: expected present, found present" in ok(env, "verify", "2").stdout

    ok(env, "migrate", "1")
    assert "sku_1" not in indexes(env.db.products)
    assert [e["outcome"] for e in history(env)] == ["applied", "reverted"]
    assert raw_snapshot(env.db.products) == before


def test_a_partial_index_is_refused_plainly_on_ferretdb_and_made_on_mongodb(env):
    only_migrations(env, **{"0002_partial": """\
        migration = docshift.Migration(version=2, description="cheap items", collection="products", kind="additive",
            operation=docshift.CreateIndex(keys=[("price", 1)], partial_filter={"price": {"$lt": 10}}))
        """})
    products(env, 20)
    if not is_ferretdb(env.db):  # a MongoDB named by DOCSHIFT_TEST_MONGODB_URI has partial indexes (docshift.servers)
        ok(env, "migrate")
        [index] = [ix for ix in env.db.products.list_indexes() if ix["name"] == "price_1"]
        assert index["partialFilterExpression"] == {"price": {"$lt": 10}}
        return
    untouched = database_snapshot(env.db)
    for command in (("plan",), ("migrate",)):
        error = refused(env, *command)
        assert "this server is FerretDB, which has no partial indexes (partialFilterExpression)" in error
        assert "nothing was changed" in error
    assert database_snapshot(env.db) == untouched


def test_drop_index_keeps_its_definition_and_down_recreates_it_only_while_the_data_allows(env):
    only_migrations(env, **{"0002_drop_sku_index": """\
        migration = docshift.Migration(version=2, description="no SKU index", collection="products",
                                       kind="destructive", operation=docshift.DropIndex(name="sku_1"))
        """})
    products(env)
    env.db.products.create_index("sku", unique=True)
    assert "drop index sku_1 of products" in ok(env, "plan").stdout

    ok(env, "migrate")
    assert "sku_1" not in indexes(env.db.products)
    [entry] = history(env)
    assert entry["actions"][0]["index"]["options"] == {"unique": True}  # kept for the down

    env.db.products.insert_one({"_id": 1000, "sku": "S3"})
    error = refused(env, "plan", "1")
    assert "unique index sku_1 cannot be created" in error and "sku='S3' (2 documents: _id 3, 1000)" in error
    env.db.products.delete_one({"_id": 1000})
    assert "recreate index sku_1 of products" in ok(env, "plan", "1").stdout
    ok(env, "migrate", "1")
    assert indexes(env.db.products)["sku_1"] == ({"sku": 1}, True)


RENAME = """\
migration = docshift.Migration(version=2, description="products are the catalog", collection="products",
                               kind="transformative", operation=docshift.RenameCollection(to="catalog"))
"""
ADD_CURRENCY = """\
def up(doc):
    doc["currency"] = "EUR"
    return doc

def down(doc):
    doc.pop("currency")
    return doc

migration = docshift.Migration(version=3, description="prices in euros", collection="catalog", kind="additive",
                               up=up, down=down)
"""


def test_rename_then_a_document_migration_of_the_new_name_and_back(env):
    only_migrations(env, **{"0002_rename": RENAME, "0003_currency": ADD_CURRENCY})
    products(env)
    env.db.products.create_index("sku")
    before, before_indexes = raw_snapshot(env.db.products), indexes(env.db.products)

    ok(env, "migrate")
    names = env.db.list_collection_names()
    assert "catalog" in names and "products" not in names
    assert indexes(env.db.catalog) == before_indexes
    assert env.db.catalog.count_documents({"schema_version": 3, "currency": "EUR"}) == 300  # selected at version 1

    ok(env, "migrate", "1")
    assert "catalog" not in env.db.list_collection_names()
    assert raw_snapshot(env.db.products) == before and indexes(env.db.products) == before_indexes
    assert [(e["version"], e["direction"], e["outcome"]) for e in history(env)] == [
        (2, "up", "applied"), (3, "up", "applied"), (3, "down", "reverted"), (2, "down", "reverted")]


def test_a_rename_that_fails_after_renaming_is_rolled_back(env):
    only_migrations(env, **{"0002_rename": RENAME})
    products(env)
    before = raw_snapshot(env.db.products)

    error = refused(env, "migrate", extra=FAIL_AFTER_ACTION)

    assert "migration 2 (up) failed and was rolled back" in error and "injected fault" in error
    assert "catalog" not in env.db.list_collection_names()
    assert raw_snapshot(env.db.products) == before
    assert [e["outcome"] for e in history(env)] == ["rolled_back"]
    assert (env.ledger.find_one({"_id": "current"}) or {"version": 1})["version"] == 1


DROP_LEGACY = """\
migration = docshift.Migration(version=2, description="drop the legacy sessions", collection="sessions",
                               kind="destructive", operation=docshift.DropCollection())
"""


def sessions(env, n=400):
    env.db.sessions.insert_many([{"_id": bson.ObjectId(), "user": f"u{i}", "n": i, "score": i / 7, "blob": "x" * (i % 50),
                                  "nested": {"a": i, "b": [1, 2.0, "three"]}} for i in range(n)])
    env.db.sessions.create_index([("user", 1), ("n", -1)], name="user_n")
    return raw_snapshot(env.db.sessions), indexes(env.db.sessions)


def test_drop_collection_is_written_to_the_mongodump_backup_and_down_restores_it_byte_for_byte(env):
    only_migrations(env, **{"0002_drop_sessions": DROP_LEGACY})
    before, before_indexes = sessions(env)

    assert "drop collection sessions (kept in the run's backup)" in ok(env, "plan").stdout
    ok(env, "migrate")

    assert "sessions" not in env.db.list_collection_names()
    [entry] = history(env)
    backup = env.db["_backups"].find_one({"_id": entry["_id"]})
    assert backup["collection"] == "sessions" and backup["documents"] == 400
    backup_path = Path(backup["path"])
    assert dump.file_sha256(backup_path) == backup["sha256"]
    assert {d["_id"]: d.raw for d in dump.read(backup_path)} == before  # the mongodump file: every document's bytes
    assert backup_path.with_name("sessions.metadata.json").exists()
    listed = ok(env, "backups").stdout
    assert entry["_id"] in listed

    ok(env, "migrate", "1")

    assert raw_snapshot(env.db.sessions) == before
    assert indexes(env.db.sessions) == before_indexes
    assert not [n for n in env.db.list_collection_names() if n.startswith("_docshift_dropped_")]


def test_drop_collection_rolled_back_after_a_failure_and_by_hand_after_kill_9(env):
    only_migrations(env, **{"0002_drop_sessions": DROP_LEGACY})
    before, before_indexes = sessions(env)

    error = refused(env, "migrate", extra=FAIL_AFTER_ACTION)
    assert "failed and was rolled back (400 documents restored" in error
    assert raw_snapshot(env.db.sessions) == before and indexes(env.db.sessions) == before_indexes

    killed = env.run("migrate", extra=KILL_AFTER_DROP)  # killed between the drop and its mongodump file
    assert killed.returncode != 0
    assert "sessions" not in env.db.list_collection_names()
    run_id = env.ledger.find_one({"_id": "checkpoint"})["run_id"]
    status = ok(env, "status").stdout
    assert run_id in status

    env.expire_lease()  # the killed process's lock, once its lease has run out
    ok(env, "rollback", "--run", run_id)

    assert raw_snapshot(env.db.sessions) == before and indexes(env.db.sessions) == before_indexes
    assert [e["outcome"] for e in history(env)] == ["rolled_back", "rolled_back"]
    assert env.ledger.find_one({"_id": "checkpoint"}) is None


COPY_PRICES = """\
def price_of(doc):
    if doc["price"] >= 300:
        return None                    # not copied
    return {"sku": doc["sku"], "price": doc["price"], "schema_version": 9}

migration = docshift.Migration(version=2, description="prices in their own collection", collection="products",
                               kind="additive", operation=docshift.CopyDocuments(to="prices", filter={"price": {"$lt": 350}},
                                                                                 transform=price_of))
"""


def test_copy_into_a_new_collection_its_down_and_a_rollback_after_a_failure(env):
    only_migrations(env, **{"0002_copy_prices": COPY_PRICES})
    products(env)
    before = raw_snapshot(env.db.products)
    plan = ok(env, "plan").stdout
    assert "copy the documents matching {'price': {'$lt': 350}} of products into the new collection prices" in plan
    assert "copied as {'_id': 0, 'sku': 'S0', 'price': 0.0}" in plan

    error = refused(env, "migrate", extra=FAIL_AFTER_ACTION)
    assert "rolled back" in error and "prices" not in env.db.list_collection_names()

    ok(env, "migrate")
    copies = list(env.db.prices.find().sort("_id", 1))
    assert len(copies) == 240 and copies[1] == {"_id": 1, "sku": "S1", "price": 1.25}  # no schema_version: version 1
    assert raw_snapshot(env.db.products) == before  # the source is left as it was
    [_, entry] = history(env)
    assert entry["actions"][0]["copied"] == 240 and entry["actions"][0]["read"] == 280

    ok(env, "migrate", "1")
    assert "prices" not in env.db.list_collection_names()
    down = history(env)[-1]
    kept = env.db[down["actions"][0]["kept_as"]]
    assert kept.count_documents({}) == 240  # the dropped copies are in the down's backup


def test_rollback_by_hand_of_the_latest_collection_step(env):
    only_migrations(env, **{"0002_unique_sku": UNIQUE_SKU})
    products(env, 50)
    ok(env, "migrate")
    run_id = history(env)[0]["_id"]

    result = ok(env, "rollback", "--run", run_id)

    assert "database is at version 1" in result.stdout
    assert "sku_1" not in indexes(env.db.products)
    assert history(env)[0]["outcome"] == "rolled_back"


# --- RenameCollection(drop_target=True) (issue 25, item 8): the existing target is kept like a dropped collection
# (moved whole into `_docshift_dropped_<run>`, written to the run's mongodump file), then the rename; `down` renames
# back and puts the target back byte for byte with its indexes; a failure, `rollback --run` and a kill -9 between the
# two journaled actions converge to the state before.

REPLACE_CATALOG = """\
migration = docshift.Migration(version=2, description="products replace the old catalog", collection="products",
                               kind="destructive", operation=docshift.RenameCollection(to="catalog", drop_target={drop}))
"""
KILL_AFTER_FIRST_ACTION = {"DOCSHIFT_FAULT": "operation-done:1", "DOCSHIFT_LOCK_LEASE_SECONDS": "2"}


def two_collections(env) -> dict:
    """`products` (300 documents, an index on sku) and the old `catalog` (120 documents, another index)."""
    env.db.products.insert_many([{"_id": i, "sku": f"S{i}", "price": i * 1.25} for i in range(300)])
    env.db.products.create_index("sku")
    env.db.catalog.insert_many([{"_id": bson.ObjectId(), "name": f"old {i}", "nested": {"a": i, "b": [1, 2.0, "x"]}}
                                for i in range(120)])
    env.db.catalog.create_index([("name", 1), ("nested.a", -1)], name="name_a")
    return {name: (raw_snapshot(env.db[name]), indexes(env.db[name])) for name in ("products", "catalog")}


def state(env) -> dict:
    return {name: (raw_snapshot(env.db[name]), indexes(env.db[name])) for name in ("products", "catalog")}


def kept_collections(env) -> list[str]:
    return [n for n in env.db.list_collection_names() if n.startswith("_docshift_dropped_")]


def test_rename_onto_an_existing_collection_backs_it_up_and_down_puts_both_back(env):
    only_migrations(env, **{"0002_replace_catalog": REPLACE_CATALOG.format(drop=False)})
    before = two_collections(env)
    untouched = database_snapshot(env.db)
    assert "cannot rename products to catalog: catalog exists (120 documents)" in refused(env, "plan")
    assert database_snapshot(env.db) == untouched

    only_migrations(env, **{"0002_replace_catalog": REPLACE_CATALOG.format(drop=True)})
    plan = ok(env, "plan").stdout
    assert "rename products to catalog, dropping the existing catalog (kept in the run's backup)" in plan, plan
    assert database_snapshot(env.db) == untouched

    ok(env, "migrate")
    assert (raw_snapshot(env.db.catalog), indexes(env.db.catalog)) == before["products"]
    assert "products" not in env.db.list_collection_names()
    [entry] = history(env)
    assert [a["do"] for a in entry["actions"]] == ["drop_collection", "rename"]
    assert entry["verification"] == "passed"
    backup = env.db["_backups"].find_one({"_id": entry["_id"]})
    assert backup["collection"] == "catalog" and backup["documents"] == 120
    assert {d["_id"]: d.raw for d in dump.read(Path(backup["path"]))} == before["catalog"][0]
    assert "rename catalog back to products and restore the dropped catalog from its backup" in ok(env, "plan", "1").stdout

    ok(env, "migrate", "1")
    assert state(env) == before
    assert kept_collections(env) == []
    assert [(e["direction"], e["outcome"]) for e in history(env)] == [("up", "applied"), ("down", "reverted")]


def test_rename_with_drop_target_rolled_back_after_a_failure_and_after_kill_9_between_its_actions(env):
    only_migrations(env, **{"0002_replace_catalog": REPLACE_CATALOG.format(drop=True)})
    before = two_collections(env)

    error = refused(env, "migrate", extra=FAIL_AFTER_ACTION)  # fails once the target is kept, before the rename
    assert "failed and was rolled back (120 documents restored" in error, error
    assert state(env) == before and kept_collections(env) == []

    for fault in (KILL_AFTER_DROP, KILL_AFTER_FIRST_ACTION):  # before the target's file is written; after it is
        killed = env.run("migrate", extra=fault)
        assert killed.returncode != 0
        assert "catalog" not in env.db.list_collection_names() and len(kept_collections(env)) == 1
        run_id = env.ledger.find_one({"_id": "checkpoint"})["run_id"]
        env.expire_lease()
        ok(env, "rollback", "--run", run_id)
        assert state(env) == before and kept_collections(env) == []
        assert env.ledger.find_one({"_id": "checkpoint"}) is None

    ok(env, "migrate")  # and after all that, the run goes through
    assert (raw_snapshot(env.db.catalog), indexes(env.db.catalog)) == before["products"]
