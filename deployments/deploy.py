"""`docshift deploy`: a project's Prefect deployments, made from its settings and migration files.

`migrate/<project>`, `rollback/<project>`, `verify/<project>` and `inspect/<project>`, and for every migration that declares
`ExpandContract` its four phases (`expand/<project>-NAME` … `cleanup/<project>-NAME`, scheduled as the migration
file says); `deployment_name` is the one naming rule. Many projects (services, or databases of one team) share one
Prefect server that way. Entrypoints are module paths inside the installed package (`docshift.flows.phases.backfill`),
so a worker needs docshift installed, not its checkout.

Where a run works is part of the deployment, as job variables of the process work pool: `working_dir` is the
project folder (where the settings file is) and `env` holds DOCSHIFT_DATABASE, DOCSHIFT_MIGRATIONS_DIR and
DOCSHIFT_BACKUP_DIR as `docshift deploy` resolved them (absolute). The MongoDB URI is not: it may hold a password,
and job variables are shown in the UI; workers get it from their environment or the project's settings file.

Each deployment is tagged `docshift`, `db:DATABASE` and `project:PROJECT`; with its `working_dir` that says whose it
is (`Owner`). A deployment of the same name that another project made is never overwritten: `deploy` refuses before
writing anything, naming that project and its folder. Only this project's deployments that no longer match a
migration are reported as stale, and deleted with `prune`.

Applying is idempotent: a deployment whose every managed field already matches is not written at all, so running
it twice changes nothing. Schedules carry a slug and are created paused; one a person has resumed stays resumed.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from prefect import Flow, get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterTags
from prefect.client.schemas.responses import DeploymentResponse
from prefect.client.schemas.schedules import CronSchedule, RRuleSchedule
from prefect.deployments.runner import EntrypointType, RunnerDeployment
from prefect.exceptions import ObjectNotFound
from prefect.settings import PREFECT_API_URL
from prefect.workers.process import ProcessWorker

from docshift.engine.state import MigrateOptions
from docshift.errors import DeployError
from docshift.flows import phases
from docshift.fleet import FleetOptions
from docshift.flows.fleet import migrate_fleet
from docshift.flows.fleet_rollback import rollback_fleet
from docshift.flows.inspect import inspect
from docshift.flows.migrate import migrate
from docshift.flows.rollback import rollback
from docshift.flows.verify import verify
from docshift.loader import Script, ScriptDirectory
from docshift.settings import Settings, deployment_slug
from docshift.spec import PHASES, RRULE

TAG = "docshift"
PROJECT_TAG = "project:"
SLUG = "docshift"
"""The slug of the one schedule docshift keeps on a deployment: updates find it by slug and leave `active` alone."""


@dataclass(frozen=True)
class WantedSchedule:
    when: str
    timezone: str

    def prefect(self) -> CronSchedule | RRuleSchedule:
        if RRULE.match(self.when):
            return RRuleSchedule(rrule=self.when, timezone=self.timezone)
        return CronSchedule(cron=self.when, timezone=self.timezone)


@dataclass(frozen=True)
class Wanted:
    """One deployment as the project's files declare it; `source` says which file, for messages."""

    flow: Flow
    full_name: str
    """`flow/deployment`, from `deployment_name`."""
    description: str
    parameters: dict
    schedule: WantedSchedule | None
    source: str
    limit: int | None = 1
    """Runs at once. The `migrate` deployment has none: a fleet's child runs go to it many at once, and the
    per-database lock keeps any one database from being migrated twice at once."""

    @property
    def name(self) -> str:
        """The deployment's own name, after the flow's."""
        return self.full_name.split("/", 1)[1]


@dataclass
class DeployReport:
    """What `deploy` did, deployment by deployment (full names `flow/name`)."""

    pool: str
    pool_created: bool = False
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)


def entrypoint(flow: Flow) -> str:
    """The flow's module path inside the installed package, as a worker imports it."""
    return f"{flow.fn.__module__}.{flow.fn.__name__}"


