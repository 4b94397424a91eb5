"""Migrating a step's documents batch by batch: pre-images saved, guarded updates written, checkpoint saved."""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
import bson
from bson.raw_bson import RawBSONDocument
from pymongo import UpdateOne
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import AutoReconnect, BulkWriteError, NetworkTimeout

from .. import dump, storage
from ..errors import ConnectionClosedAfterWrite, DatabaseError, TransformError
from ..transform import update_for
from .backups import change_record, save_by_id
from .cursor import BatchCursor
from .faults import fault_point
from .guards import as_read_filter
from .key_order import Whole, replace_whole, whole_if_reordered
from .probe import first_refusal, server_answers
from .quarantine import quarantine
from .runs import StepRun
from .steps import Step, transform_one
from .verify import sample_every, validate_written, validates


def migrate_batches(run: StepRun, cursor: BatchCursor, max_batches: int) -> bool:
    """Up to `max_batches` batches: pre-images saved, guarded updates written, checkpoint saved after each.

    Returns whether the step has no documents left to do; the counts are in `run.state`. At the options' deadline
    (a maintenance window's end) it stops before the next batch, so the run can pause at its checkpoint. The run's
    sizer chooses each batch's size; its throttle waits between batches.
    """
    db, step, state = run.db, run.step, run.state
    coll, backup, changes = db[step.collection], storage.pre_images(db, state.run_id), storage.changes(db, state.run_id)
    for i in range(max_batches):
        if not run.ready(first=not (i or state.batches)):
            return False
        started = time.monotonic()
        raws = cursor.next_batch(run.sizer.next())
        if not raws:
            return True
        batch = prepare_batch(run, raws)
        with refusals_named(db, step, batch.values):
            save_by_id(backup, raws)
            if state.dump:
                dump.append(Path(state.dump), raws)
            save_by_id(changes, batch.written)
            fault_point("pre-images-saved")
            if batch.ops:
                result = write_batch(coll, batch.ops, [c["_id"] for c in batch.written], step)
                state.matched += result.matched_count
                state.changed += result.modified_count
            matched, changed = replace_whole(coll, step.selector, batch.whole, step.to_version)
            state.matched, state.changed = state.matched + matched, state.changed + changed
        fault_point("batch-written")
        if state.validated is not None:
            state.validated += batch.validated
        state.done += len(raws)
        run.sizer.record(len(raws), sum(len(raw.raw) for raw in raws), time.monotonic() - started)
        run.checkpoint(cursor.last_id)
    return False


@dataclass
class Batch:
    """What a batch will write: guarded updates, documents replaced whole to get their pre-image's key order back
    (docshift.engine.key_order), the change records they make, the values they set (to name one the server refuses),
    and how many documents were checked against the target model."""

    ops: list[UpdateOne] = field(default_factory=list)
    whole: list[Whole] = field(default_factory=list)
    written: list[dict] = field(default_factory=list)
    values: list[dict] = field(default_factory=list)
    validated: int = 0


def prepare_batch(run: StepRun, raws: list[RawBSONDocument]) -> Batch:
    """The batch's guarded updates and change records; a document whose function raises is quarantined, one the
    target model refuses fails the run (VerificationFailed) before anything of the batch is written.

    Each document is decoded twice from the bytes read, once as read (for the diff and the guard) and once for the
    migration function to change, instead of deep-copying it."""
    step, state, migration = run.step, run.state, run.migration
    validate, every = validates(migration, step), sample_every(migration)
    docs = [bson.decode(raw.raw) for raw in raws]
    if run.lookup:
        run.lookup.new_batch(docs)  # one cache per batch, prefetched
    batch = Batch()
    for position, (raw, doc) in enumerate(zip(raws, docs), start=state.done):
        if doc["_id"] in state.quarantined:
            continue  # a sweep met it again
        pre_image = run.pre_images.get(doc["_id"]) if run.pre_images else None
        try:
            new = transform_one(migration, step, doc, pre_image, run.lookup, private=bson.decode(raw.raw))
            update = update_for(doc, new, step.to_version)
        except TransformError as exc:
            quarantine(run.db, step, state, doc["_id"], exc, run.options.max_failures)
            continue
        if validate and update and not position % every:
            validate_written(migration, step, new)
            batch.validated += 1
        if not update:
            continue
        if pre_image is not None and (whole := whole_if_reordered(doc, update, new, pre_image)):
            batch.whole.append(whole)
            batch.written.append(change_record(doc["_id"], whole.doc, {}))
        else:
            batch.ops.append(UpdateOne({"_id": doc["_id"], **step.selector, **as_read_filter(doc, update)}, update))
            batch.written.append(change_record(doc["_id"], doc, update))
        batch.values.append({"_id": doc["_id"], **update.get("$set", {})})
    return batch


def write_batch(coll: Collection, ops: list[UpdateOne], ids: list, step: Step):
    """The batch's guarded updates; a document the server refuses to store fails the step plainly (not retried)."""
    try:
        return coll.bulk_write(ops, ordered=False)
    except KeyError as exc:  # FerretDB 1.24 leaves `nModified` out of its reply when it refuses a value
        raise DatabaseError(f"the server's reply to the updates of migration {step.version} {step.direction} has no "
                            f"count of the documents changed (first _id={ids[0]!r})") from exc
    except BulkWriteError as exc:
        refused = exc.details.get("writeErrors", [])
        if not refused:
            raise
        raise DatabaseError(f"the server refused {len(refused)} document(s) written by migration {step.version} "
                            f"{step.direction}, first _id={ids[refused[0]['index']]!r}: {refused[0].get('errmsg')}") from exc


@contextmanager
def refusals_named(db: Database, step: Step, values: list[dict]) -> Iterator[None]:
    """Name what the server refuses of a batch's new values, and fail the step plainly with it, without retries.

    A write error (FerretDB 1.24: a nested array, a key with a dot or `$`; or a reply without `nModified`, as it
    answers an update that stores such a value) names the document it failed on; a connection closed while the batch
    is written, by a server that still answers, is taken for a value it cannot store (FerretDB panics on a
    Decimal128). Either way each new value is tried alone on a scratch
    collection (engine.probe) to name it. A server that does not answer is down: that error stays one that is
    retried; a closed connection with no value refused is retried once (ConnectionClosedAfterWrite)."""
    try:
        yield
    except (AutoReconnect, DatabaseError) as exc:
        if isinstance(exc, DatabaseError) and not isinstance(exc.__cause__, (BulkWriteError, KeyError)):
            raise
        if isinstance(exc, AutoReconnect) and (isinstance(exc, NetworkTimeout) or not server_answers(db)):
            raise
        doc_id, refused = first_refusal(db, values)
        if refused is None and isinstance(exc, DatabaseError):
            raise
        if refused is None:
            raise ConnectionClosedAfterWrite(
                f"the server closed the connection when migration {step.version} {step.direction} wrote a batch "
                f"(first _id={values[0]['_id'] if values else None!r}), but answers, and stored each of its values "
                f"when tried alone") from exc
        raise DatabaseError(f"the server refused to store what migration {step.version} {step.direction} wrote to "
                            f"document _id={doc_id!r}: {refused}") from exc
