"""The engine on mongomock: planning, checksums, batched migration with checkpoints, rollback, the lease lock."""

import os
import socket
import subprocess
import time
from datetime import timedelta

import bson

import pytest

import docshift.ledger
from tests.support.fingerprints import as_bson
from tests.support.mock_runs import BATCH, N, begin, context, migrate_all, run_step, snapshot
from docshift import Migration
from docshift.engine.backups import BackupReader, open_backup, save_by_id
from docshift.engine.batches import migrate_batches
from docshift.engine.cursor import BatchCursor
from docshift.engine.planning import check_checksums, plan_report, plan_steps
from docshift.engine.rollback import RollbackResult, rollback
from docshift.engine.runs import record_finished, start_or_resume
from docshift.engine.steps import Step, make_step
from docshift.engine.verify import verify_step
from docshift.storage import BACKUP_PREFIX
from docshift.errors import BackupError, ChangedMigrationError, LockHeldError, LockLostError, RollbackPendingError
from docshift.ledger import LEDGER, LOCK, LeaseLock, Ledger, describe_lock, holder_is_dead, now
from docshift.transform import version_filter



def steps_of(steps):
    return [(s.version, s.direction, s.from_version, s.to_version, s.recorded_after) for s in steps]


# --- plan_steps ----------------------------------------------------------------------------------------------


def test_plan_up_path(seed_scripts):
    assert steps_of(plan_steps(seed_scripts, 1, 5, None)) == [
        (2, "up", 1, 2, 2), (3, "up", 2, 3, 3), (4, "up", 3, 4, 4), (5, "up", 4, 5, 5)]
    assert steps_of(plan_steps(seed_scripts, 3, 4, None)) == [(4, "up", 3, 4, 4)]


def test_plan_down_path(seed_scripts):
    assert steps_of(plan_steps(seed_scripts, 5, 2, None)) == [(5, "down", 5, 4, 4), (4, "down", 4, 3, 3), (3, "down", 3, 2, 2)]
    assert steps_of(plan_steps(seed_scripts, 3, 1, None)) == [(3, "down", 3, 2, 2), (2, "down", 2, 1, 1)]


def test_plan_nothing_to_do(seed_scripts):
    assert plan_steps(seed_scripts, 4, 4, None) == []


def test_interrupted_up_is_resumed_when_the_path_contains_it(seed_scripts):
    checkpoint = {"version": 4, "direction": "up"}
    assert steps_of(plan_steps(seed_scripts, 3, 5, checkpoint)) == [(4, "up", 3, 4, 4), (5, "up", 4, 5, 5)]


@pytest.mark.parametrize("target, expected", [
    (2, [(4, "down", 4, 3, 3), (3, "down", 3, 2, 2)]),
    (3, [(4, "down", 4, 3, 3)]),
])
def test_interrupted_up_is_undone_first_when_the_target_is_below_it(seed_scripts, target, expected):
    """Current is 3 while the up of 4 ran half-way: its documents at 4 must come back before anything else."""
    assert steps_of(plan_steps(seed_scripts, 3, target, {"version": 4, "direction": "up"})) == expected


@pytest.mark.parametrize("target, expected", [
    (5, [(4, "up", 3, 4, 4), (5, "up", 4, 5, 5)]),
    (4, [(4, "up", 3, 4, 4)]),
])
def test_interrupted_down_is_redone_up_first_when_going_up(seed_scripts, target, expected):
    """Current is 4 while the down of 4 ran half-way: its documents at 3 must go up again first."""
    assert steps_of(plan_steps(seed_scripts, 4, target, {"version": 4, "direction": "down"})) == expected


def test_interrupted_down_is_resumed_when_the_path_contains_it(seed_scripts):
    assert steps_of(plan_steps(seed_scripts, 4, 2, {"version": 4, "direction": "down"})) == [
        (4, "down", 4, 3, 3), (3, "down", 3, 2, 2)]


def test_checkpoint_of_an_unknown_version_is_ignored(seed_scripts):
    assert steps_of(plan_steps(seed_scripts, 1, 2, {"version": 9, "direction": "up"})) == [(2, "up", 1, 2, 2)]


# --- checksums -----------------------------------------------------------------------------------------------


