"""The embedded FerretDB as scripts/ferretdb builds it: what ferretdb-1.24.2-fixes.patch, -pushdown.patch and
-updates.patch must keep and must not break.

The patch serves every lookup by `_id` from the `_id` index (also when the filter has other keys) and closes each
update statement's iterator before the next one. Its first version called `Has("_id")` on the filter the handler
passes as nil for a `count` without a query, an `explain` of an update, delete or count, and an aggregation that does
not start with `$match`, and `Get("_id")` on a filter holding `_id` twice: each panicked the handler (the client saw
a closed connection); after the aggregation's panic an iterator left unclosed panicked in its finalizer at the next
garbage collection and took the whole server down.

Stock 1.24.2 also reads a document for an update, findAndModify or delete and writes it in a separate transaction,
so two writers of one document at the same moment lose one write (a rollback's compare-and-swap restore erased an
application's `$set` that came in between); the patch makes each such command one read-modify-write.

The pushdown patch lets SQLite narrow the rows for `_id` ranges of ObjectIds, for a top-level field equal to an
integer (or `$in` integers and null), equal to null, compared with an integer or tested by `$exists`, and for an
`$or` of such filters: only ever narrowing, since the handler applies the whole filter to what the query returns.

The updates patch writes an update command's modified documents together (stock 1.24.2 commits each on its own,
and each commit may re-sort SQLite's write-ahead log), so a statement must still read what the ones before it wrote.
"""

import struct
import uuid
from concurrent.futures import ThreadPoolExecutor

import pymongo
import pytest
from bson import Binary, Int64, ObjectId, UuidRepresentation
from bson.raw_bson import RawBSONDocument

pytestmark = pytest.mark.embedded_server("checks the embedded server's own patches")


IDS = [f"u{i:03d}" for i in range(25)] + [ObjectId() for _ in range(5)]


@pytest.fixture
def coll(mongodb_uri):
    # no retries: a closed connection must fail the assertion, not be retried into a pass or another error
    client = pymongo.MongoClient(mongodb_uri, retryReads=False, retryWrites=False, socketTimeoutMS=30_000,
                                 serverSelectionTimeoutMS=5_000)
    name = f"t_{uuid.uuid4().hex[:10]}"
    collection = client[name]["users"]
    collection.insert_many([{"_id": _id, "n": i} for i, _id in enumerate(IDS)])
    yield collection
    client.drop_database(name)
    client.close()


def plan(coll, filter_: dict) -> tuple[bool, str]:
    """(filterPushdown, SQLite's query plan) of a find with this filter."""
    explained = coll.database.command("explain", {"find": coll.name, "filter": filter_})
    return explained["filterPushdown"], " ".join(explained["queryPlanner"]["Plan"])


def test_a_lookup_by_id_is_served_by_the_id_index_also_beside_other_keys(coll):
    # stock 1.24.2 reports filterPushdown but SCANs (its _id expression is not the indexed one), and pushes nothing
    # down when the filter has a second key
    for _id in ("u007", IDS[-1]):
        for filter_ in ({"_id": _id}, {"_id": _id, "n": IDS.index(_id)}):
            pushed, sqlite_plan = plan(coll, filter_)
            assert pushed and "SEARCH" in sqlite_plan and "USING INDEX" in sqlite_plan, (filter_, sqlite_plan)
    pushed, sqlite_plan = plan(coll, {"n": "3"})
    assert not pushed and "SCAN" in sqlite_plan

    # the pushed-down _id only narrows what is read: the other keys still decide
    assert coll.find_one({"_id": "u007", "n": 7}) == {"_id": "u007", "n": 7}
    assert coll.find_one({"_id": "u007", "n": 8}) is None
    assert coll.update_one({"_id": "u007", "n": 8}, {"$set": {"x": 1}}).matched_count == 0
    assert coll.delete_many({"_id": "u007", "n": 8}).deleted_count == 0
    assert coll.update_one({"_id": IDS[-1]}, {"$set": {"x": 1}}).modified_count == 1
    assert coll.find_one({"_id": IDS[-1]}) == {"_id": IDS[-1], "n": len(IDS) - 1, "x": 1}


