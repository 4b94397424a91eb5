"""The runtime of one migration step on a database: plan, back up, migrate in batches, verify, roll back.

Plain pymongo, no Prefect: the Prefect tasks in tasks/ wrap these functions with retries and artifacts.
Every write is guarded by `schema_version`, so redoing a batch after a crash changes nothing twice, and by the
document as read, so that an application's write in between is never overwritten.
"""

import functools
import itertools
import os
import shutil
import signal
import tempfile
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Iterator
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import bson
from bson.raw_bson import RawBSONDocument
from pydantic import ValidationError
from pymongo import ReplaceOne, UpdateOne
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import BulkWriteError, CollectionInvalid, OperationFailure, PyMongoError

from . import dump
from .dump import RAW
from .errors import (BackupError, ChangedMigrationError, DatabaseError, MigrationFileError, PhaseError,
                     RollbackPendingError, TargetError, TransformError)
from .ledger import CHECKPOINT, Ledger, LeaseLock, as_utc, now
from .loader import ScriptDirectory
from .pacing import BatchSizer, Throttle
from .progress import ProgressEvent, publish
from .settings import get_settings
from .spec import INITIAL_VERSION, Migration
from .transform import apply, update_for, version_filter, versions_filter

BACKUP_PREFIX = "_docshift_backup."
QUARANTINE = "_quarantine"
CHANGES = ".changes"
BACKUPS = "_backups"
SWEEPS = 3
"""Extra passes after the `_id` cursor ends, for documents written behind it while it ran."""
_fault_hits: Counter = Counter()


@functools.cache
def _fault() -> str | None:
    """DOCSHIFT_FAULT, read once per process (the fault suite sets it for a whole `docshift` process)."""
    return get_settings().fault


def fault_point(name: str) -> None:
    """Exists for the fault suite (tests/integration/test_faults.py): with DOCSHIFT_FAULT=`name`:N, the N-th pass
    through this point kills the process with SIGKILL, as `kill -9` would, at an exact place. Off by default."""
    fault = _fault()
    if fault is None or fault.rpartition(":")[0] != name:
        return
    _fault_hits[name] += 1
    if _fault_hits[name] == int(fault.rpartition(":")[2]):
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass(frozen=True)
class Step:
    """Applying (`up`) or reverting (`down`) one migration; moves documents from one schema version to another."""

    version: int
    direction: str
    collection: str
    from_version: int
    to_version: int
    ledger_before: int
    ledger_after: int
    phase: str | None = None
    removes: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        action = self.phase or ("apply" if self.direction == "up" else "revert")
        return f"{action} {self.version} on {self.collection}"

    @property
    def selector(self) -> dict:
        """The documents this step still has to change; every write is guarded by it, so redoing one changes nothing."""
        if self.phase == "cleanup":
            return {**version_filter(self.to_version), "$or": [{name: {"$exists": True}} for name in self.removes]}
        return version_filter(self.from_version)


def make_step(scripts: ScriptDirectory, version: int, direction: str, phase: str | None = None) -> Step:
    """The step of `version` in `direction`; a `phase` of an expand-contract change (backfill, cleanup) is an `up`."""
    migration = scripts.get(version).migration
    before = scripts.collection_predecessor(version)
    if phase == "cleanup":
        return Step(version, direction, migration.collection, version, version, version, version, phase,
                    migration.expand_contract.removes)
    if direction == "up":
        return Step(version, "up", migration.collection, before, version, scripts.global_predecessor(version), version, phase)
    return Step(version, "down", migration.collection, version, before, version, scripts.global_predecessor(version), phase)


def plan_steps(scripts: ScriptDirectory, current: int, target: int, checkpoint: dict | None,
               retry_from: dict[str, int] | None = None) -> list[Step]:
    """The steps from `current` to `target`: ups ascending or downs descending, as in the original runner.

    An interrupted step (a checkpoint) is resumed when the path contains it; when the path goes the
    other way, the partial step is undone first so that no document is left half-way. Going up, quarantined
    documents (`retry_from`: collection -> lowest migration they failed) are first carried up to `current` again.
    """
    if checkpoint and checkpoint.get("rolling_back"):
        raise RollbackPendingError(
            f"run {checkpoint['run_id']} is being rolled back; finish it first: docshift rollback --run {checkpoint['run_id']}")
    if checkpoint and checkpoint.get("phase"):
        raise PhaseError(
            f"the {checkpoint['phase']} phase of migration {checkpoint['version']} is unfinished (run {checkpoint['run_id']}, "
            f"{checkpoint.get('done', 0):,} of {checkpoint.get('total', 0):,} documents): run that phase again to continue it, "
            f"or `docshift rollback --run {checkpoint['run_id']}`")
    if target >= current:
        steps = [make_step(scripts, v, "up") for v in scripts.versions if current < v <= target]
    else:
        steps = [make_step(scripts, v, "down") for v in reversed(scripts.versions) if target < v <= current]
    if target >= current and retry_from:
        retries = [replace(make_step(scripts, v, "up"), ledger_before=current, ledger_after=current)
                   for v in scripts.versions
                   if v <= current and retry_from.get(scripts.get(v).migration.collection, v + 1) <= v]
        steps = retries + steps
    if checkpoint and checkpoint["version"] in scripts.scripts:
        pending = (checkpoint["version"], checkpoint["direction"])
        if pending not in {(s.version, s.direction) for s in steps}:
            opposite = "down" if pending[1] == "up" else "up"
            steps.insert(0, make_step(scripts, pending[0], opposite))
    return steps


