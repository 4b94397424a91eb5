"""A collection-level step's life: checked (by `plan`, the pre-flight, and before its run writes anything), run
action by action, verified, undone. The actions themselves and their journal are in docshift.engine.operations."""

from dataclasses import dataclass
from pathlib import Path

import bson
from pymongo.database import Database

from .. import dump, storage
from ..errors import OperationError, TransformError
from ..ledger import Ledger
from ..lookup import Lookup
from ..operations import Action
from ..servers import renames_to_dotted_names, server_name
from ..spec import Migration
from ..transform import VERSION_FIELD, call, check_field_names
from .backups import catalog_backup, save_by_id, seal_backup
from .cursor import BatchCursor, collection_count
from .deletes import delete_documents, delete_put_back, insert_kept, kept_for
from .passes import batch_by_batch
from .faults import fault_point
from .operations import (Journal, actions_in, check_features, create_index, drop_index, duplicates, exists,
                         index_info, kept_source, rename, same_keys, spec_of, still_to_move,
                         write_dump)
from .step_run import StepRun
from .steps import Step, runs_at


def where(step: Step) -> str:
    return f"migration {step.version} ({step.direction})"


def actions_of(migration: Migration, step: Step) -> list[Action]:
    return migration.operation.actions(step.collection, step.direction)


# --- checks: nothing written -------------------------------------------------------------------------------------


def check_step(db: Database, migration: Migration, step: Step) -> list[str]:
    """Refuse (OperationError) a step that cannot run on the data as it is now; else notes for the plan (an action
    already done, nothing to drop). A resumed run's half-done state is accepted. Each check is given the collections
    that the step's earlier actions move away (`vacated`: a rename's target dropped first, a restore's name renamed
    back first)."""
    resuming = runs_at(step, Ledger(db).checkpoint())
    notes, vacated = [], set()
    for action in actions_of(migration, step):
        if note := CHECKS[action.do](db, action, step, resuming, frozenset(vacated)):
            notes.append(note)
        if action.do in ("rename", "drop_collection"):
            vacated.add(action.collection)  # gone before the step's next action runs
    return notes


def check_server_features(db: Database, migration: Migration, step: Step) -> None:
    """Refuse an index the server lacks (docshift.servers): that does not depend on the data, so it is checked for every
    step of a plan, also one whose data is checked only when its turn comes."""
    for action in actions_of(migration, step):
        if action.do == "create_index":
            check_features(db, action.index, where(step))


def _check_create(db: Database, action: Action, step: Step, resuming: bool, vacated: frozenset[str],
                  spec: dict | None = None) -> str | None:
    spec = spec or action.index
    check_features(db, spec, where(step))
    found = index_info(db, action.collection, spec["name"])
    if found is not None:
        if not same_keys(found, spec):
            raise OperationError(f"{where(step)}: {action.collection} already has an index named {spec['name']} on "
                                 f"other keys ({dict(found['key'])}); nothing was changed")
        return f"index {spec['name']} exists already: nothing to create"
    if spec["options"].get("unique") and (dups := duplicates(db, action.collection, spec)):
        raise OperationError(f"{where(step)}: the unique index {spec['name']} cannot be created: {action.collection} "
                             f"has {dups}; nothing was changed (make those keys unique first, e.g. in a migration before it)")
    return None


def _check_drop_index(db: Database, action: Action, step: Step, resuming: bool, vacated: frozenset[str]) -> str | None:
    if index_info(db, action.collection, action.index["name"]) is None:
        return f"{action.collection} has no index {action.index['name']}: nothing to drop"
    return None


def _check_restore_index(db: Database, action: Action, step: Step, resuming: bool, vacated: frozenset[str]) -> str | None:
    source = kept_source(db, step.version, "drop_index", action.collection, action.index["name"])
    if source is None:
        raise OperationError(f"{where(step)}: no run of migration {step.version} kept the definition of index "
                             f"{action.index['name']}, so it cannot be recreated; nothing was changed")
    if source.get("absent"):
        return f"index {action.index['name']} did not exist when migration {step.version} ran: nothing to recreate"
    return _check_create(db, action, step, resuming, vacated, source["index"])


