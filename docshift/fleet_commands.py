"""What each `docshift fleet` command does (the CLI only parses arguments): status reads every selected database's
ledger directly, concurrently; verify re-checks each database's applied migration, concurrently; migrate runs the
`migrate-fleet` Prefect flow (flows/fleet.py), rollback the `rollback-fleet` flow (flows/fleet_rollback.py)."""

import dataclasses
import json
from concurrent.futures import ThreadPoolExecutor

from pymongo.errors import PyMongoError

from .command import console, run_flow
from .context import RunContext
from .db import connect, redact
from .engine.drift import describe_all
from .engine.state import MigrateOptions
from .engine.verify import verify_applied
from .errors import DocshiftError, Interrupted
from .fleet import FleetOptions, Reading, check_children, read_statuses, select_fleet, summary, wave_sizes
from .ledger import Ledger
from .loader import ScriptDirectory
from .settings import Settings, get_settings
from .stop import stop_requested

WIDTH = 80
"""`fleet status` lines fit a terminal this wide (the JSON has everything)."""


def status(selector: str | None, as_json: bool = False) -> list[Reading]:
    """One line per database (version, pending, unfinished run, last failure, quarantine, drift, lock) and a summary
    line; or all of it as JSON for scripts."""
    settings = get_settings()
    scripts = ScriptDirectory.load(settings.migrations_dir)
    fleet = select_fleet(settings, scripts, selector)
    readings = read_statuses(connect(settings).client, fleet.databases, scripts)
    line = summary(readings, fleet.mistyped)
    if as_json:
        print(json.dumps({"summary": line, "latest": scripts.head, "mistyped": list(fleet.mistyped),
                          "databases": [as_record(r) for r in readings]}, default=str, indent=1))
        return readings
    name_width = min(28, max([8, *map(len, fleet.databases), *map(len, fleet.mistyped)]))
    console.print(f"{'database':{name_width}} {'at':>3} {'pending':>7}  state", markup=False, highlight=False)
    for r in readings:
        console.print(fit(status_line(r, name_width)), markup=False, highlight=False)
    for name in fleet.mistyped:
        console.print(fit(f"{name:{name_width}} {'-':>3} {'-':>7}  mistyped? no ledger nor migrated collection: "
                          f"not migrated"), markup=False, highlight=False)
    console.print(fit(line), markup=False, highlight=False)
    return readings


def status_line(r: Reading, width: int) -> str:
    name = r.database if len(r.database) <= width else r.database[: width - 1] + "…"
    if r.status is None:
        return f"{name:{width}} {'?':>3} {'?':>7}  unreadable: {r.error}"
    s = r.status
    notes = []
    if s.head_differs and (why := s.head_differs.describe()):
        notes.append(f"head differs: {why}")
    if s.failed:
        notes.append(f"FAILED at {s.failed.version}: {s.failed.error}")
    if u := s.unfinished:
        notes.append(f"unfinished rollback of {u.version}" if u.what == "rollback" else
                     f"unfinished {u.what} {u.version} {u.done}/{u.total}" + (f" {u.stopped}" if u.stopped else ""))
    if s.quarantined:
        notes.append(f"quarantined {sum(s.quarantined.values())}")
    if s.drift:
        notes.append(f"drift {sum(d.documents for d in s.drift)}")
    if s.lock is not None and s.lock.live:
        notes.append(f"locked by {s.lock.owner}")
    elif s.lock is not None:
        notes.append("stale lock")
    pending = str(len(s.pending)) if s.pending else "-"
    return f"{name:{width}} {s.current:>3} {pending:>7}  {'; '.join(notes) or ('ok' if not s.pending else 'behind')}"


def fit(line: str) -> str:
    return line if len(line) <= WIDTH else line[: WIDTH - 1] + "…"


def as_record(r: Reading) -> dict:
    """A reading as plain JSON values (drift described too, for people reading the JSON)."""
    if r.status is None:
        return {"database": r.database, "error": r.error}
    record = dataclasses.asdict(r.status)
    record["drift_text"] = describe_all(list(r.status.drift)) if r.status.drift else None
    record["lock_live"] = bool(r.status.lock and r.status.lock.live)
    return record


@dataclasses.dataclass(frozen=True)
class Checked:
    """One database's verification in `fleet verify`: its version and the checks that failed (or why it could not
    be verified)."""

    database: str
    version: int | None = None
    failed: tuple[str, ...] = ()
    error: str | None = None

    @property
    def passed(self) -> bool:
        return not self.failed and self.error is None


