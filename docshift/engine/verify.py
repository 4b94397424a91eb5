"""Checks of a step's result against the data: nothing left to do, nothing gone, migrated documents valid."""

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import bson
from pydantic import ValidationError
from pymongo.collection import Collection
from pymongo.database import Database

from ..context import RunContext
from ..errors import VerificationFailed
from ..ledger import Ledger
from ..spec import INITIAL_VERSION, Migration
from ..transform import version_filter
from .cursor import collection_count
from .drift import any_below, describe_all, drift_now
from .faults import fault_point
from .operation_verify import verify_actions
from .steps import Step, make_steps


@dataclass(frozen=True)
class Check:
    check: str
    expected: Any
    found: Any
    passed: bool


@dataclass
class Verification:
    checks: list[Check] = field(default_factory=list)
    behind: int = 0
    """Documents a run left at its source version because they were written there during the run (old code)."""
    behind_ids: list = field(default_factory=list)
    """The first ten of them, in `_id` order."""
    none_below: int | None = None
    """The step's new version, when a run found no document of its collection below it (the usual answer, one count):
    none left, none behind; the drift count after the run need not count that collection again."""

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def add(self, name: str, expected: Any, found: Any, passed: bool) -> None:
        self.checks.append(Check(name, expected, found, passed))

    def summary(self) -> str:
        return "; ".join(f"{c.check}: expected {c.expected}, found {c.found}" for c in self.checks if not c.passed)

    def rows(self) -> list[dict]:
        """The checks as table rows (the Prefect table artifact, the flow's result)."""
        return [{**asdict(c), "verdict": "pass" if c.passed else "FAIL"} for c in self.checks]


def sample_every(migration: Migration) -> int:
    """Every how many migrated documents one is validated against the target model (its declared rate)."""
    return round(1 / migration.verify_sample_rate)


def validates(migration: Migration, step: Step) -> bool:
    """Whether the documents a step writes are checked against the migration's target model."""
    return step.direction == "up" and migration.target_model is not None


def validate_written(migration: Migration, step: Step, new: dict) -> None:
    """Check one document as a batch is about to write it (what the server will hold once the guarded update
    matches, BSON types as stored); an invalid one fails the run before anything of its batch is written."""
    try:
        migration.target_model.model_validate(bson.decode(bson.encode(new)))
    except ValidationError as exc:
        raise VerificationFailed(f"verification failed: documents valid as {migration.target_model.__name__}: "
                                 f"_id={new['_id']!r}: {exc.errors()[0]['loc']} {exc.errors()[0]['msg']} (found before "
                                 f"its batch was written)") from exc


@dataclass(frozen=True)
class DuringRun:
    """What a run knows when it checks its own result after its last sweep: the documents it quarantined, and how
    many it checked against the target model as it wrote them (validate_written; None: not checked, read them)."""

    quarantined: Sequence = ()
    validated: int | None = None
    none_below: int | None = None
    """RunState.none_below: the run counted no document below its new version after its last write."""


def verify_step(db: Database, migration: Migration, step: Step, count_before: int | None,
                during: DuringRun | None = None) -> Verification:
    """Only quarantined documents left to do, no document gone, migrated documents valid for the target model; for a
    collection-level step, the state its actions left (the index is there, the collection was renamed, …).

    `during`: the run's own check after its last sweep. Any other document still to do was then written at the
    source version after that sweep read the collection (old code inserting or writing while the run ran): it is
    counted and named as such (`behind`), not a failure. Outside a run (`docshift verify`) it fails the check. A run
    moving documents up counts every document below its new version first (or takes the count it made after its
    ranges): none, the usual answer, settles both what is left and the collection's drift. The documents the run
    checked as it wrote them are not read again; otherwise those at the target version are.
    """
    coll = db[step.collection]
    result = Verification()
    if migration.operation is not None:
        for row in verify_actions(db, migration, step):
            result.add(*row)
        fault_point("verify")
        return result
    quarantined = list(during.quarantined) if during else []
    result.none_below = counted_none_below(coll, step, during)
    left = 0 if result.none_below else coll.count_documents(step.selector)
    if during and left:
        count_behind(coll, step, quarantined, result)
        left = coll.count_documents({**step.selector, "_id": {"$in": quarantined}}) if quarantined else 0
    todo = f"documents still holding {', '.join(step.removes)}" if step.phase == "cleanup" else f"documents left at version {step.from_version}"
    result.add(todo + (" (quarantined)" if quarantined else ""), len(quarantined), left, left == len(quarantined))
    if count_before is not None:  # a run inserts and deletes nothing; the application may insert meanwhile
        total = collection_count(coll)
        result.add("document count", f"at least {count_before}", total, total >= count_before)
    fault_point("verify")
    if validates(migration, step):
        check_model(coll, migration, step, during.validated if during else None, result)
    return result