def _check_rename(db: Database, action: Action, step: Step, resuming: bool, vacated: frozenset[str]) -> str | None:
    if "." in action.to and not renames_to_dotted_names(name := server_name(db)):
        raise OperationError(f"{where(step)}: this server is {name}, which cannot rename a collection to a name with "
                             f"a dot ({action.to}); nothing was changed")
    if action.to in vacated and exists(db, action.collection):
        return None  # the existing target is dropped first (drop_target)
    if still_to_move(db, action.collection, action.to, where(step)):
        return None
    return f"{action.collection} is already renamed to {action.to}"


def _check_drop_collection(db: Database, action: Action, step: Step, resuming: bool, vacated: frozenset[str]) -> str | None:
    return None if exists(db, action.collection) else f"there is no collection {action.collection}: nothing to drop"


def _check_restore_collection(db: Database, action: Action, step: Step, resuming: bool, vacated: frozenset[str]) -> str | None:
    source = kept_source(db, step.version, "drop_collection", action.collection)
    if source is None or not source.get("existed"):
        return f"migration {step.version} dropped no collection {action.collection}: nothing to restore"
    if action.collection in vacated and exists(db, source["kept_as"]):
        return None  # the step renames it away first (RenameCollection's down)
    if still_to_move(db, source["kept_as"], action.collection, where(step), restore_refusals(db, source)):
        return None
    return f"{action.collection} is already restored"


def restore_refusals(db: Database, source: dict) -> tuple[str, str]:
    """Why a dropped collection cannot be put back: it was written again, or its kept copy is gone."""
    c = source["collection"]
    return (f"{c} exists again ({collection_count(db[c]):,} documents written since it was dropped), so its backup "
            f"{source['kept_as']} cannot be put back; move those documents away first",
            f"the backup {source['kept_as']} of the dropped collection {c} is missing (restore its file with "
            f"`docshift restore`)")


def _check_copy(db: Database, action: Action, step: Step, resuming: bool, vacated: frozenset[str]) -> str | None:
    if exists(db, action.to) and not resuming and (n := collection_count(db[action.to])):
        raise OperationError(f"{where(step)}: cannot copy into {action.to}: it exists with {n:,} documents; "
                             f"nothing was changed")
    return None


def _check_delete(db: Database, action: Action, step: Step, resuming: bool, vacated: frozenset[str]) -> str | None:
    return None if resuming or db[action.collection].find_one(action.filter, {"_id": 1}) else \
        f"no document of {action.collection} matches {action.filter}: nothing to delete"


def _check_undelete(db: Database, action: Action, step: Step, resuming: bool, vacated: frozenset[str]) -> str | None:
    source = kept_source(db, step.version, "delete", action.collection)
    if source is None:
        return f"migration {step.version} deleted no documents of {action.collection}: nothing to put back"
    if not exists(db, source["kept_as"]):
        raise OperationError(f"{where(step)}: the backup {source['kept_as']} of the documents migration {step.version} "
                             f"deleted from {action.collection} is missing (restore its file with `docshift restore`); "
                             f"nothing was changed")
    return None


CHECKS = {"create_index": _check_create, "drop_index": _check_drop_index, "restore_index": _check_restore_index,
          "rename": _check_rename, "drop_collection": _check_drop_collection,
          "restore_collection": _check_restore_collection, "copy": _check_copy, "delete": _check_delete,
          "undelete": _check_undelete}


def planned_documents(db: Database, migration: Migration, step: Step) -> int:
    """The documents the step concerns: the collection's (the source's, for a rename down or a restore: its backup's)."""
    actions = actions_of(migration, step)
    action = next((a for a in actions if a.do in ("copy", "rename")), actions[0])
    if action.do in ("copy", "delete"):
        return db[action.collection].count_documents(action.filter)
    if action.do == "undelete":
        source = kept_source(db, step.version, "delete", action.collection)
        return collection_count(db[source["kept_as"]]) if source and exists(db, source["kept_as"]) else 0
    if action.do == "restore_collection":
        source = kept_source(db, step.version, "drop_collection", action.collection) or {}
        return source.get("documents", 0)
    return collection_count(db[action.collection]) if exists(db, action.collection) else 0


# --- running ------------------------------------------------------------------------------------------------------


