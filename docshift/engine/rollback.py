"""Undoing a run from its backup: each document the run wrote gets its pre-image back only while it is exactly as the
run left it (compare-and-swap on the whole document); one written since gets the opposite function instead."""

import itertools
from dataclasses import dataclass, replace
from enum import Enum

import bson
from bson.raw_bson import RawBSONDocument
from pymongo import ReplaceOne, ReturnDocument
from pymongo.collection import Collection
from pymongo.database import Database

from .. import storage
from ..context import RunContext
from ..dump import RAW
from ..errors import TargetError
from ..ledger import Ledger, now
from ..servers import has_json_schema
from ..settings import get_settings
from ..spec import Migration
from ..stop import check_stop
from ..transform import update_for, version_filter
from .backups import ChangeReader, document_digest, seal_backup
from .faults import fault_point
from .operation_steps import undo_actions
from .ranges import undo_ranges
from .runs import lookup_for
from .guards import exact_filter, field_filter, merge_newer, same_document, write_as_read
from .steps import Step, make_step, transform_one


@dataclass(frozen=True)
class RollbackResult:
    restored: int
    undone_by_function: int


@dataclass(frozen=True)
class Written:
    """A document the run wrote and that is still exactly as the run left it when read: its pre-image (the exact
    bytes, and decoded) and the document as read now."""

    raw: RawBSONDocument
    pre: dict
    left: dict

    @property
    def unset(self) -> list[str]:
        """The fields the run removed: a filter must see them still missing."""
        return [k for k in self.pre if k not in self.left]


class Outcome(Enum):
    RESTORED = "restored"
    NEWER = "written since the run"


def rollback(db: Database, migration: Migration, step: Step, run_id: str, reason: str, rewind: bool = False) -> RollbackResult:
    """Undo the run: each changed document gets its pre-image back if it is still exactly as the run left it
    (compare-and-swap on the whole document, added fields included); one written since gets the opposite function
    applied instead, so that a rollback never erases a newer write; so does one inserted at the run's version since.

    The checkpoint says `rolling_back` first, so that an interrupted rollback is finished by running it again
    rather than resumed forward. Idempotent: an undone document is no longer at the run's target version.
    With `rewind` (the run had finished), the recorded version goes back to what it was before the run; the checkpoint
    keeps it, so that finishing an interrupted rollback rewinds too.
    """
    ledger = Ledger(db)
    pending = ledger.checkpoint()
    if pending and pending["run_id"] == run_id and pending.get("rolling_back"):
        reason = pending["reason"]  # finishing an interrupted rollback: keep why it started, and whether it rewinds
        rewind = rewind or pending.get("rewind", False)
    ledger.start_checkpoint({"run_id": run_id, "version": step.version, "direction": step.direction, "part": step.part,
                             "rolling_back": True, "reason": reason, "rewind": rewind})
    if migration.operation is not None:
        settings = get_settings()
        restored, by_function = undo_actions(db, step, run_id, settings.backup_dir, settings.backup_gzip), 0
    else:
        restored, by_function = restore_documents(db, migration, step, run_id)
        restored += undo_ranges(db, step, run_id)  # a migration declared as an update: its server-side ranges
        if step.phase is None and step.direction == "up" and step.recorded_before != step.recorded_after:
            by_function += undo_written_since(db[step.collection], migration, step)  # not a retry: it keeps the version
    entry = ledger.entry(run_id) or {}
    ledger.update_entry(run_id, {"outcome": "rolled_back", "finished_at": now(), "error": reason,
                                 "restored": entry.get("restored", 0) + restored,
                                 "undone_by_function": entry.get("undone_by_function", 0) + by_function})
    if step.phase:
        ledger.reset_phase(step.version, step.phase)
    if rewind:
        ledger.set_current(step.recorded_before)
    ledger.clear_checkpoint()
    seal_backup(db, run_id)
    return RollbackResult(restored, by_function)


def reverse(step: Step) -> Step:
    """The step whose function takes a document the run wrote back: the opposite direction, between the same versions."""
    return replace(step, direction="down" if step.direction == "up" else "up",
                   from_version=step.to_version, to_version=step.from_version)


