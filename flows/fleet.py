"""The migrate-fleet flow: one child `migrate` run per database of a fleet (a subflow in a thread of this process or
on a Dask worker, or a run of the `migrate` deployment on the work pool), in waves, at most N at once, halting when
too many databases failed.

Each database keeps what a single run has: its own lock, checkpoints, backups and rollback. Nothing fleet-wide is
written into a tenant's database; which fleet run took which database where is the fleet run's own record: its
child runs (tagged `fleet:<fleet run id>`), its table artifact `docshift-fleet`, and its result. Running it again
skips the databases at the target and resumes the others from their checkpoints (as `migrate` does per database).
"""

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.deployments import run_deployment
from prefect.futures import PrefectFuture, as_completed
from prefect.runtime import flow_run
from prefect.states import Failed, State
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from docshift.db import connect, redact
from docshift.engine.state import MigrateOptions
from docshift.errors import FleetError, Interrupted, LockHeldError
from docshift.fleet import FleetOptions, check_children, read_statuses, select_fleet, wave_sizes
from docshift.ledger import Ledger, now
from docshift.loader import ScriptDirectory
from docshift.settings import get_settings
from docshift.stop import stop_requested
from docshift.tasks.notify import announce, label_run, labelled
from docshift.tasks.retry import ORCHESTRATION_ERRORS, orchestration_failure
from docshift.flows.migrate import migrate, window_deadline

ORCHESTRATION_ATTEMPTS = 3
"""Runs of a database's `migrate` when the one before failed in Prefect itself (its API refusing under load: 503),
not in the migration: each resumes where the one before stopped (that one rolled its step back or checkpointed)."""
ORCHESTRATION_PAUSE_SECONDS = 5.0
"""The pause before a database's next run after a run failed in Prefect, times the attempt (a busy server's database
has time to clear)."""
MIGRATED, AT_TARGET, PAUSED, FAILED, LOCKED, INTERRUPTED, NOT_STARTED, MISTYPED, HEAD_DIFFERS = (
    "migrated", "at target", "paused", "failed", "locked", "interrupted", "not started", "mistyped", "head differs")


@dataclass(frozen=True)
class DatabaseOutcome:
    """What the fleet run did to one database."""

    database: str
    outcome: str
    before: int | None = None
    after: int | None = None
    documents: int = 0
    duration_s: float = 0.0
    wave: int | None = None
    error: str | None = None
    flow_run_id: str | None = None
    """The child `migrate` run."""


@dataclass(frozen=True)
class FleetReport:
    fleet_run_id: str | None
    target: int | None
    outcomes: tuple[DatabaseOutcome, ...]
    halted: str | None = None

    OUTCOMES = (MIGRATED, AT_TARGET, PAUSED, FAILED, LOCKED, INTERRUPTED, NOT_STARTED, MISTYPED, HEAD_DIFFERS)
    """Outcomes in the summary's order."""
    PROBLEMS = (FAILED, LOCKED, INTERRUPTED, PAUSED, NOT_STARTED, HEAD_DIFFERS)
    """Outcomes of a database that did not get where the fleet run takes it."""

    def count(self, outcome: str) -> int:
        return sum(o.outcome == outcome for o in self.outcomes)

    @property
    def problem(self) -> str | None:
        """Why the fleet did not all get there, in one line (None: it did, mistyped databases aside)."""
        bad = [f"{n} {what}" for what in self.PROBLEMS if (n := self.count(what))]
        if not bad and not self.halted:
            return None
        return (f"fleet run {self.fleet_run_id}: " + (f"{self.halted}; " if self.halted else "") + ", ".join(bad)
                + f" of {len(self.outcomes)} databases; `docshift fleet status` shows each, and {self.again()}")

    def again(self) -> str:
        return (f"running the same `docshift fleet migrate` again skips those at version {self.target} and resumes "
                f"the rest")

    def title(self) -> str:
        return f"fleet run {self.fleet_run_id} to version {self.target}"

    def lines(self) -> list[str]:
        rows = [f"{'database':24} {'wave':>4} {'from':>4} {'to':>3} {'docs':>8} {'s':>6}  outcome"]
        for o in self.outcomes:
            rows.append(f"{o.database[:24]:24} {o.wave or '-':>4} {dash(o.before):>4} {dash(o.after):>3} "
                        f"{o.documents:>8,} {o.duration_s:>6.1f}  {o.outcome}" + (f": {o.error}" if o.error else ""))
        counts = ", ".join(f"{n} {what}" for what in self.OUTCOMES if (n := self.count(what)))
        rows.append(f"{self.title()}: {counts}" + (f"; {self.halted}" if self.halted else ""))
        return rows


