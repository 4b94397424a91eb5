"""Deleting documents as a versioned step (docshift.DeleteDocuments): each batch of matching documents is kept in the
run's backup collection (their exact bytes) before it is deleted, then the backup is written to the run's
mongodump-format file; `down` and a rollback insert the kept documents back, byte for byte.

A document is deleted only while it is as it was read and kept (a filter on every field it had): one the application
changed in between stays, and is read again by the cursor's sweep while it still matches. Putting back never
overwrites: a kept document whose `_id` exists again (it was not deleted, or the application wrote one since) is left
as it is now, and counted.
"""


import bson
from bson.raw_bson import RawBSONDocument
from pymongo import DeleteOne, InsertOne
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import BulkWriteError

from .. import storage
from ..dump import RAW
from ..errors import DatabaseError
from .backups import save_by_id
from .cursor import BatchCursor
from .faults import fault_point
from .guards import field_filter
from .passes import batch_by_batch
from .step_run import StepRun


DUPLICATE_KEY = 11000


def delete_documents(run: StepRun, record: dict) -> dict:
    """Keep, then delete, the documents matching the record's filter, batch by batch in `_id` order with a checkpoint
    after each; returns the counts for the journal."""
    db, state = run.db, run.state
    coll, kept = db[record["collection"]], db[record["kept_as"]]

    def write(raws: list[RawBSONDocument]) -> int:
        save_by_id(kept, raws)
        fault_point("pre-images-saved")
        result = coll.bulk_write([DeleteOne({"_id": raw["_id"], **field_filter(bson.decode(raw.raw))}) for raw in raws],
                                 ordered=False)
        fault_point("batch-written")
        return result.deleted_count

    batch_by_batch(run, BatchCursor(coll, record.get("filter", {}), state.last_id, state.started), write)
    return {"read": state.done, "deleted": state.changed}


def insert_kept(db: Database, kept: str, collection: str) -> tuple[int, int]:
    """Insert the kept documents back with their exact bytes; (put back, left as they are because their `_id` exists)."""
    coll, restored, existing = db[collection], 0, 0
    for batch in batches(db[kept]):
        try:
            restored += coll.bulk_write([InsertOne(raw) for raw in batch], ordered=False).inserted_count
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if refused := [e for e in errors if e.get("code") != DUPLICATE_KEY]:
                raise DatabaseError(f"the server refused to put back {len(refused)} deleted document(s) into "
                                    f"{collection}, first: {refused[0].get('errmsg')}") from exc
            restored += exc.details.get("nInserted", len(batch) - len(errors))
            existing += len(errors)
        fault_point("rollback-batch")
    return restored, existing


def delete_put_back(db: Database, kept: str, collection: str) -> int:
    """Delete again the kept documents that are still exactly as they were put back (undoing a `down`)."""
    deleted = 0
    for batch in batches(db[kept]):
        ops = [DeleteOne({"_id": raw["_id"], **field_filter(bson.decode(raw.raw))}) for raw in batch]
        deleted += db[collection].bulk_write(ops, ordered=False).deleted_count
    return deleted


def batches(coll: Collection, size: int = 1000):
    """A collection's documents as raw BSON, in `_id` order, a list at a time."""
    docs: list[RawBSONDocument] = []
    for raw in coll.with_options(codec_options=RAW).find().sort("_id", 1).batch_size(size):
        docs.append(raw)
        if len(docs) == size:
            yield docs
            docs = []
    if docs:
        yield docs


def kept_for(run_id: str) -> str:
    """Where a run keeps the documents it deletes: its backup collection of pre-images."""
    return storage.backup_name(run_id)