def restore_documents(db: Database, migration: Migration, step: Step, run_id: str) -> tuple[int, int]:
    """Each document the run wrote gets its pre-image back; one written since gets `down` if the run was an up run,
    and is left as written if it was a down run (see undo_written_since). The counts."""
    coll, guard, undo = db[step.collection], version_filter(step.to_version), reverse(step)
    exact = has_json_schema(coll)
    changes = ChangeReader(storage.changes(db, run_id))
    restored = by_function = 0
    docs = storage.pre_images(db, run_id).with_options(codec_options=RAW).find().sort("_id", 1).batch_size(1000)
    while batch := list(itertools.islice(docs, 1000)):
        check_stop(f"while rolling back run {run_id} ({restored + by_function:,} documents restored so far)",
                   f"docshift rollback --run {run_id}")
        unchanged, newer = compare(coll, guard, changes, batch)
        done, not_restored = (restore_exactly if exact else restore_each)(coll, step, guard, unchanged)
        restored += done
        if step.direction == "up":  # a down's: left as written, at the older version (see undo_written_since)
            by_function += undo_newer_writes(coll, migration, undo, guard, newer + not_restored)
        fault_point("rollback-batch")
    return restored, by_function


def compare(coll: Collection, guard: dict, changes: ChangeReader, batch: list[RawBSONDocument]) -> tuple[list[Written], list[dict]]:
    """The batch's documents that the run wrote, read in one query: those still exactly as it left them (the
    digest of its change record), and the pre-images of those written since. Gone ones are neither."""
    pre_images = [bson.decode(raw.raw) for raw in batch]
    current = {d["_id"]: d for d in coll.find({"_id": {"$in": [p["_id"] for p in pre_images]}, **guard})}
    unchanged, newer = [], []
    for raw, pre in zip(batch, pre_images):
        if (left := changes.left(pre)) is None or (now_there := current.get(pre["_id"])) is None:
            continue
        if document_digest(now_there) == left:
            unchanged.append(Written(raw, pre, now_there))
        else:
            newer.append(pre)
    return unchanged, newer


def restore_exactly(coll: Collection, step: Step, guard: dict, written: list[Written]) -> tuple[int, list[dict]]:
    """Where the server has `$jsonSchema`: one bulk write whose filters match only the whole document as the run
    left it (no field added). Returns how many were restored, and the pre-images of the batch again if some were not."""
    if not written:
        return 0, []
    result = coll.bulk_write([ReplaceOne({"_id": w.pre["_id"], **guard, **exact_filter(w.left)}, w.raw)
                              for w in written], ordered=False)
    return result.modified_count, [w.pre for w in written] if result.matched_count < len(written) else []


def restore_each(coll: Collection, step: Step, guard: dict, written: list[Written]) -> tuple[int, list[dict]]:
    """Elsewhere: restore_one each; how many were restored, and the pre-images of those written meanwhile."""
    outcomes = [(w, restore_one(coll, step, guard, w)) for w in written]
    return sum(o is Outcome.RESTORED for _, o in outcomes), [w.pre for w, o in outcomes if o is Outcome.NEWER]


def restore_one(coll: Collection, step: Step, guard: dict, w: Written) -> Outcome:
    """Elsewhere (FerretDB, mongomock: docshift.servers): replace the document, read as the run left it, filtered on every field, and check the
    document the server replaced. If an application added a field in the moment between, the document is put back
    as the application left it, for the function.

    Stock FerretDB 1.24 reads and writes an updated document in separate transactions, so two writers at the same
    instant could lose one write whatever the filter; the embedded server's patch makes each update one
    read-modify-write (tests/integration/test_ferretdb_server.py).
    """
    query = {"_id": w.pre["_id"], **guard}
    before = coll.find_one_and_replace({**query, **field_filter(w.left, absent=w.unset)}, w.raw,
                                       return_document=ReturnDocument.BEFORE)
    if before is None:
        return Outcome.NEWER
    if same_document(before, w.left):
        return Outcome.RESTORED
    write_as_read(coll, {"_id": w.pre["_id"]},
                  lambda now_there: update_for(now_there, merge_newer(before, w.pre, now_there), step.to_version))
    return Outcome.NEWER


def undo_newer_writes(coll: Collection, migration: Migration, undo: Step, guard: dict, pre_images: list[dict]) -> int:
    """Apply the opposite function to documents still at the run's version but written since the run; each update
    is guarded on the document as read, so that a write meanwhile is read again rather than overwritten."""
    count = 0
    for pre in pre_images:
        def undone(current: dict, pre: dict = pre) -> dict | None:
            return update_for(current, transform_one(migration, undo, current, pre, lookup_for(coll.database, migration)), undo.to_version)
        count += write_as_read(coll, {"_id": pre["_id"], **guard}, undone)
    return count