def record_applied(db, version, checksum, started_at):
    ledger = Ledger(db)
    run_id = f"v{version}-up-{started_at.timestamp()}"
    ledger.start_entry({"_id": run_id, "version": version, "direction": "up", "checksum": checksum,
                        "started_at": started_at, "outcome": "running"})
    ledger.update_entry(run_id, {"outcome": "applied"})


def test_changed_applied_migration_is_refused(mock_db, seed_scripts):
    t = now()
    for v in (2, 3):
        record_applied(mock_db, v, seed_scripts.get(v).checksum, t + timedelta(seconds=v))
    record_applied(mock_db, 4, "0" * 64, t + timedelta(seconds=4))
    with pytest.raises(ChangedMigrationError) as info:
        check_checksums(context(mock_db, seed_scripts), 4, allow_changed=False)
    message = str(info.value)
    assert "0004_remove_deprecated_field.py" in message and "000000000000" in message
    assert "0002_" not in message and "0003_" not in message
    check_checksums(context(mock_db, seed_scripts), 4, allow_changed=True)  # allowed: no error


def test_matching_checksums_and_versions_above_current_pass(mock_db, seed_scripts):
    t = now()
    record_applied(mock_db, 2, seed_scripts.get(2).checksum, t)
    record_applied(mock_db, 3, "f" * 64, t + timedelta(seconds=1))  # applied once, since reverted: current is 2
    check_checksums(context(mock_db, seed_scripts), 2, allow_changed=False)
    with pytest.raises(ChangedMigrationError):
        check_checksums(context(mock_db, seed_scripts), 3, allow_changed=False)


def test_latest_application_counts(mock_db, seed_scripts):
    t = now()
    record_applied(mock_db, 2, "e" * 64, t)
    record_applied(mock_db, 2, seed_scripts.get(2).checksum, t + timedelta(seconds=1))
    check_checksums(context(mock_db, seed_scripts), 5, allow_changed=False)


# --- batched migration ---------------------------------------------------------------------------------------


def test_migrate_batches_checkpoints_every_batch_and_reaches_the_target(mock_db, seed_scripts, users):
    ids = [u["_id"] for u in users]
    run, cursor = begin(mock_db, seed_scripts, 2, "up")
    step, state = run.step, run.state
    ledger = Ledger(mock_db)
    assert ledger.checkpoint()["run_id"] == state.run_id and ledger.checkpoint()["done"] == 0
    assert state.total == N and state.count_before == N

    migration = seed_scripts.get(2).migration
    for k, done in enumerate([4, 8, 10], start=1):
        finished = migrate_batches(run, cursor, 1)
        assert not finished and state.done == done
        checkpoint = ledger.checkpoint()
        assert (checkpoint["done"], checkpoint["batches"], checkpoint["last_id"], checkpoint["started"]) == (done, k, ids[done - 1], True)
        assert mock_db.users.count_documents({"schema_version": 2}) == done
        assert mock_db.users.count_documents(version_filter(1)) == N - done
        assert mock_db[state.backup].count_documents({}) == done
    assert migrate_batches(run, cursor, 1)

    verification = verify_step(mock_db, migration, step, state.count_before)
    assert verification.passed, verification.summary()
    summary = record_finished(run, verification)
    assert summary.outcome == "applied" and summary.documents == N and summary.changed == N
    assert ledger.current_version() == 2 and ledger.checkpoint() is None
    entry = ledger.history()[-1]
    assert (entry["_id"], entry["outcome"], entry["checksum"]) == (state.run_id, "applied", seed_scripts.get(2).checksum)
    for doc in mock_db.users.find():
        assert doc["schema_version"] == 2 and doc["preferences"] == {"theme": "light", "notifications": True, "language": "en"}

    before = snapshot(mock_db)
    again = migrate_batches(run, BatchCursor(mock_db.users, version_filter(1), None, False), 5)
    assert again and (state.done, state.changed) == (N, N)
    assert snapshot(mock_db) == before
    assert ledger.checkpoint() is None


def test_a_batch_read_again_changes_nothing_twice(mock_db, seed_scripts, users):
    run, cursor = begin(mock_db, seed_scripts, 2, "up")
    state = run.state
    migrate_batches(run, cursor, 1)
    first = snapshot(mock_db)
    cursor.reopen(None, False)  # as if the checkpoint of the first batch had not been saved
    migrate_all(run, cursor)
    after = snapshot(mock_db)
    assert all(after[u["_id"]] == first[u["_id"]] for u in users[:BATCH])
    assert state.changed == N and state.matched == N
    assert mock_db[state.backup].count_documents({}) == N


