"""What one migration step is, and what it makes of one document: the pure part, without I/O.

docshift.compat, docshift.testing and docshift.phases import this module alone.
"""

from collections.abc import Callable
from dataclasses import dataclass

from ..loader import ScriptDirectory
from ..spec import INITIAL_VERSION, Direction, Migration, Phase
from ..transform import apply, version_filter


@dataclass(frozen=True)
class Step:
    """Applying (`up`) or reverting (`down`) one migration: moves documents from one schema version to another.

    `from_version`/`to_version` are the documents' schema versions; `recorded_before`/`recorded_after` the database's
    recorded version (the ledger's) before and after the step.
    """

    version: int
    direction: Direction
    collection: str
    from_version: int
    to_version: int
    recorded_before: int
    recorded_after: int
    phase: Phase | None = None
    removes: tuple[str, ...] = ()
    operation: str | None = None
    """A collection-level step's operation (`CreateIndex`, …): it changes no document's schema version."""
    part: int = 0
    """Which step of its migration (`migrations = [...]`: several steps of one version; 0 for a migration of one)."""
    ends_migration: bool = True
    """The last of its migration's steps to run in its direction: until it has, a finished step keeps the checkpoint
    (marked finished), so that a kill between two steps leaves the migration to go on from, or to take back, whole."""

    @property
    def label(self) -> str:
        action = self.phase or ("apply" if self.direction == "up" else "revert")
        return f"{action} {self.version} on {self.collection}"

    @property
    def selector(self) -> dict:
        """The documents this step still has to change; every write is guarded by it, so redoing one changes nothing."""
        if self.phase == "cleanup":
            return {**version_filter(self.to_version), "$or": [{name: {"$exists": True}} for name in self.removes]}
        if self.operation:
            return {}  # an index, a rename or a drop concerns every document of the collection
        return version_filter(self.from_version)

    @property
    def identity(self) -> dict:
        """What a checkpoint records of its step, so that a plan can tell whether to resume or undo it."""
        return {"version": self.version, "direction": self.direction, "phase": self.phase, "collection": self.collection,
                "part": self.part}


def runs_at(step: Step, checkpoint: dict | None) -> bool:
    """Whether `checkpoint` is of a run of `step` (same migration, step of it, direction and phase): then it resumes."""
    return bool(checkpoint) and (checkpoint.get("version"), checkpoint.get("direction"), checkpoint.get("phase"),
                                 checkpoint.get("part", 0)) == (step.version, step.direction, step.phase, step.part)


def make_steps(scripts: ScriptDirectory, version: int, direction: Direction) -> list[Step]:
    """Every step of migration `version` in `direction`, in the order they run: up in the file's order, down reversed."""
    steps = [make_step(scripts, version, direction, part=i) for i in range(len(scripts.get(version).parts))]
    return steps if direction == "up" else steps[::-1]


def make_step(scripts: ScriptDirectory, version: int, direction: Direction, phase: Phase | None = None,
              part: int = 0) -> Step:
    """Step `part` of `version` in `direction`; a `phase` of an expand-contract change (backfill, cleanup) is an `up`.

    Of a migration of several steps, only the last to run moves the recorded version (up: the last, down: the first):
    until then the database is recorded where it was, and an interrupted or failed migration is undone as a whole."""
    migration = scripts.part(version, part)
    before, recorded_before = scripts.collection_predecessor(version, part), scripts.global_predecessor(version)
    last = len(scripts.get(version).parts) - 1
    if phase == "cleanup":
        return Step(version=version, direction=direction, collection=migration.collection, from_version=version,
                    to_version=version, recorded_before=version, recorded_after=version, phase=phase,
                    removes=migration.expand_contract.removes)
    operation = type(migration.operation).__name__ if migration.operation is not None else None
    if direction == "up":
        return Step(version=version, direction="up", collection=migration.collection, from_version=before,
                    to_version=version, recorded_before=recorded_before,
                    recorded_after=version if part == last else recorded_before, phase=phase, operation=operation,
                    part=part, ends_migration=part == last)
    return Step(version=version, direction="down", collection=migration.collection, from_version=version,
                to_version=before, recorded_before=version, recorded_after=recorded_before if part == 0 else version,
                phase=phase, operation=operation, part=part, ends_migration=part == 0)


def step_function(migration: Migration, step: Step) -> tuple[Callable, bool]:
    """The function `step` applies to each document, and whether it takes the pre-image as well."""
    if step.phase == "cleanup":
        if step.direction == "up":
            return (lambda doc: {k: v for k, v in doc.items() if k not in step.removes}), False
        return (lambda doc, pre: {**doc, **{k: pre[k] for k in step.removes if pre and k in pre}}), True
    if step.direction == "up":
        return (migration.expand_contract.backfill if step.phase == "backfill" else migration.up), False
    return migration.down, migration.down_uses_pre_image


def server_side(migration: Migration, step: Step) -> bool:
    """Whether the step can update documents on the server without reading them: the one-step `up` of a migration
    declared as an update (docshift.engine.ranges)."""
    return migration.update is not None and step.direction == "up" and step.phase is None


def wants_pre_image(migration: Migration, step: Step) -> bool:
    return step_function(migration, step)[1]


def transform_one(migration: Migration, step: Step, doc: dict, pre_image: dict | None, lookup=None,
                  private: dict | None = None) -> dict:
    """The document `step` turns `doc` into, with `schema_version` set (or removed at the initial version).
    `lookup` (a docshift.lookup.Lookup) goes to a function that asks for it; `private`: a copy of `doc` the function
    may change (default: a deep copy)."""
    fn, takes_pre_image = step_function(migration, step)
    label = f"migration {step.version} {step.phase or step.direction}" + (" (undo)" if step.phase and step.direction == "down" else "")
    new = apply(fn, doc, *((pre_image,) if takes_pre_image else ()), label=label, lookup=lookup, private=private)
    new.pop("schema_version", None)
    if step.to_version != INITIAL_VERSION:
        new["schema_version"] = step.to_version
    return new