def check_checksums(scripts: ScriptDirectory, ledger: Ledger, current: int, allow_changed: bool) -> None:
    """Refuse to run while an applied migration's file differs from what was applied (unless allowed)."""
    changed = [
        f"{scripts.get(v).path.name} (applied as {checksum[:12]}, now {scripts.get(v).checksum[:12]})"
        for v, checksum in ledger.applied_checksums(current).items()
        if v in scripts.scripts and scripts.get(v).checksum != checksum
    ]
    if changed and not allow_changed:
        raise ChangedMigrationError(
            "applied migration files were edited since they ran: " + ", ".join(changed)
            + "; restore them, or pass --allow-changed if the edit is intended"
        )


def migrated_versions(steps: list[Step], index: int) -> list[int]:
    """Schema versions whose documents step `index` will handle: its own source and those earlier steps feed it."""
    step = steps[index]
    return sorted({s.from_version for s in steps[: index + 1] if s.collection == step.collection})


def count_plan(db: Database, steps: list[Step]) -> list[int]:
    """How many documents each step will touch, counted on the data as it is now."""
    return [db[s.collection].count_documents(versions_filter(migrated_versions(steps, i))) for i, s in enumerate(steps)]


def sample_plan(db: Database, scripts: ScriptDirectory, steps: list[Step], size: int = 2) -> list[list[tuple[dict, dict]]]:
    """Before/after pairs per step from real documents run through the real functions in memory; writes nothing.

    A function that returns something unusable (not a document, `_id` dropped, a field name with a dot) is refused
    here, naming its file; one that raises on a document raises its TransformError (a run quarantines it)."""
    samples = []
    for i, step in enumerate(steps):
        pairs = []
        chain = [s for s in steps[: i + 1] if s.collection == step.collection]
        for doc in db[step.collection].find(versions_filter(migrated_versions(steps, i))).limit(size):
            version = doc.get("schema_version") or INITIAL_VERSION
            for s in chain:
                if s.from_version == version:
                    try:
                        after = transform_one(scripts.get(s.version).migration, s, doc, None)
                    except TransformError as exc:
                        if exc.__cause__ is None:  # no exception inside the function: what it returned is unusable
                            raise MigrationFileError(scripts.get(s.version).path, str(exc)) from None
                        raise
                    if s is step:
                        pairs.append((doc, after))
                    doc, version = after, s.to_version
        samples.append(pairs)
    return samples


def step_function(migration: Migration, step: Step) -> tuple[Callable, bool]:
    """The function `step` applies to each document, and whether it takes the pre-image as well."""
    if step.phase == "cleanup":
        if step.direction == "up":
            return (lambda doc: {k: v for k, v in doc.items() if k not in step.removes}), False
        return (lambda doc, pre: {**doc, **{k: pre[k] for k in step.removes if pre and k in pre}}), True
    if step.direction == "up":
        return (migration.expand_contract.backfill if step.phase == "backfill" else migration.up), False
    return migration.down, migration.down_uses_pre_image


def transform_one(migration: Migration, step: Step, doc: dict, pre_image: dict | None) -> dict:
    """The document `step` turns `doc` into, with `schema_version` set (or removed at the initial version)."""
    fn, wants_pre_image = step_function(migration, step)
    label = f"migration {step.version} {step.phase or step.direction}" + (" (undo)" if step.phase and step.direction == "down" else "")
    new = apply(fn, doc, *((pre_image,) if wants_pre_image else ()), label=label)
    new.pop("schema_version", None)
    if step.to_version != INITIAL_VERSION:
        new["schema_version"] = step.to_version
    return new


