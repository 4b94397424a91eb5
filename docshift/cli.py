"""The `docshift` command line: parses arguments and calls docshift.command."""

import enum
import functools
import inspect
import logging
import os
import signal
import sys
import traceback as tb
from pathlib import Path
from typing import Annotated, Optional, get_args

import annotated_types
import typer
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pymongo.errors import PyMongoError

from . import command, fleet_commands, inspect_commands, model_commands
from .db import redact
from .errors import DocshiftError, Interrupted
from .settings import configure
from .engine.state import MigrateOptions
from .fleet import FleetOptions
from .spec import PHASES, Kind
from .stop import SignalStop, received_signal, stop_at_once

app = typer.Typer(help="MongoDB schema migrations as Prefect flows.", no_args_is_help=True, add_completion=False)


@app.callback()
def options(
    traceback: Annotated[bool, typer.Option("--traceback", help="On an error, print the whole traceback (env DOCSHIFT_DEBUG=1).")] = False,
    uri: Annotated[Optional[str], typer.Option("--uri", help="MongoDB URI (env DOCSHIFT_MONGODB_URI)")] = None,
    database: Annotated[Optional[str], typer.Option("--database", "-d", help="Database (env DOCSHIFT_DATABASE)")] = None,
    migrations_dir: Annotated[Optional[Path], typer.Option("--migrations-dir", help="(env DOCSHIFT_MIGRATIONS_DIR)")] = None,
) -> None:
    configure(mongodb_uri=uri, database=database, migrations_dir=migrations_dir)
    if traceback:
        os.environ["DOCSHIFT_DEBUG"] = "1"


WindowMinutes = Annotated[Optional[float], typer.Option(
    min=0, help="Maintenance window length: pause at a checkpoint when it ends; the next run resumes.")]
PhaseName = enum.Enum("PhaseName", {p: p for p in PHASES}, type=str)
"""The expand-contract phases as the command line's choices."""
Target = Annotated[Optional[int], typer.Argument(help="Schema version to go to (default: the latest).")]


@app.command()
def status() -> None:
    """Show the current version, pending migrations, an unfinished run and the lock."""
    command.status()


@app.command()
def plan(target: Target = None) -> None:
    """Show what `migrate TARGET` would do, with counts and sample diffs; writes nothing."""
    command.plan(target)


def with_options(model: type[BaseModel]):
    """Give a command each field of `model` as an option (its description the help, its bounds typer's, a bool a
    flag such as `--allow-changed`) and call it with one `model`: the command line and the deployment's parameters
    are then the same options, declared once."""
    def wrap(command):
        signature = inspect.signature(command)
        [given] = [p for p in signature.parameters.values() if p.annotation is model]
        flags = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=field.default, annotation=Annotated[
                     field.annotation, typer.Option(f"--{name.replace('_', '-')}", help=field.description, **bounds(field))])
                 for name, field in model.model_fields.items()]

        @functools.wraps(command)
        def run(**values):
            chosen = {name: values.pop(name) for name in model.model_fields}
            return command(**values, **{given.name: model(**chosen)})

        run.__signature__ = signature.replace(parameters=[p for p in signature.parameters.values() if p is not given]
                                              + flags)
        return run
    return wrap


def bounds(field: FieldInfo) -> dict:
    limits = {}
    for constraint in field.metadata:
        if isinstance(constraint, annotated_types.Ge):
            limits["min"] = constraint.ge
        elif isinstance(constraint, annotated_types.Le):
            limits["max"] = constraint.le
    return limits


@app.command()
@with_options(MigrateOptions)
def migrate(
    options: MigrateOptions,
    target: Target = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Plan and sample only; write nothing.")] = False,
) -> None:
    """Migrate up or down to TARGET through the Prefect `migrate` flow."""
    command.migrate(target, options, dry_run)


