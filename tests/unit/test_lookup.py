"""Read-only lookups (docshift.lookup): prefetched per batch, answers copied, undeclared collections refused, and
given to a function that asks for one."""

import pytest

import docshift
from docshift.engine.steps import make_step, transform_one
from docshift.errors import LookupRefused
from docshift.loader import Script, ScriptDirectory
from docshift.lookup import Lookup

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
    step = make_step(ScriptDirectory([Script(m, None, "")], None), 2, "up")
    lookup = Lookup(mock_db, m.reads, "migration 2")
    assert transform_one(m, step, {"_id": 1, "customer_id": 7}, None, lookup)["customer"] == "Ada"