def deployment_name(flow: str, project: str, name: str | None = None) -> str:
    """The full name (`flow/deployment`) of a deployment of `project`: `migrate/<project>` for a flow the project
    deploys once, `<phase>/<project>-<name>` for one of several (a migration's phases). The project is in every name,
    so that projects on one Prefect server never share one."""
    return f"{flow}/{project}-{name}" if name else f"{flow}/{project}"


def phase_deployment_name(script: Script) -> str:
    """`ExpandContract.name`, else `<collection>-<slug of the file name>` (`users-rename-email` for 0005_rename_email)."""
    if script.migration.expand_contract.name:
        return script.migration.expand_contract.name
    return deployment_slug(f"{script.migration.collection} {script.path.stem.split('_', 1)[-1]}")


def wanted_deployments(scripts: ScriptDirectory, settings: Settings) -> list[Wanted]:
    """Every deployment the project declares: migrate, migrate-fleet, rollback-fleet, rollback, verify, inspect, and
    the phases of each expand-contract change."""
    verify_at = WantedSchedule(settings.verify_schedule, settings.timezone) if settings.verify_schedule else None
    release = WantedSchedule(settings.fleet_schedule, settings.timezone) if settings.fleet_schedule else None
    migrate_, rollback_, verify_, inspect_, fleet_, fleet_rollback_ = (
        deployment_name(f.name, settings.project) for f in (migrate, rollback, verify, inspect, migrate_fleet, rollback_fleet))
    options = MigrateOptions().model_dump(mode="json")
    children = FleetOptions(deployment=migrate_).model_dump(mode="json")
    wanted = [
        Wanted(migrate, migrate_, "Migrate the database to target_version (default latest), up or down; dry_run plans only.",
               dict(target_version=None, options=options, dry_run=False), None, "docshift", limit=None),
        Wanted(migrate_fleet, fleet_, f"Migrate every database the selector names (`databases`: names, globs or "
               f"module:function; default the `databases` setting) wave by wave, each as a run of {migrate_} on the "
               f"work pool's workers.", dict(databases=None, target_version=None, options=dict(options), fleet=children),
               release, "settings: fleet_schedule"),
        Wanted(rollback_fleet, fleet_rollback_, f"Undo a fleet run: each database it changed back to its version before "
               f"it, as runs of {migrate_}; run it with --param fleet_run_id=ID (default: the latest {fleet_} run of "
               f"`databases`).", dict(fleet_run_id=None, databases=None, options=dict(options), fleet=dict(children)),
               None, "docshift"),
        Wanted(rollback, rollback_, "Restore the pre-images of run_id (an unfinished run after a crash, or the latest "
               "finished run); run it with --param run_id=RUN_ID.", {}, None, "docshift"),
        Wanted(verify, verify_, "Re-check an applied migration (default the current version) against the data as it is now.",
               dict(version=None), verify_at, "settings: verify_schedule"),
        Wanted(inspect, inspect_, "Profile a collection as it is (versions, field types, documents failing the latest "
               "target_model) into artifacts; run it with --param collection=NAME (sample=0: every document).",
               dict(sample=1000, version=None), None, "docshift"),
    ]
    for version in scripts.versions:
        script = scripts.get(version)
        if script.migration.expand_contract:
            wanted.extend(phase_deployments(script, settings))
    seen: dict[str, str] = {}
    for w in wanted:
        if w.full_name in seen:
            raise DeployError(f"{w.source} and {seen[w.full_name]} both make the deployment {w.full_name}: give one "
                              f"of them another ExpandContract(name=...)")
        seen[w.full_name] = w.source
    return wanted


PHASE_TEXT = {
    "expand": "the application now writes both the old and the new fields",
    "backfill": "the new fields on every document, the old ones kept; pauses at the window's end",
    "contract": "every document is backfilled; the application stops using the old fields",
    "cleanup": "removes {removes} after the soak time, once a person approves in the UI",
}


