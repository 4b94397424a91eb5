"""What each `docshift` command does, one small function each (the CLI only parses arguments).

Commands that run a migration import the Prefect flow when they need it, so that `status` stays quick.
"""

import re
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from . import progress
from .context import RunContext
from .db import redact
from .engine.backups import backup_catalog, check_backup_room, restore_backup
from .engine.planning import Plan, check_checksums, check_server_accepts, current_plan, plan_report
from .engine.quarantine import quarantined
from .engine.rollback import rollback_target
from .engine.runs import check_pre_images
from .engine.steps import make_step
from .engine.verify import verify_step
from .errors import AlertSetupError
from .ledger import LeaseLock, Ledger
from .loader import ScriptDirectory
from .phases import check_ready
from .settings import get_settings
from .spec import INITIAL_VERSION, PHASES, Phase
from .transform import update_for

console = Console(soft_wrap=True)  # lines stay whole when piped or logged

TEMPLATE = '''"""Version {version}: {description}."""

import docshift


def up(doc: dict) -> dict:
    """Return `doc` at version {version}; docshift writes the difference and sets schema_version."""
    return doc


def down(doc: dict, pre_image: dict | None) -> dict:
    """Return `doc` as it was before version {version}; `pre_image` is its backup from before `up`, if kept."""
    return doc


migration = docshift.Migration(
    version={version}, description={description!r}, collection={collection!r}, kind="transformative",
    up=up, down=down,
)
'''


def _context() -> RunContext:
    return RunContext.open(get_settings())


def status() -> dict:
    """Where the database is: current and latest version, pending migrations, an unfinished run, the lock."""
    ctx = _context()
    settings, scripts, db = ctx.settings, ctx.scripts, ctx.db
    ledger = Ledger(db)
    current, checkpoint, lock = ledger.current_version(), ledger.checkpoint(), ledger.lock_holder()
    console.print(f"database        {settings.database} at {redact(settings.mongodb_uri.get_secret_value())}")
    console.print(f"current version {current}")
    console.print(f"latest version  {scripts.head}")
    pending = [v for v in scripts.versions if v > current]
    console.print(f"pending         {', '.join(map(str, pending)) or 'none'}")
    if checkpoint and checkpoint.get("rolling_back"):
        console.print(f"unfinished      rollback of run {checkpoint['run_id']} ({checkpoint['reason']}): "
                      f"finish it with `docshift rollback --run {checkpoint['run_id']}`")
    elif checkpoint:
        paused = (Ledger(db).entry(checkpoint["run_id"]) or {}).get("outcome") == "paused"
        console.print(f"unfinished run  {checkpoint['run_id']}: {checkpoint.get('phase') or checkpoint['direction']} "
                      f"{checkpoint['version']}, {'paused at ' if paused else ''}{checkpoint['done']:,} of "
                      f"{checkpoint['total']:,} documents done (resumes on the next "
                      f"{checkpoint.get('phase') or 'migrate'} run)")
    for version in scripts.versions:
        if scripts.get(version).migration.expand_contract and (done := ledger.phases(version)):
            console.print(f"phases of {version}     {', '.join(p for p in PHASES if p in done)} done"
                          + (f"; next: {PHASES[len(done)]}" if len(done) < len(PHASES) else ""))
    console.print(f"lock            {lock['owner'] + ' until ' + str(lock['expires_at']) if lock else 'free'}")
    return {"current": current, "head": scripts.head, "pending": pending, "checkpoint": checkpoint, "lock": lock}


def plan(target: int | None) -> Plan:
    """What `migrate TARGET` would do, with document counts and sample diffs; writes nothing."""
    ctx = _context()
    report = plan_report(ctx, ctx.scripts.check_target(ctx.scripts.head if target is None else target))
    print_plan(report)
    return report


