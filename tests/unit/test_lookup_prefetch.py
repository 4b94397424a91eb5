"""Lookups prefetched per batch by a key other than `_id` (`docshift.Prefetch`): `find`, `find_one` and `count` of
`{key: value}` answered from one query per batch, the same answers the server gives query by query."""

from bson import Int64

from docshift import Prefetch
from docshift.lookup import Lookup


def orders(mock_db):
    mock_db.orders.insert_many([{"_id": n, "user_id": n % 7, "total": n} for n in range(60)]
                               + [{"_id": 100, "user_id": Int64(3), "total": 1}, {"_id": 101, "user_id": 4.0, "total": 2},
                                  {"_id": 102, "user_id": [1, 2, 2], "total": 3}])


def test_find_find_one_and_count_by_a_declared_key_cost_one_query_per_batch(mock_db):
    orders(mock_db)
    lookup = Lookup(mock_db, {"orders": Prefetch(key="user_id")}, "migration 6")
    batch = [{"_id": u} for u in range(9)]  # users 7 and 8 have no orders

    lookup.new_batch(batch)
    found = {u: lookup.find("orders", {"user_id": u}) for u in range(9)}
    counts = {u: lookup.count("orders", {"user_id": u}) for u in range(9)}
    first = {u: lookup.find_one("orders", {"user_id": u}) for u in range(9)}
    limited = lookup.find("orders", {"user_id": 3}, limit=2)

    assert lookup.queries == 1
    for u in range(9):  # what the server answers query by query (numbers equal across types, array elements)
        assert found[u] == list(mock_db.orders.find({"user_id": u}).sort("_id", 1)), u
        assert counts[u] == mock_db.orders.count_documents({"user_id": u}), u
        assert first[u] == (found[u][0] if found[u] else None)
    assert [o["_id"] for o in found[3]][-1] == 100 and 101 in [o["_id"] for o in found[4]]
    assert 102 in [o["_id"] for o in found[1]] and 102 in [o["_id"] for o in found[2]]

    # on the server a bool is not equal to 1 (mongomock, like Python, says it is)
    mock_db.orders.insert_one({"_id": 103, "user_id": True})
    lookup.new_batch([{"_id": 1}, {"_id": True}])
    assert 103 not in [o["_id"] for o in lookup.find("orders", {"user_id": 1})]
    assert [o["_id"] for o in lookup.find("orders", {"user_id": True})] == [103]
    mock_db.orders.delete_one({"_id": 103})
    lookup.new_batch(batch)
    assert limited == found[3][:2]
    found[3][0]["total"] = -1
    assert lookup.find("orders", {"user_id": 3})[0]["total"] != -1  # answers are copies

    queries = lookup.queries
    assert lookup.count("orders", {"user_id": 3, "total": {"$gt": 10}}) == 7 and lookup.queries == queries + 1
    lookup.new_batch([{"_id": 5}])
    assert lookup.count("orders", {"user_id": 5}) == 8 and lookup.queries == queries + 2


def test_counts_only_read_the_key(mock_db):
    orders(mock_db)
    lookup = Lookup(mock_db, {"orders": Prefetch(key="user_id", field="owner", counts=True)}, "migration 6")
    lookup.new_batch([{"_id": "a", "owner": 1}, {"_id": "b", "owner": 3}, {"_id": "c"}])

    assert [lookup.count("orders", {"user_id": u}) for u in (1, 3)] == [
        mock_db.orders.count_documents({"user_id": u}) for u in (1, 3)]
    assert lookup.queries == 1
    assert lookup.find("orders", {"user_id": 1}) == list(mock_db.orders.find({"user_id": 1}).sort("_id", 1))
    assert lookup.queries == 2  # counts prefetch no documents: a find is a query
