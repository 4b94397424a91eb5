"""The rollback-fleet flow: undo what one fleet run did, database by database, with a child `migrate` run per
database back to the version it had before that fleet run (the `down`s giving back each run's pre-images, under the
database's own lock, with its own backups and verification), in waves, halting as `migrate-fleet` does.

Which databases, and from where to where, is the fleet run's own record: its `docshift-fleet` table (the
`from` and `to` of each database), read from the Prefect server it ran on. A database that moved since (another run
changed its version) is not touched: taking it back would undo that run too.
"""

import json
from dataclasses import dataclass, replace
from uuid import UUID

from prefect import flow, get_client
from prefect.client.schemas.filters import (
    ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey, FlowFilter, FlowFilterName, FlowRunFilter,
    FlowRunFilterStartTime, FlowRunFilterTags)
from prefect.client.schemas.objects import FlowRun
from prefect.client.schemas.sorting import FlowRunSort
from prefect.exceptions import ObjectNotFound
from prefect.runtime import flow_run
from prefect.settings import PREFECT_API_URL

from docshift.db import connect
from docshift.engine.state import MigrateOptions
from docshift.errors import FleetError
from docshift.fleet import FleetOptions, Reading, read_statuses
from docshift.loader import ScriptDirectory
from docshift.settings import get_settings
from docshift.tasks.notify import announce, label_run
from docshift.flows.fleet import (
    FAILED, HEAD_DIFFERS, INTERRUPTED, LOCKED, MIGRATED, NOT_STARTED, PAUSED, DatabaseOutcome, FleetReport, Waves,
    finish, in_order, run_waves)
from docshift.flows.migrate import window_deadline

FLEET_FLOW, FLEET_TABLE = "migrate-fleet", "docshift-fleet"
ROLLED_BACK, ALREADY_BACK, UNCHANGED, CHANGED_SINCE = "rolled back", "already back", "unchanged", "changed since"


@dataclass(frozen=True)
class Undo:
    """One database as the fleet run's table recorded it: its version before the fleet run and after it."""

    database: str
    before: int | None
    after: int | None


@dataclass(frozen=True)
class FleetRun:
    """A finished fleet run as its record on the Prefect server tells it."""

    fleet_run_id: str
    selector: str | None
    """Its `--databases` (its `db:` tag)."""
    databases: tuple[Undo, ...]


@dataclass(frozen=True)
class FleetRollbackReport(FleetReport):
    undoes: str | None = None
    """The fleet run rolled back."""

    OUTCOMES = (ROLLED_BACK, ALREADY_BACK, UNCHANGED, PAUSED, FAILED, LOCKED, INTERRUPTED, NOT_STARTED, CHANGED_SINCE,
                HEAD_DIFFERS)
    PROBLEMS = (FAILED, LOCKED, INTERRUPTED, PAUSED, NOT_STARTED, CHANGED_SINCE, HEAD_DIFFERS)

    def again(self) -> str:
        return (f"running `docshift fleet rollback {self.undoes}` again skips those back at their version before it "
                f"and resumes the rest")

    def title(self) -> str:
        return f"fleet rollback {self.fleet_run_id} of fleet run {self.undoes}"


@flow(name="rollback-fleet", description="Undo a fleet run: each of its databases back to its version before it, "
                                         "a child migrate run per database, in waves, halting when too many failed.")
def rollback_fleet(fleet_run_id: str | None = None, databases: str | None = None,
                   options: MigrateOptions = MigrateOptions(), fleet: FleetOptions = FleetOptions()) -> FleetReport:
    """Take every database that fleet run `fleet_run_id` changed (default: the latest fleet run of `databases`, or of
    the `databases` setting) back to its version before it; fails (with the report) unless all are back."""
    settings = get_settings()
    undone = recorded_fleet_run(fleet_run_id, databases or settings.databases)
    selector = undone.selector or databases or settings.databases or f"fleet run {undone.fleet_run_id}"
    scripts = ScriptDirectory.load(settings.migrations_dir)
    moved = [u for u in undone.databases if None not in (u.before, u.after) and u.before != u.after]
    readings = read_statuses(connect(settings).client, [u.database for u in moved], scripts)
    outcomes = [DatabaseOutcome(u.database, UNCHANGED, u.after, u.after) for u in undone.databases if u not in moved]
    outcomes += [o for u, r in zip(moved, readings) if (o := refused(u, r, options))]
    todo = [u for u in moved if u.database not in {o.database for o in outcomes}]
    label_run(selector)  # a failed or halted rollback alerts as a failed docshift run does
    announce("fleet.started", selector, None, None, f"rollback of fleet run {undone.fleet_run_id}: {len(todo)} of "
             f"{len(undone.databases)} databases to take back")
    own_id = str(flow_run.id) if flow_run.id else None
    waves = Waves(None, options, fleet, window_deadline(options.window_minutes), own_id,
                  targets={u.database: u.before for u in todo})
    results, halted = run_waves(waves, [u.database for u in todo], selector)
    results = [replace(o, outcome=ROLLED_BACK) if o.outcome == MIGRATED else o for o in results]
    report = FleetRollbackReport(own_id, None, in_order(outcomes + results, undone.databases), halted,
                                 undoes=undone.fleet_run_id)
    return finish(report, "docshift-fleet-rollback", selector)


