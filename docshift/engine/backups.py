"""A run's backup: pre-images and change records in the database, the same pre-images in a mongodump-format file,
and the catalog of those files; restoring a file exactly; reading pre-images back for a `down`."""

import hashlib
import itertools
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import bson
from pymongo import ReplaceOne
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import BulkWriteError, CollectionInvalid, PyMongoError

from .. import dump, storage
from ..errors import BackupError, DatabaseError, TargetError
from ..ledger import Ledger, now
from ..spec import INITIAL_VERSION
from ..transform import VERSION_FIELD
from .faults import fault_point
from .steps import Step


def open_backup(db: Database, step: Step, state, backup_dir: Path, gzipped: bool = False) -> str:
    """Create the run's backup (collection and mongodump-format file) before any document changes, so that a run
    that cannot back up never starts.

    Each batch then writes its documents' pre-images into both just before it updates them (save_by_id,
    dump.append), and what it wrote into the run's change records.
    """
    name = storage.backup_name(state.run_id)
    if name not in db.list_collection_names(filter={"name": name}):
        try:
            db.create_collection(name)
        except CollectionInvalid:
            pass  # created meanwhile: a resumed run's backup
        except PyMongoError as exc:
            raise DatabaseError(f"cannot create backup collection {name}, so nothing was changed: {exc}") from exc
    path = Path(state.dump) if state.dump else dump.dump_path(backup_dir, state.run_id, db.name, step.collection, gzipped)
    dump.open_dump(path, db[step.collection])
    fault_point("backup")
    if state.dump is None:
        state.dump = str(path)
        Ledger(db).save_checkpoint({"dump": state.dump})
        catalog_backup(db, state.run_id, step, step.collection, path)
    return name


def catalog_backup(db: Database, run_id: str, step: Step, collection: str, path: Path, **fields) -> None:
    """The run's entry in the catalog of backup files (`docshift backups`): which collection, where the file is."""
    db[storage.BACKUPS].replace_one({"_id": run_id}, {
        "run_id": run_id, "version": step.version, "direction": step.direction, "database": db.name,
        "collection": collection, "path": str(path), "created": now(), **fields}, upsert=True)


def check_backup_room(db: Database, steps: list[Step], backup_dir: Path) -> None:
    """Refuse a run whose backup files could not be written, before it takes the lock or changes a document: the
    backup folder must take a file and have room for every step's pre-images (at most its collection's data size)."""
    if not steps:
        return
    backup_dir = Path(backup_dir)
    try:
        backup_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=backup_dir):
            pass
        free = shutil.disk_usage(backup_dir).free
    except OSError as exc:
        raise BackupError(f"backup folder {backup_dir} is not writable ({exc.strerror or exc}), so nothing was changed; "
                          f"fix it or set DOCSHIFT_BACKUP_DIR") from exc
    needed = sum(db.command("collStats", s.collection).get("size", 0) for s in steps)
    if needed > free:
        raise BackupError(f"backup folder {backup_dir} has {free:,} bytes free but the pre-images of this run may need "
                          f"{needed:,}, so nothing was changed; free some space or set DOCSHIFT_BACKUP_DIR")


def seal_backup(db: Database, run_id: str) -> dict | None:
    """Record the finished backup file's documents, bytes and sha256, so that a restore can check it first."""
    entry = db[storage.BACKUPS].find_one({"_id": run_id})
    if entry is None or not Path(entry["path"]).exists():
        return None
    documents, size, sha256 = dump.digest(Path(entry["path"]))
    fields = {"documents": documents, "bytes": size, "sha256": sha256, "sealed": now()}
    db[storage.BACKUPS].update_one({"_id": run_id}, {"$set": fields})
    return {**entry, **fields}


def backup_catalog(db: Database) -> list[dict]:
    """Every run's backup file entry, oldest first."""
    return list(db[storage.BACKUPS].find().sort("created", 1))


def checked_backup(db: Database, backup_id: str) -> dict:
    """A sealed backup's catalog entry, after checking that its file is there and matches its recorded sha256."""
    entry = db[storage.BACKUPS].find_one({"_id": backup_id})
    if entry is None:
        raise TargetError(f"no backup {backup_id!r} (see `docshift backups`)")
    path = Path(entry["path"])
    if "sha256" not in entry:
        raise BackupError(f"backup {backup_id} is not complete: its run has not finished or been rolled back")
    if not path.exists():
        raise BackupError(f"backup file {path} is missing")
    sha256 = dump.file_sha256(path)
    if sha256 != entry["sha256"]:
        raise BackupError(f"backup file {path} does not match its recorded sha256 (recorded {entry['sha256'][:16]}…, "
                          f"file {sha256[:16]}…): it was changed or damaged; nothing was restored")
    return entry


def backup_versions(entry: dict) -> dict[int, int]:
    """How many documents of a backup file are at each schema version (a document without one at 1)."""
    versions: dict[int, int] = {}
    for raw in dump.read(Path(entry["path"])):
        version = raw.get(VERSION_FIELD) or INITIAL_VERSION
        versions[version] = versions.get(version, 0) + 1
    return versions


