"""Migrating a step's documents batch by batch: pre-images saved, guarded updates written, checkpoint saved."""

import time
from pathlib import Path

import bson
from pymongo import UpdateOne
from pymongo.collection import Collection
from pymongo.errors import BulkWriteError

from .. import dump, storage
from ..errors import DatabaseError, TransformError
from ..ledger import Ledger, now
from ..progress import ProgressEvent, publish
from ..transform import update_for
from .backups import change_record, save_by_id
from .cursor import BatchCursor
from .faults import fault_point
from .guards import as_read_filter
from .quarantine import quarantine
from .runs import StepRun
from .steps import Step, transform_one


def migrate_batches(run: StepRun, cursor: BatchCursor, max_batches: int) -> bool:
    """Up to `max_batches` batches: pre-images saved, guarded updates written, checkpoint saved after each.

    Returns whether the step has no documents left to do; the counts are in `run.state`. At the options' deadline
    (a maintenance window's end) it stops before the next batch, so the run can pause at its checkpoint. The run's
    sizer chooses each batch's size; its throttle waits between batches.
    """
    db, step, state, deadline = run.db, run.step, run.state, run.options.deadline
    coll, backup, changes, ledger = db[step.collection], storage.pre_images(db, state.run_id), storage.changes(db, state.run_id), Ledger(db)
    for i in range(max_batches):
        if i or state.batches:
            run.throttle.wait(deadline)
        if run.lock:
            run.lock.check()
        if deadline and now() >= deadline:
            return False
        started = time.monotonic()
        raws = cursor.next_batch(run.sizer.next())
        if not raws:
            return True
        ops, written = [], []
        for raw in raws:
            doc = bson.decode(raw.raw)
            if doc["_id"] in state.quarantined:
                continue  # a sweep met it again
            pre_image = run.pre_images.get(doc["_id"]) if run.pre_images else None
            try:
                update = update_for(doc, transform_one(run.migration, step, doc, pre_image), step.to_version)
            except TransformError as exc:
                quarantine(db, step, state, doc["_id"], exc, run.options.max_failures)
                continue
            if update:
                ops.append(UpdateOne({"_id": doc["_id"], **step.selector, **as_read_filter(doc, update)}, update))
                written.append(change_record(doc["_id"], update))
        save_by_id(backup, raws)
        if state.dump:
            dump.append(Path(state.dump), raws)
        save_by_id(changes, written)
        fault_point("pre-images-saved")
        if ops:
            result = write_batch(coll, ops, [c["_id"] for c in written], step)
            state.matched += result.matched_count
            state.changed += result.modified_count
        fault_point("batch-written")
        state.done += len(raws)
        state.batches += 1
        state.last_id, state.started = cursor.last_id, True
        ledger.save_checkpoint(state.progress, state.checkpoint_id)
        fault_point("checkpoint-saved")
        run.sizer.record(len(raws), sum(len(raw.raw) for raw in raws), time.monotonic() - started)
        publish(ProgressEvent(step.label, state.done, max(state.total, state.done), state.changed, state.elapsed_s))
    return False


def write_batch(coll: Collection, ops: list[UpdateOne], ids: list, step: Step):
    """The batch's guarded updates; a document the server refuses to store fails the step plainly (not retried)."""
    try:
        return coll.bulk_write(ops, ordered=False)
    except BulkWriteError as exc:
        refused = exc.details.get("writeErrors", [])
        if not refused:
            raise
        raise DatabaseError(f"the server refused {len(refused)} document(s) written by migration {step.version} "
                            f"{step.direction}, first _id={ids[refused[0]['index']]!r}: {refused[0].get('errmsg')}") from exc