@dataclass
class RunState:
    """A step's run as the checkpoint records it: enough for any process to resume it."""

    run_id: str
    version: int
    direction: str
    collection: str
    from_version: int
    to_version: int
    total: int
    count_before: int
    last_id: Any = None
    started: bool = False
    done: int = 0
    matched: int = 0
    changed: int = 0
    batches: int = 0
    resumed: int = 0
    quarantined: list = field(default_factory=list)
    dump: str | None = None
    started_at: Any = None
    flow_run_id: str | None = None
    phase: str | None = None
    partition: int | None = None
    partitioned: bool = False
    finished: bool = False

    @property
    def checkpoint_id(self) -> str:
        """Where this state's batches checkpoint: the run's own checkpoint, or its partition's."""
        return CHECKPOINT if self.partition is None else f"{CHECKPOINT}.{self.partition}"

    @property
    def backup(self) -> str:
        return BACKUP_PREFIX + self.run_id

    @property
    def elapsed_s(self) -> float:
        """Seconds since the run started (across resumes)."""
        return (now() - as_utc(self.started_at)).total_seconds()

    @property
    def rate(self) -> float:
        """Documents per second since the run started."""
        elapsed = self.elapsed_s
        return self.done / elapsed if elapsed > 0 else 0.0


def start_or_resume(db: Database, scripts: ScriptDirectory, step: Step, flow_run_id: str | None) -> RunState:
    """Resume the checkpointed run of this step, or record a new one (checkpoint, then history entry).

    Safe to retry after a database error at any point: the checkpoint names the run first, and a run whose history
    entry was never written is started again under the same id rather than counted as resumed.
    """
    ledger = Ledger(db)
    checkpoint = ledger.checkpoint()
    if checkpoint and (checkpoint["version"], checkpoint["direction"], checkpoint.get("phase")) == (step.version, step.direction, step.phase):
        state = RunState(**{k: checkpoint[k] for k in RunState.__dataclass_fields__ if k in checkpoint})
        if ledger.entry(state.run_id) is None:
            _record_start(db, scripts, step, state)
            return state
        state.resumed += 1
        ledger.update_entry(state.run_id, {"resumed": state.resumed, "outcome": "running"})
        ledger.save_checkpoint({"resumed": state.resumed})
        return state
    if checkpoint:  # the opposite step of an interrupted one: it ends that run
        ledger.update_entry(checkpoint["run_id"], {"outcome": "abandoned", "finished_at": now()})
    coll = db[step.collection]
    state = RunState(
        run_id=f"v{step.version}-{step.direction}-{uuid.uuid4().hex[:10]}",
        version=step.version, direction=step.direction, collection=step.collection,
        from_version=step.from_version, to_version=step.to_version,
        total=coll.count_documents(step.selector),
        count_before=collection_count(coll), started_at=now(), flow_run_id=flow_run_id, phase=step.phase,
    )
    ledger.save_checkpoint(asdict(state))
    _record_start(db, scripts, step, state)
    return state


def _record_start(db: Database, scripts: ScriptDirectory, step: Step, state: RunState) -> None:
    """The run's history entry (written once, whatever retries), and its step's old quarantine cleared for retrying."""
    script = scripts.get(step.version)
    Ledger(db).start_entry({
        "_id": state.run_id, "version": step.version, "direction": step.direction,
        "description": script.migration.description, "collection": step.collection, "checksum": script.checksum,
        "started_at": state.started_at, "finished_at": None, "outcome": "running", "matched": 0, "changed": 0,
        "flow_run_id": state.flow_run_id, "backup": state.backup, "resumed": 0, "phase": step.phase,
    })
    db[QUARANTINE].delete_many({"version": step.version, "direction": step.direction})  # retried by this run


class BatchCursor:
    """The step's documents (its selector) in `_id` order, from the checkpoint on; then bounded sweeps."""

    def __init__(self, coll: Collection, selector: dict, last_id: Any, started: bool):
        self.coll = coll.with_options(codec_options=RAW)
        self.selector = selector
        self.last_id, self.started = last_id, started
        self.sweeps_left = SWEEPS
        self._docs: Iterator | None = None

    def _open(self, bounded: bool) -> Iterator:
        query = dict(self.selector)
        if bounded and self.started:
            query["_id"] = {**query.get("_id", {}), "$gt": self.last_id}  # within a partition's range too
        return iter(self.coll.find(query).sort("_id", 1).batch_size(1000))

    def next_batch(self, size: int) -> list[RawBSONDocument]:
        """The next documents in `_id` order; once the cursor ends, sweeps from the start until one finds none."""
        if self._docs is None:
            self._docs = self._open(bounded=True)
        batch = list(itertools.islice(self._docs, size))
        while not batch and self.sweeps_left:
            self.sweeps_left -= 1
            self._docs = self._open(bounded=False)
            batch = list(itertools.islice(self._docs, size))
            if not batch:
                self.sweeps_left = 0
        if batch:
            self.last_id, self.started = batch[-1]["_id"], True
        return batch

    def reopen(self, last_id: Any, started: bool) -> None:
        """Start again after the checkpoint (after an error): the batch that failed is read again."""
        self.last_id, self.started = last_id, started
        self._docs = None


UNSUPPORTED = (OperationFailure, NotImplementedError)
"""What a server without an aggregation stage raises: OperationFailure (FerretDB, compatibles), NotImplementedError (mongomock)."""