def test_uuid_and_integer_ids_are_served_by_the_id_index_and_select_what_mongodb_selects(coll):
    # stock 1.24.2 and the patch before it scanned the table for any _id but a string or an ObjectId: an update by a
    # UUID _id took 18 ms at 3,000 documents (a Binary is stored as its base64 text, an integer as its digits).
    # FerretDB's unique _id index is on that text: a Binary of another subtype, or a string, with the same text is a
    # duplicate key there (not on MongoDB), so such twins cannot be stored side by side.
    standard, legacy = Binary.from_uuid(uuid.uuid4()), Binary.from_uuid(uuid.uuid4(), UuidRepresentation.PYTHON_LEGACY)
    ids = [standard, legacy, 7, Int64(2**40), 5.0, -0.0]
    coll.insert_many([{"_id": _id, "n": 100 + i} for i, _id in enumerate(ids)])
    for _id in (standard, legacy, 7, Int64(2**40), Int64(7)):
        pushed, sqlite_plan = plan(coll, {"_id": _id})
        assert pushed and "USING INDEX" in sqlite_plan, (_id, sqlite_plan)
    assert [d["n"] for d in coll.find({"_id": standard})] == [100]
    assert [d["n"] for d in coll.find({"_id": legacy})] == [101]
    assert [d["n"] for d in coll.find({"_id": Binary(bytes(legacy), 4)})] == []   # same bytes, other subtype
    assert [d["n"] for d in coll.find({"_id": Int64(7)})] == [102]
    assert [d["n"] for d in coll.find({"_id": 5})] == [104]   # 5 == 5.0, as on MongoDB
    # zero is not pushed down: a double -0 equals it and is stored as "-0"
    assert not plan(coll, {"_id": 0})[0]
    assert [d["n"] for d in coll.find({"_id": 0})] == [105]
    assert coll.update_one({"_id": standard}, {"$set": {"x": 1}}).modified_count == 1
    assert coll.find_one({"_id": legacy}).get("x") is None


def test_an_update_command_of_150_statements_completes(coll):
    # stock 1.24.2 keeps every statement's iterator open until the command ends: 100+ deadlock its connection pool
    result = coll.bulk_write([pymongo.UpdateOne({"_id": IDS[i % len(IDS)]}, {"$inc": {"k": 1}}) for i in range(150)],
                             ordered=False)
    assert result.modified_count == 150
    assert sum(doc.get("k", 0) for doc in coll.find()) == 150


def duplicated_id_filter(first: str, second: str) -> RawBSONDocument:
    """{_id: first, _id: second}: BSON allows a key twice, a Python dict cannot hold it."""
    body = b"".join(b"\x02_id\x00" + struct.pack("<i", len(v) + 1) + v.encode() + b"\x00" for v in (first, second))
    return RawBSONDocument(struct.pack("<i", len(body) + 5) + body + b"\x00")


def test_commands_whose_filter_is_nil_or_odd_answer_and_the_server_stays_up(coll):
    db = coll.database

    assert coll.estimated_document_count() == len(IDS)  # the count command without a query
    assert db.command("count", coll.name)["n"] == len(IDS)
    assert db.command("count", coll.name, query={"_id": "u003"})["n"] == 1
    for update in ({"q": {"_id": "u001"}, "u": {"$set": {"x": 1}}}, {"q": {"n": 1}, "u": {"$set": {"x": 1}}}):
        assert db.command("explain", {"update": coll.name, "updates": [update]})["ok"] == 1.0
    assert db.command("explain", {"delete": coll.name, "deletes": [{"q": {"_id": "u001"}, "limit": 1}]})["ok"] == 1.0
    assert list(coll.aggregate([{"$group": {"_id": None, "count": {"$sum": 1}}}])) == [{"_id": None, "count": len(IDS)}]
    assert list(coll.find(duplicated_id_filter("u001", "u002"))) == []  # the old patch's Get panicked on it
    assert coll.find_one({"_id": "u001"}) == {"_id": "u001", "n": 1}  # none of the above wrote anything

    assert db.client.admin.command("ping")["ok"] == 1.0


def test_writers_of_one_document_at_the_same_moment_lose_no_write(coll, mongodb_uri):
    """Four clients each $inc one document 100 times and $set a field of their own: with the read and the write of
    an update apart, increments went missing (the second writer wrote over what it had read before the first wrote)."""
    def writer(k: int) -> None:
        client = pymongo.MongoClient(mongodb_uri, retryWrites=False)
        mine = client[coll.database.name][coll.name]
        for i in range(100):
            mine.update_one({"_id": "u001"}, {"$inc": {"n": 1}, "$set": {f"w{k}": i}})
            mine.find_one_and_update({"_id": "u002"}, {"$inc": {"n": 1}})
        client.close()

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(writer, range(4)))

    assert coll.find_one({"_id": "u001"}) == {"_id": "u001", "n": 1 + 400, "w0": 99, "w1": 99, "w2": 99, "w3": 99}
    assert coll.find_one({"_id": "u002"})["n"] == 2 + 400


