"""What each `docshift` command does, one small function each (the CLI only parses arguments).

Commands that run a migration import the Prefect flow when they need it, so that `status` stays quick.
"""

from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from . import progress
from .context import RunContext, check_database
from .db import connect, redact
from .engine.backups import backup_catalog, check_backup_room
from .engine.drift import advice, describe_all, drift_now
from .engine.planning import Plan, check_checksums, check_operations, check_server_accepts, current_plan, plan_report
from .engine.quarantine import quarantined
from .engine.restore import Restored
from .engine.restore import restore as restore_backup
from .engine.retention import Retention, parse_age, plan_prune
from .engine.retention import prune as prune_backups
from .engine.rollback import rollback_target
from .engine.runs import check_pre_images
from .engine.state import MigrateOptions
from .engine.verify import verify_applied
from .errors import AlertSetupError, OrchestrationError, RehearsalFailed
from .ledger import LeaseLock, Ledger, describe_lock
from .output import print_records
from .loader import ScriptDirectory
from .phases import check_ready
from .project import Layout, init_project, new_migration
from .reports import print_outcome, print_plan, print_quarantined, print_report, print_retention, step_of
from .settings import find_settings_file, get_settings, project_folder, read_toml_table
from .spec import INITIAL_VERSION, PHASES, Kind, Phase
from .status import DatabaseStatus, database_status
from .stop import Watch, supervise

console = Console(soft_wrap=True)  # lines stay whole when piped or logged

def _context(new_database: bool = False) -> RunContext:
    """The command's context, refusing a database that looks mistyped (no ledger, none of the migrated collections)."""
    ctx = RunContext.open(get_settings())
    check_database(ctx, new_database)
    return ctx


def status() -> DatabaseStatus:
    """Where the database is: current and latest version, pending migrations, an unfinished run, quarantined
    documents, documents behind or ahead of the recorded version (drift), the lock; and what of its ledger this folder
    lacks or has edited (head differs)."""
    ctx = _context()
    state = database_status(ctx.db, ctx.scripts)
    console.print(f"database        {ctx.settings.database} at {redact(ctx.settings.mongodb_uri.get_secret_value())}")
    console.print(f"current version {state.current}")
    console.print(f"latest version  {state.head}")
    console.print(f"pending         {', '.join(map(str, state.pending)) or 'none'}")
    if (run := state.unfinished) and run.what == "rollback":
        console.print(f"unfinished      rollback of run {run.run_id} ({run.reason}): "
                      f"finish it with `docshift rollback --run {run.run_id}`")
    elif run:
        stopped = f"{run.stopped} at " if run.stopped else ""
        console.print(f"unfinished run  {run.run_id}: {run.what} {run.version}"
                      f"{step_of(ctx.scripts, run.version, run.part, run.collection)}, {stopped}{run.done:,} of "
                      f"{run.total:,} documents done (resumes on the next "
                      f"{run.what if run.what not in ('up', 'down') else 'migrate'} run)")
        if stuck := run.stalled:
            console.print(f"stalled         partition {stuck.partition} made no checkpoint for {stuck.seconds:g} s "
                          f"(worker {stuck.worker}); the lock is kept while that task may still write: stop it, then "
                          f"`docshift unlock` and `docshift migrate` resumes", markup=False, highlight=False)
    if state.failed:
        console.print(f"last run failed {state.failed.run_id} (migration {state.failed.version}): {state.failed.error}",
                      markup=False, highlight=False)
    for version, done in state.phases.items():
        console.print(f"phases of {version}     {', '.join(done)} done"
                      + (f"; next: {PHASES[len(done)]}" if len(done) < len(PHASES) else ""))
    counts = state.quarantined
    console.print("quarantined     " + (f"{sum(counts.values()):,} documents ("
                                        + ", ".join(f"migration {v}: {n:,}" for v, n in sorted(counts.items()))
                                        + "), left unchanged: `docshift quarantine` lists them" if counts else "none"))
    differs = state.head_differs
    if differs and (why := differs.describe()):
        console.print(f"head differs    {why}", markup=False, highlight=False)
    drift = list(state.drift)
    if differs and differs.unknown:  # the collections' versions at the recorded one are in files this folder lacks
        judged = "not judged: this folder lacks the recorded migrations"
    else:
        judged = f"{describe_all(drift)}: {advice(drift)}" if drift else "none"
    console.print(f"drift           {judged}", markup=False, highlight=False)
    console.print(f"lock            {describe_lock(state.lock_raw)}", markup=False, highlight=False)
    return state