@dataclass
class Executor:
    """Does a run's actions (or undoes them) on its database; what a destructive one removes is kept under this run."""

    db: Database
    run_id: str
    step: Step
    backup_dir: Path
    gzipped: bool = False
    run: StepRun | None = None

    @property
    def journal(self) -> Journal:
        return Journal(self.db, self.run_id)

    def dump_path(self, collection: str) -> Path:
        return dump.dump_path(self.backup_dir, self.run_id, self.db.name, collection, self.gzipped)

    def begin(self, action: Action) -> dict:
        """Journal the action before doing it, with what a `down` or an undo will need of what it changes."""
        db, c = self.db, action.collection
        if action.do == "drop_index":
            found = index_info(db, c, action.index["name"])
            return self.journal.begin(action, **({"index": spec_of(found)} if found else {"absent": True}))
        if action.do == "restore_index":
            source = kept_source(db, self.step.version, "drop_index", c, action.index["name"]) or {"absent": True}
            return self.journal.begin(action, **({"absent": True} if source.get("absent") else {"index": source["index"]}))
        if action.do == "rename":
            return self.journal.begin(action, documents=collection_count(db[c]) if exists(db, c) else 0)
        if action.do == "drop_collection":
            return self.journal.begin(action, kept_as=storage.kept_name(self.run_id), file=str(self.dump_path(c)),
                                      existed=exists(db, c))
        if action.do == "restore_collection":
            source = kept_source(db, self.step.version, "drop_collection", c) or {}
            if not source.get("existed"):
                return self.journal.begin(action, absent=True)
            return self.journal.begin(action, **{"from": source["kept_as"], "documents": source.get("documents", 0)})
        if action.do == "delete":
            return self.journal.begin(action, kept_as=kept_for(self.run_id), file=str(self.dump_path(c)))
        if action.do == "undelete":
            source = kept_source(db, self.step.version, "delete", c)
            return self.journal.begin(action, **({"from": source["kept_as"]} if source else {"absent": True}))
        return self.journal.begin(action)

    def do(self, record: dict) -> None:
        db, c, label = self.db, record["collection"], where(self.step)
        if record.get("absent"):
            return
        if record["do"] in ("create_index", "restore_index"):
            create_index(db, c, record["index"], label)
        elif record["do"] == "drop_index":
            drop_index(db, c, record["index"]["name"])
        elif record["do"] == "rename":
            rename(db, c, record["to"], label)
        elif record["do"] == "drop_collection":
            if record["existed"] and (documents := self.keep(c, record["kept_as"], Path(record["file"]))) is not None:
                self.journal.update(record, documents=documents)
        elif record["do"] == "restore_collection":
            rename(db, record["from"], c, label, restore_refusals(db, {"collection": c, "kept_as": record["from"]}))
        elif record["do"] == "copy":
            self.journal.update(record, **copy_documents(self.run, record))
        elif record["do"] == "delete":
            counts = delete_documents(self.run, record)
            dump.open_dump(Path(record["file"]), db[c])  # the metadata: the collection's indexes
            kept = write_dump(db, record["kept_as"], Path(record["file"]), self.run)
            catalog_backup(db, self.run_id, self.step, c, Path(record["file"]))
            seal_backup(db, self.run_id)
            self.journal.update(record, **counts, kept=kept)
        elif record["do"] == "undelete":
            restored, existing = insert_kept(db, record["from"], c)
            self.journal.update(record, restored=restored, existing=existing)
        fault_point("operation-done")

    def keep(self, collection: str, kept: str, path: Path) -> int | None:
        """Drop a collection by renaming it whole to the run's kept collection, then write its mongodump file; returns
        its documents (None: written by an earlier attempt)."""
        db = self.db
        if exists(db, collection) and not exists(db, kept):
            dump.open_dump(path, db[collection])  # the metadata: its indexes as they are now
            db[collection].rename(kept)
        fault_point("collection-kept")
        entry = db[storage.BACKUPS].find_one({"_id": self.run_id}) or {}
        if not exists(db, kept) or "sha256" in entry:
            return None
        documents = write_dump(db, kept, path, self.run)
        catalog_backup(db, self.run_id, self.step, collection, path, kept_as=kept)
        seal_backup(db, self.run_id)
        return documents

    def undo(self, record: dict) -> int:
        """Put back what the journaled action changed (each undo looks first, so running it again is harmless); the
        deleted documents it put back."""
        db, c, label = self.db, record["collection"], where(self.step)
        if record.get("absent"):
            return 0
        if record["do"] in ("create_index", "restore_index"):
            drop_index(db, c, record["index"]["name"])
        elif record["do"] == "drop_index":
            create_index(db, c, record["index"], label)
        elif record["do"] == "rename" and exists(db, record["to"]):
            rename(db, record["to"], c, label)
        elif record["do"] == "drop_collection" and record["existed"] and exists(db, record["kept_as"]):
            rename(db, record["kept_as"], c, label)
        elif record["do"] == "restore_collection" and exists(db, c):
            rename(db, c, record["from"], label)
        elif record["do"] == "copy":
            self.keep(record["to"], storage.kept_name(self.run_id), self.dump_path(record["to"]))
        elif record["do"] == "delete" and exists(db, record["kept_as"]):
            return insert_kept(db, record["kept_as"], c)[0]
        elif record["do"] == "undelete":
            delete_put_back(db, record["from"], c)
        return 0


