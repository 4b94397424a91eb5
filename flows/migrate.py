"""The migrate flow (any target, up or down) and the subflow that applies or reverts one migration."""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_progress_artifact, update_progress_artifact
from prefect.futures import wait
from prefect.runtime import flow_run

from docshift.context import RunContext, check_database
from docshift.db import redact
from docshift.engine.backups import check_backup_room
from docshift.engine.drift import Drift, advice, describe_all, find_drift, reached
from docshift.engine.partitions import StallWatch, start_partitions
from docshift.engine.operation_steps import check_step
from docshift.engine.planning import Plan, check_checksums, check_operations, check_server_accepts, current_plan, plan_report
from docshift.engine.ranges import open_ranges, runs_on_server
from docshift.engine.retention import Retention
from docshift.engine.runs import StepResult, StepRun, check_pre_images, open_step_run
from docshift.engine.state import MigrateOptions, RunOptions, RunState
from docshift.engine.steps import Step, make_step
from docshift.engine.verify import DuringRun
from docshift.errors import Interrupted, LockLostError, MigrationFailed, PartitionStalled, VerificationFailed
from docshift.ledger import Ledger, LeaseLock, as_utc, now
from docshift.settings import get_settings
from docshift.spec import Direction, Phase
from docshift.stop import check_stop
from docshift.tasks.backup import backup, prune_backups
from docshift.tasks.batch import batch_migrate, server_update
from docshift.tasks.notify import announce, label_run
from docshift.tasks.operation import apply_operation
from docshift.tasks.partition import migrate_partition
from docshift.tasks.rollback import rollback
from docshift.tasks.run import end_ranges, fail_run, finish_run, merge_partitions, pause_run, start_run
from docshift.tasks.verify import verify

_held_lock: ContextVar[LeaseLock | None] = ContextVar("docshift_held_lock", default=None)


@dataclass(frozen=True)
class MigrationReport:
    """What a `migrate` run did: one result per step, where the database is recorded now, and the documents still
    behind that record (written at an old version while the run went, or left to an expand-contract backfill)."""

    current: int
    target: int
    database: str
    steps: list[StepResult]
    version: int
    retention: Retention | None = None
    """Backups pruned after the run (DOCSHIFT_PRUNE_KEEP_LAST / DOCSHIFT_PRUNE_OLDER_THAN), if set."""
    behind: tuple[Drift, ...] = ()
    """Drift at the end (engine.drift): documents behind the recorded version (written at an old version while the
    run went) or ahead of it."""
    taken: tuple[Drift, ...] = ()
    """Documents that were ahead of the recorded version before the run and that the record has now reached: the run
    took them as they were (no step selects them), neither migrated nor checked."""

    @property
    def paused(self) -> bool:
        return any(s.paused for s in self.steps)


@flow(name="migrate", description="Migrate the database to a schema version (default: the latest), up or down.")
def migrate(target_version: int | None = None, options: MigrateOptions = MigrateOptions(), dry_run: bool = False,
            database: str | None = None) -> MigrationReport | Plan:
    """Plan the path from the current version to `target_version` and run one subflow per migration on it.

    `database` overrides DOCSHIFT_DATABASE for this run (one deployment, several databases; rehearsals).
    `options.window_minutes`: the maintenance window's length; at its end the run pauses at a checkpoint and the next
    run resumes. `options.partitions`: `_id` ranges migrated in parallel (default DOCSHIFT_PARTITIONS). With
    `dry_run`, returns the plan. `options.new_database`: start a ledger in a database that has none of the migrated
    collections (else refused as mistyped).
    """
    ctx = RunContext.open(get_settings(database))
    check_database(ctx, options.new_database)
    settings = ctx.settings
    label_run(settings.database)
    target = ctx.scripts.check_target(ctx.scripts.head if target_version is None else target_version)
    if dry_run:
        return plan_report(ctx, target)
    run_options = RunOptions(options.batch_size or settings.batch_size, options.max_failures,
                             window_deadline(options.window_minutes), options.partitions or settings.partitions)
    steps = current_plan(ctx, target)[1]
    check_backup_room(ctx.db, steps, settings.backup_dir)
    check_server_accepts(ctx, steps)
    with database_lock(ctx, "migrate"):
        current, steps = current_plan(ctx, target)
        ahead = [d for d in find_drift(ctx.db, ctx.scripts, current, Ledger(ctx.db).checkpoint()) if d.ahead]
        check_checksums(ctx, current, options.allow_changed)
        check_pre_images(ctx, steps)
        check_operations(ctx, steps)
        if steps:
            announce("migration.started", settings.database, target, None,
                     f"from version {current} to {target}: {len(steps)} steps")
        results = []
        for i, s in enumerate(steps):
            check_stop(f"before migration {s.version} ({s.direction})", "docshift migrate")
            label_run(settings.database, s.version)
            try:
                results.append(run_step(settings, s, run_options))
            except MigrationFailed as exc:
                undo_together(ctx, steps[:i], s, run_options, exc)
                raise
            if results[-1].paused:
                break
        ledger = Ledger(ctx.db)
        if results and not results[-1].paused:
            ledger.clear_finished_checkpoint()
        retention = prune_backups(ctx.db, settings) if results and not results[-1].paused else None
        version = ledger.current_version()
        counted = {results[-1].collection: results[-1].none_below} if results and results[-1].none_below else None
        behind = tuple(find_drift(ctx.db, ctx.scripts, version, ledger.checkpoint(), none_below=counted))
    report = MigrationReport(current, target, settings.database, results, version, retention, behind,
                             tuple(reached(ctx.scripts, ahead, version)))
    create_markdown_artifact(report_markdown(report), key="docshift-report", description="docshift migration report")
    return report


