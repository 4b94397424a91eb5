"""A migration declared as an update (`Migration(update={"$set": ...})`): its derived functions, and its run on
mongomock: `_id` ranges updated on the server, the documents that had a field migrated per document with their
pre-images, and rollback and `down` that give back every document exactly."""

import bson
import pytest
from bson import ObjectId
from pydantic import ValidationError

from docshift import Migration
from docshift.context import RunContext
from docshift.engine.batches import migrate_batches
from docshift.engine.ranges import IdRanges, finish_ranges, migrate_ranges, open_ranges, runs_on_server
from docshift.engine.rollback import rollback
from docshift.engine.runs import StepRun, record_finished, start_or_resume
from docshift.engine.state import RunOptions
from docshift.engine.steps import make_step, transform_one
from docshift.engine.verify import verify_step
from docshift.ledger import Ledger
from docshift.loader import Script, ScriptDirectory
from docshift.pacing import BatchSizer, Throttle
from docshift.settings import Settings
from docshift.storage import ranges as range_records

DEFAULTS = {"theme": "light", "notifications": True}
ADD = Migration(version=2, description="add preferences", collection="users", kind="additive",
                update={"$set": {"preferences": DEFAULTS}})
SCRIPTS = ScriptDirectory([Script(ADD, None, "sum")], None)


def oid(second: int, n: int) -> ObjectId:
    return ObjectId(second.to_bytes(4, "big") + b"\x01\x02\x03\x04\x05" + n.to_bytes(3, "big"))


@pytest.fixture
def users(mock_db):
    """Users created over three bursts of seconds with a gap, two with preferences already, one with another `_id`."""
    docs = [{"_id": oid(1_700_000_000 + s, i), "n": i, "schema_version": None if i % 3 else 1}
            for i, s in enumerate([0, 0, 0, 1, 1, 2, 500, 500, 501, 90_000, 90_000, 90_003])]
    for d in docs:
        if d["schema_version"] is None:
            del d["schema_version"]
    docs[4]["preferences"] = {"theme": "dark"}
    docs[10]["preferences"] = None
    docs.append({"_id": "not-an-objectid", "n": 99})
    mock_db.users.insert_many(docs)
    return docs


def snapshot(db):
    return {str(d["_id"]): bson.encode(d) for d in db.users.find()}


def begin(db, direction="up", pre_images=None):
    step = make_step(SCRIPTS, 2, direction)
    state = start_or_resume(RunContext(Settings(), SCRIPTS, db), step, None)
    return StepRun(db, ADD, step, state, step.selector, None, BatchSizer(3), Throttle(), pre_images, RunOptions(3))


def run_up(db):
    run = begin(db)
    assert runs_on_server(run)
    ranges = open_ranges(run, target_seconds=1.0)
    while not migrate_ranges(run, ranges, 2):
        pass
    finish_ranges(db, run)
    cursor = run.cursor()
    while not migrate_batches(run, cursor, 2):
        pass
    return run


def test_up_and_down_are_derived_from_the_update():
    doc = {"_id": 1, "preferences": {"theme": "dark"}}
    assert ADD.up({"_id": 1}) == {"_id": 1, "preferences": DEFAULTS}
    assert ADD.up({"_id": 1})["preferences"] is not ADD.up({"_id": 1})["preferences"]
    assert ADD.down_uses_pre_image
    assert ADD.down({"_id": 1, "preferences": DEFAULTS}, None) == {"_id": 1}
    assert ADD.down({"_id": 1, "preferences": DEFAULTS}, doc) == doc
    migrated = transform_one(ADD, make_step(SCRIPTS, 2, "up"), {"_id": 1}, None)
    assert migrated == {"_id": 1, "preferences": DEFAULTS, "schema_version": 2}


@pytest.mark.parametrize("update,words", [
    ({"$push": {"a": 1}}, "update must be"), ({"$set": {}}, "non-empty"), ({"$set": {"a.0": 1}}, "array positions"),
    ({"$set": {"schema_version": 3}}, "other than"), ({"$set": {"$x": 1}}, "leading"), ({"$set": {"a": {1, 2}}}, "not BSON"),
    ({"$set": {"p": "$createdOn"}}, "literal string"), ([{"$set": {"p": "$createdOn"}}], "pipeline"),
    ({"$rename": {"a": "b.c"}}, "top-level"), ({"$inc": {"n": "1"}}, "must be a number"),
    ({"$set": {"a": 1}, "$unset": {"a.b": ""}}, "conflict"), ({"$currentDate": {"t": {"$type": "timestamp"}}}, "timestamp"),
])
def test_an_update_that_cannot_be_run_as_one_is_refused(update, words):
    with pytest.raises(ValidationError, match=words):
        Migration(version=2, description="x", collection="c", kind="additive", update=update)