def phase_deployments(script: Script, settings: Settings) -> list[Wanted]:
    """The four phase deployments of one expand-contract migration, with the schedules its file declares."""
    migration, plan = script.migration, script.migration.expand_contract
    name, timezone = phase_deployment_name(script), plan.timezone or settings.timezone
    window = {"window_minutes": plan.window_minutes} if plan.window_minutes else {}
    # The window is a parameter of the deployment, not of its schedule: Prefect 3.9.1 empties a schedule's parameters
    # when it is paused or resumed (`prefect deployment schedule resume`), which would lift the window silently.
    extra = {"backfill": window, "cleanup": dict(approved=False, approval_timeout_seconds=3600, **window)}
    wanted = []
    for number, phase in enumerate(PHASES, 1):
        when = plan.schedule(phase)
        text = PHASE_TEXT[phase].format(removes=", ".join(plan.removes))
        flow = getattr(phases, phase)
        wanted.append(Wanted(flow, deployment_name(flow.name, settings.project, name),
                             f"{phase.capitalize()} (phase {number} of migration {migration.version}, "
                             f"{migration.description}): {text}.",
                             {"version": migration.version, **extra.get(phase, {})},
                             WantedSchedule(when, timezone) if when else None, script.path.name))
    return wanted


def job_variables(settings: Settings, project_dir: Path) -> dict[str, Any]:
    """Where a run works: the project folder, and the database and folders `docshift deploy` resolved."""
    return {"working_dir": str(project_dir), "env": {
        "DOCSHIFT_DATABASE": settings.database,
        "DOCSHIFT_MIGRATIONS_DIR": str(Path(settings.migrations_dir).resolve()),
        "DOCSHIFT_BACKUP_DIR": str(Path(settings.backup_dir).resolve()),
    }}


def project_tag(project: str) -> str:
    """`project:<name>`: the project whose `docshift deploy` (or prefect.yaml) made the deployment."""
    return f"{PROJECT_TAG}{project}"


def tags(settings: Settings) -> list[str]:
    """What marks a deployment as docshift's, of this database and of this project."""
    return [TAG, f"db:{settings.database}", project_tag(settings.project)]


@dataclass(frozen=True)
class Owner:
    """Whose a deployment is: the project of its tag, and the folder and database of its job variables (None where
    it has none: made by hand, by an older docshift without projects, or by `prefect deploy` of a prefect.yaml)."""

    project: str | None
    folder: str | None
    database: str | None

    @classmethod
    def of(cls, d: DeploymentResponse) -> "Owner":
        projects = [t.removeprefix(PROJECT_TAG) for t in d.tags if t.startswith(PROJECT_TAG)]
        variables = d.job_variables or {}
        return cls(projects[0] if projects else None, variables.get("working_dir"),
                   (variables.get("env") or {}).get("DOCSHIFT_DATABASE"))

    def same_project(self, ours: "Owner") -> bool:
        """The same project: its name, deployed from this folder or for this database (a project that moved folder,
        or changed database, is still itself; two that only share a name are not). Without a project tag, only
        what this folder's docshift made before projects existed."""
        if self.project is None:
            return self.folder is not None and self.folder == ours.folder
        return self.project == ours.project and (self.folder in (None, ours.folder) or self.database == ours.database)

    def __str__(self) -> str:
        where = ", ".join(f"{k} {v}" for k, v in (("folder", self.folder), ("database", self.database)) if v)
        who = f"the project {self.project}" if self.project else "no docshift project (made by hand or by an older docshift)"
        return f"{who}{f' ({where})' if where else ''}"