def print_plan(report: Plan) -> None:
    console.print(f"from version {report.current} to {report.target}")
    if not report.steps:
        console.print("nothing to do: already at the target version")
    for step in report.steps:
        console.print(f"  {step.direction:4} {step.version} {step.collection}: {step.description} "
                      f"({step.kind}, {step.documents:,} documents)")
        for before, after in step.samples:
            change = update_for(before, after, after.get("schema_version", 1))
            console.print(f"      _id {before['_id']}: {change}", markup=False, highlight=False)


def migrate(target: int | None, batch_size: int | None, dry_run: bool, allow_changed: bool, max_failures: int = 0,
            window_minutes: float | None = None, partitions: int | None = None):
    """Run the `migrate` Prefect flow to TARGET (default: latest), showing a progress bar and the report."""
    from .flows.migrate import migrate as migrate_flow

    preflight(target, allow_changed, dry_run)
    report = with_progress_bars(migrate_flow, target_version=target, batch_size=batch_size, dry_run=dry_run,
                                allow_changed=allow_changed, max_failures=max_failures, window_minutes=window_minutes,
                                partitions=partitions)
    if dry_run:
        print_plan(report)
    else:
        print_report(report)
    return report


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
    result = with_progress_bars(getattr(phase_flows, name), **parameters)
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


def preflight(target: int | None, allow_changed: bool, dry_run: bool = False) -> None:
    """Refuse what would fail anyway before a flow run starts: bad files, target, connection, edits, lock, values the
    server cannot store, backup room."""
    ctx = _context()
    target = ctx.scripts.check_target(ctx.scripts.head if target is None else target)
    current, steps = current_plan(ctx, target)
    check_checksums(ctx, current, allow_changed)
    check_pre_images(ctx, steps)
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
    result = rollback_flow(run_id=run_id)
    console.print(f"run {run_id} rolled back: {result.restored:,} documents restored from its backup, "
                  f"{result.undone_by_function:,} written since undone by the migration's function; "
                  f"database is at version {result.version}")
    return result


def print_report(report) -> None:
    """The migrate flow's MigrationReport as a table, then where the database is now."""
    table = Table(title=f"docshift: {report.database} from version {report.current} to {report.target}")
    for column in ("migration", "direction", "documents", "changed", "quarantined", "seconds", "docs/s", "backup", "verification"):
        table.add_column(column)
    for s in report.steps:
        table.add_row(str(s.version), s.direction, f"{s.documents:,}", f"{s.changed:,}", str(s.quarantined),
                      f"{s.duration_s:.1f}", f"{s.docs_per_s:,.0f}", s.backup, s.verification)
    console.print(table if report.steps else "already at the target version: nothing to do")
    for s in report.steps:
        if s.behind:
            console.print(f"migration {s.version}: {s.behind:,} document{'s' if s.behind != 1 else ''} written at the old "
                          f"version during the run {'were' if s.behind != 1 else 'was'} left there (`behind` in its "
                          f"history entry)")
    if any(s.quarantined for s in report.steps):
        console.print("some documents were quarantined and left unchanged: see `docshift quarantine`; "
                      "fix the migration and run `docshift migrate --allow-changed` to retry them")
    console.print(f"database is now at version {report.version}")


def rehearse(target: int | None, sample: int | None, batch_size: int | None, max_failures: int = 0):
    """Run the migration on a scratch copy (or a sample) of the data and report; the source is not touched."""
    from .flows.rehearse import rehearse as rehearse_flow

    scripts = _context().scripts
    scripts.check_target(scripts.head if target is None else target)
    rehearsal = rehearse_flow(target_version=target, sample=sample, batch_size=batch_size, max_failures=max_failures)
    console.print(f"rehearsal on a copy of {rehearsal.database} ({', '.join(f'{n}: {c:,}' for n, c in rehearsal.copied.items())} "
                  f"documents), dropped afterwards:")
    print_report(rehearsal.report)
    return rehearsal


