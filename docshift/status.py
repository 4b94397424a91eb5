"""Where one database is, as a typed record: what `docshift status` prints and `docshift fleet status` lists per
database, read from its ledger and documents (no Prefect, no flow run)."""

from dataclasses import dataclass, field
from datetime import datetime

from pymongo.database import Database

from .engine.drift import Drift, drift_now
from .engine.planning import changed_files, unknown_versions
from .engine.quarantine import quarantine_counts
from .ledger import Ledger, as_utc, holder_is_dead, now
from .loader import ScriptDirectory
from .spec import PHASES

FAILED = ("failed", "rolled_back")
"""Outcomes of a run that failed (`failed_at` recorded: engine.runs.record_failed), rolled back or not yet."""


@dataclass(frozen=True)
class Stall:
    """A partition that made no checkpoint for too long: its run paused, keeping the lock (engine.partitions)."""

    partition: int
    seconds: float
    worker: str


@dataclass(frozen=True)
class Unfinished:
    """A run that stopped part way (crash, signal, window's end) or a rollback that did not finish."""

    run_id: str
    version: int
    what: str
    """`up`, `down`, a phase name, or `rollback`."""
    done: int = 0
    total: int = 0
    stopped: str | None = None
    """`paused`, `interrupted` or `stalled` when the run recorded why it stopped."""
    reason: str | None = None
    """Why a rollback started (a rollback only)."""
    stalled: Stall | None = None
    """The partition whose lack of checkpoints paused the run (a `stalled` run only)."""
    part: int = 0
    """Which step of its migration (a migration of several steps)."""
    collection: str | None = None


@dataclass(frozen=True)
class Failure:
    """The database's latest run failed (and was rolled back)."""

    run_id: str
    version: int
    error: str


@dataclass(frozen=True)
class LockState:
    owner: str
    expires_at: datetime
    dead: bool
    """Its process is gone from this host: the next run takes it over."""

    @property
    def live(self) -> bool:
        return not self.dead and as_utc(self.expires_at) > now()


@dataclass(frozen=True)
class HeadDiffers:
    """The ledger records what this migrations folder does not have: versions it lacks (applied by a newer or a
    different folder), or files edited since they were applied (as `migrate` refuses them)."""

    unknown: tuple[int, ...] = ()
    changed: tuple[str, ...] = ()

    def describe(self, allow_changed: bool = False) -> str | None:
        """Why a run from this folder must not touch the database (None: it may; `allow_changed` as --allow-changed)."""
        parts = [f"applied {', '.join(map(str, self.unknown))}, which this migrations folder does not have"] \
            if self.unknown else []
        if self.changed and not allow_changed:
            parts.append(f"applied files edited since: {', '.join(self.changed)} (--allow-changed runs it)")
        return "; ".join(parts) or None


@dataclass(frozen=True)
class DatabaseStatus:
    """One database's version, pending migrations, unfinished run, last failure, quarantine, drift and lock."""

    database: str
    current: int
    head: int
    pending: tuple[int, ...]
    unfinished: Unfinished | None = None
    failed: Failure | None = None
    quarantined: dict[int, int] = field(default_factory=dict)
    """Per migration version, documents left unchanged because its function raised."""
    drift: tuple[Drift, ...] = ()
    lock: LockState | None = None
    phases: dict[int, tuple[str, ...]] = field(default_factory=dict)
    """Per expand-contract migration, the phases done (in order)."""
    head_differs: HeadDiffers | None = None
    """The ledger records versions or checksums this migrations folder does not have."""

    @property
    def lock_raw(self) -> dict | None:
        return None if self.lock is None else {"owner": self.lock.owner, "expires_at": self.lock.expires_at}


def database_status(db: Database, scripts: ScriptDirectory) -> DatabaseStatus:
    """Read one database's status: a few ledger reads, the quarantine counts, and one count per collection (drift)."""
    ledger = Ledger(db)
    current, checkpoint, holder = ledger.current_version(), ledger.checkpoint(), ledger.lock_holder()
    history = ledger.history()
    applied = ledger.applied_checksums(current, history)
    unknown, changed = unknown_versions(applied, scripts, current), changed_files(applied, scripts)
    return DatabaseStatus(
        database=db.name, current=current, head=scripts.head,
        pending=tuple(v for v in scripts.versions if v > current),
        unfinished=unfinished(checkpoint, history),
        failed=last_failure(history),
        quarantined=quarantine_counts(db),
        drift=tuple(drift_now(db, scripts)),
        lock=None if holder is None else LockState(holder["owner"], holder["expires_at"], holder_is_dead(holder)),
        phases={v: tuple(p for p in PHASES if p in done) for v in scripts.versions
                if scripts.get(v).migration.expand_contract and (done := ledger.phases(v))},
        head_differs=HeadDiffers(tuple(unknown), tuple(changed)) if unknown or changed else None)


def unfinished(checkpoint: dict | None, history: list[dict]) -> Unfinished | None:
    if not checkpoint:
        return None
    if checkpoint.get("rolling_back"):
        return Unfinished(checkpoint["run_id"], checkpoint["version"], "rollback", reason=checkpoint.get("reason"))
    outcome = next((e["outcome"] for e in history if e["_id"] == checkpoint["run_id"]), None)
    stuck = checkpoint.get("stalled") if outcome == "stalled" else None
    return Unfinished(checkpoint["run_id"], checkpoint["version"], checkpoint.get("phase") or checkpoint["direction"],
                      checkpoint.get("done", 0), checkpoint.get("total", 0),
                      outcome if outcome in ("paused", "interrupted", "stalled") else None,
                      stalled=Stall(stuck["partition"], stuck["seconds"], stuck["worker"]) if stuck else None,
                      part=checkpoint.get("part", 0), collection=checkpoint.get("collection"))


def last_failure(history: list[dict]) -> Failure | None:
    """The latest run, when it failed (a later successful run clears it)."""
    runs = [e for e in history if e.get("outcome") not in ("kept", "abandoned")]
    if runs and runs[-1]["outcome"] in FAILED and "failed_at" in runs[-1]:
        return Failure(runs[-1]["_id"], runs[-1]["version"], runs[-1].get("error") or runs[-1]["outcome"])
    return None