def runner_deployment(w: Wanted, settings: Settings, variables: dict) -> RunnerDeployment:
    try:
        if w.schedule:
            w.schedule.prefect()
    except ValueError as exc:
        raise DeployError(f"{w.source}: the schedule {w.schedule.when!r} of {w.full_name} is not valid: {exc}") from exc
    d = w.flow.to_deployment(name=w.name, description=w.description, parameters=w.parameters, concurrency_limit=w.limit,
                             tags=tags(settings), work_pool_name=settings.work_pool,
                             job_variables=variables, entrypoint_type=EntrypointType.MODULE_PATH)
    d.entrypoint = entrypoint(w.flow)
    return d


def _schedules(w: Wanted, active: dict[str, bool]) -> list[dict] | None:
    """The schedule as RunnerDeployment.apply takes it: slugged; paused unless it exists and someone resumed it."""
    if w.schedule is None:
        return None
    return [{"schedule": w.schedule.prefect(), "slug": SLUG, "parameters": {}, "active": active.get(SLUG, False)}]


def _managed(d: RunnerDeployment | DeploymentResponse, schedules: list[dict]) -> dict:
    """The fields docshift manages, comparable between what it wants and what the server has."""
    if isinstance(d, RunnerDeployment):
        schema = d._parameter_openapi_schema.model_dump(exclude_unset=True)
        limit, pool, pull = d.concurrency_limit, d.work_pool_name, []
    else:
        schema, pool, pull = d.parameter_openapi_schema, d.work_pool_name, d.pull_steps or []
        limit = d.global_concurrency_limit.limit if d.global_concurrency_limit else d.concurrency_limit
    return dict(description=d.description, entrypoint=d.entrypoint, parameters=d.parameters, tags=sorted(d.tags),
                job_variables=d.job_variables, pool=pool, limit=limit, schema=schema, pull=pull,
                enforce=d.enforce_parameter_schema,
                schedules=sorted((s["slug"], _comparable(s["schedule"]), s["parameters"]) for s in schedules))


def _comparable(schedule) -> dict:
    """A schedule as JSON; an RRULE as Prefect expands it (the server stores it with a DTSTART added)."""
    if isinstance(schedule, RRuleSchedule):
        return {"rrule": str(schedule.to_rrule()), "timezone": schedule.timezone}
    return schedule.model_dump(mode="json")


def _existing_schedules(d: DeploymentResponse) -> list[dict]:
    return [{"slug": s.slug, "schedule": s.schedule, "parameters": s.parameters} for s in d.schedules]


def read_existing(client, wanted: list[Wanted], ours: Owner) -> dict[str, DeploymentResponse | None]:
    """The deployments of the wanted names as the server has them (None: not there); a DeployError, before anything
    is written, when one of them is another project's."""
    existing: dict[str, DeploymentResponse | None] = {}
    for w in wanted:
        try:
            existing[w.full_name] = d = client.read_deployment_by_name(w.full_name)
        except ObjectNotFound:
            existing[w.full_name] = None
            continue
        if not (owner := Owner.of(d)).same_project(ours):
            raise DeployError(f"the deployment {w.full_name} belongs to {owner}, not to this project {ours.project} "
                              f"({ours.folder}): set `project` (DOCSHIFT_PROJECT) to a name of this project's own; "
                              f"nothing was written")
    return existing


def apply_one(client, w: Wanted, existing: DeploymentResponse | None, settings: Settings, variables: dict) -> str:
    """Create or update one deployment; `created`, `updated` or `unchanged`."""
    wanted = runner_deployment(w, settings, variables)
    if existing is None:
        wanted.apply(schedules=_schedules(w, {}), work_pool_name=settings.work_pool)
        return "created"
    schedules = _schedules(w, {s.slug: s.active for s in existing.schedules if s.slug})
    if _managed(wanted, schedules or []) == _managed(existing, _existing_schedules(existing)):
        return "unchanged"
    wanted.apply(schedules=schedules, work_pool_name=settings.work_pool)
    for stray in client.read_deployment(existing.id).schedules:
        if stray.slug != SLUG or schedules is None:  # a schedule docshift does not declare (any more)
            client.delete_deployment_schedule(existing.id, stray.id)
    return "updated"


