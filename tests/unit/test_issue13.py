"""Collection-level steps in the spec and the script directory, read-only lookups, backup retention, narrow output
(issue 13); the real-server behaviour is in tests/integration/test_collection_steps.py and its neighbours."""

import io
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from rich.console import Console

import docshift
from docshift.engine.retention import parse_age, plan_prune
from docshift.engine.steps import make_step, transform_one
from docshift.errors import LookupRefused, TargetError
from docshift.ledger import Ledger, now
from docshift.loader import Script, ScriptDirectory
from docshift.lookup import Lookup
from docshift.output import pack, print_records


def same(doc):
    return doc


def scripts_of(*migrations) -> ScriptDirectory:
    return ScriptDirectory([Script(m, Path(f"{m.version:04d}.py"), "") for m in migrations], Path("."))


# --- the spec ------------------------------------------------------------------------------------------------------


def test_an_operation_replaces_up_and_down():
    m = docshift.Migration(version=2, description="d", collection="c", kind="additive",
                           operation=docshift.CreateIndex(keys=[("a.b", 1), ("c", -1)], unique=True))
    assert m.up is None and m.operation.spec == {
        "name": "a.b_1_c_-1", "keys": [{"field": "a.b", "order": 1}, {"field": "c", "order": -1}],
        "options": {"unique": True}}
    with pytest.raises(ValidationError, match="has no up/down"):
        docshift.Migration(version=2, description="d", collection="c", kind="additive", up=same, down=same,
                           operation=docshift.DropCollection())
    with pytest.raises(ValidationError, match="down: Field required"):
        docshift.Migration(version=2, description="d", collection="c", kind="additive", up=same)


def test_a_lookup_parameter_is_not_counted_as_the_document_or_the_pre_image():
    def up(doc, lookup):
        return doc

    def down(doc, pre_image, lookup=None):
        return doc

    m = docshift.Migration(version=2, description="d", collection="c", kind="additive", up=up, down=down,
                           reads=["customers"])
    assert m.reads == {"customers": None} and m.down_uses_pre_image
    with pytest.raises(ValidationError, match="up must take the document"):
        docshift.Migration(version=2, description="d", collection="c", kind="additive", up=lambda a, b: a, down=same)


def test_drop_index_takes_a_name_or_keys_but_never_the_id_index():
    assert docshift.DropIndex(keys=[("sku", 1)]).index == "sku_1"
    for bad in ({}, {"name": "x", "keys": [("x", 1)]}, {"name": "_id_"}):
        with pytest.raises(ValidationError):
            docshift.DropIndex(**bad)


def test_document_migrations_follow_renames_and_copies_start_at_version_1():
    scripts = scripts_of(
        docshift.Migration(version=2, description="d", collection="products", kind="additive", up=same, down=same),
        docshift.Migration(version=3, description="d", collection="products", kind="additive",
                           operation=docshift.CreateIndex(keys=[("sku", 1)])),
        docshift.Migration(version=4, description="d", collection="products", kind="transformative",
                           operation=docshift.RenameCollection(to="catalog")),
        docshift.Migration(version=5, description="d", collection="catalog", kind="additive", up=same, down=same),
        docshift.Migration(version=6, description="d", collection="catalog", kind="additive",
                           operation=docshift.CopyDocuments(to="prices")),
        docshift.Migration(version=7, description="d", collection="prices", kind="additive", up=same, down=same))
    assert scripts.collection_predecessor(5) == 2  # through the rename, past the index
    assert scripts.collection_predecessor(7) == 1  # the copies start at the initial schema
    assert make_step(scripts, 4, "up").operation == "RenameCollection" and make_step(scripts, 4, "up").selector == {}
    assert scripts.document_versions("catalog") == [5]


# --- lookups -------------------------------------------------------------------------------------------------------


def test_lookups_are_prefetched_per_batch_cached_copies_and_read_only(mock_db):
    mock_db.customers.insert_many([{"_id": i, "name": f"c{i}"} for i in range(50)])
    lookup = Lookup(mock_db, {"customers": "customer_id"}, "migration 6")
    batch = [{"_id": n, "customer_id": n % 40} for n in range(500)]

    lookup.new_batch(batch)
    names = [lookup.find_one("customers", {"_id": d["customer_id"]})["name"] for d in batch]

    assert names[:3] == ["c0", "c1", "c2"] and lookup.queries == 1  # one query for the whole batch
    lookup.find_one("customers", {"_id": 0})["name"] = "changed"
    assert lookup.find_one("customers", {"_id": 0})["name"] == "c0"  # answers are copies
    assert lookup.find_one("customers", {"_id": 999}) is None and lookup.queries == 2
    assert lookup.count("customers", {"name": {"$regex": "^c4"}}) == 11  # c4, c40..c49
    assert not [a for a in dir(lookup) if a.startswith(("insert", "update", "delete", "replace", "drop", "bulk"))]
    with pytest.raises(LookupRefused, match="'orders', which it does not declare"):
        lookup.find("orders")
    with pytest.raises(LookupRefused, match="docshift's own"):
        Lookup(mock_db, {"_migrations": None}, "migration 6")