def collection_count(coll: Collection) -> int:
    """The collection's document count as the server keeps it (`$collStats`, summed over shards): no scan.

    It is the fast count (as `estimatedDocumentCount`), which FerretDB keeps exactly; where a server has no
    `$collStats` (mongomock, some compatibles) the documents are counted.
    """
    try:
        return sum(shard["count"] for shard in coll.aggregate([{"$collStats": {"count": {}}}]))
    except UNSUPPORTED:
        return coll.count_documents({})


def partition_bounds(coll: Collection, selector: dict, partitions: int, total: int) -> tuple[list[Any], list[int]]:
    """`partitions - 1` `_id` values that split the step's `total` documents into ranges of about equal size, and
    about how many documents each range holds (for its progress; nothing is counted again).

    `$bucketAuto` where the server has it; else the `_id`s at the quantiles, read by skipping along the `_id` order.
    """
    try:
        buckets = list(coll.aggregate([{"$match": selector}, {"$bucketAuto": {"groupBy": "$_id", "buckets": partitions}}]))
        return [b["_id"]["max"] for b in buckets[:-1]], [b["count"] for b in buckets] or [total]
    except UNSUPPORTED:
        cuts = [total * i // partitions for i in range(1, partitions)]
        found = [(cut, doc["_id"]) for cut in cuts for doc in coll.find(selector, {"_id": 1}).sort("_id", 1).skip(cut).limit(1)]
        edges = [0, *(cut for cut, _ in found), total]
        return [bound for _, bound in found], [b - a for a, b in zip(edges, edges[1:])]


def partition_range(bounds: list[Any], index: int) -> dict:
    """The `_id` condition of partition `index`: from the bound before it (included) to the bound after it (excluded)."""
    condition = {}
    if index > 0:
        condition["$gte"] = bounds[index - 1]
    if index < len(bounds):
        condition["$lt"] = bounds[index]
    return {"_id": condition} if condition else {}


def start_partitions(db: Database, step: Step, state: RunState, partitions: int) -> list[tuple[RunState, dict]]:
    """The partitions of a run, each a state with its own checkpoint and its `_id` range's selector.

    Resumed from their checkpoints, or split anew (the bounds are kept with each partition). Documents outside every
    range (another `_id` type, or written behind a cursor) are left to the run's own cursor afterwards.
    """
    ledger = Ledger(db)
    saved = [p for p in ledger.partition_checkpoints() if p["run_id"] == state.run_id]
    if saved:
        return [(_partition_state(p), {**step.selector, **partition_range(p["bounds"], p["index"])}) for p in saved]
    coll = db[step.collection]
    bounds, sizes = partition_bounds(coll, step.selector, partitions, state.total)
    parts = []
    for index, size in enumerate(sizes):
        selector = {**step.selector, **partition_range(bounds, index)}
        part = replace(state, partition=index, last_id=None, started=False, done=0, matched=0, changed=0, batches=0,
                       resumed=0, quarantined=[], total=size)
        ledger.save_checkpoint({**asdict(part), "kind": "partition", "index": index, "bounds": bounds}, part.checkpoint_id)
        parts.append((part, selector))
    return parts


def resume_partition(db: Database, step: Step, run_id: str, index: int) -> tuple[RunState, dict]:
    """One partition's state and selector, read back from its checkpoint by whichever process runs it."""
    saved = Ledger(db).coll.find_one({"_id": f"{CHECKPOINT}.{index}", "run_id": run_id})
    if saved is None:
        raise DatabaseError(f"partition {index} of run {run_id} has no checkpoint")
    return _partition_state(saved), {**step.selector, **partition_range(saved["bounds"], index)}


def _partition_state(saved: dict) -> RunState:
    return RunState(**{k: saved[k] for k in RunState.__dataclass_fields__ if k in saved})


def merge_partitions(db: Database, state: RunState) -> None:
    """Add the finished partitions' counts to the run; its own cursor then sweeps the whole step once from the start."""
    summary = []
    for part in Ledger(db).partition_checkpoints():
        if part["run_id"] == state.run_id:
            summary.append({"index": part["index"], "documents": part["done"], "resumed": part["resumed"]})
            state.done += part["done"]
            state.matched += part["matched"]
            state.changed += part["changed"]
            state.batches += part["batches"]
            state.quarantined += part["quarantined"]
    Ledger(db).update_entry(state.run_id, {"partitions": summary})
    state.partitioned, state.last_id, state.started = True, None, False
    Ledger(db).save_checkpoint({k: getattr(state, k) for k in ("partitioned", "last_id", "started", "done", "matched",
                                                               "changed", "batches", "quarantined")})


def open_backup(db: Database, state: RunState, backup_dir: Path, gzipped: bool = False) -> str:
    """Create the run's backup (collection and mongodump-format file) before any document changes, so that a run
    that cannot back up never starts.

    Each batch then writes its documents' pre-images into both just before it updates them (save_by_id,
    dump.append), and what it wrote into `<backup>.changes`.
    """
    if state.backup not in db.list_collection_names(filter={"name": state.backup}):
        try:
            db.create_collection(state.backup)
        except CollectionInvalid:
            pass  # created meanwhile: a resumed run's backup
        except PyMongoError as exc:
            raise DatabaseError(f"cannot create backup collection {state.backup}, so nothing was changed: {exc}") from None
    path = Path(state.dump) if state.dump else dump.dump_path(backup_dir, state.run_id, db.name, state.collection, gzipped)
    dump.open_dump(path, db[state.collection])
    fault_point("backup")
    if state.dump is None:
        state.dump = str(path)
        Ledger(db).save_checkpoint({"dump": state.dump})
        db[BACKUPS].replace_one({"_id": state.run_id}, {
            "run_id": state.run_id, "version": state.version, "direction": state.direction, "database": db.name,
            "collection": state.collection, "path": state.dump, "created": now()}, upsert=True)
    return state.backup


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
                          f"fix it or set DOCSHIFT_BACKUP_DIR") from None
    needed = sum(db.command("collStats", s.collection).get("size", 0) for s in steps)
    if needed > free:
        raise BackupError(f"backup folder {backup_dir} has {free:,} bytes free but the pre-images of this run may need "
                          f"{needed:,}, so nothing was changed; free some space or set DOCSHIFT_BACKUP_DIR")


