"""Transforms of one document: the minimal update, checked application of up/down, version selectors."""

import mongomock
import pytest
from bson import Int64, ObjectId

from docshift.errors import TransformError
from docshift.transform import apply, restore_from, update_for, version_filter, versions_filter

# --- update_for ------------------------------------------------------------------------------------------------


def test_sets_only_changed_fields_and_unsets_removed_ones():
    old = {"_id": 1, "same": "x", "changed": 2, "removed": 3, "schema_version": 2}
    new = {"_id": 1, "same": "x", "changed": 5, "added": [1, 2]}
    assert update_for(old, new, 3) == {
        "$set": {"changed": 5, "added": [1, 2], "schema_version": 3},
        "$unset": {"removed": ""},
    }


def test_nothing_to_do_gives_none():
    doc = {"_id": 1, "a": {"b": [1, 2]}, "schema_version": 4}
    assert update_for(doc, dict(doc), 4) is None


def test_schema_version_is_set_by_the_framework_not_taken_from_new():
    old = {"_id": 1, "a": 1}
    assert update_for(old, {"_id": 1, "a": 1, "schema_version": 99}, 2) == {"$set": {"schema_version": 2}}
    assert update_for(old, {"_id": 1, "a": 1}, 2) == {"$set": {"schema_version": 2}}


def test_schema_version_of_another_type_is_rewritten():
    assert update_for({"_id": 1, "schema_version": 2.0}, {"_id": 1}, 2) == {"$set": {"schema_version": 2}}


def test_going_to_version_one_unsets_schema_version():
    assert update_for({"_id": 1, "a": 1, "schema_version": 2}, {"_id": 1, "a": 1, "schema_version": 2}, 1) == {
        "$unset": {"schema_version": ""}
    }
    assert update_for({"_id": 1, "a": 1}, {"_id": 1, "a": 2}, 1) == {"$set": {"a": 2}}
    assert update_for({"_id": 1, "a": 1}, {"_id": 1, "a": 1}, 1) is None


def test_id_is_never_written():
    update = update_for({"_id": 1, "a": 1}, {"_id": 1, "a": 2}, 2)
    assert "_id" not in update.get("$set", {}) and "_id" not in update.get("$unset", {})


@pytest.mark.parametrize("before, after", [
    (1, 1.0), (1, True), (1.0, True), (0, False), (0, None), (1, Int64(1)), ("1", 1),
    ({"a": 1}, {"a": 1.0}), ({"a": 1, "b": 2}, {"b": 2, "a": 1}), ([1, 2], [1, True]),
])
def test_changes_are_detected_by_bson_type_not_python_equality(before, after):
    update = update_for({"_id": 1, "v": before, "schema_version": 2}, {"_id": 1, "v": after}, 2)
    assert update == {"$set": {"v": after}}


def test_null_and_missing_are_different():
    assert update_for({"_id": 1, "v": None}, {"_id": 1}, 1) == {"$unset": {"v": ""}}
    assert update_for({"_id": 1}, {"_id": 1, "v": None}, 1) == {"$set": {"v": None}}


def test_update_applied_by_mongomock_gives_new(mock_db):
    old = {"_id": 7, "keep": 1, "change": "a", "drop": True, "schema_version": 2}
    new = {"_id": 7, "keep": 1, "change": "b", "add": {"x": 1.5}}
    mock_db.c.insert_one(dict(old))
    mock_db.c.update_one({"_id": 7}, update_for(old, new, 3))
    assert mock_db.c.find_one({"_id": 7}) == {**new, "schema_version": 3}


# --- apply ---------------------------------------------------------------------------------------------------


def test_apply_returns_the_result_and_passes_extra_arguments():
    seen = []

    def down(doc, pre_image):
        seen.append(pre_image)
        return {**doc, "b": pre_image["b"]}

    assert apply(down, {"_id": 1}, {"b": 2}, label="m") == {"_id": 1, "b": 2}
    assert seen == [{"b": 2}]


def test_apply_works_on_a_private_deep_copy():
    original = {"_id": 1, "nested": {"list": [1]}}

    def up(doc):
        doc["nested"]["list"].append(2)
        doc["x"] = 1
        return doc

    assert apply(up, original, label="m") == {"_id": 1, "nested": {"list": [1, 2]}, "x": 1}
    assert original == {"_id": 1, "nested": {"list": [1]}}


