"""A migration declared as an update with a filter and `$set` (nested too), `$unset`, `$rename`, `$inc`,
`$currentDate`, through the CLI on FerretDB: a document the filter does not match keeps every value (only its
`schema_version` moves), the others get what `updateMany(filter, update)` gives them; documents that lack every
touched field are updated on the server by `_id` ranges, the rest per document with pre-images; rollback and `down`
give every byte back. A pipeline's field reference (`"$createdOn"`) is refused before anything is written."""

import datetime

import bson
from bson import ObjectId
from bson.int64 import Int64

from docshift.updates import check_update, matches
from tests.support.env import only_migrations
from tests.support.fingerprints import canonical, database_snapshot, raw_snapshot

FILTER = {"verified": None}
UPDATE = {"$set": {"verified": True, "profile.source": "import"}, "$unset": {"legacy": ""},
          "$rename": {"name": "full_name"}, "$inc": {"logins": 1}, "$currentDate": {"migrated_at": True}}
MIGRATION = f"""\
migration = docshift.Migration(version=2, description="Verified accounts", collection="accounts", kind="transformative",
                               filter={FILTER!r}, update={UPDATE!r})
"""
TOUCHED = ("verified", "profile", "legacy", "name", "full_name", "logins", "migrated_at")


def accounts(n: int = 400) -> list[dict]:
    """Messy accounts: about half lack every field the update touches (those go on the server)."""
    docs = []
    for i in range(n):
        doc = {"_id": ObjectId(), "email": f"a{i}@example.com", "created": datetime.datetime(2026, 1, 1 + i % 28)}
        if i % 2:
            doc.update({1: {"verified": True}, 3: {"verified": False}, 5: {"verified": None}, 7: {}}[i % 8])
            doc.update({1: {"name": f"N {i}"}, 3: {"logins": i}, 5: {"logins": Int64(i)}, 7: {"logins": 2.5},
                        9: {"profile": {"bio": "x"}}, 11: {"legacy": [1, 2]}}.get(i % 12, {}))
        doc["tags"] = ["t", str(i)]
        docs.append(doc)
    docs.append({"_id": "not-an-objectid", "email": "odd@example.com"})
    docs.append({"_id": ObjectId(), "email": "stored@example.com", "schema_version": 1})
    return docs


def expected(doc: dict) -> dict:
    declared = check_update(UPDATE, FILTER)
    new = declared(dict(bson.decode(bson.encode(doc))))
    new.pop("migrated_at", None)
    return {**new, "schema_version": 2}


def ok(env, *args):
    result = env.cli(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_a_filtered_update_of_every_operator_changes_only_matching_documents_and_gives_every_byte_back(env):
    only_migrations(env, **{"0002_verified": MIGRATION})
    docs = accounts()
    env.db.accounts.insert_many(docs)
    coll = env.db.accounts
    before = raw_snapshot(coll)

    plan = ok(env, "plan").stdout
    assert "Verified accounts" in plan

    ok(env, "migrate")
    after = {d["_id"]: d for d in coll.find()}
    for doc in docs:
        now = dict(after[doc["_id"]])
        stamped = now.pop("migrated_at", None)
        assert canonical(now) == canonical(expected(doc)), doc["_id"]
        assert isinstance(stamped, datetime.datetime) == matches(doc, FILTER)
    verified = sum(1 for d in docs if d.get("verified") is True)
    assert coll.count_documents({"verified": True}) == verified + sum(1 for d in docs if matches(d, FILTER))
    assert coll.count_documents({"verified": False}) == sum(1 for d in docs if d.get("verified") is False)  # kept
    entry = env.ledger.find_one({"kind": "history", "version": 2})
    assert entry["verification"] == "passed" and entry["documents"] == len(docs)
    per_document = {d["_id"] for d in docs if any(k in d for k in TOUCHED) or not isinstance(d["_id"], ObjectId)
                    or "schema_version" in d}
    assert set(env.db[entry["backup"]].distinct("_id")) == per_document  # pre-images of those only
    assert len(per_document) < len(docs) / 2 + 10 and env.db[entry["backup"] + ".ranges"].count_documents({}) >= 1

    ok(env, "rollback", "--run", entry["_id"])
    assert raw_snapshot(coll) == before  # the exact bytes, field order included

    ok(env, "migrate")
    ok(env, "migrate", "1")
    stored = docs[-1]["_id"]  # a down to version 1 removes a stored `schema_version: 1`, as any migration's does
    assert "schema_version" not in coll.find_one({"_id": stored})
    down = {k: v for k, v in raw_snapshot(coll).items() if k != stored}
    before.pop(stored)
    assert {k: canonical(bson.decode(v)) for k, v in down.items()} == {k: canonical(bson.decode(v)) for k, v in before.items()}
    # a field `up` removed (renamed or unset) comes back last until `down` writes key order (issue 25, item 4)
    moved = {d["_id"] for d in docs if "name" in d or "legacy" in d}
    assert moved and {k: v for k, v in down.items() if k not in moved} == {k: v for k, v in before.items() if k not in moved}


def test_the_filter_is_evaluated_per_document_as_the_server_evaluates_it(env):
    docs = accounts(96) + [{"_id": 1, "verified": [None, 1]}, {"_id": 2, "logins": [3, 9]}, {"_id": 3, "profile": None},
                           {"_id": 4, "profile": [{"bio": "x"}, {"bio": "y"}]}, {"_id": 5, "logins": True}]
    env.db.scratch.insert_many(docs)
    filters = [{"verified": None}, {"verified": {"$exists": False}}, {"verified": {"$ne": True}},
               {"logins": {"$gt": 4}}, {"logins": {"$lte": 3}}, {"logins": {"$in": [3, 2.5, None]}},
               {"logins": {"$nin": [1, 3]}}, {"profile.bio": "x"}, {"profile": None}, {"verified": 1},
               {"$or": [{"verified": False}, {"logins": {"$gte": 9}}]}, {"$nor": [{"name": {"$exists": True}}]},
               {"$and": [{"verified": {"$ne": None}}, {"verified": {"$ne": False}}]}, {"logins": True}]
    for query in filters:
        on_server = sorted(map(str, env.db.scratch.distinct("_id", query)))
        assert sorted(str(d["_id"]) for d in docs if matches(d, check_update({"$set": {"x": 1}}, query).filter)) == on_server, query


PIPELINE_VALUE = """\
migration = docshift.Migration(version=2, description="Published", collection="accounts", kind="additive",
                               update={"$set": {"publishedAt": "$created"}})
"""


def test_a_field_reference_of_a_pipeline_is_refused_before_anything_is_written(env):
    only_migrations(env, **{"0002_published": PIPELINE_VALUE})
    env.db.accounts.insert_many(accounts(20))
    untouched = database_snapshot(env.db)

    for command in (("plan",), ("migrate",)):
        result = env.cli(*command)
        assert result.returncode == 1, result.stdout + result.stderr
        assert "'$created', which MongoDB would store as that literal string" in result.stderr
        assert "pipeline" in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert database_snapshot(env.db) == untouched