def seal_backup(db: Database, run_id: str) -> dict | None:
    """Record the finished backup file's documents, bytes and sha256, so that a restore can check it first."""
    entry = db[BACKUPS].find_one({"_id": run_id})
    if entry is None or not Path(entry["path"]).exists():
        return None
    documents, size, sha256 = dump.digest(Path(entry["path"]))
    fields = {"documents": documents, "bytes": size, "sha256": sha256, "sealed": now()}
    db[BACKUPS].update_one({"_id": run_id}, {"$set": fields})
    return {**entry, **fields}


def restore_backup(db: Database, backup_id: str, batch_size: int = 1000) -> int:
    """Put back exactly the documents of a backup file (matched by `_id`, replacing what is there), after checking its sha256."""
    entry = db[BACKUPS].find_one({"_id": backup_id})
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
    coll, restored = db[entry["collection"]], 0
    docs = dump.read(path)
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
                                f"_id={docs[refused[0]['index']]['_id']!r}: {refused[0].get('errmsg')}") from None
        if not errors:
            raise
        coll.bulk_write([ReplaceOne({"_id": docs[e["index"]]["_id"]}, docs[e["index"]], upsert=True) for e in errors], ordered=False)


def change_record(doc_id: Any, update: dict) -> dict:
    """What a run wrote to one document, kept so that rollback can tell whether anyone wrote after it."""
    fields_set = [{"k": k, "v": v} for k, v in update.get("$set", {}).items()]  # pairs: keys may hold dots; no nested arrays (FerretDB)
    return {"_id": doc_id, "set": fields_set, "unset": list(update.get("$unset", {}))}


def written_filter(pre_image: dict, change: dict) -> dict:
    """Matches the document only while it is exactly as the run left it (every field, no removed one back)."""
    post = {k: v for k, v in pre_image.items() if k not in change["unset"] and k != "_id"}
    post.update((pair["k"], pair["v"]) for pair in change["set"])
    return {**{k: {"$eq": v} for k, v in post.items()}, **{k: {"$exists": False} for k in change["unset"]}}


class BackupReader:
    """Documents of a run's backup (pre-images or change records), streamed in `_id` order beside the documents they belong to."""

    def __init__(self, backup: Collection):
        self.backup = backup
        self._open()

    def _open(self) -> None:
        self._docs = iter(self.backup.find().sort("_id", 1).batch_size(1000))
        self._next = next(self._docs, None)
        self._last_key: tuple | None = None

    def get(self, doc_id: Any) -> dict | None:
        key = bson_order(doc_id)
        if self._last_key is not None and key < self._last_key:
            self._open()  # a retried batch or a sweep went back: read the stream again
        self._last_key = key
        while self._next is not None and bson_order(self._next["_id"]) < key:
            self._next = next(self._docs, None)
        if self._next is not None and bson_order(self._next["_id"]) == key:
            return self._next
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