def test_up_raising_is_a_transform_error_naming_label_exception_and_id():
    def up(doc):
        raise KeyError("first_name")

    with pytest.raises(TransformError) as info:
        apply(up, {"_id": "u-42"}, label="migration 3 up")
    message = str(info.value)
    assert "migration 3 up" in message and "KeyError" in message and "first_name" in message and "'u-42'" in message
    assert isinstance(info.value.__cause__, KeyError)


@pytest.mark.parametrize("result, type_name", [(None, "NoneType"), ([("_id", 1)], "list"), ("doc", "str"), (1, "int")])
def test_up_returning_a_non_document_is_a_transform_error(result, type_name):
    with pytest.raises(TransformError) as info:
        apply(lambda doc: result, {"_id": 1}, label="migration 2 up")
    assert f"returned {type_name}, not a document" in str(info.value)
    assert "migration 2 up" in str(info.value)


OID = ObjectId()


@pytest.mark.parametrize("doc_id, returned", [
    (1, {}),                       # _id removed
    (1, {"_id": 2}),               # changed
    (1, {"_id": 1.0}),             # same number, another BSON type
    (1, {"_id": True}),
    (OID, {"_id": str(OID)}),
    ({"a": 1, "b": 2}, {"_id": {"b": 2, "a": 1}}),
])
def test_removing_or_changing_id_is_a_transform_error(doc_id, returned):
    with pytest.raises(TransformError) as info:
        apply(lambda doc: returned, {"_id": doc_id, "x": 1}, label="migration 4 down")
    assert "removed or changed _id" in str(info.value)
    assert "migration 4 down" in str(info.value)


def test_keeping_an_equal_id_of_the_same_type_is_fine():
    assert apply(lambda doc: {"_id": ObjectId(str(OID))}, {"_id": OID}, label="m") == {"_id": OID}
    assert apply(lambda doc: {"_id": {"a": [1]}}, {"_id": {"a": [1]}}, label="m") == {"_id": {"a": [1]}}


# --- selectors -----------------------------------------------------------------------------------------------


def test_version_filter_values():
    assert version_filter(1) == {"schema_version": {"$in": [None, 1]}}
    assert version_filter(3) == {"schema_version": 3}


def test_versions_filter_values():
    assert versions_filter([4, 2, 4]) == {"schema_version": {"$in": [2, 4]}}
    assert versions_filter([3, 1]) == {"schema_version": {"$in": [1, 3, None]}}


@pytest.fixture
def versioned():
    coll = mongomock.MongoClient()["t"]["c"]
    coll.insert_many([{"_id": "missing"}, {"_id": "null", "schema_version": None}, {"_id": "one", "schema_version": 1},
                      {"_id": "two", "schema_version": 2}, {"_id": "three", "schema_version": 3}])
    return coll


def ids(coll, query):
    return sorted(d["_id"] for d in coll.find(query))


def test_version_filter_selects_the_right_documents(versioned):
    assert ids(versioned, version_filter(1)) == ["missing", "null", "one"]
    assert ids(versioned, version_filter(2)) == ["two"]


def test_versions_filter_selects_the_right_documents(versioned):
    assert ids(versioned, versions_filter([1, 3])) == ["missing", "null", "one", "three"]
    assert ids(versioned, versions_filter([2, 3])) == ["three", "two"]


# --- restore_from --------------------------------------------------------------------------------------------


def test_restore_from_sets_and_removes_listed_fields_only():
    doc = {"_id": 1, "a": "new", "b": "new", "c": "new"}
    pre = {"_id": 1, "a": 0, "c": "old"}
    result = restore_from(doc, pre, "a", "b")
    assert result is doc
    assert doc == {"_id": 1, "a": 0, "c": "new"}


def test_restore_from_without_pre_image_leaves_the_document():
    doc = {"_id": 1, "a": "new"}
    assert restore_from(doc, None, "a", "b") is doc
    assert doc == {"_id": 1, "a": "new"}


def test_restore_from_keeps_exact_types_and_null():
    doc = {"_id": 1, "a": 1}
    restore_from(doc, {"_id": 1, "a": True, "n": None}, "a", "n")
    assert doc["a"] is True and "n" in doc and doc["n"] is None