def test_up_and_update_together_are_refused():
    with pytest.raises(ValidationError, match="either up and down, or update"):
        Migration(version=2, description="x", collection="c", kind="additive", update={"$set": {"a": 1}},
                  up=lambda d: d, down=lambda d: d)


def test_ranges_follow_object_id_time_and_skip_gaps(mock_db, users):
    ranges = IdRanges(mock_db.users, {}, target_seconds=1.0)
    ranges.open()
    assert ranges.lo == oid(1_700_000_000, 0).__class__(bytes.fromhex("%08x" % 1_700_000_000) + bytes(8))
    spans = []
    while (span := ranges.next()) is not None:
        spans.append(span)
        ranges.record(span[1], mock_db.users.count_documents({"_id": {"$gte": span[0], **({"$lt": span[1]} if span[1] else {})}}), 1.0)
    seconds = [(int(lo.binary[:4].hex(), 16) - 1_700_000_000, None if hi is None else int(hi.binary[:4].hex(), 16) - 1_700_000_000)
               for lo, hi in spans]
    assert seconds[0] == (0, 1) and seconds[-1][1] == 90_004
    assert (500, 501) in seconds or any(lo == 500 for lo, _ in seconds)  # the gap after second 2 is skipped, not widened into
    assert all(hi - lo <= 4 for lo, hi in seconds)


def test_the_update_runs_on_the_server_and_documents_that_had_a_field_go_per_document(mock_db, users):
    run = run_up(mock_db)
    state = run.state
    assert all(d["schema_version"] == 2 and d["preferences"] == DEFAULTS for d in mock_db.users.find())
    backup = mock_db[state.backup]
    per_document = [d["n"] for d in users if "preferences" in d or "schema_version" in d or not isinstance(d["_id"], ObjectId)]
    assert sorted(d["n"] for d in backup.find()) == per_document == [0, 3, 4, 6, 9, 10, 99]  # had the field or a stored
    # version 1 (which `down` would not make again), or no ObjectId: pre-images kept; the others need none
    assert range_records(mock_db, state.run_id).count_documents({}) >= 2 and state.ranged
    verification = verify_step(mock_db, ADD, run.step, state.count_before)
    assert verification.passed, verification.summary()
    assert record_finished(run, verification).documents == len(users)


def test_rollback_gives_back_every_document_exactly_and_keeps_what_the_application_wrote(mock_db, users):
    """A range's undo is field-wise: a field the application added since is kept; a document whose set field the
    application changed since gets the opposite function (the rollback's sweep of documents written since), as a
    per-document run's document does: none is left at the version the database goes back from."""
    before = snapshot(mock_db)
    run = run_up(mock_db)
    written_since, added_to = users[7]["_id"], users[8]["_id"]
    mock_db.users.update_one({"_id": written_since}, {"$set": {"preferences": {"theme": "blue"}}})  # whole: mongomock shares the dict
    mock_db.users.update_one({"_id": added_to}, {"$set": {"last_login": "2026-11-29"}})

    undone = rollback(mock_db, ADD, run.step, run.state.run_id, "failed")

    after = snapshot(mock_db)
    assert {k: v for k, v in after.items() if k != str(added_to)} == {k: v for k, v in before.items() if k != str(added_to)}
    assert mock_db.users.find_one({"_id": added_to}) == {**bson.decode(before[str(added_to)]), "last_login": "2026-11-29"}
    assert (undone.restored, undone.undone_by_function) == (len(users) - 1, 1)
    assert mock_db.users.count_documents({"schema_version": 2}) == 0


def test_down_with_the_pre_images_gives_back_every_document_exactly(mock_db, users):
    from docshift.engine.backups import PreImages

    before = snapshot(mock_db)
    up = run_up(mock_db)
    record_finished(up, verify_step(mock_db, ADD, up.step, up.state.count_before))
    down = begin(mock_db, "down", PreImages(mock_db, Ledger(mock_db).pre_image_runs(2)))
    assert not runs_on_server(down)
    cursor = down.cursor()
    while not migrate_batches(down, cursor, 2):
        pass
    for doc in users:  # a `down` to the initial version removes a stored `schema_version: 1`, as any migration's does
        doc.pop("schema_version", None)
    assert snapshot(mock_db) == {str(d["_id"]): bson.encode(d) for d in users}
    assert {k: v for k, v in before.items() if b"schema_version" not in v}.items() <= snapshot(mock_db).items()