def plan(target: int | None) -> Plan:
    """What `migrate TARGET` would do, with document counts and sample diffs; writes nothing."""
    ctx = _context()
    report = plan_report(ctx, ctx.scripts.check_target(ctx.scripts.head if target is None else target))
    print_plan(console, report)
    return report


def migrate(target: int | None, options: MigrateOptions, dry_run: bool = False):
    """Run the `migrate` Prefect flow to TARGET (default: latest), showing a progress bar and the report."""
    from .flows.migrate import migrate as migrate_flow

    preflight(target, options.allow_changed, dry_run, options.new_database)
    report = run_flow(migrate_flow, target_version=target, options=options, dry_run=dry_run)
    if dry_run:
        print_plan(console, report)
        return report
    print_report(console, report)
    print_outcome(console, report)
    return report


def run_flow(flow, release_locks: Callable[[], object] | None = None, **parameters):
    """Run a Prefect flow as the command's supervised run (docshift.stop): in a thread of its own with progress bars,
    reporting to PREFECT_API_URL's server or a temporary one of its own; SIGINT and SIGTERM stop it at a batch
    boundary, and it stops within a bounded time when its Prefect server is gone. `release_locks` lets go of the
    locks this process holds when it must exit without the run (default: the configured database's)."""
    from .deployments.local_server import prefect_server
    from .tasks.retry import ORCHESTRATION_ERRORS, orchestration_failure

    settings = get_settings()
    with prefect_server() as server:
        def let_go() -> None:
            try:
                if release_locks is None:
                    Ledger(connect(settings)).release_own_lock()
                else:
                    release_locks()
            finally:
                server.kill()

        watch = Watch(server.health, let_go, settings.orchestration_timeout_seconds)
        try:
            return supervise(lambda: with_progress_bars(flow, **parameters), watch)
        except ORCHESTRATION_ERRORS as exc:  # after the Prefect client's own retries
            raise OrchestrationError(f"the Prefect API failed during the run ({redact(orchestration_failure(exc))}); "
                                     f"a migration keeps its checkpoint: run the command again to resume") from exc


def with_progress_bars(run, **parameters):
    """Call a flow with a rich progress bar per step: done/total, docs/s, time left."""
    bars = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[rate]:>8,.0f} docs/s"), TimeRemainingColumn(), console=console)
    tasks: dict[str, int] = {}

    def show(event: progress.ProgressEvent) -> None:
        if event.label not in tasks:
            tasks[event.label] = bars.add_task(event.label, total=event.total, rate=0.0)
        bars.update(tasks[event.label], completed=event.done, total=event.total, rate=event.rate)

    stop = progress.subscribe(show)
    try:
        with bars:
            return run(**parameters)
    finally:
        stop()


def phase(name: Phase, version: int, approve: bool = False, window_minutes: float | None = None,
          batch_size: int | None = None, approval_timeout_seconds: int = 3600):
    """Run one expand-contract phase of migration VERSION through its Prefect flow.

    cleanup pauses for approval in the Prefect UI unless --approve is given.
    """
    from .flows import phases as phase_flows

    ctx = _context()
    db = ctx.db
    check_ready(db, ctx.scripts, version, name, ctx.settings.soak_seconds)
    Ledger(db).check_lock_free()
    parameters = {"version": version}
    if name in ("backfill", "cleanup"):
        parameters.update(batch_size=batch_size, window_minutes=window_minutes)
    if name == "cleanup":
        parameters.update(approved=approve, approval_timeout_seconds=approval_timeout_seconds)
        if not approve:
            console.print(f"cleanup waits up to {approval_timeout_seconds} s for approval in the Prefect UI "
                          f"(the flow run's page: Resume)")
    result = run_flow(getattr(phase_flows, name), **parameters)
    if getattr(result, "paused", False):
        console.print(f"{name} of migration {version} paused at the window's end: {result.verification} documents "
                      f"(run {result.run_id}); the next {name} run continues from the checkpoint")
    elif hasattr(result, "run_id"):
        console.print(f"{name} of migration {version} completed: {result.documents:,} documents, {result.changed:,} "
                      f"changed, verification {result.verification}, backup {result.backup}")
    else:
        console.print(f"{name} of migration {version} completed")
    done = Ledger(db).phases(version)
    console.print(f"phases of migration {version} done: {', '.join(p for p in PHASES if p in done) or 'none'}")
    return result


