"""Documents behind: documents below the schema version the ledger records for their collection (drift).

This is docshift's one notion of documents behind. They come from a backup restored over newer documents
(`restore --keep-version`), or from old application code that inserts or rewrites a document at an old version
while or after a run; a run counts those it left behind in its history entry (`behind`, engine.verify), and this
module finds every one of them as the database stands. Quarantined documents are behind on purpose and are counted
apart (`docshift quarantine`). `migrate` carries documents behind up as it retries quarantined ones; `status`,
`verify` and `migrate`'s last line show them.
"""

from dataclasses import dataclass

from pymongo.collection import Collection
from pymongo.database import Database

from ..ledger import Ledger
from ..loader import ScriptDirectory
from ..spec import INITIAL_VERSION
from ..transform import VERSION_FIELD
from .quarantine import quarantined_ids
from .steps import make_step


@dataclass(frozen=True)
class Drift:
    """One collection's documents behind the version recorded for it, counted per schema version."""

    collection: str
    recorded: int
    behind: dict[int, int]

    @property
    def documents(self) -> int:
        return sum(self.behind.values())

    def describe(self) -> str:
        at = ", ".join(f"{n:,} at {v}" for v, n in sorted(self.behind.items()))
        return f"{self.collection}: {self.documents:,} documents behind version {self.recorded} ({at})"


def lineage(scripts: ScriptDirectory, collection: str, upto: int) -> list[int]:
    """The migrations that changed the documents `collection` holds once the database is at `upto`, oldest first:
    followed back through renames; a collection created by a copy starts at version 1; collection-level steps
    change no document's version (as ScriptDirectory.collection_predecessor)."""
    found = []
    for version in reversed([v for v in scripts.versions if v <= upto]):
        migration = scripts.get(version).migration
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
    for version in scripts.versions:
        migration = scripts.get(version).migration
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
    if moving_down and checkpoint.get("version") in scripts.scripts:
        step = make_step(scripts, checkpoint["version"], checkpoint["direction"], checkpoint.get("phase"))
        if step.collection in versions:
            versions[step.collection] = min(versions[step.collection], step.from_version, step.to_version)
    return versions


def below(version: int) -> dict:
    """Documents at a schema version below `version` (one without `schema_version`, or null there, is at 1)."""
    return {"$or": [{VERSION_FIELD: {"$lt": version}}, {VERSION_FIELD: None}]}


def any_below(coll: Collection, version: int) -> bool:
    """Whether any document of the collection is below `version`, quarantined ones included: one count, which stops
    at the first (none, the usual answer after a run, reads the collection once)."""
    return bool(coll.count_documents(below(version), limit=1))


def find_drift(db: Database, scripts: ScriptDirectory, recorded: int, checkpoint: dict | None = None,
               collections: list[str] | None = None, none_below: dict[str, int] | None = None) -> list[Drift]:
    """Per collection (or the given ones), the documents behind it, quarantined ones left out: one count each when
    there are none, a second scan to count them per version when there are. `none_below`: collections a run has
    just counted no document below a version in (Verification.none_below), not counted again up to that version."""
    found, none_below = [], none_below or {}
    for collection, expected in expected_versions(scripts, recorded, checkpoint).items():
        wanted = collections is None or collection in collections
        if not wanted or expected <= none_below.get(collection, INITIAL_VERSION):
            continue  # nothing is below the initial version, nor below a version just counted
        match = below(expected)
        if held := quarantined_ids(db, collection):
            match = {**match, "_id": {"$nin": held}}
        if not db[collection].count_documents(match):  # the usual answer, and the cheaper scan
            continue
        behind: dict[int, int] = {}
        for doc in db[collection].find(match, {VERSION_FIELD: 1}).batch_size(1000):
            version = doc.get(VERSION_FIELD) or INITIAL_VERSION
            behind[version] = behind.get(version, 0) + 1
        if behind:
            found.append(Drift(collection, expected, behind))
    return found


def carry_from(scripts: ScriptDirectory, drift: list[Drift]) -> dict[str, int]:
    """Per collection with documents behind, the first migration that carries its lowest documents up again."""
    return {d.collection: min(v for v in lineage(scripts, d.collection, d.recorded) if v > min(d.behind))
            for d in drift}


def drift_now(db: Database, scripts: ScriptDirectory, collections: list[str] | None = None) -> list[Drift]:
    """Documents behind as the ledger stands now: its recorded version and its unfinished run, if any."""
    ledger = Ledger(db)
    return find_drift(db, scripts, ledger.current_version(), ledger.checkpoint(), collections)


def describe_all(drift: list[Drift]) -> str:
    return "; ".join(d.describe() for d in drift)