def test_start_or_resume_resumes_the_checkpointed_run(mock_db, seed_scripts, users):
    run, cursor = begin(mock_db, seed_scripts, 2, "up")
    step, state = run.step, run.state
    migrate_batches(run, cursor, 1)

    resumed = start_or_resume(context(mock_db, seed_scripts), step, None)  # a new process after a crash
    assert resumed.run_id == state.run_id and resumed.resumed == 1
    assert (resumed.done, resumed.last_id, resumed.started) == (BATCH, users[BATCH - 1]["_id"], True)
    run.state = resumed
    migrate_all(run, run.cursor())
    assert resumed.done == N and resumed.changed == N
    record_finished(run, verify_step(mock_db, seed_scripts.get(2).migration, step, resumed.count_before))
    entry = Ledger(mock_db).history()[-1]
    assert (entry["outcome"], entry["resumed"], entry["documents"]) == ("applied", 1, N)
    assert len(Ledger(mock_db).history()) == 1


def test_the_opposite_step_abandons_the_interrupted_run(mock_db, seed_scripts, users):
    run, cursor = begin(mock_db, seed_scripts, 2, "up")
    state = run.state
    migrate_batches(run, cursor, 1)
    down_step = make_step(seed_scripts, 2, "down")
    down = start_or_resume(context(mock_db, seed_scripts), down_step, None)
    assert down.run_id != state.run_id and (down_step.from_version, down_step.to_version) == (2, 1)
    checkpoint = Ledger(mock_db).checkpoint()
    assert (checkpoint["version"], checkpoint["direction"], checkpoint["collection"]) == (2, "down", "users")
    outcomes = {e["_id"]: e["outcome"] for e in Ledger(mock_db).history()}
    assert outcomes == {state.run_id: "abandoned", down.run_id: "running"}
    assert Ledger(mock_db).checkpoint()["run_id"] == down.run_id


def test_lost_lock_stops_the_batches_before_they_write(mock_db, seed_scripts, users):
    lock = LeaseLock(mock_db, 0.3, "chunk")
    lock.acquire()
    try:
        Ledger(mock_db).break_lock()
        assert lock.lost.wait(3), "the renewer did not notice the broken lock"
        run, cursor = begin(mock_db, seed_scripts, 2, "up", lock=lock)
        with pytest.raises(LockLostError):
            migrate_batches(run, cursor, 1)
        assert mock_db.users.count_documents({"schema_version": 2}) == 0
    finally:
        lock.release()


# --- rollback and pre-images ---------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [2, 3, 4, 5])
def test_rollback_restores_pre_images_byte_identically(mock_db, seed_scripts, users, version):
    for v in range(2, version):
        run_step(mock_db, seed_scripts, v, "up")
    before = snapshot(mock_db)
    run, cursor = begin(mock_db, seed_scripts, version, "up")
    step, state = run.step, run.state
    migrate_all(run, cursor)
    assert snapshot(mock_db) != before

    migration = seed_scripts.get(version).migration
    undone = rollback(mock_db, migration, step, state.run_id, "verification failed")
    assert undone == RollbackResult(restored=N, undone_by_function=0)
    assert snapshot(mock_db) == before
    entry = next(e for e in Ledger(mock_db).history() if e["_id"] == state.run_id)
    assert (entry["outcome"], entry["restored"], entry["error"]) == ("rolled_back", N, "verification failed")
    assert Ledger(mock_db).checkpoint() is None
    assert rollback(mock_db, migration, step, state.run_id, "again") == RollbackResult(restored=0, undone_by_function=0)
    assert snapshot(mock_db) == before