def run_actions(run: StepRun, backup_dir: Path, gzipped: bool) -> None:
    """The step's actions in order, each journaled before it is done."""
    executor = Executor(run.db, run.state.run_id, run.step, Path(backup_dir), gzipped, run)
    for action in actions_of(run.migration, run.step):
        if run.lock:
            run.lock.check()
        executor.do(executor.begin(action))
        if action.do not in ("copy", "delete"):
            run.state.done = run.state.total  # the index, rename or drop covered them all at once


def undo_actions(db: Database, step: Step, run_id: str, backup_dir: Path, gzipped: bool) -> int:
    """Undo a run's journaled actions, last first; returns the documents it put back (of collections, or deleted)."""
    records = actions_in(Ledger(db).entry(run_id))
    executor = Executor(db, run_id, step, Path(backup_dir), gzipped)
    restored = sum(executor.undo(record) for record in reversed(records))
    return restored + sum(r.get("documents", 0) for r in records if r["do"] == "drop_collection" and r.get("existed"))


def copy_documents(run: StepRun, record: dict) -> dict:
    """Copy the matching documents in `_id` order, batch by batch with a checkpoint after each; returns the counts.
    The copies lose `schema_version`: they start at the new collection's initial schema."""
    db, state, operation, label = run.db, run.state, run.migration.operation, where(run.step)
    if not exists(db, record["to"]):
        db.create_collection(record["to"])  # there even when nothing matches
    cursor = BatchCursor(db[record["collection"]], record.get("filter", {}), state.last_id, state.started)
    cursor.sweeps_left = 0  # the source is not changed: a sweep would copy everything again
    lookup = Lookup(db, run.migration.reads, f"migration {run.step.version}")

    def write(raws: list) -> int:
        docs = [bson.decode(raw.raw) for raw in raws]
        lookup.new_batch(docs)
        copies = [c for doc in docs for c in copies_of(operation.transform, doc, lookup, label)]
        if copies:
            save_by_id(db[record["to"]], copies)
        return len(copies)

    batch_by_batch(run, cursor, write)
    return {"read": state.done, "copied": state.changed}


def copies_of(transform, doc: dict, lookup: Lookup, label: str) -> list[dict]:
    """What `transform` makes of one document for the new collection: one document (its `_id` kept unless it sets
    one), several (a list: an unwind; each sets its own `_id`, so that a batch copied again replaces its copies rather
    than adding more), or none (None, or an empty list)."""
    new = doc if transform is None else call(transform, doc, label=f"{label} transform", lookup=lookup)
    many = isinstance(new, list)
    copies = new if many else [] if new is None else [new]
    for i, each in enumerate(copies):
        if not isinstance(each, dict):
            raise TransformError(f"{label} transform returned {type(each).__name__}, not a document or a list of "
                                 f"documents (document _id={doc['_id']!r})")
        if many and "_id" not in each:
            raise TransformError(f"{label} transform returned a list whose document {i} has no _id: each of several "
                                 f"copies of one document needs its own, made from the document (e.g. {{'_id': "
                                 f"{{'order': doc['_id'], 'line': {i}}}}}), so that a resumed copy writes it once "
                                 f"(document _id={doc['_id']!r})")
    copies = [{"_id": doc["_id"], **{k: v for k, v in each.items() if k != VERSION_FIELD}} for each in copies]
    for each in copies:
        check_field_names(each, f"{label} transform", doc["_id"])
    return copies