def run_step(settings, step: Step, options: RunOptions, direction: Direction | None = None) -> StepResult:
    """One step in an apply-migration subflow (`direction`: the opposite one, to undo it), the record kept as planned."""
    return applier(settings)(step.version, direction or step.direction, options, recorded=(step.recorded_before,
                             step.recorded_after), database=settings.database, part=step.part)


def undo_together(ctx: RunContext, before: list[Step], failed: Step, options: RunOptions, exc: MigrationFailed) -> None:
    """A migration of several steps is applied and rolled back together: when one of its steps failed (and was rolled
    back), the steps of it that this run did before are undone too, last first, each as a run of its own (backup,
    verification, history entry), the record left where it is; then the failure is raised, saying so. Not for a retry
    of documents behind the record or an undo (their recorded versions are not their step's own)."""
    own = make_step(ctx.scripts, failed.version, failed.direction, part=failed.part)
    if (own.recorded_before, own.recorded_after) != (failed.recorded_before, failed.recorded_after) \
            or Ledger(ctx.db).checkpoint():  # its own rollback did not finish: that comes first (the error says how)
        return
    done = [s for s in before if (s.version, s.direction) == (failed.version, failed.direction)]
    record, back = failed.recorded_before, "down" if failed.direction == "up" else "up"
    for s in reversed(done):
        get_run_logger().error("undoing step %s of migration %s (%s) with it", s.part + 1, s.version, s.collection)
        try:
            run_step(ctx.settings, replace(s, recorded_before=record, recorded_after=record), replace(options, deadline=None),
                     direction=back)
        except Exception as undo_exc:
            raise MigrationFailed(f"{exc}; undoing the steps of migration {failed.version} done before it failed too at "
                                  f"step {s.part + 1} ({s.collection}): {redact(str(undo_exc))}; `docshift migrate "
                                  f"{record}` finishes the undo") from undo_exc
    if done:
        raise MigrationFailed(f"{exc}; the {len(done)} step(s) of migration {failed.version} done before it "
                              f"({', '.join(s.collection for s in done)}) were undone too: the database stays at "
                              f"version {record}") from exc


def held_lock() -> LeaseLock | None:
    """The lock this flow run holds (a function, so that Dask can ship apply-migration's code without the ContextVar)."""
    return _held_lock.get()


@contextmanager
def database_lock(ctx: RunContext, purpose: str) -> Iterator[LeaseLock]:
    """The database's lease lock for this flow run, visible to the subflows and tasks that must check it."""
    with LeaseLock(ctx.db, ctx.settings.lock_lease_seconds, f"flow-run {flow_run.id} {purpose}") as lock:
        token = _held_lock.set(lock)
        try:
            yield lock
        finally:
            _held_lock.reset(token)


@flow(name="apply-migration", flow_run_name="{direction}-{version}")
def apply_migration(version: int, direction: Direction, options: RunOptions, phase: Phase | None = None,
                    recorded: tuple[int, int] | None = None, database: str | None = None, part: int = 0) -> StepResult:
    """Back up, migrate in checkpointed batches, verify; on failure restore the pre-images and fail plainly.

    `recorded` (before, after) differs from the step's own recorded versions only when quarantined documents are
    retried at or below the current version (the run then leaves the recorded version where it is). `phase` runs an expand-contract
    phase (backfill, cleanup) instead of the whole `up`. `part`: which step of a migration of several steps.
    """
    ctx = RunContext.open(get_settings(database))
    label_run(ctx.settings.database, version, phase)
    step = make_step(ctx.scripts, version, direction, phase, part)
    if recorded is not None:
        step = replace(step, recorded_before=recorded[0], recorded_after=recorded[1])
    if step.operation:
        check_step(ctx.db, ctx.scripts.part(version, part), step)  # before this step writes anything
    state = start_run(ctx, step, str(flow_run.id) if flow_run.id else None)
    run = open_step_run(ctx, step, state, held_lock(), options)
    try:
        return (operation_step if step.operation else migrate_step)(ctx, run)
    except LockLostError:
        raise
    except Interrupted:
        pause_run(run, "interrupted")  # resumable: the checkpoint stays, the lock is released on the way out
        raise
    except PartitionStalled:
        pause_run(run, "stalled")  # resumable once the stuck task is stopped: the lock is kept (run_partitions)
        raise
    except Exception as exc:
        roll_back_failed(ctx, run, exc)