def history() -> list[dict]:
    """Every applied, reverted, rolled-back or unfinished run, oldest first."""
    entries = Ledger(_context().db).history()
    table = Table(title="docshift history")
    for column in ("run", "migration", "direction", "outcome", "started", "seconds", "documents", "changed", "checksum", "flow run"):
        table.add_column(column)
    for e in entries:
        table.add_row(e["_id"], str(e["version"]), e["direction"], e["outcome"], str(e["started_at"])[:19],
                      str(e.get("duration_s", "")), str(e.get("documents", "")), str(e.get("changed", "")),
                      e["checksum"][:12], str(e.get("flow_run_id") or ""))
    console.print(table)
    return entries


def new(description: str, collection: str) -> Path:
    """Write the next-numbered migration file from the template and return its path."""
    settings = get_settings()
    scripts = ScriptDirectory.load(settings.migrations_dir)
    version = scripts.head + 1
    slug = re.sub(r"[^a-z0-9]+", "_", description.lower()).strip("_")[:40] or "migration"
    path = Path(settings.migrations_dir) / f"{version:04d}_{slug}.py"
    path.write_text(TEMPLATE.format(version=version, description=description, collection=collection))
    console.print(f"created {path}")
    return path


def verify(version: int | None) -> bool:
    """Run the verification checks of an applied migration (default: the current version) now."""
    ctx = _context()
    version = Ledger(ctx.db).current_version() if version is None else ctx.scripts.check_target(version)
    if version == INITIAL_VERSION:
        console.print("version 1 is the initial schema: nothing to verify")
        return True
    step = make_step(ctx.scripts, version, "up")
    result = verify_step(ctx.db, ctx.scripts.get(version).migration, step, count_before=None)
    for c in result.checks:
        console.print(f"{'pass' if c.passed else 'FAIL'}  {c.check}: expected {c.expected}, found {c.found}")
    return result.passed


def quarantine() -> list[dict]:
    """Documents whose migration function raised, left unchanged, with the error: the next migrate retries them."""
    entries = quarantined(_context().db)
    console.print(f"docshift quarantine ({len(entries)} documents)")
    for e in entries:
        console.print(f"  migration {e['version']} {e['direction']} {e['collection']} _id={e['doc_id']!r}: {e['error']} "
                      f"[at {(e['traceback'] or ['?'])[-1]}; run {e['run_id']}]", markup=False, highlight=False)
    return entries


def backups() -> list[dict]:
    """Every run's backup file (mongodump format): run, collection, documents, bytes, sha256, where."""
    entries = backup_catalog(_context().db)
    table = Table(title="docshift backups")
    for column in ("backup id", "migration", "direction", "collection", "documents", "bytes", "sha256", "created", "file"):
        table.add_column(column)
    for e in entries:
        table.add_row(e["_id"], str(e["version"]), e["direction"], e["collection"], f"{e.get('documents', '—')}",
                      f"{e.get('bytes', '—')}", e.get("sha256", "unfinished")[:16], str(e["created"])[:19], e["path"])
    console.print(table)
    return entries


def restore(backup_id: str) -> int:
    """Put a backup's documents back exactly (by `_id`), after checking the file's sha256; holds the lock meanwhile."""
    ctx = _context()
    with LeaseLock(ctx.db, ctx.settings.lock_lease_seconds, f"restore {backup_id}"):
        restored = restore_backup(ctx.db, backup_id)
    console.print(f"restored {restored:,} documents from backup {backup_id}; the recorded version is unchanged "
                  f"(use `docshift rollback` to undo a run and its version)")
    return restored


def alerts_setup() -> list[str]:
    """Create or update the Prefect notification block and alert automations (see deployments/alerts.py)."""
    settings = get_settings()
    if settings.alert_url is None and not settings.alert_secret:
        raise AlertSetupError("no alert URL: set DOCSHIFT_ALERT_URL to it, or DOCSHIFT_ALERT_SECRET to the name of a "
                              "Prefect Secret block holding it")
    from .deployments.alerts import setup

    done = setup(settings)
    for line in done:
        console.print(line, markup=False, highlight=False)
    return done


def unlock() -> dict | None:
    """Break the migration lock on purpose (after a crash, before its lease runs out)."""
    held = Ledger(_context().db).break_lock()
    console.print(f"lock broken (was held by {held['owner']})" if held else "lock was free")
    return held