def test_pushed_down_filters_select_exactly_what_mongodb_selects(coll):
    """Integer equality matches int32, int64 and double alike and arrays holding it; null matches a missing field;
    an ObjectId range leaves out every other `_id` type; other keys, operators and types are the handler's alone."""
    values = [1, 2, Int64(2), 2.0, 2.5, True, "2", None, [2], [1, 3], [None], {"a": 2}, -0.0, 0]
    docs = [{"_id": ObjectId(), "i": i, "v": v} for i, v in enumerate(values)] + [{"_id": ObjectId(), "i": 100}]
    docs += [{"_id": "s", "i": 101, "v": 2}, {"_id": 7, "i": 102, "v": 2}, {"_id": {"x": 1}, "i": 103, "v": 2}]
    things = coll.database["things"]
    things.insert_many(docs)
    oids = sorted(d["_id"] for d in docs if isinstance(d["_id"], ObjectId))

    def selected(filter_):
        return sorted(d["i"] for d in things.find(filter_))

    assert selected({"v": 2}) == [1, 2, 3, 8, 101, 102, 103]
    assert selected({"v": 0}) == [12, 13]
    assert selected({"v": {"$in": [None, 1]}}) == [0, 7, 9, 10, 100]
    assert selected({"v": {"$in": [None]}}) == [7, 10, 100]
    assert selected({"v": 2, "i": 2}) == [2] and selected({"v": 2, "i": {"$gt": 100}}) == [101, 102, 103]
    assert selected({"_id": {"$gte": oids[3], "$lt": oids[6]}}) == [3, 4, 5]
    assert selected({"_id": {"$gt": oids[-1]}}) == [] and selected({"_id": {"$lte": oids[1]}}) == [0, 1]
    assert things.count_documents({"v": 2}) == 7
    # comparisons with integers, null, $exists and $or of them (docshift's drift count: below a version)
    assert selected({"v": {"$lt": 2}}) == [0, 9, 12, 13] and selected({"v": {"$lte": 0}}) == [12, 13]
    assert selected({"v": {"$gte": 2}}) == [1, 2, 3, 4, 8, 9, 101, 102, 103] and selected({"v": {"$gt": 2}}) == [4, 9]
    assert selected({"v": {"$exists": False}}) == [100] and selected({"v": None}) == [7, 10, 100]
    below = {"$or": [{"v": {"$lt": 2}}, {"v": {"$exists": False}}, {"v": None}]}
    assert selected(below) == [0, 7, 9, 10, 12, 13, 100] and things.count_documents(below) == 7
    assert selected({"$or": [{"v": 2.5}, {"i": 0}]}) == [0, 4]  # a branch SQLite cannot narrow: nothing pushed
    assert selected({"v": {"$exists": True}, "i": {"$lt": 3}}) == [0, 1, 2]
    assert plan(things, below)[0] and not plan(things, {"$or": [{"v": 2.5}, {"i": 0}]})[0]
    assert things.update_many({"_id": {"$gte": oids[0], "$lt": oids[3]}, "v": {"$exists": True}},
                              {"$set": {"u": 1}}).modified_count == 3
    assert selected({"u": 1}) == [0, 1, 2]
    pushed, sqlite_plan = plan(things, {"_id": {"$gte": oids[3], "$lt": oids[6]}})
    assert pushed and "SEARCH" in sqlite_plan and "USING INDEX" in sqlite_plan, sqlite_plan


def test_a_bare_value_in_a_filter_matches_as_eq_does(coll):
    """docshift's as-read guard writes `{field: value}` instead of `{field: {$eq: value}}` (but for documents,
    regular expressions and DBRefs): the same documents must match, arrays and null included."""
    from datetime import datetime

    values = [1, Int64(1), 1.0, True, "a", None, [1, 2], [1], {"a": 1}, ObjectId(), b"x", datetime(2026, 1, 1), []]
    things = coll.database["bare"]
    things.insert_many([{"_id": i, "v": v} for i, v in enumerate(values)] + [{"_id": 99}])
    for value in values:
        if isinstance(value, dict):
            continue
        bare = sorted(d["_id"] for d in things.find({"v": value}))
        assert bare == sorted(d["_id"] for d in things.find({"v": {"$eq": value}})), value


