"""Parallel partitions of a step: `_id` ranges of about equal size, each with its own checkpoint."""

import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from pymongo.collection import Collection
from pymongo.database import Database

from ..errors import DatabaseError, PartitionStalled
from ..ledger import CHECKPOINT, Ledger
from ..servers import UNSUPPORTED
from .state import RunState
from .steps import Step


def partition_bounds(coll: Collection, selector: dict, partitions: int, total: int) -> tuple[list[Any], list[int]]:
    """`partitions - 1` `_id` values that split the step's `total` documents into ranges of about equal size, and
    about how many documents each range holds (for its progress; nothing is counted again).

    `$bucketAuto` where the server has it (MongoDB; not FerretDB 1.24 nor mongomock: docshift.servers); else the
    `_id`s at the quantiles, read by skipping along the `_id` order.
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


def start_partitions(db: Database, step: Step, state: RunState, partitions: int) -> list[RunState]:
    """The partitions of a run, each a state with its own checkpoint (its `_id` range's bounds kept with it).

    Resumed from their checkpoints, or split anew. Documents outside every range (another `_id` type, or written
    behind a cursor) are left to the run's own cursor afterwards.
    """
    ledger = Ledger(db)
    saved = [p for p in ledger.partition_checkpoints() if p["run_id"] == state.run_id]
    if saved:
        return [RunState.from_checkpoint(p) for p in saved]
    bounds, sizes = partition_bounds(db[step.collection], step.selector, partitions, state.total)
    parts = []
    for index, size in enumerate(sizes):
        part = replace(state, partition=index, last_id=None, started=False, done=0, matched=0, changed=0, batches=0,
                       validated=0, resumed=0, quarantined=[], total=size)
        ledger.start_checkpoint({**asdict(part), "kind": "partition", "index": index, "bounds": bounds}, part.checkpoint_id)
        parts.append(part)
    return parts


def resume_partition(db: Database, step: Step, run_id: str, index: int) -> tuple[RunState, dict]:
    """One partition's state and selector, read back from its checkpoint by whichever process runs it."""
    saved = Ledger(db).coll.find_one({"_id": f"{CHECKPOINT}.{index}", "run_id": run_id})
    if saved is None:
        raise DatabaseError(f"partition {index} of run {run_id} has no checkpoint")
    return RunState.from_checkpoint(saved), {**step.selector, **partition_range(saved["bounds"], index)}


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
            if state.validated is not None:
                state.validated = None if part.get("validated") is None else state.validated + part["validated"]
            state.quarantined += part["quarantined"]
    Ledger(db).update_entry(state.run_id, {"partitions": summary})
    state.partitioned, state.last_id, state.started = True, None, False
    Ledger(db).save_checkpoint({k: getattr(state, k) for k in ("partitioned", "last_id", "started", "done", "matched",
                                                               "changed", "batches", "validated", "quarantined")})


@dataclass
class StallWatch:
    """Which partition of a run has made no checkpoint for `stall_seconds` (as this process saw its checkpoints change,
    on its own clock): the parent of the partitions' tasks asks while it waits for them, so a stuck task (a frozen
    Dask worker, a connection that never answers) cannot keep the run, and the lock it renews, waiting for ever."""

    db: Database
    run_id: str
    stall_seconds: float
    seen: dict[int, tuple[Any, float]] = field(default_factory=dict)

    def stalled(self) -> dict | None:
        """The checkpoint of the first unfinished partition without a new checkpoint for too long, or None."""
        t = time.monotonic()
        for part in Ledger(self.db).partition_checkpoints():
            if part["run_id"] != self.run_id or part.get("finished"):
                continue
            mark = (part.get("updated_at"), part["done"], part["batches"])
            if self.seen.get(part["index"], (None, 0.0))[0] != mark:
                self.seen[part["index"]] = (mark, t)
            elif t - self.seen[part["index"]][1] >= self.stall_seconds:
                return part
        return None

    def pause(self, part: dict, label: str) -> PartitionStalled:
        """Mark the run's checkpoint stalled (what `status` shows) and say what to do; the caller keeps the lock."""
        worker = part.get("worker", "not started")
        Ledger(self.db).save_checkpoint({"stalled": {"partition": part["index"], "worker": worker,
                                                     "seconds": self.stall_seconds}})
        return PartitionStalled(
            f"{label}: partition {part['index']} made no checkpoint for {self.stall_seconds:g} s "
            f"(DOCSHIFT_PARTITION_STALL_SECONDS; worker {worker}), at {part['done']:,} of {part['total']:,} documents: "
            f"the run is paused at its checkpoints and keeps the lock, since that task may still write; stop that "
            f"worker (or cancel its task), then run `docshift unlock`, and `docshift migrate` resumes")