def migrate_step(ctx: RunContext, run: StepRun) -> StepResult:
    """The run's tasks in order: backup, ranges on the server or partitions (if any), batches (none when the ranges
    left no document below the new version), verification, the outcome record. Stops at the maintenance window's end
    with the run paused."""
    settings, step, state, deadline = ctx.settings, run.step, run.state, run.options.deadline
    progress = create_progress_artifact(0.0, description=f"{step.label}: starting")
    backup(run, settings.backup_dir, settings.backup_gzip)
    if not state.ranged and runs_on_server(run):
        if not update_on_server(ctx, run, progress):
            return window_closed(run, progress)
    if run.options.partitions > 1 and not state.partitioned and not state.ranged:
        if not run_partitions(ctx, run, progress):
            return window_closed(run, progress)
        merge_partitions(run)
    cursor = run.cursor()
    while state.none_below is None and not batch_migrate(run, cursor, settings.batches_per_task):
        update_progress_artifact(progress, progress_percent(state), description=progress_text(run))
        if deadline and now() >= deadline:
            return window_closed(run, progress)
    return verified(run, progress)


def operation_step(ctx: RunContext, run: StepRun) -> StepResult:
    """A collection-level step's tasks: its actions (each journaled, what it destroys kept first), verification, the
    outcome record. It does not pause at a window's end: an index, a rename or a drop is one action."""
    what = run.migration.operation.describe(run.step.collection, run.step.direction)
    progress = create_progress_artifact(0.0, description=f"{run.step.label}: {what}")
    apply_operation(run, ctx.settings.backup_dir, ctx.settings.backup_gzip)
    return verified(run, progress)


def verified(run: StepRun, progress) -> StepResult:
    """Verify the step's result and record it as applied or reverted; a failed check raises (the caller rolls back)."""
    state = run.state  # documents updated on the server (ranges) were not checked as written: verification reads them
    verification = verify(run.db, run.migration, run.step, state.count_before,
                          DuringRun(state.quarantined, None if state.ranged else state.validated, state.none_below))
    if not verification.passed:
        raise VerificationFailed(f"verification failed: {verification.summary()}")
    update_progress_artifact(progress, 100.0, description=progress_text(run))
    return finish_run(run, verification)


def update_on_server(ctx: RunContext, run: StepRun, progress) -> bool:
    """A migration declared as an update: its documents updated on the server by `_id` ranges, a few seconds each;
    True when all are done (False: the window closed first). The per-document pass then does the rest."""
    ranges = open_ranges(run, 4 * ctx.settings.batch_time_seconds)
    while not server_update(run, ranges, ctx.settings.batches_per_task):
        update_progress_artifact(progress, progress_percent(run.state), description=progress_text(run))
        if run.options.deadline and now() >= run.options.deadline:
            return False
    end_ranges(run)
    return True


def roll_back_failed(ctx: RunContext, run: StepRun, exc: Exception) -> None:
    """Record the failure, put the pre-images back, tell the alerts, and fail plainly (with the cause chained)."""
    step, run_id = run.step, run.state.run_id
    reason = redact(f"{type(exc).__name__}: {exc}")
    get_run_logger().error("migration %s %s failed: %s; rolling back", step.version, step.direction, reason)
    try:
        fail_run(run, reason)
        undone = rollback(ctx.db, run.migration, step, run_id, reason)
    except Interrupted:
        raise
    except Exception as rollback_exc:
        raise MigrationFailed(
            f"migration {step.version} ({step.direction}) failed: {reason}; rollback could not finish either "
            f"({type(rollback_exc).__name__}: {redact(str(rollback_exc))}); the run is checkpointed: "
            f"re-run `docshift migrate` to resume it, or `docshift rollback --run {run_id}` to undo it"
        ) from exc
    announce("migration.rolled-back", ctx.settings.database, step.version, step.phase, reason)
    raise MigrationFailed(
        f"migration {step.version} ({step.direction}) failed and was rolled back ({undone.restored} documents restored "
        f"from backup {run.state.backup}, {undone.undone_by_function} written since undone by the function): {reason}"
    ) from exc


