"""Drift: documents behind or ahead of the schema version the ledger records for their collection.

This is docshift's one notion of drift. Documents behind come from a backup restored over newer documents
(`restore --keep-version`), or from old application code that inserts or rewrites a document at an old version
while or after a run; a run counts those it left behind in its history entry (`behind`, engine.verify), and this
module finds every one of them as the database stands. Quarantined documents are behind on purpose and are counted
apart (`docshift quarantine`). `migrate` carries documents behind up as it retries quarantined ones.

Documents ahead carry a version the ledger has not reached: written by newer application code, by hand, or left by
a restore that moved the record back without them. `migrate` changes none of them (a step selects the documents at
its previous version), so they are never its own: it names them instead. Documents are ahead legitimately while a
run is under way (its checkpoint: unfinished, paused, or being rolled back) and while an expand-contract change has
phases recorded (the application dual-writes at the new version, backfill moves documents up before the record);
those are not drift. `status`, `verify` and `migrate`'s last line show both kinds.
"""

from dataclasses import dataclass, field

from pymongo.collection import Collection
from pymongo.database import Database

from ..ledger import Ledger
from ..loader import ScriptDirectory
from ..spec import INITIAL_VERSION
from ..transform import VERSION_FIELD
from .quarantine import quarantined_ids
from .steps import Step, make_step, make_steps


@dataclass(frozen=True)
class Drift:
    """One collection's documents behind or ahead of the version recorded for it, counted per schema version."""

    collection: str
    recorded: int
    behind: dict[int, int]
    ahead: dict[int, int] = field(default_factory=dict)

    @property
    def documents(self) -> int:
        return sum(self.behind.values())

    def describe(self) -> str:
        parts = []
        for counts, where in ((self.behind, "behind"), (self.ahead, "ahead of")):
            if counts:
                at = ", ".join(f"{n:,} at {v}" for v, n in sorted(counts.items()))
                parts.append(f"{sum(counts.values()):,} documents {where} version {self.recorded} ({at})")
        return f"{self.collection}: " + " and ".join(parts)


def lineage(scripts: ScriptDirectory, collection: str, upto: int) -> list[int]:
    """The migrations that changed the documents `collection` holds once the database is at `upto`, oldest first:
    followed back through renames; a collection created by a copy starts at version 1; collection-level steps
    change no document's version (as ScriptDirectory.collection_predecessor)."""
    found = []
    for version, migration in reversed([(v, m) for v, m in scripts.units() if v <= upto]):
        if migration.operation is None and migration.collection == collection:
            found.append(version)
        elif migration.operation is not None and migration.operation.renames_to == collection:
            collection = migration.collection
        elif migration.operation is not None and migration.operation.creates == collection:
            break
    return found[::-1]


def collection_names(scripts: ScriptDirectory) -> list[str]:
    """Every collection whose documents the migrations version: changed by one, or renamed or copied into."""
    names: dict[str, None] = {}
    for _, migration in scripts.units():
        if migration.operation is None:
            names[migration.collection] = None
        elif target := (migration.operation.renames_to or migration.operation.creates):
            names[target] = None
    return list(names)


def collection_versions(scripts: ScriptDirectory, recorded: int) -> dict[str, int]:
    """The schema version each collection's documents are at when the database is recorded at `recorded`."""
    return {c: (lineage(scripts, c, recorded) or [INITIAL_VERSION])[-1] for c in collection_names(scripts)}


def expected_versions(scripts: ScriptDirectory, recorded: int, checkpoint: dict | None) -> dict[str, int]:
    """What no document of a collection may be below: its recorded version, lowered for the collection of an
    unfinished down or rollback, which moves documents below the record before it moves the record."""
    versions = collection_versions(scripts, recorded)
    moving_down = checkpoint and (checkpoint.get("direction") == "down" or checkpoint.get("rolling_back"))
    for step in checkpoint_steps(scripts, checkpoint) if moving_down else []:
        if step.collection in versions:
            versions[step.collection] = min(versions[step.collection], step.from_version, step.to_version)
    return versions


def highest_versions(scripts: ScriptDirectory, recorded: int, checkpoint: dict | None,
                     phased: list[int]) -> dict[str, int]:
    """What no document of a collection may be above: its recorded version, raised for the collection of a run under
    way (its checkpoint: it moves documents before it moves the record, either way) and for the collection of each
    migration in `phased` (expand-contract phases recorded: dual-writes and backfill are at its version early)."""
    versions = collection_versions(scripts, recorded)
    steps = [make_step(scripts, v, "up") for v in phased if v > recorded and v in scripts.scripts]
    for step in steps + checkpoint_steps(scripts, checkpoint):
        if step.collection in versions:
            versions[step.collection] = max(versions[step.collection], step.from_version, step.to_version)
    return versions