def undo_written_since(coll: Collection, migration: Migration, step: Step) -> int:
    """Documents still at an up run's version that the run did not write (the application inserted them at that
    version since, or while it ran) get `down` too, without a pre-image: none is left at a version the database is no
    longer at.

    Not for a down run: carried up by a rollback, a document would have no pre-image for the next `down`, which then
    could not give back what `up` dropped. Documents the application wrote at a down run's older version (inserted, or
    written since the run wrote them) stay there, as drift that `status` reports and the next `docshift migrate`
    carries up, its pre-images saved first."""
    guard, undo = version_filter(step.to_version), reverse(step)
    count = 0
    for current in coll.find(guard).sort("_id", 1).batch_size(1000):
        update = update_for(current, transform_one(migration, undo, current, None, lookup_for(coll.database, migration)),
                            undo.to_version)
        if update and coll.update_one({"_id": current["_id"], **guard}, update).modified_count:
            count += 1
    return count


def together(ctx: RunContext, own: Step, step: Step) -> bool:
    """Whether a finished run of a migration of several steps may not be rolled back alone: it moved the record (the
    migration's last step), or it undid or retried a step (its recorded versions are not its step's own). A step
    before the last, left applied when a run stopped between steps, may (the record stays where it is)."""
    moved = own.recorded_before != own.recorded_after
    return len(ctx.scripts.get(own.version).parts) > 1 and (
        moved or (own.recorded_before, own.recorded_after) != (step.recorded_before, step.recorded_after))


def rollback_target(ctx: RunContext, run_id: str) -> tuple[Step, bool]:
    """The step of a run that may be rolled back by hand, and whether it had finished (then the version rewinds too).

    Allowed: the unfinished run (crashed, failed, or half rolled back), or the latest finished run.
    """
    ledger = Ledger(ctx.db)
    entry = ledger.entry(run_id)
    if entry is None:
        raise TargetError(f"no run {run_id!r} in this database's history (see `docshift history`)")
    own = make_step(ctx.scripts, entry["version"], entry["direction"], entry.get("phase"), entry.get("part", 0))
    step = replace(own, recorded_before=entry.get("recorded_before", own.recorded_before),  # a retry's own
                   recorded_after=entry.get("recorded_after", own.recorded_after))
    checkpoint = ledger.checkpoint()
    if checkpoint and checkpoint["run_id"] == run_id:
        return step, False
    if checkpoint:
        raise TargetError(f"run {checkpoint['run_id']} is unfinished; roll that one back (or finish it) first")
    finished = [e for e in ledger.history() if e["outcome"] in ("applied", "reverted")]
    if entry["outcome"] in ("applied", "reverted"):
        if finished[-1]["_id"] != run_id or ledger.current_version() != step.recorded_after:
            raise TargetError(f"run {run_id} is not the latest change to the database; "
                              f"migrate to version {step.recorded_before} instead")
        if entry.get("undoes"):
            undone = make_step(ctx.scripts, entry["version"], "up" if entry["direction"] == "down" else "down")
            raise TargetError(f"run {run_id} took back the partial changes of the interrupted run {entry['undoes']}; "
                              f"rolling it back would leave them half-applied: apply migration {step.version} "
                              f"{undone.direction} completely with `docshift migrate {undone.recorded_after}`")
        if together(ctx, own, step):
            raise TargetError(f"run {run_id} is a step of migration {step.version}, whose "
                              f"{len(ctx.scripts.get(step.version).parts)} steps are applied and reverted together: "
                              f"migrate to version {ctx.scripts.global_predecessor(step.version)} or {step.version} instead")
        retry = step.recorded_before == step.recorded_after and own.recorded_before != own.recorded_after
        if step.phase is None and retry:
            raise TargetError(f"run {run_id} retried documents that were behind migration {step.version} (quarantined, "
                              f"restored from an older backup or written at an old version) without moving the recorded "
                              f"version; rolling it back alone would put them behind again beside the documents earlier "
                              f"runs changed at {step.to_version}: revert migration {step.version} for every document with "
                              f"`docshift migrate {make_step(ctx.scripts, step.version, 'up').recorded_before}`")
        return step, True
    raise TargetError(f"run {run_id} is {entry['outcome']}: nothing to roll back")
