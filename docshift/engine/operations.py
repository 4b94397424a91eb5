"""Running collection-level steps (docshift.operations): checks before anything is written, each action journaled in
the run's history entry before it is done, what it destroys kept first, verification, and undo by inverting the
journal.

Every action is idempotent (it looks at what is there before it changes anything), so a killed run resumes, and an
undo can be run again. A dropped collection is renamed whole to `_docshift_dropped_<run>` (atomic, stored bytes and
indexes untouched; the application's next write creates a new, empty collection) and then written to the run's
mongodump-format file; putting it back renames it back.
"""

from pathlib import Path

from bson import json_util
from pymongo.database import Database
from pymongo.errors import OperationFailure

from .. import dump
from ..errors import DatabaseError, OperationError
from ..ledger import Ledger
from ..operations import Action, describe_index, key_list
from ..servers import NOT_IMPLEMENTED, lacking, server_name
from .cursor import BatchCursor, collection_count
from .step_run import StepRun
from .steps import Step, runs_at



def check_features(db: Database, spec: dict, where: str) -> None:
    """Refuse an index whose options or kind (text, wildcard, …) the server lacks (docshift.servers), saying so plainly
    (before anything is written)."""
    name = server_name(db)
    if missing := lacking(name, spec.get("options", {}), [(k["field"], k["order"]) for k in spec["keys"]]):
        raise OperationError(f"{where}: this server is {name}, which has no {' and no '.join(missing)}, so the "
                             f"{describe_index(spec)} cannot be created here; nothing was changed (make the index "
                             f"without it, or run this migration on MongoDB)")


# --- indexes ------------------------------------------------------------------------------------------------------


def index_info(db: Database, collection: str, name: str) -> dict | None:
    return next((ix for ix in db[collection].list_indexes() if ix["name"] == name), None)


def spec_of(index: dict) -> dict:
    """An index as listIndexes gives it, as docshift keeps it: name, keys, options (docshift.operations.key_list)."""
    return {"name": index["name"], "keys": key_list(index["key"]),
            "options": {k: v for k, v in index.items() if k not in ("v", "key", "name", "ns")}}


def same_keys(index: dict, spec: dict) -> bool:
    return key_list(index["key"]) == spec["keys"] and \
        bool(index.get("unique")) == bool(spec["options"].get("unique"))


def duplicates(db: Database, collection: str, spec: dict, shown: int = 3) -> str | None:
    """A description of the keys that more than one document shares (what a unique index refuses), or None."""
    keys = [k["field"] for k in spec["keys"]]
    match = dict(spec["options"].get("partialFilterExpression") or {})
    if spec["options"].get("sparse"):
        match.update({k: {"$exists": True} for k in keys})
    group = [{"$group": {"_id": {f"k{i}": f"${k}" for i, k in enumerate(keys)}, "n": {"$sum": 1}}},
             {"$match": {"n": {"$gt": 1}}}]
    head = [{"$match": match}] if match else []
    coll = db[collection]
    found = list(coll.aggregate(head + group + [{"$sort": {"n": -1}}, {"$limit": shown}]))
    if not found:
        return None
    total = next(coll.aggregate(head + group + [{"$count": "keys"}]), {}).get("keys", len(found))
    examples = []
    for g in found:
        values = {k: g["_id"].get(f"k{i}") for i, k in enumerate(keys)}
        ids = [d["_id"] for d in coll.find(values, {"_id": 1}).sort("_id", 1).limit(3)]
        shown_ids = ", ".join(repr(i) for i in ids) + (", …" if g["n"] > len(ids) else "")
        examples.append(f"{', '.join(f'{k}={v!r}' for k, v in values.items())} ({g['n']} documents: _id {shown_ids})")
    return f"{total} duplicated key(s): " + "; ".join(examples)


def create_index(db: Database, collection: str, spec: dict, where: str) -> None:
    """Create the index unless it is there already (a resumed run); refuse one of that name with other keys."""
    found = index_info(db, collection, spec["name"])
    if found is not None:
        if not same_keys(found, spec):
            raise OperationError(f"{where}: {collection} already has an index named {spec['name']} on other keys "
                                 f"({dict(found['key'])}); nothing was changed")
        return
    try:
        db[collection].create_index([(k["field"], k["order"]) for k in spec["keys"]], name=spec["name"], **spec["options"])
    except OperationFailure as exc:
        if exc.code == NOT_IMPLEMENTED:
            raise OperationError(f"{where}: the server has no {describe_index(spec)}: {exc.details.get('errmsg', exc)}") from exc
        if spec["options"].get("unique") and (dups := duplicates(db, collection, spec)):
            raise OperationError(f"{where}: the unique index {spec['name']} cannot be created: {collection} has {dups}") from exc
        raise DatabaseError(f"{where}: the server refused to create {describe_index(spec)} on {collection}: "
                            f"{exc.details.get('errmsg', exc) if exc.details else exc}") from exc