def preflight(target: int | None, allow_changed: bool, dry_run: bool = False, new_database: bool = False) -> None:
    """Refuse what would fail anyway before a flow run starts: bad files, target, connection, a mistyped database,
    edits, lock, values the server cannot store, backup room."""
    ctx = _context(new_database)
    target = ctx.scripts.check_target(ctx.scripts.head if target is None else target)
    current, steps = current_plan(ctx, target)
    check_checksums(ctx, current, allow_changed)
    check_pre_images(ctx, steps)
    check_operations(ctx, steps)  # a unique index the data violates, a feature the server lacks
    Ledger(ctx.db).check_lock_free()
    check_server_accepts(ctx, steps)  # a function returning unusable documents, or ones the server refuses
    if not dry_run:
        check_backup_room(ctx.db, steps, ctx.settings.backup_dir)


def rollback(run_id: str):
    """Restore a run's pre-images through the Prefect `rollback` flow: its unfinished run or the latest finished one."""
    from .flows.rollback import rollback as rollback_flow

    ctx = _context()
    rollback_target(ctx, run_id)
    Ledger(ctx.db).check_lock_free()
    result = run_flow(rollback_flow, run_id=run_id)
    console.print(f"run {run_id} rolled back: {result.restored:,} documents restored from its backup, "
                  f"{result.undone_by_function:,} written since undone by the migration's function; "
                  f"database is at version {result.version}")
    if drift := drift_now(ctx.db, ctx.scripts):
        console.print(f"drift: {describe_all(drift)}: {advice(drift)}", markup=False,
                      highlight=False)
    return result


def rehearse(target: int | None, sample: int | None, batch_size: int | None, max_failures: int = 0):
    """Run the migration on a scratch copy (or a sample) of the data and report what it did there and which documents
    would fail; the source database is not touched, so nothing here claims that its version changed."""
    from .flows.rehearse import rehearse as rehearse_flow

    scripts = _context().scripts
    scripts.check_target(scripts.head if target is None else target)
    rehearsal = run_flow(rehearse_flow, target_version=target, sample=sample, batch_size=batch_size, max_failures=max_failures)
    copied = ", ".join(f"{n}: {c:,}" for n, c in rehearsal.copied.items())
    console.print(f"rehearsal on a copy of {rehearsal.database} ({copied} documents), dropped afterwards:")
    if rehearsal.report is not None:
        print_report(console, rehearsal.report, title="rehearsal")
    if rehearsal.failing:
        console.print(f"{len(rehearsal.failing)} document(s) of {rehearsal.database} would fail:")
        print_quarantined(console, rehearsal.failing, runs=False)
    still = f"rehearsal only: {rehearsal.database} was not changed and is still at version {rehearsal.version}"
    if rehearsal.failure:
        console.print(still)
        raise RehearsalFailed(f"the rehearsal failed, so `docshift migrate` would fail the same way: {rehearsal.failure}")
    console.print(f"{still}; `docshift migrate {rehearsal.target}` would take it to version {rehearsal.target}"
                  + (" with these documents quarantined" if rehearsal.failing else ""))
    return rehearsal


