"""Migrating a step's documents batch by batch: pre-images saved, guarded updates written, checkpoint saved."""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import bson
from pymongo import UpdateOne
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import AutoReconnect, BulkWriteError, NetworkTimeout

from .. import dump, storage
from ..errors import ConnectionClosedAfterWrite, DatabaseError, TransformError
from ..ledger import Ledger, now
from ..progress import ProgressEvent, publish
from ..stop import check_stop
from ..transform import update_for
from .backups import change_record, save_by_id
from .cursor import BatchCursor
from .faults import fault_point
from .guards import as_read_filter
from .probe import first_refusal, server_answers
from .quarantine import quarantine
from .runs import StepRun
from .steps import Step, transform_one


def migrate_batches(run: StepRun, cursor: BatchCursor, max_batches: int) -> bool:
    """Up to `max_batches` batches: pre-images saved, guarded updates written, checkpoint saved after each.

    Returns whether the step has no documents left to do; the counts are in `run.state`. At the options' deadline
    (a maintenance window's end) it stops before the next batch, so the run can pause at its checkpoint; asked to stop
    (a signal, see docshift.stop) it raises Interrupted there. The run's sizer chooses each batch's size; its
    throttle waits between batches.
    """
    db, step, state, deadline = run.db, run.step, run.state, run.options.deadline
    coll, backup, changes, ledger = db[step.collection], storage.pre_images(db, state.run_id), storage.changes(db, state.run_id), Ledger(db)
    for i in range(max_batches):
        if i or state.batches:
            run.throttle.wait(deadline)
        if run.lock:
            run.lock.check()
        check_stop(f"at {state.done:,} of {state.total:,} documents ({step.label})",
                   f"docshift phase {step.phase} {step.version}" if step.phase else "docshift migrate")
        if deadline and now() >= deadline:
            return False
        started = time.monotonic()
        raws = cursor.next_batch(run.sizer.next())
        if not raws:
            return True
        ops, written, docs = [], [], [bson.decode(raw.raw) for raw in raws]
        if run.lookup:
            run.lookup.new_batch(docs)  # one cache per batch, prefetched
        for doc in docs:
            if doc["_id"] in state.quarantined:
                continue  # a sweep met it again
            pre_image = run.pre_images.get(doc["_id"]) if run.pre_images else None
            try:
                update = update_for(doc, transform_one(run.migration, step, doc, pre_image, run.lookup), step.to_version)
            except TransformError as exc:
                quarantine(db, step, state, doc["_id"], exc, run.options.max_failures)
                continue
            if update:
                ops.append(UpdateOne({"_id": doc["_id"], **step.selector, **as_read_filter(doc, update)}, update))
                written.append(change_record(doc["_id"], update))
        with refusals_named(db, step, written):
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


@contextmanager
def refusals_named(db: Database, step: Step, written: list[dict]) -> Iterator[None]:
    """Name what the server refuses of a batch's new values, and fail the step plainly with it, without retries.

    A write error (FerretDB 1.24: a nested array, a key with a dot or `$`) names the change record or the document
    it failed on; a connection closed while the batch is written, by a server that still answers, is taken for a
    value it cannot store (FerretDB panics on a Decimal128). Either way each new value is tried alone on a scratch
    collection (engine.probe) to name it. A server that does not answer is down: that error stays one that is
    retried; a closed connection with no value refused is retried once (ConnectionClosedAfterWrite)."""
    try:
        yield
    except (AutoReconnect, DatabaseError) as exc:
        if isinstance(exc, DatabaseError) and not isinstance(exc.__cause__, BulkWriteError):
            raise
        if isinstance(exc, AutoReconnect) and (isinstance(exc, NetworkTimeout) or not server_answers(db)):
            raise
        doc_id, refused = first_refusal(db, ({"_id": c["_id"], **{p["k"]: p["v"] for p in c["set"]}} for c in written))
        if refused is None and isinstance(exc, DatabaseError):
            raise
        if refused is None:
            raise ConnectionClosedAfterWrite(
                f"the server closed the connection when migration {step.version} {step.direction} wrote a batch "
                f"(first _id={written[0]['_id'] if written else None!r}), but answers, and stored each of its values "
                f"when tried alone") from exc
        raise DatabaseError(f"the server refused to store what migration {step.version} {step.direction} wrote to "
                            f"document _id={doc_id!r}: {refused}") from exc
