"""A batch's cheaper forms keep what they guard: the as-read guard without `$eq` selects what the `$eq` form
selects, change records as documents read back as the pairs of older runs, and a document the target model refuses
fails its batch before anything of the batch is written."""

import datetime
import re

import bson
import mongomock
import pytest
from bson import Int64, ObjectId
from bson.dbref import DBRef
from bson.regex import Regex
from pydantic import BaseModel

from docshift import Migration
from docshift.context import RunContext
from docshift.engine.backups import ChangeReader, change_record, document_digest
from docshift.engine.batches import migrate_batches
from docshift.engine.guards import as_read_filter, equals
from docshift.engine.runs import StepRun, start_or_resume
from docshift.engine.state import RunOptions
from docshift.engine.steps import make_step
from docshift.errors import VerificationFailed
from docshift.loader import Script, ScriptDirectory
from docshift.pacing import BatchSizer, Throttle
from docshift.settings import Settings
from docshift.storage import changes, pre_images

VALUES = [1, Int64(1), 1.0, True, "a", None, [1, 2], [[1]], {"a": 1}, {"$gt": 0}, ObjectId(), b"x",
          datetime.datetime(2026, 1, 1), Regex("^a"), re.compile("^a"), DBRef("c", 1), []]


def test_the_guard_compares_bare_values_and_wraps_only_those_a_filter_would_read_otherwise():
    for value in VALUES:
        wrapped = isinstance(value, (dict, DBRef, Regex, re.Pattern))
        assert equals(value) == ({"$eq": value} if wrapped else value)
    doc = {"_id": 1, "n": 1, "d": {"$gt": 0}, "r": Regex("^a"), "z": None}
    assert as_read_filter(doc, {"$set": {"n": 2, "new": 1}}) == {
        "n": 1, "d": {"$eq": {"$gt": 0}}, "r": {"$eq": Regex("^a")}, "z": {"$eq": None, "$exists": True},
        "new": {"$exists": False}}  # a null needs the field; a field the update adds must still be missing


@pytest.mark.parametrize("stored", [v for v in VALUES if not isinstance(v, (Regex, re.Pattern, DBRef))])
def test_the_bare_guard_matches_the_same_documents_as_the_eq_guard(stored):
    coll = mongomock.MongoClient()["t"]["c"]
    coll.insert_many([{"_id": i, "v": v} for i, v in enumerate(VALUES) if not isinstance(v, (Regex, re.Pattern, DBRef))])
    bare = sorted(d["_id"] for d in coll.find({"v": equals(stored)}))
    assert bare == sorted(d["_id"] for d in coll.find({"v": {"$eq": stored}}))


def test_a_change_record_is_a_digest_of_what_the_run_left_and_older_runs_records_read_the_same(mock_db):
    read = {"_id": 7, "name": "Ada L", "schema_version": 2}
    update = {"$set": {"first_name": "Ada", "schema_version": 3}, "$unset": {"name": ""}}
    record = change_record(7, read, update)
    left = {"schema_version": 3, "_id": 7, "first_name": "Ada"}  # in another order: the server may reorder fields
    assert record == {"_id": 7, "left": document_digest(left)}
    assert len(bson.encode(record)) < len(bson.encode({"_id": 7, **update}))
    assert document_digest({**left, "schema_version": Int64(3)}) != record["left"]  # another type: another document
    assert document_digest({**left, "note": None}) != record["left"]
    as_pairs = {"_id": 8, "set": [{"k": "first_name", "v": "Bo"}, {"k": "schema_version", "v": 3}], "unset": ["name"]}
    as_document = {"_id": 9, "set": {"first_name": "Cy", "schema_version": 3}, "unset": ["name"]}
    mock_db.changes.insert_many([record, as_pairs, as_document])
    reader = ChangeReader(mock_db.changes)
    assert reader.left(read) == record["left"]
    assert reader.left({"_id": 8, "name": "Bo B", "schema_version": 2}) == document_digest({"_id": 8, "first_name": "Bo", "schema_version": 3})
    assert reader.left({"_id": 9, "name": "Cy C", "schema_version": 2}) == document_digest({"_id": 9, "first_name": "Cy", "schema_version": 3})
    assert reader.left({"_id": 10}) is None


class Named(BaseModel):
    name: str


NAMED = Migration(version=2, description="name", collection="users", kind="transformative",
                  up=lambda d: {**d, "name": d.get("name") or 7}, down=lambda d: d, target_model=Named)
SCRIPTS = ScriptDirectory([Script(NAMED, None, "sum")], None)


def test_a_document_the_target_model_refuses_fails_its_batch_before_anything_of_it_is_written(mock_db):
    mock_db.users.insert_many([{"_id": i, "name": "x"} for i in range(5)] + [{"_id": 5, "name": ""}])
    step = make_step(SCRIPTS, 2, "up")
    state = start_or_resume(RunContext(Settings(), SCRIPTS, mock_db), step, None)
    run = StepRun(mock_db, NAMED, step, state, step.selector, None, BatchSizer(4), Throttle(), None, RunOptions(4))
    cursor = run.cursor()
    assert not migrate_batches(run, cursor, 1) and state.validated == 4
    with pytest.raises(VerificationFailed, match=r"documents valid as Named: _id=5: \('name',\)"):
        migrate_batches(run, cursor, 1)
    assert mock_db.users.count_documents({"schema_version": 2}) == 4
    assert pre_images(mock_db, state.run_id).count_documents({}) == 4 and changes(mock_db, state.run_id).count_documents({}) == 4
