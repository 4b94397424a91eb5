"""A step's run: its start or resumption, its working parts (a StepRun: docshift.engine.step_run), its outcomes."""

import uuid
from dataclasses import asdict, dataclass

from pymongo.database import Database

from ..context import RunContext
from ..errors import BackupError
from ..ledger import Ledger, LeaseLock, LockWatch, now
from ..lookup import Lookup
from ..pacing import BatchSizer, Throttle
from ..spec import Migration
from .backups import PreImages, seal_backup
from .cursor import collection_count
from .faults import fault_point
from .operation_steps import planned_documents
from .quarantine import clear_quarantine
from .state import RunOptions, RunState
from .step_run import StepRun
from .steps import Step, runs_at, server_side, wants_pre_image
from .verify import Verification, written_during_run


@dataclass(frozen=True)
class StepResult:
    """How a step's run ended: applied, reverted, or paused at a maintenance window's end."""

    run_id: str
    version: int
    direction: str
    collection: str
    phase: str | None
    backup: str
    outcome: str
    documents: int
    total: int
    matched: int
    changed: int
    quarantined: int
    duration_s: float
    docs_per_s: float
    verification: str
    behind: int = 0
    """Documents written at the source version during the run and left there (see verify_step)."""
    none_below: int | None = None
    """Verification.none_below: the version no document of the collection was below when the run verified it."""

    @property
    def paused(self) -> bool:
        return self.outcome == "paused"


def start_or_resume(ctx: RunContext, step: Step, flow_run_id: str | None) -> RunState:
    """Resume the checkpointed run of this step, or record a new one (checkpoint, then history entry).

    Safe to retry after a database error at any point: the checkpoint names the run first, and a run whose history
    entry was never written is started again under the same id rather than counted as resumed.
    """
    ledger = Ledger(ctx.db)
    checkpoint = ledger.checkpoint()
    if runs_at(step, checkpoint):
        state = RunState.from_checkpoint(checkpoint)
        if ledger.entry(state.run_id) is None:
            _record_start(ctx, step, state, checkpoint.get("undoes"))
            return state
        state.resumed += 1
        ledger.update_entry(state.run_id, {"resumed": state.resumed, "outcome": "running"})
        ledger.save_checkpoint({"resumed": state.resumed})
        return state
    undoes = None
    if checkpoint and not checkpoint.get("finished"):  # the opposite step of an interrupted one: it ends that run
        undoes = checkpoint["run_id"]
        ledger.update_entry(undoes, {"outcome": "abandoned", "finished_at": now()})
    coll, migration = ctx.db[step.collection], ctx.scripts.part(step.version, step.part)
    count = collection_count(coll)
    if step.operation:
        total = planned_documents(ctx.db, migration, step)
    elif server_side(migration, step):  # counts its documents as it goes: counting them first would read them all
        total = count
    else:
        total = coll.count_documents(step.selector)
    state = RunState(run_id=f"v{step.version}-{step.direction}-{uuid.uuid4().hex[:10]}",
                     total=total, count_before=count, started_at=now(), flow_run_id=flow_run_id, validated=0)
    ledger.start_checkpoint({**step.identity, **asdict(state), "undoes": undoes})
    _record_start(ctx, step, state, undoes)
    return state


def _record_start(ctx: RunContext, step: Step, state: RunState, undoes: str | None = None) -> None:
    """The run's history entry (written once, whatever retries), and its step's old quarantine cleared for retrying.
    `undoes`: the interrupted run whose partial changes this run takes back (a `migrate` the other way)."""
    script = ctx.scripts.get(step.version)
    Ledger(ctx.db).start_entry({
        "_id": state.run_id, "version": step.version, "direction": step.direction,
        "description": ctx.scripts.part(step.version, step.part).description, "collection": step.collection,
        "part": step.part, "checksum": script.checksum,
        "started_at": state.started_at, "finished_at": None, "outcome": "running", "matched": 0, "changed": 0,
        "flow_run_id": state.flow_run_id, "backup": state.backup, "resumed": 0, "phase": step.phase,
        "recorded_before": step.recorded_before, "recorded_after": step.recorded_after, "undoes": undoes,
    })
    clear_quarantine(ctx.db, step)  # retried by this run


def open_step_run(ctx: RunContext, step: Step, state: RunState, lock: LeaseLock | LockWatch | None,
                  options: RunOptions, selector: dict | None = None) -> StepRun:
    """The run's working parts: batch sizer, throttle, and the pre-images a `down` gives back."""
    settings, migration = ctx.settings, ctx.scripts.part(step.version, step.part)
    return StepRun(
        db=ctx.db, migration=migration, step=step, state=state, selector=step.selector if selector is None else selector,
        lock=lock, sizer=BatchSizer.for_server(ctx.db, options.batch_size, settings.batch_time_seconds),
        throttle=Throttle.for_server(ctx.db, settings.batch_pause_seconds, settings.max_replication_lag_seconds,
                                     settings.throttle_max_wait_seconds),
        pre_images=pre_images_for(ctx, step), options=options, lookup=lookup_for(ctx.db, migration))