def dash(value) -> str:
    return "-" if value is None else str(value)


class FleetFailed(FleetError):
    """The fleet run ended with databases not at the target; carries its report (the flow run fails with it)."""

    def __init__(self, report: FleetReport):
        super().__init__(report.problem)
        self.report = report


@flow(name="migrate-fleet", description="Migrate every database of a fleet to a schema version: a child migrate run "
                                        "per database, in waves, halting when too many failed.")
def migrate_fleet(databases: str | None = None, target_version: int | None = None,
                  options: MigrateOptions = MigrateOptions(), fleet: FleetOptions = FleetOptions()) -> FleetReport:
    """Select the databases (`databases`: names, globs, or module:function; default the `databases` setting), skip
    those at the target, and migrate the rest wave by wave; fails (with the report) unless all reached the target."""
    settings = get_settings()
    scripts = ScriptDirectory.load(settings.migrations_dir)
    target = scripts.check_target(scripts.head if target_version is None else target_version)
    chosen = select_fleet(settings, scripts, databases, options.new_database)
    selector = databases or settings.databases
    readings = read_statuses(connect(settings).client, chosen.databases, scripts)
    differs = {r.database: why for r in readings
               if r.status and r.status.head_differs and (why := r.status.head_differs.describe(options.allow_changed))}
    done = {r.database: r.status for r in readings
            if r.database not in differs and r.status and r.status.current == target and r.status.unfinished is None}
    outcomes = [DatabaseOutcome(name, AT_TARGET, s.current, s.current) for name, s in done.items()]
    outcomes += [DatabaseOutcome(name, HEAD_DIFFERS, error=why) for name, why in differs.items()]
    outcomes += [DatabaseOutcome(name, MISTYPED, error="no ledger nor migrated collection (--new-database migrates "
                                                       "it)") for name in chosen.mistyped]
    todo = [r.database for r in readings if r.database not in done and r.database not in differs]
    fleet_run_id = str(flow_run.id) if flow_run.id else None
    label_run(selector)  # a failed or halted fleet run alerts as a failed docshift run does
    announce("fleet.started", selector, target, None, f"to version {target}: {len(todo)} of "
             f"{len(todo) + len(outcomes)} databases to migrate")
    waves = Waves(target_version, options, fleet, window_deadline(options.window_minutes), fleet_run_id)
    results, halted = run_waves(waves, todo, selector)
    return finish(FleetReport(fleet_run_id, target, in_order(outcomes + results, readings), halted), "docshift-fleet",
                  selector)


def run_waves(waves: "Waves", todo: list[str], selector: str) -> tuple[list[DatabaseOutcome], str | None]:
    """The databases wave by wave (announcing each wave passed); their outcomes, and why the fleet halted (if so)."""
    outcomes, halted = [], None
    with children_runner(waves.fleet) as runner:
        start = 0
        for number, size in enumerate(wave_sizes(waves.fleet.waves, len(todo)), 1):
            wave, start = todo[start:start + size], start + size
            results, halted = waves.run(runner, number, wave)
            outcomes += results
            if halted:
                outcomes += [DatabaseOutcome(name, NOT_STARTED) for name in todo[start:]]
                break
            get_run_logger().info("wave %s passed: %s databases", number, len(wave))
            announce("fleet.wave-passed", selector, None, None, f"wave {number}: {len(wave)} "
                     f"databases, {sum(o.outcome == FAILED for o in results)} failed")
    return outcomes, halted