def checkpoint_steps(scripts: ScriptDirectory, checkpoint: dict | None) -> list[Step]:
    """The steps a run under way moves documents by: the checkpointed one, and the steps of its migration that ran
    before it (a migration of several steps moves the record only after its last)."""
    if not checkpoint or checkpoint.get("version") not in scripts.scripts:
        return []
    if checkpoint.get("phase"):
        return [make_step(scripts, checkpoint["version"], checkpoint["direction"], checkpoint["phase"])]
    ran = make_steps(scripts, checkpoint["version"], checkpoint["direction"])
    return ran[: [s.part for s in ran].index(checkpoint.get("part", 0)) + 1]


def below(version: int) -> dict:
    """Documents at a schema version below `version` (one without `schema_version`, or null there, is at 1)."""
    return {"$or": [{VERSION_FIELD: {"$lt": version}}, {VERSION_FIELD: None}]}


def any_below(coll: Collection, version: int) -> bool:
    """Whether any document of the collection is below `version`, quarantined ones included: one count, which stops
    at the first (none, the usual answer after a run, reads the collection once)."""
    return bool(coll.count_documents(below(version), limit=1))


def find_drift(db: Database, scripts: ScriptDirectory, recorded: int, checkpoint: dict | None = None,
               collections: list[str] | None = None, none_below: dict[str, int] | None = None) -> list[Drift]:
    """Per collection (or the given ones), the documents behind or ahead of it, quarantined ones left out: one count
    each when there are none, a second scan to count them per version when there are. `none_below`: collections a
    run has just counted no document below a version in (Verification.none_below), not counted again up to that
    version (the run has just applied that collection's latest migration: nothing of it is ahead either)."""
    found, none_below = [], none_below or {}
    phased = [v for v in Ledger(db).phased_versions() if v > recorded]
    highest = highest_versions(scripts, recorded, checkpoint, phased)
    for collection, expected in expected_versions(scripts, recorded, checkpoint).items():
        if collections is not None and collection not in collections or expected <= none_below.get(collection, 0):
            continue  # a collection the run has just counted none below its latest version in
        ahead = {VERSION_FIELD: {"$gt": highest[collection]}}
        match = ahead if expected <= INITIAL_VERSION else {"$or": [*below(expected)["$or"], ahead]}  # none below 1
        if held := quarantined_ids(db, collection, ("up", "down")):
            match = {**match, "_id": {"$nin": held}}
        if not db[collection].count_documents(match):  # the usual answer, and the cheaper scan
            continue
        counts: tuple[dict[int, int], dict[int, int]] = ({}, {})  # behind, ahead
        for doc in db[collection].find(match, {VERSION_FIELD: 1}).batch_size(1000):
            version = doc.get(VERSION_FIELD) or INITIAL_VERSION
            side = counts[version > expected]
            side[version] = side.get(version, 0) + 1
        if any(counts):
            found.append(Drift(collection, expected, *counts))
    return found


def carry_from(scripts: ScriptDirectory, drift: list[Drift]) -> dict[str, int]:
    """Per collection with documents behind, the first migration that carries its lowest documents up again."""
    return {d.collection: min(v for v in lineage(scripts, d.collection, d.recorded) if v > min(d.behind))
            for d in drift if d.behind}


def drift_now(db: Database, scripts: ScriptDirectory, collections: list[str] | None = None) -> list[Drift]:
    """Drift as the ledger stands now: its recorded version, its unfinished run and phases, if any."""
    ledger = Ledger(db)
    return find_drift(db, scripts, ledger.current_version(), ledger.checkpoint(), collections)


def describe_all(drift: list[Drift]) -> str:
    return "; ".join(d.describe() for d in drift)


def advice(drift: list[Drift]) -> str:
    """What to run about it: documents behind are carried up by the next `migrate`; documents ahead are changed by
    no run, so the user decides: take the record up to them and check them, or from there back down."""
    if not (ahead := [d for d in drift if d.ahead]):
        return "the next `docshift migrate` carries them up"
    top = max(max(d.ahead) for d in ahead)
    said = ["the next `docshift migrate` carries those behind up"] if any(d.behind for d in drift) else []
    said.append(f"no run changes those ahead (a step selects documents at its previous version): `docshift migrate "
                f"{top}` takes the record up to them as they are, then `docshift verify {top}` checks them and a "
                f"`docshift migrate` down from there takes them back through the downs")
    return "; ".join(said)


def reached(scripts: ScriptDirectory, drift: list[Drift], recorded: int) -> list[Drift]:
    """Of the documents that were ahead, those at or below their collection's version once the database is recorded
    at `recorded`: a run took them as they were, neither migrating nor checking them."""
    versions, found = collection_versions(scripts, recorded), []
    for d in drift:
        if taken := {v: n for v, n in d.ahead.items() if v <= versions.get(d.collection, INITIAL_VERSION)}:
            found.append(Drift(d.collection, d.recorded, {}, taken))
    return found