def history() -> list[dict]:
    """Every applied, reverted, rolled-back or unfinished run, oldest first."""
    entries = Ledger(_context().db).history()
    rows = [{"run": e["_id"], "migration": str(e["version"]), "direction": e["direction"], "outcome": e["outcome"],
             "collection": e.get("collection", ""),
             "started": str(e["started_at"])[:19], "seconds": str(e.get("duration_s", "")),
             "documents": str(e.get("documents", "")), "changed": str(e.get("changed", "")),
             "quarantined": str(e.get("quarantined", "")),
             "checksum": e["checksum"][:12], "flow run": str(e.get("flow_run_id") or "")} for e in entries]
    print_records(console, "docshift history", rows,
                  lambda r: (f"{r['run']}  migration {r['migration']} {r['direction']}, {r['outcome']}",
                             {"run", "migration", "direction", "outcome"}))
    return entries


def new(description: str, collection: str, kind: Kind = "transformative") -> Path:
    """Write the next-numbered migration file of `kind` from its template (the folder is created when missing)."""
    path = new_migration(get_settings().migrations_dir, description, collection, kind)
    console.print(f"created {path}: fill in up, down and {'the fields' if kind != 'transformative' else 'the changes'} "
                  f"it names, and its target_model")
    return path


def init(folder: Path) -> Layout:
    """Start docshift in a project folder: a settings file, the migrations folder and a README for the team.

    The settings written are the flags and DOCSHIFT_* environment in force (a URI with a password is left out).
    """
    layout = init_project(folder, get_settings(read_file=False))
    console.print(f"wrote   {layout.settings_file}\nmade    {layout.migrations}/\nwrote   {layout.readme}")
    go = "" if Path(folder).resolve() == Path.cwd() else f"cd {folder} && "
    console.print(f"next:   {go}docshift new \"first change\" --collection NAME --kind additive|transformative|destructive")
    return layout


def verify(version: int | None) -> bool:
    """Run the verification checks of an applied migration (default: the current version) now."""
    ctx = _context()
    version, result = verify_applied(ctx, version)
    if version == INITIAL_VERSION:
        console.print("version 1 is the initial schema: no migration to verify, only the drift")
    for c in result.checks:
        console.print(f"{'pass' if c.passed else 'FAIL'}  {c.check}: expected {c.expected}, found {c.found}")
    return result.passed


def quarantine() -> list[dict]:
    """Documents whose migration function raised, left unchanged, with the error: the next migrate retries them."""
    entries = quarantined(_context().db)
    console.print(f"docshift quarantine ({len(entries)} documents)")
    print_quarantined(console, entries)
    return entries


def backups() -> list[dict]:
    """Every run's backup file (mongodump format): run, collection, documents, bytes, sha256, where."""
    entries = backup_catalog(_context().db)
    rows = [{"backup id": e["_id"], "migration": str(e["version"]), "direction": e["direction"],
             "collection": e["collection"], "documents": f"{e.get('documents', '—')}", "bytes": f"{e.get('bytes', '—')}",
             "sha256": e.get("sha256", "unfinished")[:16], "created": str(e["created"])[:19], "file": e["path"]}
            for e in entries]
    print_records(console, "docshift backups", rows,
                  lambda r: (f"{r['backup id']}  migration {r['migration']} {r['direction']}, {r['collection']}",
                             {"backup id", "migration", "direction", "collection"}))
    return entries


def prune(keep_last: int | None, older_than: str | None, dry_run: bool = False) -> Retention:
    """Remove old backups (collections, files, catalog entries), never one a `down`, a `rollback --run` or an
    unfinished run still needs; say which were kept and why. Without options, the DOCSHIFT_PRUNE_* settings."""
    ctx = _context()
    if keep_last is None and older_than is None:
        keep_last, older_than = ctx.settings.prune_keep_last, ctx.settings.prune_older_than
    age = parse_age(older_than) if older_than else None
    if dry_run:
        retention = plan_prune(ctx.db, ctx.settings.backup_dir, keep_last, age, dry_run=True)
    else:
        with LeaseLock(ctx.db, ctx.settings.lock_lease_seconds, "backups prune"):
            retention = plan_prune(ctx.db, ctx.settings.backup_dir, keep_last, age)
            prune_backups(ctx.db, retention)
    print_retention(console, retention)
    return retention