def test_rollback_only_touches_documents_still_at_the_runs_target_version(mock_db, seed_scripts, users):
    before = snapshot(mock_db)
    run, cursor = begin(mock_db, seed_scripts, 2, "up")
    step, state = run.step, run.state
    migrate_all(run, cursor)
    moved_on = users[3]["_id"]
    mock_db.users.update_one({"_id": moved_on}, {"$set": {"schema_version": 3, "first_name": "X"}})
    moved_state = mock_db.users.find_one({"_id": moved_on})

    undone = rollback(mock_db, seed_scripts.get(2).migration, step, state.run_id, "failed")
    assert undone == RollbackResult(restored=N - 1, undone_by_function=0)
    after = snapshot(mock_db)
    assert after[moved_on] == bson.encode(moved_state)
    assert all(after[i] == before[i] for i in before if i != moved_on)


def test_rollback_never_erases_a_write_made_after_the_run(mock_db, seed_scripts, users):
    """Compare-and-swap: a document the application changed since the run gets `down` applied, keeping the change."""
    before = snapshot(mock_db)
    run, cursor = begin(mock_db, seed_scripts, 2, "up")
    step, state = run.step, run.state
    migrate_all(run, cursor)
    edited = users[5]["_id"]
    mock_db.users.update_one({"_id": edited}, {"$set": {"email": "new@example.com", "preferences.theme": "dark"}})

    undone = rollback(mock_db, seed_scripts.get(2).migration, step, state.run_id, "failed")

    assert undone == RollbackResult(restored=N - 1, undone_by_function=1)
    after = snapshot(mock_db)
    assert all(after[i] == before[i] for i in before if i != edited)
    doc = mock_db.users.find_one({"_id": edited})
    assert doc["email"] == "new@example.com"  # the newer write survives
    assert "schema_version" not in doc and doc.get("updated_at") == users[5].get("updated_at")
    assert doc.get("preferences") == users[5].get("preferences")  # down gave back what the pre-image had


def test_up_then_down_through_the_engine_with_pre_images_gives_back_the_users(mock_db, seed_scripts, users):
    backups = {}
    for v in (2, 3, 4, 5):
        state, summary = run_step(mock_db, seed_scripts, v, "up")
        backups[v] = summary.backup
        assert backups[v] == BACKUP_PREFIX + state.run_id
    ledger = Ledger(mock_db)
    assert ledger.current_version() == 5
    for v in (5, 4, 3, 2):
        run_step(mock_db, seed_scripts, v, "down", BackupReader(mock_db[backups[v]]))
    assert ledger.current_version() == 1
    back = {d["_id"]: as_bson(d) for d in mock_db.users.find()}
    assert back == {u["_id"]: as_bson(u) for u in users}


def test_save_by_id_refreshes_those_of_a_redone_batch(mock_db):
    def raw(doc):
        return bson.raw_bson.RawBSONDocument(bson.encode(doc))

    backup = mock_db["_docshift_backup.x"]
    save_by_id(backup, [raw({"_id": 1, "v": "a1"}), raw({"_id": 2, "v": "b1"})])
    save_by_id(backup, [raw({"_id": 1, "v": "a2"}), raw({"_id": 3, "v": "c1"})])
    assert list(backup.find().sort("_id", 1)) == [{"_id": 1, "v": "a2"}, {"_id": 2, "v": "b1"}, {"_id": 3, "v": "c1"}]


def test_pre_images_are_found_in_any_order(mock_db):
    backup = mock_db["_docshift_backup.y"]
    backup.insert_many([{"_id": i, "v": i * 10} for i in (1, 3, 5)])
    pre = BackupReader(backup)
    assert [None if (d := pre.get(i)) is None else d["v"] for i in (1, 2, 3, 5, 6, 3, 1)] == [10, None, 30, 50, None, 30, 10]


def test_plan_report_counts_and_samples_without_writing(mock_db, seed_scripts, users):
    before = snapshot(mock_db)
    report = plan_report(context(mock_db, seed_scripts), 3)
    assert (report.current, report.target) == (1, 3)
    assert [(s.version, s.direction, s.documents) for s in report.steps] == [(2, "up", N), (3, "up", N)]
    for step in report.steps:
        assert len(step.samples) == 2
        for before_doc, after_doc in step.samples:
            assert after_doc["schema_version"] == step.version
    assert snapshot(mock_db) == before
    assert mock_db[LEDGER].count_documents({}) == 0


# --- lease lock ----------------------------------------------------------------------------------------------


