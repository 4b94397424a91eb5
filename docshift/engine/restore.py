"""Restoring a backup file so that the ledger still tells the truth about the documents it puts back.

A backup holds documents at the schema version they had before its run. Put back while the ledger records a later
version, they would be behind it (drift) and the next `migrate` would count them as done. So a restore either
leaves every document at the version its collection is recorded at, or moves the record back with them (its run
was the latest change: the restore undoes it exactly; not for a run that updated documents on the server by `_id`
ranges, whose backup lacks those documents: `rollback --run` undoes it), or, only when asked, leaves them behind for the next
`migrate` to carry up; otherwise it refuses before writing anything and says what to run.
"""

import uuid
from dataclasses import dataclass
from pathlib import Path

from .. import dump, storage
from ..context import RunContext
from ..errors import RestoreRefused, TargetError
from ..ledger import Ledger, now
from ..spec import INITIAL_VERSION
from ..transform import VERSION_FIELD
from .backups import backup_versions, bson_order, checked_backup, put_back, save_by_id
from .drift import collection_versions, lineage
from .rollback import rollback_target
from .steps import make_step


@dataclass(frozen=True)
class Restored:
    backup_id: str
    collection: str
    documents: int
    version_before: int
    version_after: int
    """The database's recorded version afterwards: moved back when the restore undid the latest run."""
    behind: int
    """Documents put back below their collection's recorded version (only with keep_version)."""
    from_pre_images: tuple[int, ...] = ()
    """Migrations the documents had been through whose `down` takes values from pre-images (what `up` removed or
    changed): those values are not in the backup, so the restore keeps the pre-images the documents had then."""


def restore(ctx: RunContext, backup_id: str, keep_version: bool = False) -> Restored:
    """Check the backup, decide what the recorded version must be, then put its documents back exactly."""
    db, ledger = ctx.db, Ledger(ctx.db)
    entry = checked_backup(db, backup_id)
    if checkpoint := ledger.checkpoint():
        raise RestoreRefused(f"run {checkpoint['run_id']} is unfinished; resume it with `docshift migrate` (or undo it "
                             f"with `docshift rollback --run {checkpoint['run_id']}`) before restoring; nothing was restored")
    collection, current, versions = entry["collection"], ledger.current_version(), backup_versions(entry)
    recorded = collection_versions(ctx.scripts, current).get(collection, min(versions, default=current))
    rewind = rewind_to(ctx, backup_id, collection, versions)
    if set(versions) <= {recorded}:
        rewind = None
    elif rewind is not None and storage.ranges(db, backup_id).find_one() is not None:
        raise RestoreRefused(ranges_refusal(entry, sum(versions.values()), current, rewind))
    elif rewind is None and not (keep_version and max(versions) < recorded):
        back_to = make_step(ctx.scripts, entry["version"], entry["direction"]).recorded_before
        raise RestoreRefused(refusal(entry, versions, recorded, current, back_to))
    documents = put_back(db, entry)
    if rewind is not None:
        ledger.set_current(rewind)
        ledger.update_entry(backup_id, {"outcome": "restored", "restored_at": now(), "restored_documents": documents})
    behind = 0 if rewind is not None else sum(n for v, n in versions.items() if v < recorded)
    from_pre_images = tuple(v for v in lineage(ctx.scripts, collection, max(versions, default=0))
                            if any(m.down_uses_pre_image for m in ctx.scripts.get(v).parts))
    keep_pre_images(ctx, entry, from_pre_images)
    return Restored(backup_id, collection, documents, current, current if rewind is None else rewind, behind,
                    from_pre_images)


def keep_pre_images(ctx: RunContext, entry: dict, versions: tuple[int, ...]) -> None:
    """For each migration in `versions` whose pre-images changed since the backup's run started (a down reverted the
    runs, a later up read what the application wrote afterwards), keep the pre-images the restored documents had then:
    a later `down` must give them back what they held at the backup, not values the restore took away."""
    ledger, docs = Ledger(ctx.db), None
    for version in versions:
        part = ctx.scripts.document_part(version, entry["collection"])  # of a migration of several steps: this one's
        then, newest = ledger.pre_image_runs(version, entry["_id"], part), ledger.pre_image_runs(version, part=part)
        if then == newest or (newest and newest[-1].startswith(f"{entry['_id']}.restored-")):  # restored again: kept
            continue
        if docs is None:
            docs = [(raw["_id"], raw.get(VERSION_FIELD) or INITIAL_VERSION) for raw in dump.read(Path(entry["path"]))]
        if kept := pre_images_of(ctx, then, [doc_id for doc_id, at in docs if at >= version]):
            store = f"{entry['_id']}.restored-{uuid.uuid4().hex[:6]}-v{version}"
            save_by_id(storage.pre_images(ctx.db, store), kept)
            ledger.keep_pre_images(version, store, entry["_id"], part)


def pre_images_of(ctx: RunContext, run_ids: list[str], doc_ids: list) -> list[dict]:
    """The documents' pre-images in the newest of these runs' backups that holds each (a pruned backup is skipped)."""
    names, found = set(ctx.db.list_collection_names()), {}
    for run_id in (r for r in run_ids if storage.backup_name(r) in names):
        for start in range(0, len(doc_ids), 1000):
            for doc in storage.pre_images(ctx.db, run_id).find({"_id": {"$in": doc_ids[start:start + 1000]}}):
                found[bson_order(doc["_id"])] = doc
    return list(found.values())


def rewind_to(ctx: RunContext, run_id: str, collection: str, versions: dict[int, int]) -> int | None:
    """The version to record when restoring this run's backup undoes it exactly: it is the latest change to the
    database and its documents are at what their collection was before it; otherwise None."""
    try:
        step, finished = rollback_target(ctx, run_id)
    except TargetError:
        return None
    before = collection_versions(ctx.scripts, step.recorded_before).get(collection)
    return step.recorded_before if finished and set(versions) <= {before} else None


def ranges_refusal(entry: dict, saved: int, current: int, rewind: int) -> str:
    """Why the backup of a run that updated documents on the server by `_id` ranges cannot undo it: the ranges'
    documents are not in it (their pre-images were never saved), and `rollback --run` undoes them."""
    run_id = entry["_id"]
    return (f"backup {run_id} holds only the {saved:,} pre-images its run saved: the {entry['collection']} documents its "
            f"`_id` ranges updated on the server are not in it, so restoring it would move the database back to version "
            f"{rewind} (from {current}) and leave those documents ahead of it; nothing was restored. Run `docshift "
            f"rollback --run {run_id}` instead, which undoes the ranges too")


def refusal(entry: dict, versions: dict[int, int], recorded: int, current: int, back_to: int) -> str:
    """Why the restore was refused, and the commands that do what the user most likely wants: migrate to where the
    database was before the backup's run (`back_to`), or restore anyway."""
    backup_id, collection = entry["_id"], entry["collection"]
    at = ", ".join(f"{n:,} at version {v}" for v, n in sorted(versions.items()))
    head = (f"backup {backup_id} holds {collection} documents ({at}) but the ledger records {collection} at version "
            f"{recorded} (database at version {current}), and its run is not the latest change, so the recorded version "
            f"cannot move back with them; nothing was restored. ")
    if max(versions) > recorded:
        return head + f"Run `docshift migrate {back_to}` to apply that migration again instead"
    return head + (f"Run `docshift migrate {back_to}` to go back through the migrations' downs instead, or "
                   f"`docshift restore {backup_id} --keep-version` to put them back anyway: `docshift status` then "
                   f"shows them behind, and the next `docshift migrate` carries them up to version {recorded} again")