def counted_none_below(coll: Collection, step: Step, during: DuringRun | None) -> int | None:
    """For a run moving documents up with none quarantined: its new version if no document of the collection is
    below it (counted by the run after its last write, or now), else None."""
    if during is None or during.quarantined or step.from_version >= step.to_version:
        return None
    if during.none_below is not None:
        return during.none_below
    return None if any_below(coll, step.to_version) else step.to_version


def count_behind(coll: Collection, step: Step, quarantined: list, result: Verification) -> None:
    """The documents still to do but not quarantined, in one read (the application may go on writing): `behind`."""
    others = {**step.selector, "_id": {"$nin": quarantined}} if quarantined else step.selector
    ids = [d["_id"] for d in coll.find(others, {"_id": 1}).sort("_id", 1)]
    result.behind, result.behind_ids = len(ids), ids[:10]
    if ids:
        result.add(f"{written_during_run(step)} (counted, left there)", "any", f"{len(ids)} e.g. _id={ids[0]!r}", True)


def check_model(coll: Collection, migration: Migration, step: Step, validated: int | None, result: Verification) -> None:
    """Migrated documents valid as the target model: counted if the run checked them as written, else read."""
    every = sample_every(migration)  # a declared rate: every n-th document in `_id` order
    scope = "all" if every == 1 else f"1 in {every}"
    if validated is not None:
        result.add(f"documents valid as {migration.target_model.__name__} ({scope}: {validated:,} checked as written)",
                   0, 0, True)  # an invalid one failed its batch before it was written
        return
    invalid, checked = [], 0
    for i, doc in enumerate(coll.find(version_filter(step.to_version)).sort("_id", 1).batch_size(1000)):
        if i % every:
            continue
        checked += 1
        try:
            migration.target_model.model_validate(doc)
        except ValidationError as exc:
            invalid.append(f"_id={doc['_id']!r}: {exc.errors()[0]['loc']} {exc.errors()[0]['msg']}")
    result.add(f"documents valid as {migration.target_model.__name__} ({scope}: {checked:,} checked)", 0,
               len(invalid) if not invalid else f"{len(invalid)} e.g. {invalid[0]}", not invalid)


def written_during_run(step: Step) -> str:
    """What a run calls the documents written at its source version while it ran."""
    if step.phase == "cleanup":
        return f"given {', '.join(step.removes)} again during the run"
    return f"written at version {step.from_version} during the run"


def verify_applied(ctx: RunContext, version: int | None) -> tuple[int, Verification]:
    """`docshift verify [VERSION]`: an applied migration's checks (default: the current version's) against the data
    now, and no document behind or ahead of its collection's recorded version (drift: of that migration's collection, or of every
    one by default). At the initial version there is no migration to check, only the drift (documents ahead)."""
    asked = version is not None
    version = ctx.scripts.check_target(version) if asked else Ledger(ctx.db).current_version()
    if version == INITIAL_VERSION:
        result, collections = Verification(), None
    else:
        result, collections = Verification(), []
        for step in make_steps(ctx.scripts, version, "up"):  # each step of the migration, its checks in one list
            result.checks += verify_step(ctx.db, ctx.scripts.part(version, step.part), step, None).checks
            collections.append(step.collection)
    behind = drift_now(ctx.db, ctx.scripts, collections if asked else None)
    result.add("documents behind or ahead of their collection's recorded version (drift)", 0, describe_all(behind) or 0, not behind)
    return version, result