def put_back(db: Database, entry: dict, batch_size: int = 1000) -> int:
    """Replace (by `_id`, inserting where gone) the collection's documents with the exact ones of a checked backup."""
    coll, restored = db[entry["collection"]], 0
    docs = dump.read(Path(entry["path"]))
    while batch := list(itertools.islice(docs, batch_size)):
        coll.bulk_write([ReplaceOne({"_id": raw["_id"]}, raw, upsert=True) for raw in batch], ordered=True)
        restored += len(batch)
    return restored


def save_by_id(coll: Collection, docs: list) -> None:
    """Insert documents keyed by `_id` (pre-images, change records); a redone batch replaces its earlier ones."""
    try:
        coll.insert_many(docs, ordered=False)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if refused := [e for e in errors if e.get("code") != 11000]:
            raise DatabaseError(f"the server refused to store {len(refused)} document(s) in {coll.name}, first "
                                f"_id={docs[refused[0]['index']]['_id']!r}: {refused[0].get('errmsg')}") from exc
        if not errors:
            raise
        coll.bulk_write([ReplaceOne({"_id": docs[e["index"]]["_id"]}, docs[e["index"]], upsert=True) for e in errors], ordered=False)


def change_record(doc_id: Any, read: Mapping, update: Mapping) -> dict:
    """What a run left in one document, kept so that rollback can tell whether anyone wrote after it: a digest of the
    document as the update leaves the one read, not its values (a third of a document's bytes sent per document)."""
    post = {k: v for k, v in read.items() if k not in update.get("$unset", {})}
    post.update(update.get("$set", {}))
    return {"_id": doc_id, "left": document_digest(post)}


def document_digest(doc: Mapping) -> bytes:
    """Equal for two documents exactly when guards.same_document says they are the same: the same fields, in any
    order, with the same values and types."""
    return hashlib.blake2b(bson.encode(dict(sorted(doc.items()))), digest_size=16).digest()


class BackupReader:
    """Documents of a run's backup (pre-images or change records), streamed in `_id` order beside the documents they belong to."""

    def __init__(self, backup: Collection):
        self.backup = backup
        self._rewind()

    def _rewind(self) -> None:
        self._docs = iter(self.backup.find().sort("_id", 1).batch_size(1000))
        self._next = next(self._docs, None)
        self._last_key: tuple | None = None

    def get(self, doc_id: Any) -> dict | None:
        key = bson_order(doc_id)
        if self._last_key is not None and key < self._last_key:
            self._rewind()  # a retried batch or a sweep went back: read the stream again
        self._last_key = key
        while self._next is not None and bson_order(self._next["_id"]) < key:
            self._next = next(self._docs, None)
        if self._next is not None and bson_order(self._next["_id"]) == key:
            return self._next
        return None


class ChangeReader(BackupReader):
    """A run's change records in `_id` order, read as the digest of what the run left in each document: stored as
    one (change_record), or computed from the update's values that older runs stored (`set` as a document or as
    `{k, v}` pairs, and `unset`)."""

    def left(self, pre_image: Mapping) -> bytes | None:
        """The digest of the document as the run left it, or None if the run did not write it."""
        change = self.get(pre_image["_id"])
        if change is None or "left" in change:
            return change and change["left"]
        values = change["set"].items() if isinstance(change["set"], Mapping) else ((p["k"], p["v"]) for p in change["set"])
        post = {k: v for k, v in pre_image.items() if k not in change["unset"]}
        post.update(values)
        return document_digest(post)


class PreImages:
    """Each document's pre-image from the newest of several runs' backups that holds it: a migration's documents may
    have been changed by its first run, by retries of its quarantined documents, or across windows and resumes."""

    def __init__(self, db: Database, run_ids: Iterable[str]):
        run_ids = list(run_ids)
        names = set(db.list_collection_names())
        if missing := [r for r in run_ids if storage.backup_name(r) not in names]:
            raise BackupError(f"the backup of run(s) {', '.join(missing)} is missing, so their pre-images cannot be given "
                              f"back; nothing was changed")
        self.readers = [BackupReader(storage.pre_images(db, r)) for r in reversed(run_ids)]

    def get(self, doc_id: Any) -> dict | None:
        for reader in self.readers:
            if (pre_image := reader.get(doc_id)) is not None:
                return pre_image
        return None


_TYPE_RANK = {type(None): 1, int: 2, float: 2, bson.int64.Int64: 2, str: 3, dict: 4, list: 5, bytes: 6, bson.Binary: 6,
              bson.ObjectId: 7, bool: 8}


def bson_order(value: Any) -> tuple:
    """A sort key that orders `_id` values the way the server sorts them (type bracket, then value)."""
    rank = _TYPE_RANK.get(type(value), 9)
    if rank in (4, 5, 6):
        return (rank, bson.encode({"": value}))
    if rank == 7:
        return (rank, value.binary)
    if rank == 9:
        return (rank, str(value))
    return (rank, value)