@pytest.fixture
def locks(mock_db):
    """LeaseLocks made by a test, released at its end whatever happens."""
    made = []

    def make(lease_seconds=30.0, purpose="test"):
        lock = LeaseLock(mock_db, lease_seconds, purpose)
        made.append(lock)
        return lock

    yield make
    for lock in made:
        lock.release()


def test_second_acquire_is_refused_naming_the_owner(mock_db, locks):
    first, second = locks(purpose="first-run"), locks(purpose="second-run")
    first.acquire()
    with pytest.raises(LockHeldError) as info:
        second.acquire()
    assert first.owner in str(info.value) and "first-run" in str(info.value)
    assert Ledger(mock_db).lock_holder()["owner"] == first.owner


def test_released_lock_can_be_acquired_again(mock_db, locks):
    first, second = locks(purpose="a"), locks(purpose="b")
    with first:
        assert Ledger(mock_db).lock_holder()["owner"] == first.owner
    assert Ledger(mock_db).lock_holder() is None
    second.acquire()
    assert Ledger(mock_db).lock_holder()["owner"] == second.owner


def test_expired_lease_can_be_taken_over(mock_db, locks, monkeypatch):
    crashed, successor = locks(purpose="crashed"), locks(purpose="successor")
    crashed.acquire()
    later = now() + timedelta(seconds=31)
    monkeypatch.setattr(docshift.ledger, "now", lambda: later)
    successor.acquire()
    assert Ledger(mock_db).lock_holder()["owner"] == successor.owner
    crashed.release()  # the old holder's release must not free the successor's lock
    assert Ledger(mock_db).lock_holder()["owner"] == successor.owner


def test_lock_left_by_a_dead_process_expires(mock_db, locks):
    mock_db[LEDGER].insert_one({"_id": LOCK, "owner": "gone:1:migrate", "acquired_at": now(),
                                "expires_at": now() + timedelta(seconds=0.2)})
    lock = locks(purpose="next")
    with pytest.raises(LockHeldError, match="gone:1:migrate"):
        lock.acquire()
    time.sleep(0.3)
    lock.acquire()
    assert Ledger(mock_db).lock_holder()["owner"] == lock.owner


def test_renewal_keeps_a_live_lease(mock_db, locks):
    holder, other = locks(lease_seconds=0.3, purpose="live"), locks(purpose="other")
    holder.acquire()
    time.sleep(0.6)
    with pytest.raises(LockHeldError):
        other.acquire()
    holder.check()  # not lost


def test_break_lock_frees_it(mock_db, locks):
    holder, other = locks(purpose="stuck"), locks(purpose="after")
    holder.acquire()
    broken = Ledger(mock_db).break_lock()
    assert broken["owner"] == holder.owner
    assert Ledger(mock_db).lock_holder() is None
    other.acquire()
    assert Ledger(mock_db).lock_holder()["owner"] == other.owner


def test_a_lock_held_by_a_process_gone_from_this_host_is_dead_and_taken_over(mock_db):
    gone = subprocess.Popen(["true"])
    gone.wait()
    here = socket.gethostname()
    dead = {"owner": f"{here}:{gone.pid}:x", "expires_at": now() + timedelta(hours=1)}
    assert holder_is_dead(dead)
    assert not holder_is_dead({"owner": f"{here}:{os.getppid()}:x"}) and not holder_is_dead({"owner": f"elsewhere:{gone.pid}:x"})
    assert "(dead: that process is gone" in describe_lock(dead) and describe_lock(None) == "free"
    mock_db["_migrations"].insert_one({"_id": "lock", **dead})
    Ledger(mock_db).check_lock_free()

    with LeaseLock(mock_db, 60, "test") as lock:
        assert Ledger(mock_db).lock_holder()["owner"] == lock.owner

    mock_db["_migrations"].insert_one({"_id": "lock", "owner": f"{here}:{os.getppid()}:x", "expires_at": now() + timedelta(hours=1)})
    with pytest.raises(LockHeldError):
        LeaseLock(mock_db, 60, "test").acquire()