def applier(settings):
    """The apply-migration subflow with the task runner the settings ask for: threads, or a Dask cluster."""
    if settings.task_runner == "threads":
        return apply_migration
    from prefect_dask import DaskTaskRunner

    if settings.dask_address:
        return apply_migration.with_options(task_runner=DaskTaskRunner(address=settings.dask_address))
    return apply_migration.with_options(task_runner=DaskTaskRunner(
        cluster_kwargs={"n_workers": settings.dask_workers, "threads_per_worker": 1, "processes": True}))


def run_partitions(ctx: RunContext, run: StepRun, progress) -> bool:
    """Migrate the step's `_id` ranges as parallel tasks; True when all are done (False: the window closed first).

    Each task gets the settings in force (command-line flags included) as a parameter, since a Dask worker is
    another process. A partition without a checkpoint for DOCSHIFT_PARTITION_STALL_SECONDS pauses the run as stalled:
    not a rollback (the stuck task may still write), and the lock is kept, not released, for the same reason."""
    parts = start_partitions(ctx.db, run.step, run.state, run.options.partitions)
    lock = held_lock()
    futures = [migrate_partition.submit(ctx.settings, run.step, run.state.run_id, part.partition, lock.owner, run.options)
               for part in parts]
    ledger, watch = Ledger(ctx.db), StallWatch(ctx.db, run.state.run_id, ctx.settings.partition_stall_seconds)
    while wait(futures, timeout=min(2.0, watch.stall_seconds / 2)).not_done:
        if stuck := watch.stalled():
            stalled = watch.pause(stuck, run.step.label)
            lock.keep(f"partition {stuck['index']} of run {run.state.run_id} stalled")
            raise stalled
        done = sum(p["done"] for p in ledger.partition_checkpoints() if p["run_id"] == run.state.run_id)
        now_run = replace(run, state=replace(run.state, done=done))
        update_progress_artifact(progress, progress_percent(now_run.state),
                                 description=progress_text(now_run) + f" ({len(parts)} partitions)")
    return all([future.result() for future in futures])


def window_closed(run: StepRun, progress) -> StepResult:
    """Pause the run at its checkpoint because the maintenance window ended."""
    get_run_logger().info("maintenance window closed: %s paused at %s of %s documents", run.step.label, run.state.done,
                          run.state.total)
    update_progress_artifact(progress, progress_percent(run.state),
                             description=progress_text(run) + " (paused: window closed)")
    return pause_run(run)


def window_deadline(window_minutes: float | None) -> datetime | None:
    """When this run's maintenance window closes: the run's scheduled start (now, if started by hand) plus the window."""
    if window_minutes is None:
        return None
    start = flow_run.scheduled_start_time
    start = datetime.fromisoformat(start.isoformat()) if start else now()
    return as_utc(start) + timedelta(minutes=window_minutes)


def progress_percent(state: RunState) -> float:
    return min(100.0, 100.0 * state.done / state.total) if state.total else 100.0


def progress_text(run: StepRun) -> str:
    """The progress artifact's description; it carries the percent too because the UI's artifact cards show only this."""
    state = run.state
    rate = state.rate
    eta = (state.total - state.done) / rate if rate and state.total > state.done else 0.0
    return (f"{run.step.label}: {int(progress_percent(state))}%, {state.done:,} of {state.total:,} documents, "
            f"{rate:,.0f} docs/s, ETA {eta:,.0f} s")


def report_markdown(report: MigrationReport) -> str:
    """The migration report people read in the Prefect UI (and the CLI prints as a table)."""
    lines = [f"# docshift: {report.database} from version {report.current} to {report.target}", "",
             "| migration | direction | collection | documents | changed | quarantined | duration (s) | docs/s | backup | verification |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for s in report.steps:
        lines.append(f"| {s.version} | {s.direction} | {s.collection} | {s.documents} | {s.changed} | "
                     f"{s.quarantined} | {s.duration_s} | {s.docs_per_s:,.0f} | {s.backup} | {s.verification} |")
    if not report.steps:
        lines.append("| — | already at target | | | | | | | | |")
    if report.paused:
        lines += ["", "Paused at the maintenance window's end; the next run resumes from the checkpoint."]
    if report.retention and report.retention.pruned:
        documents, data, files = report.retention.totals()
        lines += ["", f"Pruned {len(report.retention.pruned)} old backups ({documents:,} documents, {data:,} bytes of "
                      f"server data, {files:,} bytes of files); kept {len(report.retention.kept)}."]
    if report.taken:
        lines += ["", f"**Documents were ahead of the recorded version before this run, and it took them as they "
                      f"were (neither migrated nor checked):** {describe_all(list(report.taken))}. `docshift verify "
                      f"{report.version}` checks them."]
    if report.behind:
        lines += ["", f"**Recorded at version {report.version}, but documents are behind or ahead of it (drift):** "
                  + describe_all(list(report.behind)) + f": {advice(list(report.behind))}."]
    return "\n".join(lines)
