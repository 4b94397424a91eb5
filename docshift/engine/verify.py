"""Checks of a step's result against the data: nothing left to do, nothing gone, migrated documents valid."""

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import bson
from pydantic import ValidationError
from pymongo.database import Database

from ..context import RunContext
from ..errors import VerificationFailed
from ..ledger import Ledger
from ..spec import INITIAL_VERSION, Migration
from ..transform import version_filter
from .cursor import collection_count
from .drift import describe_all, drift_now
from .faults import fault_point
from .operation_steps import verify_actions
from .steps import Step, make_step


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


def verify_step(db: Database, migration: Migration, step: Step, count_before: int | None,
                quarantined: Sequence = (), during_run: bool = False, validated: int | None = None) -> Verification:
    """Only quarantined documents left to do, no document gone, migrated documents valid for the target model; for a
    collection-level step, the state its actions left (the index is there, the collection was renamed, …).

    `during_run`: the run's own check after its last sweep. Any other document still to do was then written at
    the source version after that sweep read the collection (old code inserting or writing while the run ran): it
    is counted and named as such (`behind`), not a failure. Outside a run (`docshift verify`) it fails the check.

    `validated`: how many documents the run checked against the target model as it wrote them (validate_written);
    then they are not read again. Without it (`docshift verify`, a run whose documents were also updated on the
    server), the documents at the target version are read and checked here.
    """
    coll = db[step.collection]
    result = Verification()
    if migration.operation is not None:
        for row in verify_actions(db, migration, step):
            result.add(*row)
        fault_point("verify")
        return result
    left = coll.count_documents(step.selector)
    if during_run and left:  # each counted apart (not one from the other): the application may go on writing
        others = {**step.selector, "_id": {"$nin": list(quarantined)}} if quarantined else step.selector
        result.behind = coll.count_documents(others) if quarantined else left
        result.behind_ids = [d["_id"] for d in coll.find(others, {"_id": 1}).sort("_id", 1).limit(10)]
        left = coll.count_documents({**step.selector, "_id": {"$in": list(quarantined)}}) if quarantined else 0
    todo = f"documents still holding {', '.join(step.removes)}" if step.phase == "cleanup" else f"documents left at version {step.from_version}"
    result.add(todo + (" (quarantined)" if quarantined else ""), len(quarantined), left, left == len(quarantined))
    if result.behind:
        example = f" e.g. _id={result.behind_ids[0]!r}" if result.behind_ids else ""
        result.add(f"{written_during_run(step)} (counted, left there)", "any", f"{result.behind}{example}", True)
    if count_before is not None:  # a run inserts and deletes nothing; the application may insert meanwhile
        total = collection_count(coll)
        result.add("document count", f"at least {count_before}", total, total >= count_before)
    fault_point("verify")
    if validates(migration, step) and validated is not None:
        scope = "all" if sample_every(migration) == 1 else f"1 in {sample_every(migration)}"
        result.add(f"documents valid as {migration.target_model.__name__} ({scope}: {validated:,} checked as written)",
                   0, 0, True)  # an invalid one failed its batch before it was written
    elif validates(migration, step):
        every = sample_every(migration)  # a declared rate: every n-th document in `_id` order
        invalid, checked = [], 0
        for i, doc in enumerate(coll.find(version_filter(step.to_version)).sort("_id", 1).batch_size(1000)):
            if i % every:
                continue
            checked += 1
            try:
                migration.target_model.model_validate(doc)
            except ValidationError as exc:
                invalid.append(f"_id={doc['_id']!r}: {exc.errors()[0]['loc']} {exc.errors()[0]['msg']}")
        scope = "all" if every == 1 else f"1 in {every}"
        result.add(f"documents valid as {migration.target_model.__name__} ({scope}: {checked:,} checked)", 0,
                   len(invalid) if not invalid else f"{len(invalid)} e.g. {invalid[0]}", not invalid)
    return result


def written_during_run(step: Step) -> str:
    """What a run calls the documents written at its source version while it ran."""
    if step.phase == "cleanup":
        return f"given {', '.join(step.removes)} again during the run"
    return f"written at version {step.from_version} during the run"


def verify_applied(ctx: RunContext, version: int | None) -> tuple[int, Verification]:
    """`docshift verify [VERSION]`: an applied migration's checks (default: the current version's) against the data
    now, and no document behind its collection's recorded version (drift: of that migration's collection, or of every
    one by default). At the initial version there is nothing to check: (1, no checks)."""
    asked = version is not None
    version = ctx.scripts.check_target(version) if asked else Ledger(ctx.db).current_version()
    if version == INITIAL_VERSION:
        return version, Verification()
    step = make_step(ctx.scripts, version, "up")
    result = verify_step(ctx.db, ctx.scripts.get(version).migration, step, None)
    behind = drift_now(ctx.db, ctx.scripts, [step.collection] if asked else None)
    result.add("documents behind their collection's recorded version (drift)", 0, describe_all(behind) or 0, not behind)
    return version, result
