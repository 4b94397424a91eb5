"""Documents whose migration function raised: recorded with the error and left unchanged; the next run retries them."""

import traceback
from typing import Any

import bson
from pymongo.database import Database

from .. import storage
from ..errors import TransformError
from ..ledger import now
from .state import RunState
from .steps import Step


SEE_QUARANTINE = "; see `docshift quarantine`"
"""Where a failed run's message sends the user (a rehearsal, whose quarantine is dropped with its copy, leaves it out)."""


def quarantine(db: Database, step: Step, state: RunState, doc_id: Any, exc: TransformError, max_failures: int) -> None:
    """Record a document whose function raised and leave it unchanged; over `max_failures` the run fails."""
    cause = exc.__cause__ or exc
    frames = traceback.extract_tb(cause.__traceback__)[-3:]
    db[storage.QUARANTINE].replace_one(
        {"_id": f"{step.version}:{step.direction}:{bson.encode({'': doc_id}).hex()}"},
        {"collection": step.collection, "version": step.version, "direction": step.direction, "doc_id": doc_id,
         "run_id": state.run_id, "error": str(exc), "traceback": [f"{f.filename}:{f.lineno} in {f.name}" for f in frames],
         "at": now()},
        upsert=True,
    )
    state.quarantined.append(doc_id)
    if len(state.quarantined) > max_failures:
        raise TransformError(f"{len(state.quarantined)} document(s) failed, more than --max-failures {max_failures}; "
                             f"first: {exc}{SEE_QUARANTINE}") from exc


def clear_quarantine(db: Database, step: Step) -> None:
    """A new run of the step retries its quarantined documents."""
    db[storage.QUARANTINE].delete_many({"version": step.version, "direction": step.direction})


def quarantined_versions(db: Database, current: int) -> dict[str, int]:
    """Per collection, the lowest applied migration with quarantined documents: `migrate` retries from there."""
    lowest: dict[str, int] = {}
    for entry in db[storage.QUARANTINE].find({"direction": "up", "version": {"$lte": current}}):
        lowest[entry["collection"]] = min(lowest.get(entry["collection"], entry["version"]), entry["version"])
    return lowest


def quarantined(db: Database) -> list[dict]:
    """Every quarantined document's entry, by migration and time."""
    return list(db[storage.QUARANTINE].find().sort([("version", 1), ("at", 1)]))


def quarantined_ids(db: Database, collection: str, directions: tuple[str, ...] = ("up",)) -> list:
    """The `_id`s of a collection's documents that an `up` left behind on purpose (not drift); with "down" in
    `directions`, also those a `down` left ahead on purpose."""
    return [e["doc_id"] for e in db[storage.QUARANTINE].find({"collection": collection, "direction": {"$in": list(directions)}},
                                                             {"doc_id": 1})]


def quarantine_counts(db: Database) -> dict[int, int]:
    """Quarantined documents per migration."""
    counts: dict[int, int] = {}
    for entry in db[storage.QUARANTINE].find({}, {"version": 1}):
        counts[entry["version"]] = counts.get(entry["version"], 0) + 1
    return counts