def migrate_chunk(db: Database, migration: Migration, step: Step, state: RunState, cursor: BatchCursor,
                  lock: LeaseLock | None, sizer: BatchSizer, max_batches: int,
                  pre_images: BackupReader | None = None, max_failures: int = 0, deadline: datetime | None = None,
                  throttle: Throttle | None = None) -> bool:
    """Up to `max_batches` batches: pre-images saved, guarded updates written, checkpoint saved after each.

    Returns whether the step has no documents left to do; the counts are in `state`. At `deadline` (a maintenance
    window's end) it stops before the next batch, so the run can pause at its checkpoint. `sizer` chooses each
    batch's size; `throttle` waits between batches.
    """
    coll, backup, ledger = db[step.collection], db[state.backup], Ledger(db)
    guard = step.selector
    for i in range(max_batches):
        if throttle and (i or state.batches):
            throttle.wait(deadline)
        if lock:
            lock.check()
        if deadline and now() >= deadline:
            return False
        started = time.monotonic()
        raws = cursor.next_batch(sizer.next())
        if not raws:
            return True
        ops, changes = [], []
        for raw in raws:
            doc = bson.decode(raw.raw)
            if doc["_id"] in state.quarantined:
                continue  # a sweep met it again
            pre_image = pre_images.get(doc["_id"]) if pre_images else None
            try:
                update = update_for(doc, transform_one(migration, step, doc, pre_image), step.to_version)
            except TransformError as exc:
                quarantine(db, step, state, doc["_id"], exc, max_failures)
                continue
            if update:
                ops.append(UpdateOne({"_id": doc["_id"], **guard, **as_read_filter(doc)}, update))
                changes.append(change_record(doc["_id"], update))
        save_by_id(backup, raws)
        if state.dump:
            dump.append(Path(state.dump), raws)
        save_by_id(db[state.backup + CHANGES], changes)
        fault_point("pre-images-saved")
        if ops:
            result = write_batch(coll, ops, [c["_id"] for c in changes], step)
            state.matched += result.matched_count
            state.changed += result.modified_count
        fault_point("batch-written")
        state.done += len(raws)
        state.batches += 1
        state.last_id, state.started = cursor.last_id, True
        ledger.save_checkpoint({k: getattr(state, k) for k in ("last_id", "started", "done", "matched", "changed", "batches", "quarantined")},
                               state.checkpoint_id)
        fault_point("checkpoint-saved")
        sizer.record(len(raws), sum(len(raw.raw) for raw in raws), time.monotonic() - started)
        publish(ProgressEvent(step.label, state.done, max(state.total, state.done), state.changed, state.elapsed_s))
    return False


def as_read_filter(doc: dict) -> dict:
    """Matches the document only while it is as the batch read it, so that an application's write in between is
    never overwritten: the update then matches nothing, and a sweep migrates the newer document."""
    return {k: {"$eq": v} for k, v in doc.items() if k != "_id"}


def write_batch(coll: Collection, ops: list[UpdateOne], ids: list, step: Step):
    """The batch's guarded updates; a document the server refuses to store fails the step plainly (not retried)."""
    try:
        return coll.bulk_write(ops, ordered=False)
    except BulkWriteError as exc:
        refused = exc.details.get("writeErrors", [])
        if not refused:
            raise
        raise DatabaseError(f"the server refused {len(refused)} document(s) written by migration {step.version} "
                            f"{step.direction}, first _id={ids[refused[0]['index']]!r}: {refused[0].get('errmsg')}") from None


def quarantine(db: Database, step: Step, state: RunState, doc_id: Any, exc: TransformError, max_failures: int) -> None:
    """Record a document whose function raised and leave it unchanged; over `max_failures` the run fails."""
    cause = exc.__cause__ or exc
    frames = traceback.extract_tb(cause.__traceback__)[-3:]
    db[QUARANTINE].replace_one(
        {"_id": f"{step.version}:{step.direction}:{bson.encode({'': doc_id}).hex()}"},
        {"collection": step.collection, "version": step.version, "direction": step.direction, "doc_id": doc_id,
         "run_id": state.run_id, "error": str(exc), "traceback": [f"{f.filename}:{f.lineno} in {f.name}" for f in frames],
         "at": now()},
        upsert=True,
    )
    state.quarantined.append(doc_id)
    if len(state.quarantined) > max_failures:
        raise TransformError(f"{len(state.quarantined)} document(s) failed, more than --max-failures {max_failures}; "
                             f"first: {exc}; see `docshift quarantine`")


def quarantined_versions(db: Database, current: int) -> dict[str, int]:
    """Per collection, the lowest applied migration with quarantined documents: `migrate` retries from there."""
    lowest: dict[str, int] = {}
    for entry in db[QUARANTINE].find({"direction": "up", "version": {"$lte": current}}):
        lowest[entry["collection"]] = min(lowest.get(entry["collection"], entry["version"]), entry["version"])
    return lowest


@dataclass
class Verification:
    checks: list[dict] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c["passed"] for c in self.checks)

    def add(self, name: str, expected: Any, found: Any, passed: bool) -> None:
        self.checks.append({"check": name, "expected": expected, "found": found, "passed": passed})

    def summary(self) -> str:
        return "; ".join(f"{c['check']}: expected {c['expected']}, found {c['found']}" for c in self.checks if not c["passed"])