def in_order(outcomes: list[DatabaseOutcome], selection: Sequence) -> tuple[DatabaseOutcome, ...]:
    """The outcomes in the order of `selection` (anything with a `database`: readings), the others (mistyped) last."""
    order = {r.database: i for i, r in enumerate(selection)}
    return tuple(sorted(outcomes, key=lambda o: order.get(o.database, len(order))))


def finish(report: FleetReport, key: str, selector: str) -> FleetReport:
    """The fleet run's table artifact and its halted/completed event; fails (with the report) unless all got there."""
    create_table_artifact([table_row(o) for o in report.outcomes], key=key, description=report.lines()[-1])
    announce("fleet.halted" if report.halted else "fleet.completed", selector, report.target, None, report.lines()[-1])
    if report.problem:
        raise FleetFailed(report)
    return report


@contextmanager
def children_runner(fleet: FleetOptions) -> Iterator[TaskRunner]:
    """Where the `migrate-database` tasks run: threads of this process, or the workers of the Dask cluster at
    `dask_address` (prefect-dask); either way Waves keeps at most `concurrency` of them going."""
    check_children(fleet)
    if not fleet.dask_address:
        with ThreadPoolTaskRunner(max_workers=fleet.concurrency) as runner:
            yield runner
        return
    from prefect_dask import DaskTaskRunner

    with DaskTaskRunner(address=fleet.dask_address) as runner:
        try:  # connect now: where no scheduler answers, one plain error before any database starts
            workers = runner.client.nthreads()
        except OSError as exc:
            raise FleetError(f"--dask-address {fleet.dask_address}: no Dask scheduler answers there ({exc})") from exc
        get_run_logger().info("children run on the Dask cluster at %s: %s workers, %s threads", fleet.dask_address,
                              len(workers), sum(workers.values()))
        yield runner


def table_row(o: DatabaseOutcome) -> dict:
    return {"database": o.database, "wave": dash(o.wave), "outcome": o.outcome, "from": dash(o.before),
            "to": dash(o.after), "documents": o.documents, "duration (s)": round(o.duration_s, 1),
            "error": o.error or "", "flow run": o.flow_run_id or ""}


@dataclass
class Waves:
    """Runs the fleet's waves: at most `concurrency` databases at once, no new one once the fleet is halted."""

    target_version: int | None
    options: MigrateOptions
    fleet: FleetOptions
    deadline: datetime | None
    fleet_run_id: str | None
    failed: int = 0
    targets: dict[str, int] = field(default_factory=dict)
    """A database's own target version, where it differs from `target_version` (a fleet rollback's `before`)."""

    def halt_reason(self) -> str | None:
        if self.failed >= self.fleet.max_failed_databases:
            return f"halted: {self.failed} failed databases reached --max-failed-databases {self.fleet.max_failed_databases}"
        if stop_requested():
            return "interrupted: no new database started"
        if self.deadline and now() >= self.deadline:
            return "the maintenance window closed: no new database started"
        return None

    def run(self, runner: TaskRunner, number: int, wave: list[str]) -> tuple[list[DatabaseOutcome], str | None]:
        """One wave; returns its outcomes and why the fleet halts (None: the wave passed)."""
        queue, running, results = list(wave), {}, []
        while queue or running:
            while queue and len(running) < self.fleet.concurrency and not self.halt_reason():
                name = queue.pop(0)
                running[self.start(runner, name, number)] = name
            if not running:
                break
            future = next(as_completed(list(running)))  # the first to finish
            del running[future]
            results.append(future.result())
            self.failed += results[-1].outcome == FAILED
        results += [DatabaseOutcome(name, NOT_STARTED, wave=number) for name in queue]
        return results, self.halt_reason() or (f"wave {number} did not pass" if queue else None)

    def start(self, runner: TaskRunner, database: str, number: int) -> PrefectFuture:
        options = self.options
        if self.deadline:  # the fleet's window: each database gets what is left of it
            left = max(0.0, (self.deadline - now()).total_seconds() / 60)
            options = options.model_copy(update={"window_minutes": left})
        child = Child(database, self.targets.get(database, self.target_version), options, self.fleet.deployment, number,
                      self.fleet_run_id)
        return runner.submit(migrate_database, {"child": child})