def test_backup_is_opened_before_any_change_and_reopening_is_harmless(mock_db, seed_scripts, tmp_path):
    step = make_step(seed_scripts, 2, "up")
    mock_db.users.insert_one({"_id": 1, "name": "Ada"})
    state = start_or_resume(context(mock_db, seed_scripts), step, None)

    assert open_backup(mock_db, step, state, tmp_path) == state.backup
    assert open_backup(mock_db, step, state, tmp_path) == state.backup
    assert state.backup in mock_db.list_collection_names()
    assert mock_db[state.backup].count_documents({}) == 0
    data = tmp_path / state.run_id / mock_db.name / "users.bson"
    assert state.dump == str(data) and data.exists() and data.stat().st_size == 0
    assert '"collectionName": "users"' in (tmp_path / state.run_id / mock_db.name / "users.metadata.json").read_text()
    assert mock_db["_backups"].find_one({"_id": state.run_id})["path"] == str(data)
    assert mock_db.users.find_one({"_id": 1}) == {"_id": 1, "name": "Ada"}


def test_an_unwritable_backup_folder_stops_the_run_before_any_change(mock_db, seed_scripts, tmp_path):
    step = make_step(seed_scripts, 2, "up")
    mock_db.users.insert_one({"_id": 1, "name": "Ada"})
    state = start_or_resume(context(mock_db, seed_scripts), step, None)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the backup folder should be")

    with pytest.raises(BackupError, match="cannot write the backup under .*nothing was changed"):
        open_backup(mock_db, step, state, blocker)
    assert mock_db.users.find_one({"_id": 1}) == {"_id": 1, "name": "Ada"}


def test_nothing_is_planned_while_a_rollback_is_unfinished(seed_scripts):
    pending = {"run_id": "v3-up-abc", "version": 3, "direction": "up", "rolling_back": True, "reason": "boom"}
    with pytest.raises(RollbackPendingError, match="docshift rollback --run v3-up-abc"):
        plan_steps(seed_scripts, 2, 5, pending)


@pytest.mark.parametrize("rate,checked,found", [(1.0, 30, 1), (0.5, 15, 0), (0.1, 3, 0)])
def test_target_model_verification_covers_all_documents_or_the_declared_rate(mock_db, rate, checked, found):
    from pydantic import BaseModel

    class Tagged(BaseModel):
        tag: str

    migration = Migration(version=2, description="tag", collection="things", kind="additive", up=lambda d: d,
                          down=lambda d: d, target_model=Tagged, verify_sample_rate=rate)
    mock_db.things.insert_many([{"_id": i, "schema_version": 2, "tag": "ok"} for i in range(30)])
    mock_db.things.update_one({"_id": 29}, {"$set": {"tag": 7}})  # the last one, past any first-N sample
    step = Step(2, "up", "things", 1, 2, 1, 2)

    check = verify_step(mock_db, migration, step, None).checks[-1]

    assert f"{checked} checked" in check.check
    assert (check.passed, check.found if not found else int(str(check.found).split()[0])) == (not found, found)


def test_partition_bounds_split_by_quantiles_and_size_each_range_without_counting_again(mock_db):
    """mongomock has no $bucketAuto: the quantile fallback, whose sizes must equal what each range really holds."""
    from docshift.engine.partitions import partition_bounds, partition_range

    mock_db.items.insert_many([{"_id": i, "schema_version": 1} for i in range(10)] + [{"_id": 100, "schema_version": 2}])
    selector = version_filter(1)
    bounds, sizes = partition_bounds(mock_db.items, selector, 3, total=10)
    assert bounds == [3, 6] and sizes == [3, 3, 4]
    assert [mock_db.items.count_documents({**selector, **partition_range(bounds, i)}) for i in range(3)] == sizes
    assert partition_bounds(mock_db.items, {"schema_version": 9}, 3, total=0) == ([], [0])


def test_collection_count_falls_back_to_counting_where_the_server_keeps_no_count(mock_db):
    from docshift.engine.cursor import collection_count

    mock_db.items.insert_many([{"n": i} for i in range(7)])
    mock_db.items.delete_one({"n": 3})
    assert collection_count(mock_db.items) == 6


def test_a_database_migrated_by_a_newer_folder_is_refused_even_with_allow_changed(mock_db, seed_scripts):
    record_applied(mock_db, 2, seed_scripts.get(2).checksum, now())
    record_applied(mock_db, 9, "0" * 64, now() + timedelta(seconds=1))
    with pytest.raises(ChangedMigrationError, match="records migration 9, which this migrations folder does not have"):
        check_checksums(context(mock_db, seed_scripts), 9, allow_changed=True)