def restore(backup_id: str, keep_version: bool = False) -> Restored:
    """Put a backup's documents back exactly (by `_id`), after checking the file's sha256, holding the lock; the
    recorded version moves back with them when the backup's run was the latest change, and a restore that would
    leave them behind it is refused unless `keep_version` (see docshift.engine.restore)."""
    ctx = _context()
    with LeaseLock(ctx.db, ctx.settings.lock_lease_seconds, f"restore {backup_id}"):
        done = restore_backup(ctx, backup_id, keep_version)
    line = f"restored {done.documents:,} documents of {done.collection} from backup {backup_id}"
    if done.version_after != done.version_before:
        line += (f"; run {backup_id} is undone: the database is recorded at version {done.version_after} again "
                 f"(was {done.version_before}), `docshift migrate` applies what follows again")
    elif done.behind:
        line += (f"; {done.behind:,} of them are behind the recorded version {done.version_after}: "
                 f"the next `docshift migrate` carries them up")
    else:
        line += f"; the database stays at version {done.version_after}"
    if done.from_pre_images:
        which = ", ".join(map(str, done.from_pre_images))
        line += (f". What the `down` of migration{'s' if len(done.from_pre_images) > 1 else ''} {which} takes from "
                 f"pre-images is not in the backup: docshift keeps the pre-images these documents had when it was made, "
                 f"and a later `down` gives that back")
    console.print(line, markup=False, highlight=False)
    return done


def alerts_setup(migrate_start: bool = False) -> list[str]:
    """Create or update the Prefect notification block and alert automations (see deployments/alerts.py); with
    `migrate_start`, one on every migrate run's start too."""
    settings = get_settings()
    if settings.alert_url is None and not settings.alert_secret:
        raise AlertSetupError("no alert URL: set DOCSHIFT_ALERT_URL to it, or DOCSHIFT_ALERT_SECRET to the name of a "
                              "Prefect Secret block holding it")
    from .deployments.alerts import setup

    done = setup(settings, migrate_start)
    for line in done:
        console.print(line, markup=False, highlight=False)
    return done


def deploy(prune: bool = False, prefect_yaml: Path | None = None):
    """Create or update the project's Prefect deployments (see deployments/deploy.py), or write them as a prefect.yaml."""
    from .deployments.deploy import deploy as apply, render_prefect_yaml, wanted_deployments

    settings = get_settings()
    wanted = wanted_deployments(ScriptDirectory.load(settings.migrations_dir), settings)
    if prefect_yaml is not None:
        prefect_yaml.write_text(render_prefect_yaml(wanted, settings))
        console.print(f"wrote {prefect_yaml}: {len(wanted)} deployments of the project {settings.project} "
                      f"for `prefect deploy --all`")
        return wanted
    settings_file = find_settings_file()
    report = apply(wanted, settings, project_folder(), prune)
    created = " (created, process type)" if report.pool_created else ""
    console.print(f"project {settings.project}, work pool {report.pool}{created}")
    for action in ("created", "updated", "unchanged", "deleted"):
        for name in getattr(report, action):
            console.print(f"{action:9} {name}", markup=False, highlight=False)
    for name in (n for n in report.stale if n not in report.deleted):
        console.print(f"stale     {name}: no migration declares it any more; `docshift deploy --prune` deletes it",
                      markup=False, highlight=False)
    if report.created:
        console.print("new schedules are paused: `prefect deployment schedule ls NAME`, then "
                      "`prefect deployment schedule resume NAME SCHEDULE_ID` when the change starts")
    console.print(f"runs need a worker: `prefect worker start --pool {report.pool}` with docshift installed"
                  + ("" if settings_file and "mongodb_uri" in read_toml_table(settings_file) else
                     " and DOCSHIFT_MONGODB_URI in its environment (the URI is not stored in the deployments)"))
    return report


def unlock() -> dict | None:
    """Break the migration lock on purpose (after a crash, before its lease runs out)."""
    held = Ledger(_context().db).break_lock()
    console.print(f"lock broken (was held by {held['owner']})" if held else "lock was free")
    return held