def ensure_pool(client, name: str) -> bool:
    """Create the process work pool `name` if it is missing (True); refuse a pool of another type."""
    try:
        pool = client.read_work_pool(name)
    except ObjectNotFound:
        client.create_work_pool(WorkPoolCreate(name=name, type="process",
                                               base_job_template=ProcessWorker.get_default_base_job_template()))
        return True
    if pool.type != "process":
        raise DeployError(f"the work pool {name!r} is of type {pool.type!r}; docshift's deployments need a process "
                          f"pool: set work_pool (DOCSHIFT_WORK_POOL) to another name")
    return False


def deploy(wanted: list[Wanted], settings: Settings, project_dir: Path, prune: bool = False) -> DeployReport:
    """Create or update every wanted deployment on the Prefect server of PREFECT_API_URL; report stale ones."""
    if not PREFECT_API_URL.value():
        raise DeployError("deployments live on a Prefect server: set PREFECT_API_URL to it")
    report = DeployReport(settings.work_pool)
    variables = job_variables(settings, project_dir)
    ours = Owner(settings.project, variables["working_dir"], settings.database)
    try:
        with get_client(sync_client=True) as client:
            existing = read_existing(client, wanted, ours)
            report.pool_created = ensure_pool(client, settings.work_pool)
            for w in wanted:
                getattr(report, apply_one(client, w, existing[w.full_name], settings, variables)).append(w.full_name)
            names = {w.full_name for w in wanted}
            docshifts = DeploymentFilter(tags=DeploymentFilterTags(all_=[TAG]))
            for d in client.read_deployments(deployment_filter=docshifts):
                full_name = f"{client.read_flow(d.flow_id).name}/{d.name}"
                if full_name not in names and Owner.of(d).same_project(ours):
                    report.stale.append(full_name)
                    if prune:
                        client.delete_deployment(d.id)
                        report.deleted.append(full_name)
    except DeployError:
        raise
    except Exception as exc:  # httpx errors, refused requests: one line naming the server
        raise DeployError(f"the Prefect server at {PREFECT_API_URL.value()} failed: {type(exc).__name__}: {exc}") from exc
    return report


def render_prefect_yaml(wanted: list[Wanted], settings: Settings) -> str:
    """The same deployments as a prefect.yaml for `prefect deploy --all`. There the worker's environment says where
    (DOCSHIFT_DATABASE, …) and the pull step enters DOCSHIFT_PROJECT_DIR, instead of job variables."""
    deployments = []
    for w in wanted:
        entry: dict[str, Any] = {"name": w.name, "description": w.description, "entrypoint": entrypoint(w.flow)}
        if w.parameters:
            entry["parameters"] = w.parameters
        entry.update(tags=[TAG, project_tag(settings.project)], work_pool={"name": settings.work_pool})
        if w.limit:
            entry["concurrency_limit"] = w.limit
        if w.schedule:
            kind = "rrule" if RRULE.match(w.schedule.when) else "cron"
            entry["schedules"] = [{kind: w.schedule.when, "timezone": w.schedule.timezone, "slug": SLUG, "active": False}]
        deployments.append(entry)
    document = {"name": settings.project,
                "pull": [{"prefect.deployments.steps.set_working_directory": {"directory": "{{ $DOCSHIFT_PROJECT_DIR }}"}}],
                "deployments": deployments}
    return ("# Generated by `docshift deploy --prefect-yaml`: edit the migration files and settings, not this file.\n"
            "# `DOCSHIFT_PROJECT_DIR=$PWD prefect deploy --all` makes what `docshift deploy` makes, except that a worker's\n"
            "# environment says where (DOCSHIFT_MONGODB_URI, DOCSHIFT_DATABASE, DOCSHIFT_MIGRATIONS_DIR). Schedules ship paused.\n"
            + yaml.safe_dump(document, sort_keys=False, width=120, allow_unicode=True))