def lookup_for(db: Database, migration: Migration) -> Lookup:
    """The read-only lookups a migration's functions are given, on the run's own database (a rehearsal's copy too)."""
    return Lookup(db, migration.reads, f"migration {migration.version}")


def pre_images_for(ctx: RunContext, step: Step) -> PreImages | None:
    """For a document `down`, the backups of every run that applied the migration: the pre-images a `down` that takes
    them gives back (a missing backup is refused before anything is written), and the key order every `down` gives
    documents back in (docshift.engine.key_order; without the backups, only that order is lost)."""
    if step.direction != "down" or step.operation:
        return None
    try:
        return PreImages(ctx.db, Ledger(ctx.db).pre_image_runs(step.version, part=step.part))
    except BackupError:
        if wants_pre_image(ctx.scripts.part(step.version, step.part), step):
            raise
        return None


def check_pre_images(ctx: RunContext, steps: list[Step]) -> None:
    """Refuse a plan whose `down` steps could not give documents their pre-images back (a backup was dropped)."""
    for step in steps:
        pre_images_for(ctx, step)


def _result(run: StepRun, outcome: str, verification: str, checked: Verification | None = None) -> StepResult:
    state, step = run.state, run.step
    return StepResult(run_id=state.run_id, version=step.version, direction=step.direction, collection=step.collection,
                      phase=step.phase, backup=state.backup, outcome=outcome, documents=state.done, total=state.total,
                      matched=state.matched, changed=state.changed, quarantined=len(state.quarantined),
                      duration_s=round(state.elapsed_s, 3), docs_per_s=round(state.rate, 1), verification=verification,
                      behind=checked.behind if checked else 0, none_below=checked.none_below if checked else None)


def _entry_fields(result: StepResult) -> dict:
    return {k: getattr(result, k) for k in ("outcome", "documents", "total", "matched", "changed", "quarantined",
                                            "duration_s", "docs_per_s", "verification", "behind")}


def record_finished(run: StepRun, verification: Verification) -> StepResult:
    """Record success: history entry, recorded version, phase; the checkpoint goes and the backup is sealed.

    Documents written at the source version during the run are counted in the entry (`behind`, the first ten in
    `behind_ids`), for `docshift status` to show as drift."""
    step, ledger = run.step, Ledger(run.db)
    summary = "passed" if verification.passed else verification.summary()
    if verification.behind:
        summary += f" ({verification.behind} {written_during_run(step)})"
    result = _result(run, "applied" if step.direction == "up" else "reverted", summary, verification)
    ledger.update_entry(run.state.run_id, {**_entry_fields(result), "finished_at": now(), "batches": run.state.batches,
                                           "behind_ids": verification.behind_ids})
    fault_point("finish")
    ledger.set_current(step.recorded_after)
    if step.phase:
        ledger.complete_phase(step.version, step.phase, {"run_id": run.state.run_id, "verified": verification.passed})
    elif step.direction == "down":
        ledger.clear_phases(step.version)  # reverted: a later expand-contract change of it starts over
    if step.ends_migration:
        ledger.clear_checkpoint()
    else:  # the migration's next step replaces it; a kill before that leaves the migration to go on from or take back
        ledger.save_checkpoint({"finished": True})
    fault_point("step-recorded")
    seal_backup(run.db, run.state.run_id)
    return result


def record_paused(run: StepRun, outcome: str = "paused") -> StepResult:
    """Record that the run stopped at a batch boundary: at a maintenance window's end (`paused`) or asked to by a
    signal (`interrupted`); its checkpoint stays for the next run."""
    result = _result(run, outcome, f"{outcome} at {run.state.done:,} of {run.state.total:,}")
    Ledger(run.db).update_entry(run.state.run_id, {**_entry_fields(result), f"{outcome}_at": now()})
    return result


def record_failed(run: StepRun, reason: str) -> None:
    """Record a run that failed, with its counts, before it is rolled back; if the rollback cannot finish either, the
    checkpoint stays so that a re-run resumes it."""
    t = now()  # `failed_at` stays when a rollback changes the outcome: `status` tells a failure from a rollback by hand
    Ledger(run.db).update_entry(run.state.run_id, {"outcome": "failed", "error": reason, "finished_at": t, "failed_at": t,
                                                   "matched": run.state.matched, "changed": run.state.changed})