def drop_index(db: Database, collection: str, name: str) -> None:
    if index_info(db, collection, name) is not None:
        db[collection].drop_index(name)


# --- collections --------------------------------------------------------------------------------------------------


def exists(db: Database, name: str) -> bool:
    return name in db.list_collection_names(filter={"name": name})


def still_to_move(db: Database, source: str, target: str, where: str, refusals: tuple[str, str] | None = None) -> bool:
    """Whether `source` is still to be renamed to `target` (False: it was, by an earlier attempt). Refused when both
    exist or neither does; `refusals` words those two cases (default: as a rename)."""
    has_source, has_target = exists(db, source), exists(db, target)
    if has_source != has_target:
        return has_source
    both, neither = refusals or (f"cannot rename {source} to {target}: {target} exists "
                                 f"({collection_count(db[target]):,} documents)",
                                 f"cannot rename {source} to {target}: there is no collection {source}")
    raise OperationError(f"{where}: {both if has_source else neither}; nothing was changed")


def rename(db: Database, source: str, target: str, where: str, refusals: tuple[str, str] | None = None) -> None:
    """Rename `source` to `target` unless that is done already."""
    if still_to_move(db, source, target, where, refusals):
        db[source].rename(target)


def write_dump(db: Database, kept: str, path: Path, run: StepRun | None) -> int:
    """The kept collection's exact documents, in `_id` order, into the (emptied) mongodump data file."""
    dump.clear(path)
    docs, written = BatchCursor(db[kept], {}, None, False), 0
    docs.sweeps_left = 0
    while batch := docs.next_batch(1000):
        if run and run.lock:
            run.lock.check()
        dump.append(path, batch)
        written += len(batch)
    return written


# --- the journal ----------------------------------------------------------------------------------------------------


def identity(record: dict) -> tuple:
    return record["do"], record["collection"], record.get("to"), (record.get("index") or {}).get("name")


def actions_in(entry: dict | None) -> list[dict]:
    """The journaled actions of a history entry. Each is kept as canonical extended JSON text: a filter's `$lt` or an
    index's dotted field would be refused as a key by some servers (FerretDB: docshift.servers), and the text keeps every BSON type."""
    return [json_util.loads(text) for text in (entry or {}).get("actions", [])]


class Journal:
    """The actions of one run, in its history entry, each written before it is done (extra fields: what it saved)."""

    def __init__(self, db: Database, run_id: str):
        self.ledger, self.run_id = Ledger(db), run_id

    def records(self) -> list[dict]:
        return actions_in(self.ledger.entry(self.run_id))

    def begin(self, action: Action, **saved) -> dict:
        """The action's record: the one written by an earlier attempt of this run (what it saved first wins), or new."""
        records = self.records()
        new = {**action.record, **saved}
        found = next((r for r in records if identity(r) == identity(new)), None)
        if found is None:
            self._write(records + [new])
        return found or new

    def update(self, record: dict, **fields) -> dict:
        updated = {**record, **fields}
        self._write([updated if identity(r) == identity(record) else r for r in self.records()])
        return updated

    def _write(self, records: list[dict]) -> None:
        self.ledger.update_entry(self.run_id, {"actions": [json_util.dumps(r, json_options=json_util.CANONICAL_JSON_OPTIONS)
                                                           for r in records]})


def journal_of(db: Database, step: Step) -> list[dict]:
    """The journal of the step's current run (the checkpointed one), or of its latest finished run."""
    ledger = Ledger(db)
    checkpoint = ledger.checkpoint()
    if runs_at(step, checkpoint):
        return actions_in(ledger.entry(checkpoint["run_id"]))
    mine = (step.version, step.direction, step.part)
    finished = [e for e in ledger.history() if (e["version"], e["direction"], e.get("part", 0)) == mine
                and e["outcome"] in ("applied", "reverted")]
    return actions_in(finished[-1]) if finished else []


def kept_source(db: Database, version: int, do: str, collection: str, index: str | None = None) -> dict | None:
    """The record of the newest `up` of `version` that dropped this collection (do="drop_collection") or index
    (do="drop_index", by name): what its `down` puts back. Those are the runs a `down` takes pre-images from
    (Ledger.pre_image_runs)."""
    ledger = Ledger(db)
    for run_id in reversed(ledger.pre_image_runs(version)):
        for record in actions_in(ledger.entry(run_id)):
            if (record["do"], record["collection"]) == (do, collection) and (index is None or record["index"]["name"] == index):
                return record
    return None
