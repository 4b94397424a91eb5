"""A `down` gives documents back in their pre-image's key order (docshift.engine.key_order), on mongomock; the
byte-for-byte round trip on FerretDB is in tests/integration/test_roundtrip.py."""

import mongomock

from docshift.engine.key_order import Whole, in_pre_image_order, replace_whole, whole_if_reordered

PRE = {"_id": 1, "user_id": "u1", "email": "a@b", "preferences": {"theme": "dark", "lang": "en"}}
UP = {"_id": 1, "user_id": "u1", "preferences": {"theme": "dark", "lang": "en"}, "schema_version": 2, "email_address": "a@b"}
UNDONE = {"_id": 1, "user_id": "u1", "preferences": {"lang": "en", "theme": "dark"}, "email": "a@b"}
UPDATE = {"$set": {"email": "a@b", "preferences": {"lang": "en", "theme": "dark"}},
          "$unset": {"email_address": "", "schema_version": ""}}


def test_the_pre_image_gives_its_key_order_and_its_values_where_they_are_equal():
    assert in_pre_image_order(UNDONE, PRE) == PRE and list(in_pre_image_order(UNDONE, PRE)) == list(PRE)
    assert list(in_pre_image_order(UNDONE, PRE)["preferences"]) == ["theme", "lang"]  # the pre-image's own value
    changed = in_pre_image_order({**UNDONE, "user_id": 7, "note": "new"}, PRE)
    assert list(changed) == [*PRE, "note"] and changed["user_id"] == 7  # another value: the new one, in its place
    assert in_pre_image_order({**UNDONE, "user_id": "u1", "email": 1.0}, {**PRE, "email": 1})["email"] == 1.0


def test_only_a_document_the_update_would_leave_in_another_order_is_written_whole():
    assert whole_if_reordered(UP, UPDATE, UNDONE, PRE) == Whole(UP, UPDATE, PRE)
    added = {"_id": 1, "user_id": "u1", "plan": "free", "schema_version": 2}
    assert whole_if_reordered(added, {"$unset": {"plan": "", "schema_version": ""}}, {"_id": 1, "user_id": "u1"},
                              {"_id": 1, "user_id": "u1"}) is None  # an unset keeps the order: the update is enough


def test_a_field_added_between_the_read_and_the_replace_is_kept():
    """FerretDB has no $jsonSchema to refuse it in the filter: the replaced document is compared with the one read."""
    coll = mongomock.MongoClient().db.users
    coll.insert_one(dict(UP))
    replace = coll.find_one_and_replace

    def meanwhile(query, replacement, **kwargs):
        coll.update_one({"_id": 1}, {"$set": {"added": True}})  # the application's write in the moment between
        return replace(query, replacement, **kwargs)

    coll.find_one_and_replace = meanwhile
    assert replace_whole(coll, {"schema_version": 2}, [Whole(UP, UPDATE, PRE)], 1) == (1, 1)
    assert coll.find_one({"_id": 1}) == {**PRE, "added": True} and list(coll.find_one({"_id": 1})) == [*PRE, "added"]


def test_a_document_written_since_the_read_is_not_replaced():
    coll = mongomock.MongoClient().db.users
    coll.insert_one({**UP, "user_id": "changed"})
    assert replace_whole(coll, {"schema_version": 2}, [Whole(UP, UPDATE, PRE)], 1) == (0, 0)
    assert coll.find_one({"_id": 1}) == {**UP, "user_id": "changed"}