def verify_step(db: Database, migration: Migration, step: Step, count_before: int | None,
                quarantined: int = 0) -> Verification:
    """Only quarantined documents left to do, no document gone, migrated documents valid for the target model."""
    coll = db[step.collection]
    result = Verification()
    left = coll.count_documents(step.selector)
    todo = f"documents still holding {', '.join(step.removes)}" if step.phase == "cleanup" else f"documents left at version {step.from_version}"
    result.add(todo + (" (quarantined)" if quarantined else ""), quarantined, left, left == quarantined)
    if count_before is not None:  # a run inserts and deletes nothing; the application may insert meanwhile
        total = collection_count(coll)
        result.add("document count", f"at least {count_before}", total, total >= count_before)
    fault_point("verify")
    if step.direction == "up" and migration.target_model is not None:
        every = round(1 / migration.verify_sample_rate)  # a declared rate: every n-th document in `_id` order
        invalid, checked = [], 0
        for i, doc in enumerate(coll.find(version_filter(step.to_version)).sort("_id", 1).batch_size(1000)):
            if i % every:
                continue
            checked += 1
            try:
                migration.target_model.model_validate(doc)
            except ValidationError as exc:
                invalid.append(f"_id={doc['_id']!r}: {exc.errors()[0]['loc']} {exc.errors()[0]['msg']}")
        scope = "all" if every == 1 else f"1 in {every}"
        result.add(f"documents valid as {migration.target_model.__name__} ({scope}: {checked:,} checked)", 0,
                   len(invalid) if not invalid else f"{len(invalid)} e.g. {invalid[0]}", not invalid)
    return result


def finish(db: Database, step: Step, state: RunState, verification: Verification) -> dict:
    """Record success: history entry, current version; the checkpoint goes."""
    ledger = Ledger(db)
    finished = now()
    fields = {
        "outcome": "applied" if step.direction == "up" else "reverted", "finished_at": finished,
        "matched": state.matched, "changed": state.changed, "documents": state.done, "quarantined": len(state.quarantined),
        "batches": state.batches, "duration_s": round(state.elapsed_s, 3), "docs_per_s": round(state.rate, 1),
        "verification": "passed" if verification.passed else verification.summary(),
    }
    ledger.update_entry(state.run_id, fields)
    fault_point("finish")
    ledger.set_current(step.ledger_after)
    if step.phase:
        ledger.complete_phase(step.version, step.phase, {"run_id": state.run_id, "verified": verification.passed})
    elif step.direction == "down":
        ledger.clear_phases(step.version)  # reverted: a later expand-contract change of it starts over
    ledger.clear_checkpoint()
    seal_backup(db, state.run_id)
    return {"run_id": state.run_id, "version": step.version, "direction": step.direction, "collection": step.collection,
            "backup": state.backup, **fields}


def rollback(db: Database, migration: Migration, step: Step, run_id: str, reason: str, counts: dict | None = None,
             rewind: bool = False, batch_size: int = 1000) -> dict:
    """Undo the run: each changed document gets its pre-image back if it is still exactly as the run left it
    (compare-and-swap on the whole document); one written since gets the opposite function applied instead,
    so that a rollback never erases a newer write.

    The checkpoint says `rolling_back` first, so that an interrupted rollback is finished by running it again
    rather than resumed forward. Idempotent: an undone document is no longer at the run's target version.
    With `rewind` (the run had finished), the current version goes back to what it was before the run.
    """
    ledger = Ledger(db)
    pending = ledger.checkpoint()
    if pending and pending["run_id"] == run_id and pending.get("rolling_back"):
        reason = pending["reason"]  # finishing an interrupted rollback: keep why it started
    ledger.save_checkpoint({"run_id": run_id, "version": step.version, "direction": step.direction,
                            "rolling_back": True, "reason": reason})
    coll, guard = db[step.collection], version_filter(step.to_version)
    undo = replace(step, direction="down" if step.direction == "up" else "up",
                   from_version=step.to_version, to_version=step.from_version)
    changes = BackupReader(db[BACKUP_PREFIX + run_id + CHANGES])
    undone = {"restored": 0, "undone_by_function": 0}
    docs = db[BACKUP_PREFIX + run_id].with_options(codec_options=RAW).find().sort("_id", 1).batch_size(batch_size)
    while batch := list(itertools.islice(docs, batch_size)):
        written = [(raw, bson.decode(raw.raw), change) for raw in batch if (change := changes.get(raw["_id"]))]
        if not written:
            continue
        result = coll.bulk_write([ReplaceOne({"_id": pre["_id"], **guard, **written_filter(pre, change)}, raw)
                                  for raw, pre, change in written], ordered=False)
        undone["restored"] += result.modified_count
        if result.matched_count < len(written):
            undone["undone_by_function"] += undo_newer_writes(coll, migration, undo, guard, written)
        fault_point("rollback-batch")
    entry = ledger.entry(run_id) or {}
    ledger.update_entry(run_id, {"outcome": "rolled_back", "finished_at": now(), "error": reason, **(counts or {}),
                                 **{k: entry.get(k, 0) + n for k, n in undone.items()}})
    if step.phase:
        ledger.reset_phase(step.version, step.phase)
    if rewind:
        ledger.set_current(step.ledger_before)
    ledger.clear_checkpoint()
    seal_backup(db, run_id)
    return undone