@app.command()
def phase(
    name: Annotated[PhaseName, typer.Argument(help="The phase to run.")],
    version: Annotated[int, typer.Argument(help="The migration with expand-contract phases.")],
    approve: Annotated[bool, typer.Option("--approve", help="Approve cleanup now instead of in the Prefect UI.")] = False,
    approval_timeout: Annotated[int, typer.Option(min=1, help="Seconds cleanup waits for approval.")] = 3600,
    window_minutes: WindowMinutes = None,
    batch_size: Annotated[Optional[int], typer.Option(min=1, help="Documents per batch.")] = None,
) -> None:
    """Run one expand-contract phase of a migration (each waits for the one before it)."""
    command.phase(name.value, version, approve, window_minutes, batch_size, approval_timeout)


@app.command()
def rollback(run: Annotated[str, typer.Option("--run", help="Run id from `docshift history` or `status`.")]) -> None:
    """Restore a run's pre-images: the unfinished run after a crash, or the latest finished run."""
    command.rollback(run)


@app.command()
def rehearse(
    target: Target = None,
    sample: Annotated[Optional[int], typer.Option(min=1, help="Copy only the first N documents of each collection.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(min=1, help="Documents per batch.")] = None,
    max_failures: Annotated[int, typer.Option(min=0, help="Documents that may fail and be quarantined.")] = 0,
) -> None:
    """Migrate a scratch copy (or a sample) of the data to TARGET, verify, report, drop the copy."""
    command.rehearse(target, sample, batch_size, max_failures)


@app.command()
def history() -> None:
    """List applied, reverted and failed runs."""
    command.history()


@app.command("inspect")
def inspect_collection(
    collection: Annotated[str, typer.Argument(help="The collection to profile.")],
    sample: Annotated[int, typer.Option(min=0, help="Documents in a uniform sample; 0: every document (exact).")] = 1000,
    version: Annotated[Optional[int], typer.Option(
        help="Check the documents against this migration's target_model (default: the collection's latest).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the profile as JSON, for scripts.")] = False,
) -> None:
    """Profile a collection as it is: documents per schema_version; per field the BSON types, missing and null
    counts, examples (secrets redacted); the documents that fail the latest target_model, grouped by error."""
    inspect_commands.inspect(collection, sample, version, as_json)


@app.command()
def check(
    model: Annotated[Optional[list[str]], typer.Option("--model", "-m", help=(
        "COLLECTION=module:Class, the application's model of a collection (repeatable; default: the `models` "
        "setting); modules are imported from the settings file's folder."))] = None,
    database: Annotated[Optional[str], typer.Option("--database", help=(
        "Also check this database's documents at each latest version against its target_model (reads them all)."))] = None,
) -> None:
    """For CI: exit 1 with one line per difference when an application model differs from the latest target_model
    of its collection's migrations (a migration is missing); exit 0 when they agree. Reads no database unless named."""
    if model_commands.check(model or [], database):
        raise typer.Exit(1)


KindName = enum.Enum("KindName", {k: k for k in get_args(Kind)}, type=str)


@app.command()
def new(
    description: str,
    collection: Annotated[str, typer.Option("--collection", "-c", help="Collection the migration changes.")],
    kind: Annotated[KindName, typer.Option("--kind", "-k", help="What the change does to documents.")] = KindName.transformative,
    from_model: Annotated[Optional[str], typer.Option("--from-model", help=(
        "module:Class, the application's model of the collection: draft the migration from its differences to the "
        "latest target_model (the draft decides the kind).")) ] = None,
    sample: Annotated[int, typer.Option(min=0, help=(
        "With --from-model, for a collection without a target_model yet: documents of it compared with the model "
        "(a uniform sample; 0: every document)."))] = 1000,
) -> None:
    """Write the next-numbered migration file from the template of its kind (creates the folder when missing), or
    with --from-model a draft from the model's changes, every decision a comment, each part to fill in a TODO."""
    if from_model is not None:
        for path in model_commands.new_from_model(description, collection, from_model, sample):
            print(f"wrote {path}: a draft; read its decisions, fill in each TODO, then `docshift plan`")
        return
    command.new(description, collection, kind.value)


@app.command()
def init(folder: Annotated[Path, typer.Argument(help="The project folder (created when missing).")] = Path(".")) -> None:
    """Start docshift in a project: settings (docshift.toml, or a tool.docshift table in pyproject.toml), the
    migrations folder and a README for the team, from the flags and DOCSHIFT_* environment in force. Overwrites nothing."""
    command.init(folder)


@app.command()
def deploy(
    prune: Annotated[bool, typer.Option("--prune", help="Delete this project's deployments no migration declares any more.")] = False,
    prefect_yaml: Annotated[Optional[Path], typer.Option(
        "--prefect-yaml", help="Write the deployments to this file for `prefect deploy --all` instead.")] = None,
) -> None:
    """Create or update the Prefect deployments of migrate, rollback, verify and every expand-contract phase, on the
    server of PREFECT_API_URL (process work pool `work_pool`, created if missing; schedules paused)."""
    command.deploy(prune, prefect_yaml)


@app.command()
def verify(version: Target = None) -> None:
    """Re-run the verification checks of an applied migration."""
    if not command.verify(version):
        raise typer.Exit(1)


backups_app = typer.Typer(help="The backups of every run: list them, prune old ones.")
app.add_typer(backups_app, name="backups")


@backups_app.callback(invoke_without_command=True)
def backups(context: typer.Context) -> None:
    """List the backup files of every run (mongodump format, with sha256); `backups prune` removes old ones."""
    if context.invoked_subcommand is None:
        command.backups()


@backups_app.command("prune")
def backups_prune(
    keep_last: Annotated[Optional[int], typer.Option(min=0, help="Keep the N newest backups.")] = None,
    older_than: Annotated[Optional[str], typer.Option(help="Prune only backups older than this: 30d, 12h, 2w.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would go; remove nothing.")] = False,
) -> None:
    """Remove old backups; never one that a `down`, `rollback --run` or an unfinished run still needs."""
    command.prune(keep_last, older_than, dry_run)


@app.command()
def restore(
    backup_id: Annotated[str, typer.Argument(help="Backup id from `docshift backups`.")],
    keep_version: Annotated[bool, typer.Option("--keep-version", help=(
        "Restore although the documents land behind the recorded version; the next migrate carries them up."))] = False,
) -> None:
    """Put a backup's documents back exactly, after checking its sha256; the recorded version follows them or the
    restore is refused (see --keep-version)."""
    command.restore(backup_id, keep_version)


@app.command()
def quarantine() -> None:
    """List documents whose migration function raised (left unchanged; retried by the next migrate)."""
    command.quarantine()


@app.command()
def unlock() -> None:
    """Break the migration lock (after a crashed run)."""
    command.unlock()


alerts = typer.Typer(help="Prefect notifications about docshift runs.", no_args_is_help=True)
app.add_typer(alerts, name="alerts")


@alerts.command("setup")
def alerts_setup(
    migrate_start: Annotated[bool, typer.Option("--migrate-start", help="Notify when any migrate run starts too "
                                                                       "(each tenant's of a fleet run as well).")] = False,
) -> None:
    """Create or update the notification block and automations (URL from DOCSHIFT_ALERT_URL or DOCSHIFT_ALERT_SECRET):
    failed or crashed runs, rollbacks, destructive phases, fleet runs (started, wave passed, halted, completed)."""
    command.alerts_setup(migrate_start)


fleet_app = typer.Typer(help="Many databases with one migrations folder (database per tenant).", no_args_is_help=True)
app.add_typer(fleet_app, name="fleet")
Databases = Annotated[Optional[str], typer.Option(
    "--databases", help="Names (comma-separated), a glob such as 'tenant_*', or module:function of the project "
                        "(env DOCSHIFT_DATABASES).")]


@fleet_app.command("status")
def fleet_status(
    databases: Databases = None,
    as_json: Annotated[bool, typer.Option("--json", help="Everything as JSON, for scripts.")] = False,
) -> None:
    """One line per database (version, pending, unfinished run, failure, quarantine, drift, lock) and a summary,
    read from each database's ledger."""
    fleet_commands.status(databases, as_json)


@fleet_app.command("verify")
def fleet_verify(version: Target = None, databases: Databases = None) -> None:
    """Re-run the verification checks of each selected database (default: its current version), several at once:
    one line per database and a summary; exit 1 when any fails."""
    if not fleet_commands.verify(databases, version):
        raise typer.Exit(1)


@fleet_app.command("migrate")
@with_options(FleetOptions)
@with_options(MigrateOptions)
def fleet_migrate(options: MigrateOptions, fleet: FleetOptions, target: Target = None, databases: Databases = None) -> None:
    """Migrate every selected database to TARGET through the Prefect `migrate-fleet` flow: a child migrate run per
    database, in waves, halting at --max-failed-databases."""
    fleet_commands.migrate(target, databases, options, fleet)


@fleet_app.command("rollback")
@with_options(FleetOptions)
@with_options(MigrateOptions)
def fleet_rollback(
    options: MigrateOptions, fleet: FleetOptions,
    fleet_run: Annotated[Optional[str], typer.Argument(
        metavar="FLEET_RUN_ID", help="The fleet run's id, as `fleet migrate` prints it; default: the latest fleet run of --databases.")] = None,
    databases: Databases = None,
) -> None:
    """Undo a fleet run through the Prefect `rollback-fleet` flow: each database it changed back to its version
    before it, a child migrate run per database, in waves, halting at --max-failed-databases."""
    fleet_commands.rollback(fleet_run, databases, options, fleet)


def main() -> None:
    """Entry point: user errors become one plain line on stderr and exit status 1.

    The terminal shows progress bars, reports and that line; Prefect's own log lines (tracebacks of failed task runs
    included) go to the Prefect server, where the flow run shows them. PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL=INFO
    prints them here too. So do Prefect's internal errors (its `debug` handler) and the failures of shipping logs to
    an API that has gone away (a logging handler's error, silenced as the logging module's docs advise in production):
    when the orchestration dies, the command's own line says so.
    """
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_DEBUG_LEVEL", "CRITICAL")
    logging.raiseExceptions = False
    previous = {signum: signal.signal(signum, stop_at_once)  # a run's flow replaces them while it goes
                for signum in (signal.SIGINT, signal.SIGTERM)}     # (docshift.stop.supervise)
    try:
        app()
    except SignalStop as exc:  # outside a run: nothing is half-done that the command does not finish when run again
        print(f"docshift: interrupted by {exc}", file=sys.stderr)
        sys.exit(exc.exit_status)
    except Interrupted as exc:  # a run stopped at a batch boundary, checkpoint kept, lock released
        print(f"docshift: {exc}", file=sys.stderr)
        sys.exit(128 + (received_signal() or signal.SIGINT))
    except DocshiftError as exc:
        fail(exc, redact(str(exc)))
    except PyMongoError as exc:  # the server went away mid-run, after the start-up checks and every retry
        fail(exc, f"the database failed during the command ({type(exc).__name__}: {redact(str(exc))}); "
                  f"a migration keeps its checkpoint: run it again to resume")
    finally:
        for signum, handler in previous.items():  # as they were (main() called in a process that goes on: tests)
            signal.signal(signum, handler)


def fail(exc: BaseException, message: str) -> None:
    """One plain line on stderr and exit status 1; with --traceback (DOCSHIFT_DEBUG) the chained traceback first,
    passwords redacted, as Alembic's --raiseerr shows it."""
    if os.environ.get("DOCSHIFT_DEBUG", "") not in ("", "0"):
        print(redact("".join(tb.format_exception(exc))), file=sys.stderr, end="")
    print(f"docshift: error: {message}", file=sys.stderr)
    sys.exit(1)