@dataclass(frozen=True)
class Child:
    """One database's child run, as the fleet starts it."""

    database: str
    target_version: int | None
    options: MigrateOptions
    deployment: str | None
    wave: int
    fleet_run_id: str | None


def run_database(child: Child) -> DatabaseOutcome:
    """Migrate one database through a child `migrate` run and tell from its ledger what that did; never raises
    for the database's own failure (the child run shows it, failed; its failed step was rolled back)."""
    db = connect(get_settings(child.database))
    ledger = Ledger(db)
    before, seen, began = ledger.current_version(), {e["_id"] for e in ledger.history()}, time.monotonic()
    try:
        ledger.check_lock_free()
    except LockHeldError as exc:
        return DatabaseOutcome(child.database, LOCKED, before, before, wave=child.wave, error=str(exc))
    for attempt in range(1, ORCHESTRATION_ATTEMPTS + 1):
        try:
            state, run_id = child_run(child)
        except ORCHESTRATION_ERRORS as exc:  # Prefect refused to create or end the run itself (503: its database busy)
            state, run_id = Failed(message=orchestration_failure(exc), data=exc), None
        retry = not state.is_completed() and isinstance(failure(state), ORCHESTRATION_ERRORS)
        if not retry or attempt == ORCHESTRATION_ATTEMPTS:
            break
        get_run_logger().warning("%s: its run failed in the orchestration (%s); running it again (attempt %s): it "
                                 "resumes where that one stopped", child.database, state.message, attempt + 1)
        time.sleep(ORCHESTRATION_PAUSE_SECONDS * attempt)
    entries = [e for e in ledger.history() if e["_id"] not in seen]
    outcome = DatabaseOutcome(child.database, MIGRATED, before, ledger.current_version(),
                              sum(e.get("documents") or 0 for e in entries), time.monotonic() - began, child.wave,
                              flow_run_id=run_id)
    if state.is_completed():
        return replace(outcome, outcome=PAUSED if ledger.checkpoint() else MIGRATED)
    error = failure(state)
    kind = INTERRUPTED if isinstance(error, Interrupted) else LOCKED if isinstance(error, LockHeldError) else FAILED
    text = orchestration_failure(error) if isinstance(error, ORCHESTRATION_ERRORS) else str(error)
    return replace(outcome, outcome=kind, error=redact(text))


migrate_database = task(run_database, name="migrate-database", task_run_name="{child.database}", cache_policy=NO_CACHE)
"""The task; its function stays importable by name, so a Dask worker loads it instead of unpickling its closure."""


def child_run(child: Child) -> tuple[State, str | None]:
    """Run the database's `migrate`: a subflow here, or a run of the deployment on the work pool; its final state."""
    parameters = {"target_version": child.target_version, "options": child.options, "database": child.database}
    labels = [f"fleet:{child.fleet_run_id}"] if child.fleet_run_id else []
    if child.deployment:
        parameters["options"] = child.options.model_dump(mode="json")
        run = run_deployment(child.deployment, parameters=parameters, timeout=None, poll_interval=1, tags=labels)
        return run.state, str(run.id)
    with labelled(*labels):  # the child runs' tag, not their task runs' (tasks.notify.labelled)
        state = migrate(**parameters, return_state=True)
    return state, str(state.state_details.flow_run_id) if state.state_details.flow_run_id else None


def failure(state: State) -> Exception | str:
    """The exception a failed run raised (a run in this process), or its state's message (a deployment run)."""
    try:
        error = state.result(raise_on_failure=False)
    except Exception as exc:  # noqa: BLE001 - the result of a run elsewhere is not here to read
        error = exc
    return error if isinstance(error, Exception) else state.message or state.name or "failed"