def undo_newer_writes(coll: Collection, migration: Migration, undo: Step, guard: dict, written: list) -> int:
    """Apply the opposite function to documents still at the run's version but written since the run."""
    count = 0
    for _, pre, _ in written:
        current = coll.find_one({"_id": pre["_id"], **guard})
        if current is None:
            continue  # restored (now or by an earlier attempt), or moved on to another version
        update = update_for(current, transform_one(migration, undo, current, pre), undo.to_version)
        if update and coll.update_one({"_id": pre["_id"], **guard}, update).modified_count:
            count += 1
    return count


def rollback_target(db: Database, scripts: ScriptDirectory, run_id: str) -> tuple[Step, bool]:
    """The step of a run that may be rolled back by hand, and whether it had finished (then the version rewinds too).

    Allowed: the unfinished run (crashed, failed, or half rolled back), or the latest finished run.
    """
    ledger = Ledger(db)
    entry = ledger.entry(run_id)
    if entry is None:
        raise TargetError(f"no run {run_id!r} in this database's history (see `docshift history`)")
    step = make_step(scripts, entry["version"], entry["direction"], entry.get("phase"))
    checkpoint = ledger.checkpoint()
    if checkpoint and checkpoint["run_id"] == run_id:
        return step, False
    if checkpoint:
        raise TargetError(f"run {checkpoint['run_id']} is unfinished; roll that one back (or finish it) first")
    finished = [e for e in ledger.history() if e["outcome"] in ("applied", "reverted")]
    if entry["outcome"] in ("applied", "reverted"):
        if finished[-1]["_id"] != run_id or ledger.current_version() != step.ledger_after:
            raise TargetError(f"run {run_id} is not the latest change to the database; "
                              f"migrate to version {step.ledger_before} instead")
        return step, True
    raise TargetError(f"run {run_id} is {entry['outcome']}: nothing to roll back")


def pause(db: Database, state: RunState) -> dict:
    """Record that the run stopped at a maintenance window's end; its checkpoint stays for the next window's run."""
    fields = {"outcome": "paused", "paused_at": now(), "documents": state.done, "total": state.total,
              "matched": state.matched, "changed": state.changed, "quarantined": len(state.quarantined),
              "duration_s": round(state.elapsed_s, 3), "docs_per_s": round(state.rate, 1),
              "verification": f"paused at {state.done:,} of {state.total:,}"}
    Ledger(db).update_entry(state.run_id, fields)
    return {"run_id": state.run_id, "version": state.version, "direction": state.direction, "collection": state.collection,
            "phase": state.phase, "backup": state.backup, "paused": True, **fields}


def fail(db: Database, state: RunState, reason: str) -> None:
    """Record a run that could not finish or roll back; its checkpoint stays so that a re-run resumes it."""
    Ledger(db).update_entry(state.run_id, {"outcome": "failed", "error": reason, "finished_at": now()})


def current_plan(db: Database, scripts: ScriptDirectory, target: int) -> tuple[int, list[Step]]:
    """The database's current version and the steps to `target` from there, as the ledger and quarantine stand."""
    ledger = Ledger(db)
    current = ledger.current_version()
    steps = plan_steps(scripts, current, target, ledger.checkpoint(), quarantined_versions(db, current))
    for step in steps:
        started = ledger.phases(step.version)
        if step.direction == "up" and started and "cleanup" not in started:
            raise PhaseError(f"migration {step.version} is being applied in expand-contract phases "
                             f"({', '.join(sorted(started))} done): continue with its phases, not `migrate`")
    return current, steps


def plan_report(db: Database, scripts: ScriptDirectory, target: int) -> dict:
    """What migrating to `target` would do: the steps, the documents each touches, sample diffs. Writes nothing."""
    current, steps = current_plan(db, scripts, target)
    counts, samples = count_plan(db, steps), sample_plan(db, scripts, steps)
    return {
        "current": current, "target": target,
        "steps": [
            {"version": s.version, "direction": s.direction, "collection": s.collection, "kind": scripts.get(s.version).migration.kind,
             "description": scripts.get(s.version).migration.description, "documents": n, "samples": pairs}
            for s, n, pairs in zip(steps, counts, samples)
        ],
    }
