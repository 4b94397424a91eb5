"""Expand-contract phases of a migration: which may start now, as the ledger and the data stand.

A phase waits for the one before it: backfill for expand; contract for a verified backfill with no document left at
the old version; cleanup for contract plus the soak time. The Prefect flows in flows/phases.py run them.
"""

from datetime import timedelta

from pymongo.database import Database

from .engine.steps import make_step
from .errors import PhaseError, TargetError
from .ledger import Ledger, as_utc, now
from .loader import ScriptDirectory
from .spec import PHASES
from .transform import version_filter


def check_ready(db: Database, scripts: ScriptDirectory, version: int, phase: str, soak_seconds: float) -> None:
    """Raise PhaseError naming what is missing unless `phase` of migration `version` may start now."""
    if phase not in PHASES:
        raise TargetError(f"unknown phase {phase!r}; phases: {', '.join(PHASES)}")
    migration = scripts.get(scripts.check_target(version)).migration
    if migration.expand_contract is None:
        raise TargetError(f"migration {version} declares no expand-contract phases (expand_contract=…)")
    ledger = Ledger(db)
    done = ledger.phases(version)
    if phase == "expand":
        current, before = ledger.current_version(), scripts.global_predecessor(version)
        if "expand" not in done and current != before:
            raise PhaseError(f"expand of migration {version} needs the database at version {before}; it is at {current}")
        return
    previous = PHASES[PHASES.index(phase) - 1]
    if previous not in done:
        raise PhaseError(f"{phase} of migration {version} waits for {previous}, which has not completed")
    if not done[previous].get("verified", True):
        raise PhaseError(f"{phase} of migration {version} waits for {previous}, which completed but did not verify")
    if phase == "contract":
        left = db[migration.collection].count_documents(make_step(scripts, version, "up", "backfill").selector)
        if left:
            raise PhaseError(f"contract of migration {version} needs every document backfilled; {left:,} are still at "
                             f"version {scripts.collection_predecessor(version)} (written by old code since?): run backfill again")
    if phase == "cleanup":
        ready_at = as_utc(done["contract"]["completed_at"]) + timedelta(seconds=soak_seconds)
        if now() < ready_at:
            raise PhaseError(f"cleanup of migration {version} waits for the soak time after contract: not before "
                             f"{ready_at:%Y-%m-%d %H:%M:%S} UTC ({soak_seconds:,.0f} s after contract)")


def cleanup_summary(db: Database, scripts: ScriptDirectory, version: int) -> dict:
    """What the cleanup phase would remove: fields, collection, how many documents hold them."""
    step = make_step(scripts, version, "up", "cleanup")
    return {"fields": list(step.removes), "collection": step.collection, "database": db.name,
            "documents": db[step.collection].count_documents(step.selector),
            "at_version": db[step.collection].count_documents(version_filter(version))}