def verify(selector: str | None, version: int | None, workers: int = 8) -> bool:
    """`docshift verify [VERSION]` of every selected database, several at once: one line per database and a summary;
    False when any database failed a check or could not be verified."""
    settings = get_settings()
    fleet = select_fleet(settings, ScriptDirectory.load(settings.migrations_dir), selector)
    with ThreadPoolExecutor(max_workers=min(workers, len(fleet.databases) or 1)) as pool:
        results = list(pool.map(lambda name: verify_one(name, version), fleet.databases))
    for r in results:
        state = ("passed" if r.passed else f"FAILED: {'; '.join(r.failed)}") if r.error is None else f"ERROR: {r.error}"
        console.print(f"{r.database:28} {'-' if r.version is None else r.version:>3}  {state}", markup=False, highlight=False)
    failed = sum(not r.passed for r in results)
    console.print(f"{len(results) - failed} passed, {failed} failed of {len(results)} databases"
                  + (f" ({len(fleet.mistyped)} mistyped not verified)" if fleet.mistyped else ""), markup=False)
    return failed == 0


def verify_one(database: str, version: int | None) -> Checked:
    try:
        checked, result = verify_applied(RunContext.open(get_settings(database)), version)
    except (DocshiftError, PyMongoError) as exc:
        return Checked(database, error=redact(str(exc)))
    return Checked(database, checked, tuple(f"{c.check}: expected {c.expected}, found {c.found}"
                                            for c in result.checks if not c.passed))


def migrate(target: int | None, selector: str | None, options: MigrateOptions, fleet_options: FleetOptions):
    """Run the `migrate-fleet` flow: a child `migrate` run per database, in waves, halting at the failure limit."""
    from .flows.fleet import migrate_fleet

    settings = get_settings()
    scripts = ScriptDirectory.load(settings.migrations_dir)
    scripts.check_target(scripts.head if target is None else target)
    wave_sizes(fleet_options.waves, 1)
    check_children(fleet_options)
    fleet = select_fleet(settings, scripts, selector, options.new_database)  # plain errors before any flow run
    return run_fleet(migrate_fleet, fleet.databases, databases=selector or settings.databases, target_version=target,
                     options=options, fleet=fleet_options)


def rollback(fleet_run_id: str | None, selector: str | None, options: MigrateOptions, fleet_options: FleetOptions):
    """Run the `rollback-fleet` flow: each database the fleet run changed back to its version before it (default:
    the latest fleet run of the selector or the `databases` setting)."""
    from .flows.fleet_rollback import recorded_fleet_run, rollback_fleet

    settings = get_settings()
    wave_sizes(fleet_options.waves, 1)
    undone = recorded_fleet_run(fleet_run_id, selector or settings.databases)  # plain errors before any flow run
    return run_fleet(rollback_fleet, tuple(u.database for u in undone.databases), fleet_run_id=undone.fleet_run_id,
                     databases=selector, options=options, fleet=fleet_options)


def run_fleet(flow, names: tuple[str, ...], **parameters):
    """Run a fleet flow over the databases `names` as the command's run, printing its table (also when it failed: then
    exit 1, or as an interrupted `docshift migrate` exits on SIGINT/SIGTERM: 130, 143)."""
    from .flows.fleet import FleetFailed

    settings = get_settings()
    try:
        report = run_flow(flow, release_locks=lambda: release_own_locks(settings, names), **parameters)
    except FleetFailed as exc:
        show(exc.report)
        if stop_requested():
            raise Interrupted(str(exc)) from exc
        raise
    show(report)
    return report


def show(report) -> None:
    """The fleet run's table (errors whole: the line is what tells a person why a database failed)."""
    for line in report.lines():
        console.print(line, markup=False, highlight=False)


def release_own_locks(settings: Settings, databases: tuple[str, ...]) -> None:
    """The locks this process holds in the fleet's databases (its run is stopped from outside its flow)."""
    client = connect(settings).client
    for name in databases:
        try:
            Ledger(client[name]).release_own_lock()
        except Exception:  # noqa: BLE001 - the lease runs out where the database cannot be reached
            console.print(redact(f"could not release the lock of {name}; its lease runs out"), markup=False)