def test_statements_of_one_update_command_read_what_the_ones_before_wrote(coll):
    """ferretdb-1.24.2-updates.patch holds an update command's modified documents and writes them together; a
    statement that may read one of them (another filter than one `_id`, a held `_id`, a number as `_id`) must see
    it written first, also when it pushes its filter down to SQLite or upserts."""
    oid = IDS[-1]
    coll.insert_one({"_id": 5, "n": 0})
    statements = [
        pymongo.UpdateOne({"_id": "u001"}, {"$set": {"a": 1}}),
        pymongo.UpdateOne({"_id": "u001", "a": 1}, {"$inc": {"n": 100}}),  # the same _id, held
        pymongo.UpdateOne({"_id": "u002"}, {"$set": {"v": 7}}),
        pymongo.UpdateMany({"v": 7}, {"$set": {"b": 1}}),  # no _id; v=7 is pushed down to SQLite
        pymongo.UpdateOne({"_id": oid}, {"$set": {"a": 3}}),
        pymongo.UpdateOne({"_id": {"$in": [oid]}, "a": 3}, {"$inc": {"n": 1}}),  # an operator on _id
        pymongo.UpdateOne({"_id": 5}, {"$set": {"a": 5}}),
        pymongo.UpdateOne({"_id": 5.0, "a": 5}, {"$inc": {"n": 1}}),  # 5 and 5.0 are one _id
        pymongo.UpdateOne({"_id": "u003"}, {"$set": {"a": 1}}),
        pymongo.UpdateOne({"_id": "new", "a": 1}, {"$set": {"c": 1}}, upsert=True),
        pymongo.UpdateOne({"_id": "u003"}, {"$inc": {"n": 1}}),  # held, then a statement without it, then it again
    ]
    result = coll.bulk_write(statements)  # ordered, as the statements depend on each other
    assert (result.matched_count, result.modified_count, result.upserted_count) == (10, 10, 1)
    assert coll.find_one({"_id": "u001"}) == {"_id": "u001", "n": 101, "a": 1}
    assert coll.find_one({"_id": "u002"}) == {"_id": "u002", "n": 2, "v": 7, "b": 1}
    assert coll.find_one({"_id": oid}) == {"_id": oid, "n": len(IDS), "a": 3}
    assert coll.find_one({"_id": 5}) == {"_id": 5, "n": 1, "a": 5}
    assert coll.find_one({"_id": "u003"}) == {"_id": "u003", "n": 4, "a": 1}
    assert coll.find_one({"_id": "new"}) == {"_id": "new", "a": 1, "c": 1}


def test_a_long_update_many_writes_every_document_and_a_failing_one_keeps_those_before_it(coll):
    """More documents than one held batch (1,000): all are written. A document the update cannot apply to stops the
    command with its error, and the documents before it stay updated, as MongoDB leaves them."""
    things = coll.database["many"]
    things.insert_many([{"_id": i, "n": i} for i in range(2500)])
    assert things.update_many({}, {"$inc": {"n": 1}}).modified_count == 2500
    assert [d["n"] for d in things.find().sort("_id", 1)] == list(range(1, 2501))

    things.update_one({"_id": 1700}, {"$set": {"n": "text"}})
    order = [d["_id"] for d in things.find()]  # the order an update without a sort visits them
    with pytest.raises(pymongo.errors.WriteError):
        things.update_many({}, {"$inc": {"n": 1}})
    stopped_at = order.index(1700)
    assert [d["n"] for d in things.find({"_id": {"$in": order[:stopped_at]}}).sort("_id", 1)] == \
        [i + 2 for i in sorted(order[:stopped_at])]
    assert [d["n"] for d in things.find({"_id": {"$in": order[stopped_at + 1:]}}).sort("_id", 1)] == \
        [i + 1 for i in sorted(order[stopped_at + 1:])]


def test_find_and_modify_writes_what_it_returns(coll):
    before = coll.find_one_and_update({"_id": "u004"}, {"$inc": {"n": 10}})
    after = coll.find_one_and_update({"_id": "u004"}, {"$inc": {"n": 10}}, return_document=pymongo.ReturnDocument.AFTER)
    assert (before, after) == ({"_id": "u004", "n": 4}, {"_id": "u004", "n": 24})
    assert coll.find_one({"_id": "u004"}) == {"_id": "u004", "n": 24}
