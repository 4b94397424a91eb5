"""A migration declared as an update (`Migration(update=..., filter=...)`) applied on the server: one or two
`update_many` per `_id` range, no document read or sent, a checkpoint after each range.

Which documents: those at the step's previous version that lack every top-level field the update touches (sets,
removes, renames or increments). Of such a document the update can only create fields, so its pre-image is the
document without them, which the derived `down` (docshift.updates.UndoUpdate) gives back exactly, and none is saved:
the range sets the values the update creates on those the filter matches (the created values are resolved once per
range, a `$currentDate` from the client's clock, so that the range's record holds them), and only moves the
`schema_version` of the others. Each range is recorded in the run's backup (`<backup>.ranges`, written before its
update) so that a rollback can undo it. The documents that have a touched field are left to the per-document pass that
follows, which saves their pre-images first and writes guarded updates as for any migration; so are documents whose
`_id` is not an ObjectId or lies outside the ranges, and documents written behind the ranges or changed while one ran
(the range's filter no longer matched them). One count after the ranges tells whether there is any: usually none, and
then the pass does not read the collection again.

The ranges are spans of ObjectId time (the first four bytes of an ObjectId): finding them reads no document. The
first and last second come from a binary search of existence probes on the `_id` index, and each range spans as
many seconds as held about `target_seconds` of updates in the ranges before it (at least one second).
"""

import time
from dataclasses import dataclass
from typing import Any

from bson import ObjectId
from pymongo.collection import Collection
from pymongo.database import Database

from .. import storage
from ..ledger import Ledger
from ..spec import INITIAL_VERSION
from ..transform import VERSION_FIELD, version_filter
from .backups import save_by_id
from .drift import any_below
from .faults import fault_point
from .guards import field_filter
from .runs import StepRun
from .steps import Step, server_side

SECONDS = 1 << 32
"""ObjectId time runs over four bytes of seconds."""


def bound(second: int) -> ObjectId:
    """The smallest ObjectId of a second."""
    return ObjectId(second.to_bytes(4, "big") + bytes(8))


def span(lo: ObjectId, hi: ObjectId | None) -> dict:
    """The `_id` condition of the range from `lo` (included) to `hi` (excluded; None: no end)."""
    return {"$gte": lo, **({"$lt": hi} if hi is not None else {})}


def runs_on_server(run: StepRun) -> bool:
    """Whether this step's documents are updated on the server: an `up` of a migration declared as an update, and no
    earlier run of it since it was last reverted (whose pre-images a later `down` would otherwise prefer)."""
    earlier = Ledger(run.db).pre_image_runs(run.step.version, part=run.step.part)
    return server_side(run.migration, run.step) and set(earlier) <= {run.state.run_id}


def range_filter(run: StepRun) -> dict:
    """The documents a range updates: those whose pre-image `down` and rollback can make again exactly. At the
    previous version as the step's selector says, stored as docshift writes it (no `schema_version` at the initial
    version, else the int32 version: not null, 1, a long or a double of it), and none of the fields the update touches."""
    if run.step.from_version == INITIAL_VERSION:
        version = {"$exists": False}
    else:
        version = {"$eq": run.step.from_version, "$type": "int", "$not": {"$type": "array"}}
    return {**run.selector, VERSION_FIELD: version, **absent(run.migration.declared.touched)}


def absent(names) -> dict:
    return {name: {"$exists": False} for name in names}


def update_range(coll: Collection, run: StepRun, where: dict, created: dict):
    """The range's documents the filter matches get the created values; the others only the new version. The
    results of the one or two update_many."""
    to, query = {VERSION_FIELD: run.step.to_version}, run.migration.declared.filter
    results = [coll.update_many({**where, **({"$and": [query]} if query else {})}, {"$set": {**created, **to}})]
    if query:
        results.append(coll.update_many({**where, "$nor": [query]}, {"$set": to}))
    return results


@dataclass
class IdRanges:
    """The step's ranges of ObjectId time, from its first document's second (or the checkpoint) to its last's.

    After a range that held nothing, the next starts at the second of the next document (found by probes), so that
    a gap in the `_id`s never widens a range blindly."""

    coll: Collection
    filter: dict
    target_seconds: float
    lo: ObjectId | None = None
    end: ObjectId | None = None
    width: int = 1
    gap: bool = False

    opened: bool = False

    def open(self, after: Any = None) -> None:
        """Where the ranges still to do start and end: after the checkpoint's `after` (the end of the last range
        done), or at the first document's second; to the last document's second."""
        self.opened, self.gap, self.lo, self.end = True, False, None, None
        if isinstance(after, ObjectId):
            self.lo = after
        elif self._exists({"$gte": bound(0)}):
            self.lo = bound(self._search(0, SECONDS - 1, lambda s: not self._exists({"$lt": bound(s)})))
        else:
            return  # no document with an ObjectId `_id` to do: all go per document
        last = self._search(second(self.lo), SECONDS, lambda s: self._exists({"$gte": bound(s)}))
        self.end = bound(last + 1) if last + 1 < SECONDS else None

    def _exists(self, condition: dict) -> bool:
        return self.coll.find_one({**self.filter, "_id": condition}, {"_id": 1}) is not None

    @staticmethod
    def _search(lo: int, hi: int, holds) -> int:
        """The last second in [lo, hi) for which `holds`, which is true up to some second and false after it (taken
        as true at `lo` and false at `hi`): a binary search of existence probes, about 32 of them."""
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if holds(mid) else (lo, mid)
        return lo

    def next(self) -> tuple[ObjectId, ObjectId | None] | None:
        """The next range, or None when the last second is done."""
        if self.lo is None or (self.end is not None and self.lo >= self.end):
            return None
        if self.gap:
            last = second(self.end) if self.end is not None else SECONDS
            self.lo = bound(self._search(second(self.lo), last, lambda s: not self._exists(span(self.lo, bound(s)))))
            self.gap = False
        top = second(self.lo) + self.width
        hi = bound(top) if top < SECONDS else None
        if hi is None or (self.end is not None and hi >= self.end):
            hi = self.end
        return self.lo, hi

    def record(self, hi: ObjectId | None, documents: int, seconds: float) -> None:
        """Move past a finished range and size the next from it: about `target_seconds` of updates, a quarter to four
        times as wide as the last (time grows with the width at the density the last range had)."""
        self.lo = hi
        if documents == 0:
            self.gap = True
        elif seconds > 0:
            self.width = max(1, int(min(max(self.width * self.target_seconds / seconds, self.width / 4), self.width * 4)))