def refused(undo: Undo, reading: Reading, options: MigrateOptions) -> DatabaseOutcome | None:
    """Why a database the fleet run changed is not taken back (None: it is): back already, moved since, unreadable,
    or its ledger records what this migrations folder does not have."""
    s, name = reading.status, undo.database
    if s is None:
        return DatabaseOutcome(name, FAILED, error=f"unreadable: {reading.error}")
    if s.head_differs and (why := s.head_differs.describe(options.allow_changed)):
        return DatabaseOutcome(name, HEAD_DIFFERS, s.current, s.current, error=why)
    if s.current == undo.before and s.unfinished is None:
        return DatabaseOutcome(name, ALREADY_BACK, s.current, s.current)
    if s.current not in (undo.before, undo.after):
        return DatabaseOutcome(name, CHANGED_SINCE, s.current, s.current, error=(
            f"at version {s.current}, not {undo.after} where the fleet run left it: another run changed it since; "
            f"`docshift --database {name} migrate {undo.before}` takes it back, that run's changes too"))
    return None


def recorded_fleet_run(fleet_run_id: str | None, selector: str | None) -> FleetRun:
    """The fleet run `fleet_run_id` (default: the latest one of `selector`) and its databases' versions before and
    after it, from its `docshift-fleet` table; a plain error when there is no such finished fleet run."""
    url = PREFECT_API_URL.value()
    if not url:
        raise FleetError("fleet rollback reads the fleet run's record from the Prefect server it ran on: set "
                         "PREFECT_API_URL to that server")
    with get_client(sync_client=True) as client:
        run = named_fleet_run(client, fleet_run_id, url) if fleet_run_id else latest_fleet_run(client, selector, url)
        table = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=[FLEET_TABLE]), flow_run_id=ArtifactFilterFlowRunId(any_=[run.id])), limit=1)
    if not table:
        raise FleetError(f"fleet run {run.id} ({run.state_name}) has no `{FLEET_TABLE}` table: it did not finish; "
                         f"`docshift fleet migrate` run again finishes it, or `docshift fleet migrate VERSION` takes "
                         f"its databases to a version")
    rows = json.loads(table[0].data) if isinstance(table[0].data, str) else table[0].data
    tag = next((t[3:] for t in run.tags if t.startswith("db:")), None)
    return FleetRun(str(run.id), tag, tuple(Undo(r["database"], version(r["from"]), version(r["to"])) for r in rows))


def named_fleet_run(client, fleet_run_id: str, url: str) -> FlowRun:
    """The flow run of that id, if it is a `migrate-fleet` run on this server."""
    try:
        run = client.read_flow_run(UUID(fleet_run_id))
    except ValueError as exc:
        raise FleetError(f"{fleet_run_id!r} is not a fleet run id (the Prefect flow run id that `docshift fleet "
                         f"migrate` prints)") from exc
    except ObjectNotFound as exc:
        raise FleetError(f"there is no fleet run {fleet_run_id} on the Prefect server at {url}") from exc
    if (name := client.read_flow(run.flow_id).name) != FLEET_FLOW:
        raise FleetError(f"flow run {fleet_run_id} is a `{name}` run, not a fleet run (`{FLEET_FLOW}`)")
    return run


def latest_fleet_run(client, selector: str | None, url: str) -> FlowRun:
    """The `migrate-fleet` run that started last (of `selector`, when one is given or set)."""
    runs = client.read_flow_runs(
        flow_filter=FlowFilter(name=FlowFilterName(any_=[FLEET_FLOW])),
        flow_run_filter=FlowRunFilter(start_time=FlowRunFilterStartTime(is_null_=False),
                                      tags=FlowRunFilterTags(all_=[f"db:{selector}"]) if selector else None),
        sort=FlowRunSort.START_TIME_DESC, limit=1)
    if not runs:
        raise FleetError("there is no fleet run" + (f" of --databases {selector!r}" if selector else "")
                         + f" on the Prefect server at {url}: nothing to roll back")
    return runs[0]


def version(value) -> int | None:
    """A version from the table (`-`: none)."""
    return int(value) if str(value).lstrip("-").isdigit() else None
