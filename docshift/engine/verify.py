"""Checks of a step's result against the data: nothing left to do, nothing gone, migrated documents valid."""

from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import ValidationError
from pymongo.database import Database

from ..spec import Migration
from ..transform import version_filter
from .cursor import collection_count
from .faults import fault_point
from .operation_steps import verify_actions
from .steps import Step


@dataclass(frozen=True)
class Check:
    check: str
    expected: Any
    found: Any
    passed: bool


@dataclass
class Verification:
    checks: list[Check] = field(default_factory=list)

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


def verify_step(db: Database, migration: Migration, step: Step, count_before: int | None,
                quarantined: int = 0) -> Verification:
    """Only quarantined documents left to do, no document gone, migrated documents valid for the target model; for a
    collection-level step, the state its actions left (the index is there, the collection was renamed, …)."""
    coll = db[step.collection]
    result = Verification()
    if migration.operation is not None:
        for row in verify_actions(db, migration, step):
            result.add(*row)
        fault_point("verify")
        return result
    left = coll.count_documents(step.selector)
    todo = f"documents still holding {', '.join(step.removes)}" if step.phase == "cleanup" else f"documents left at version {step.from_version}"
    result.add(todo + (" (quarantined)" if quarantined else ""), quarantined, left, left == quarantined)
    if count_before is not None:  # a run inserts and deletes nothing; the application may insert meanwhile
        total = collection_count(coll)
        result.add("document count", f"at least {count_before}", total, total >= count_before)
    fault_point("verify")
    if step.direction == "up" and migration.target_model is not None:
        every = round(1 / migration.verify_sample_rate)  # a declared rate: every n-th document in `_id` order
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