def test_a_function_that_asks_for_lookup_gets_it(mock_db):
    mock_db.customers.insert_one({"_id": 7, "name": "Ada"})

    def up(doc, lookup):
        doc["customer"] = lookup.find_one("customers", {"_id": doc["customer_id"]})["name"]
        return doc

    m = docshift.Migration(version=2, description="d", collection="orders", kind="additive", up=up,
                           down=lambda doc: doc, reads={"customers": "customer_id"})
    step = make_step(scripts_of(m), 2, "up")
    lookup = Lookup(mock_db, m.reads, "migration 2")
    assert transform_one(m, step, {"_id": 1, "customer_id": 7}, None, lookup)["customer"] == "Ada"


# --- retention -----------------------------------------------------------------------------------------------------


def history(db, *runs):
    """History entries (run id, version, direction, outcome) in this order, each with a backup collection."""
    ledger = Ledger(db)
    for i, (run_id, version, direction, outcome) in enumerate(runs):
        ledger.start_entry({"_id": run_id, "version": version, "direction": direction, "outcome": outcome,
                            "checksum": "x", "started_at": now() - timedelta(days=100 - i)})
        db[f"_docshift_backup.{run_id}"].insert_one({"_id": i})


def test_pruning_keeps_what_a_down_a_rollback_or_an_unfinished_run_needs(mock_db, tmp_path):
    history(mock_db,
            ("v2-up-a", 2, "up", "applied"),        # needed by a down of 2
            ("v3-up-a", 3, "up", "applied"),
            ("v3-down-a", 3, "down", "reverted"),  # 3 reverted: its earlier backups are not needed any more
            ("v3-up-b", 3, "up", "rolled_back"),
            ("v3-up-c", 3, "up", "applied"),        # needed by a down of 3; the latest finished run too
            ("v4-up-a", 4, "up", "paused"))          # unfinished
    retention = plan_prune(mock_db, tmp_path, keep_last=0, older_than=None)
    assert [b.run_id for b in retention.pruned] == ["v3-up-a", "v3-down-a", "v3-up-b"]
    assert {b.run_id: why for b, why in retention.kept} == {
        "v2-up-a": "a `down` of migration 2 needs it", "v3-up-c": "a `down` of migration 3 needs it",
        "v4-up-a": "a `down` of migration 4 needs it"}
    assert [b.run_id for b in plan_prune(mock_db, tmp_path, keep_last=4, older_than=None).pruned] == ["v3-up-a"]
    assert plan_prune(mock_db, tmp_path, keep_last=None, older_than=timedelta(days=200)).pruned == []
    with pytest.raises(TargetError, match="say what to prune"):
        plan_prune(mock_db, tmp_path, None, None)


def test_ages():
    assert parse_age("30d") == timedelta(days=30) and parse_age("1.5h") == timedelta(minutes=90)
    with pytest.raises(TargetError, match="e.g. 30d"):
        parse_age("30 days")


# --- narrow terminals ----------------------------------------------------------------------------------------------


def render(width: int, rows) -> str:
    out = io.StringIO()
    console = Console(file=out, width=width, soft_wrap=True)
    print_records(console, "docshift history", rows, lambda r: (f"{r['run']}  migration {r['migration']}", {"run", "migration"}))
    return out.getvalue()


def test_records_are_a_table_when_it_fits_and_blocks_with_whole_ids_when_not():
    rows = [{"run": f"v{v}-up-0123456789", "migration": str(v), "outcome": "applied",
             "flow run": "7c0e1234-5678-90ab-cdef-1234567890ab"} for v in (2, 3)]
    wide = render(200, rows)
    assert "┃ run" in wide and "v2-up-0123456789" in wide
    narrow = render(80, rows)
    assert "┃" not in narrow and "…" not in narrow
    assert narrow.splitlines()[1:4] == ["v2-up-0123456789  migration 2",
                                        "  outcome applied   flow run 7c0e1234-5678-90ab-cdef-1234567890ab",
                                        "v3-up-0123456789  migration 3"]
    assert all(len(line) <= 80 for line in narrow.splitlines())


def test_pack_never_splits_an_item():
    assert pack(["a" * 10, "b" * 10, "c" * 100], 24) == ["a" * 10 + "   " + "b" * 10, "c" * 100]


def test_a_collection_level_step_needs_no_kind_and_a_document_migration_does():
    index = docshift.Migration(version=2, description="d", collection="products",
                               operation=docshift.CreateIndex(keys=[("sku", 1)], unique=True))
    assert index.kind is None
    with pytest.raises(ValidationError, match="kind: Field required"):
        docshift.Migration(version=2, description="d", collection="products", up=lambda d: d, down=lambda d: d)
