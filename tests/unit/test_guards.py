"""Guards that keep an application's writes (issue 12, item 10), on mongomock: the filters, the whole-document
comparison, a field added in the moment between rollback's read and its replace, and documents written at the source
version during a run."""

import mongomock.collection
import pytest

from docshift.engine.cursor import BatchCursor
from docshift.engine.guards import as_read_filter, field_filter, merge_newer, same_document
from docshift.engine.rollback import RollbackResult, rollback
from docshift.engine.verify import DuringRun, verify_step
from tests.support.mock_runs import N, begin, migrate_all, snapshot


def test_field_filter_pins_null_values_and_absent_fields():
    assert field_filter({"_id": 1, "a": None, "b": 2}, absent=["c", "b"]) == {
        "a": {"$eq": None, "$exists": True}, "b": 2, "c": {"$exists": False}}  # a bare value matches as $eq does


def test_as_read_filter_wants_absent_what_the_update_sets_and_the_document_lacked():
    doc = {"_id": 1, "name": "Ada", "tier": "basic"}
    assert as_read_filter(doc, {"$set": {"tier": "gold", "preferences": {}}, "$unset": {"name": ""}}) == {
        "name": "Ada", "tier": "basic", "preferences": {"$exists": False}}


def test_same_document_is_type_strict_and_order_free():
    assert same_document({"a": 1, "b": "x"}, {"b": "x", "a": 1})
    assert not same_document({"a": 1}, {"a": 1.0}) and not same_document({"a": 1}, {"a": 1, "b": None})


def test_merge_newer_keeps_what_others_set_added_or_removed_since():
    written = {"_id": 1, "a": 1, "b": 2}
    current = {"_id": 1, "a": 5, "c": 3}  # a changed, b removed, c added since `written`
    assert merge_newer({"_id": 1, "a": 1, "b": 2, "v": 2, "x": 9}, written, current) == {"_id": 1, "a": 5, "v": 2, "x": 9, "c": 3}


def test_rollback_gives_back_a_field_added_between_its_read_and_its_replace(mock_db, seed_scripts, users, monkeypatch):
    """The application adds `last_login` right after rollback compared the document, before its replace: the
    document the server replaced shows it, so the document is put back as the application left it and gets `down`."""
    before = snapshot(mock_db)
    run, cursor = begin(mock_db, seed_scripts, 2, "up")
    migrate_all(run, cursor)
    racer = users[7]["_id"]
    replace = mongomock.collection.Collection.find_one_and_replace

    def with_a_write_first(self, filter, *args, **kwargs):
        if filter.get("_id") == racer and not self.find_one({"_id": racer, "last_login": {"$exists": True}}):
            self.update_one({"_id": racer}, {"$set": {"last_login": "2026-11-29"}})
        return replace(self, filter, *args, **kwargs)

    monkeypatch.setattr(mongomock.collection.Collection, "find_one_and_replace", with_a_write_first)

    undone = rollback(mock_db, seed_scripts.get(2).migration, run.step, run.state.run_id, "failed")

    assert undone == RollbackResult(restored=N - 1, undone_by_function=1)
    after = snapshot(mock_db)
    assert all(after[i] == before[i] for i in before if i != racer)
    doc = mock_db.users.find_one({"_id": racer})
    assert doc == {**users[7], "last_login": "2026-11-29"}  # down applied, the application's field kept


def test_a_run_counts_documents_written_at_its_source_version_after_its_last_sweep(mock_db, seed_scripts, users):
    run, cursor = begin(mock_db, seed_scripts, 2, "up")
    migrate_all(run, cursor)
    late = mock_db.users.insert_one({"user_id": "late", "email": "late@example.com"}).inserted_id
    migration = seed_scripts.get(2).migration

    during = verify_step(mock_db, migration, run.step, run.state.count_before, DuringRun())
    outside = verify_step(mock_db, migration, run.step, run.state.count_before)

    assert during.passed and (during.behind, during.behind_ids) == (1, [late])
    assert any(c.check == "written at version 1 during the run (counted, left there)" for c in during.checks)
    assert not outside.passed and "documents left at version 1: expected 0, found 1" in outside.summary()


def test_a_pass_from_the_start_that_finds_nothing_is_not_swept_again_but_one_that_found_documents_is(mock_db, monkeypatch):
    reads = []
    find = mongomock.collection.Collection.find
    monkeypatch.setattr(mongomock.collection.Collection, "find", lambda coll, *a, **k: reads.append(a) or find(coll, *a, **k))
    items = mock_db.items

    nothing = BatchCursor(items, {"v": 1}, None, False)
    assert nothing.next_batch(10) == [] and nothing.next_batch(10) == [] and len(reads) == 1  # a sweep would repeat it

    reads.clear()
    items.insert_many([{"_id": 1, "v": 1}, {"_id": 5, "v": 1}])
    found = BatchCursor(items, {"v": 1}, None, False)
    assert [d["_id"] for d in found.next_batch(10)] == [1, 5]
    items.insert_one({"_id": 3, "v": 1})  # written behind the cursor while its batch was migrated
    assert [d["_id"] for d in found.next_batch(10)] == [1, 3, 5]  # the sweep from the start finds it
    assert len(reads) == 2  # the pass, the sweep


@pytest.mark.parametrize("quarantined_left", [True, False])
def test_quarantined_documents_are_not_counted_as_written_during_the_run(mock_db, seed_scripts, users, quarantined_left):
    run, cursor = begin(mock_db, seed_scripts, 2, "up")
    migrate_all(run, cursor)
    stuck = users[4]["_id"]
    mock_db.users.update_one({"_id": stuck}, {"$unset": {"schema_version": ""}} if quarantined_left else {"$set": {"x": 1}})
    mock_db.users.insert_one({"user_id": "late"})

    result = verify_step(mock_db, seed_scripts.get(2).migration, run.step, None, DuringRun(quarantined=[stuck]))

    assert result.behind == 1 and result.passed is quarantined_left