def second(oid: ObjectId) -> int:
    return int.from_bytes(oid.binary[:4], "big")


def open_ranges(run: StepRun, target_seconds: float) -> IdRanges:
    """The step's ranges; their bounds are found by the first task that uses them (so that it retries them)."""
    return IdRanges(run.db[run.step.collection], range_filter(run), target_seconds)


def migrate_ranges(run: StepRun, ranges: IdRanges, max_ranges: int) -> bool:
    """Up to `max_ranges` ranges updated on the server, each recorded first and checkpointed after; True when the
    last is done. Stops at the options' deadline before the next range, as batches do."""
    db, step, state = run.db, run.step, run.state
    if not ranges.opened:
        ranges.open(state.last_id if state.started else None)
    coll, records = db[step.collection], storage.ranges(db, state.run_id)
    for i in range(max_ranges):
        if not run.ready(first=not (i or state.batches)):
            return False
        if (next_range := ranges.next()) is None:
            return True
        lo, hi = next_range
        earlier = records.find_one({"_id": lo})  # a resumed range keeps the values (a $currentDate) it recorded
        created = earlier["set"] if earlier else run.migration.declared.created()
        save_by_id(records, [{"_id": lo, "hi": hi, "set": created, "touched": list(run.migration.declared.touched)}])
        fault_point("pre-images-saved")
        started = time.monotonic()
        results = update_range(coll, run, {**range_filter(run), "_id": span(lo, hi)}, created)
        fault_point("batch-written")
        modified = sum(r.modified_count for r in results)
        state.done += modified
        state.matched += sum(r.matched_count for r in results)
        state.changed += modified
        ranges.record(hi, modified, time.monotonic() - started)
        run.checkpoint(hi if hi is not None else lo)  # a range's end: where the next starts (the last: again)
        if hi is None:
            ranges.lo = None  # the range ran to the last ObjectId
    return False


def finish_ranges(db: Database, run: StepRun) -> None:
    """The ranges are done: the per-document pass starts from the first document of the step, unless no document of
    the collection is below the step's version any more (the usual answer: one count, then no pass)."""
    state = run.state
    state.ranged, state.last_id, state.started = True, None, False
    Ledger(db).save_checkpoint({"ranged": True, "last_id": None, "started": False}, state.checkpoint_id)
    if not any_below(db[run.step.collection], run.step.to_version):
        state.none_below = run.step.to_version


def undo_ranges(db: Database, step: Step, run_id: str) -> int:
    """Undo the run's ranges (after its pre-images went back); how many documents went back.

    A document still as the range left it (at the run's version, each field as the range set it, the other touched
    fields still missing) loses those fields and goes back a version; one the range only moved to the run's version
    (lacking every touched field: the filter did not match it, or the update only removes or renames) goes back a
    version. Field-wise updates, never a replace, so that a field the application added or changed since (one the
    update does not touch) is kept. One whose set fields were written since is not matched here: it is left at the
    run's version for the rollback's sweep of documents written since (rollback.undo_written_since), which gives it
    the opposite function, as a per-document run's document written since gets it."""
    coll, guard = db[step.collection], version_filter(step.to_version)
    restored = 0
    for record in storage.ranges(db, run_id).find().sort("_id", 1):
        where = {"_id": span(record["_id"], record["hi"]), **guard}
        unset = dict.fromkeys(record["set"], "")
        undo: dict = {}
        if step.from_version == INITIAL_VERSION:
            unset[VERSION_FIELD] = ""
        else:
            undo["$set"] = {VERSION_FIELD: step.from_version}
        if unset:
            undo["$unset"] = unset
        touched = record.get("touched", list(record["set"]))
        restored += coll.update_many({**where, **field_filter(record["set"], absent=touched)}, undo).modified_count
        if record["set"] and "touched" in record:
            restored += coll.update_many({**where, **absent(touched)}, undo).modified_count
        fault_point("rollback-batch")
    return restored
