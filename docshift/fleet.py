"""A fleet: the databases that share one migrations folder (database per tenant), chosen by a selector.

A selector is comma-separated names, globs over the server's database names (`tenant_*`), or `module:function` of
the user's project returning names (teams keep their tenants in a control database). The server's own databases
and docshift's scratch copies are never selected; a database that matches but looks mistyped (no ledger, none of
the migrated collections) is listed apart, not migrated, unless new databases are meant (`--new-database`).
"""

import fnmatch
import importlib
import importlib.util
import inspect
import math
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, Field
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from .context import looks_mistyped
from .errors import DatabaseError, FleetError
from .loader import ScriptDirectory
from .db import connect, redact
from .settings import Settings, find_settings_file, overridden
from .status import DatabaseStatus, database_status

SERVER_DATABASES = ("admin", "local", "config")
SCRATCH = re.compile(r"_rehearsal_[0-9a-f]{8}$")
"""docshift's own databases: the scratch copies `docshift rehearse` makes (and drops)."""
FUNCTION = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
GLOB = re.compile(r"[*?\[]")
WAVE = re.compile(r"^(\d+|\d+(\.\d+)?%)$")


def is_reserved(name: str) -> bool:
    """A database no fleet may take: the server's own, or one of docshift's scratch copies."""
    return name in SERVER_DATABASES or bool(SCRATCH.search(name))


def select(selector: str, server_names: Iterable[str]) -> list[str]:
    """The databases a selector of names and globs picks from the server's names, in the selector's order (a glob's
    matches sorted); a reserved name given explicitly, or an empty selection, is refused plainly."""
    names, chosen = sorted(server_names), {}
    for part in (p.strip() for p in selector.split(",")):
        if not part:
            continue
        if GLOB.search(part):
            chosen.update(dict.fromkeys(n for n in fnmatch.filter(names, part) if not is_reserved(n)))
        else:
            chosen[part] = None
    return checked(list(chosen), selector, names)


def checked(chosen: Sequence[str], selector: str, server_names: Sequence[str]) -> list[str]:
    """Refuse reserved or invalid names and an empty selection, each with one plain message."""
    if reserved := [n for n in chosen if is_reserved(n)]:
        raise FleetError(f"--databases {selector!r} names {', '.join(reserved)}: the server's own databases (admin, "
                         f"local, config) and docshift's scratch copies are never migrated")
    if bad := [n for n in chosen if not isinstance(n, str) or not n or any(c in n for c in '/\\. "$\0')]:
        raise FleetError(f"--databases {selector!r} gives invalid database name(s): {', '.join(map(repr, bad))}")
    if not chosen:
        others = [n for n in server_names if not is_reserved(n)]
        raise FleetError(f"--databases {selector!r} selects no database; databases on this server: "
                         f"{', '.join(others) or 'none'}")
    return list(chosen)


def project_folder() -> Path:
    """Where a selector's `module:function` is imported from: the settings file's folder, or the working directory."""
    found = find_settings_file()
    return found.parent if found else Path.cwd()


def resolve(selector: str, client: MongoClient, project: Path) -> list[str]:
    """The selector's databases on this server: names and globs over its database names, or what the project's
    `module:function` returns (called with the client when it takes an argument)."""
    if FUNCTION.match(selector):
        return checked(list(dict.fromkeys(call_selector(selector, client, project))), selector, [])
    try:
        names = client.list_database_names()
    except PyMongoError as exc:
        if GLOB.search(selector):
            raise DatabaseError(f"cannot list the server's databases for --databases {selector!r}: "
                                f"{redact(str(exc))}") from exc
        names = []  # names given one by one need no listing
    return select(selector, names)


def call_selector(selector: str, client: MongoClient, project: Path) -> list[str]:
    """Import `module` from the project folder and call `function` (with the client, if it takes a parameter)."""
    module_name, function_name = selector.split(":")
    if str(project) not in sys.path:
        sys.path.insert(0, str(project))
    try:
        function: Callable = getattr(importlib.import_module(module_name), function_name)
        names = function(client) if inspect.signature(function).parameters else function()
    except Exception as exc:  # the user's code: any failure is one message naming it
        raise FleetError(f"--databases {selector!r}: {type(exc).__name__}: {redact(str(exc))}") from exc
    if isinstance(names, str) or not isinstance(names, Iterable):
        raise FleetError(f"--databases {selector!r} returned {type(names).__name__}, not a list of database names")
    return list(names)


@dataclass(frozen=True)
class Fleet:
    """The selected databases: those to migrate, and those that look mistyped (listed, not migrated)."""

    databases: tuple[str, ...]
    mistyped: tuple[str, ...] = ()


def split_mistyped(client: MongoClient, names: Sequence[str], scripts: ScriptDirectory, new_database: bool,
                   workers: int = 16) -> Fleet:
    """Set apart the databases that look mistyped (context.looks_mistyped), read concurrently; `new_database`
    keeps them in the fleet."""
    if new_database:
        return Fleet(tuple(names))
    with ThreadPoolExecutor(max_workers=min(workers, len(names) or 1)) as pool:
        flags = list(pool.map(lambda n: looks_mistyped(client[n].list_collection_names(), scripts), names))
    return Fleet(tuple(n for n, bad in zip(names, flags) if not bad), tuple(n for n, bad in zip(names, flags) if bad))


def select_fleet(settings: Settings, scripts: ScriptDirectory, selector: str | None, new_database: bool = False) -> Fleet:
    """The fleet the selector (or the `databases` setting) picks, its mistyped-looking databases set apart."""
    selector = selector or settings.databases
    if not selector:
        raise FleetError("no databases selected: give --databases (names, a glob such as 'tenant_*', or "
                         "module:function), or set `databases` (DOCSHIFT_DATABASES)")
    client = connect(settings).client
    return split_mistyped(client, resolve(selector, client, project_folder()), scripts, new_database)


@dataclass(frozen=True)
class Reading:
    """One database's status, or why it could not be read."""

    database: str
    status: DatabaseStatus | None = None
    error: str | None = None


def read_statuses(client: MongoClient, names: Sequence[str], scripts: ScriptDirectory, workers: int = 16) -> list[Reading]:
    """Every database's status from its ledger, read concurrently on one client (a thread pool), in order."""
    def read(name: str) -> Reading:
        try:
            return Reading(name, database_status(client[name], scripts))
        except PyMongoError as exc:
            return Reading(name, error=f"{type(exc).__name__}: {redact(str(exc))}")

    with ThreadPoolExecutor(max_workers=min(workers, len(names) or 1)) as pool:
        return list(pool.map(read, names))


def summary(readings: Sequence[Reading], mistyped: Sequence[str] = ()) -> str:
    """One line for the whole fleet, e.g. "812 at 7, 3 failed at 6, 185 pending (latest 7)"."""
    at: dict[int, int] = {}
    failed: dict[int, int] = {}
    pending = unfinished = locked = unreadable = differs = 0
    head = None
    for r in readings:
        if r.status is None:
            unreadable += 1
            continue
        s, head = r.status, r.status.head
        if s.failed:
            failed[s.current] = failed.get(s.current, 0) + 1
        else:
            at[s.current] = at.get(s.current, 0) + 1
        pending += bool(s.pending)
        unfinished += s.unfinished is not None
        locked += s.lock is not None and s.lock.live
        differs += bool(s.head_differs and s.head_differs.describe())
    parts = [f"{n} at {v}" for v, n in sorted(at.items(), reverse=True)]
    parts += [f"{n} failed at {v}" for v, n in sorted(failed.items(), reverse=True)]
    parts += [f"{n} {what}" for n, what in ((pending, "pending"), (unfinished, "unfinished"), (locked, "locked"),
                                             (unreadable, "unreadable"), (differs, "head differs"),
                                             (len(mistyped), "mistyped")) if n]
    return ", ".join(parts or ["no databases"]) + (f" (latest {head})" if head is not None else "")


class FleetOptions(BaseModel):
    """How a fleet run goes: command-line flags, or the `migrate-fleet` deployment's parameters."""

    concurrency: int = Field(4, ge=1, le=256, description="Databases migrated at once.")
    waves: str = Field("100%", description="Waves as cumulative counts or shares of the fleet, e.g. `1,5%,25%,100%`: a canary "
                                   "first; each wave starts only when the one before passed.")
    max_failed_databases: int = Field(1, ge=1, description="Halt when this many databases failed: no new database "
                                                           "starts, running ones finish.")
    deployment: str | None = Field(None, description="Run each database as a run of this `migrate` deployment "
                                                     "(`FLOW/NAME`) on the work pool's workers; unset: in this process.")
    dask_address: str | None = Field(None, description="Run each database's child run on the workers of this Dask "
                                                       "scheduler (`tcp://host:8786`, prefect-dask); unset: threads "
                                                       "of this process.")


def check_children(fleet: FleetOptions) -> None:
    """Refuse, before any database is touched, children that could not run where the options send them: on Dask
    workers they read the settings of their own process, so this command's --uri or --migrations-dir would not
    reach them (they would migrate what their environment names)."""
    if fleet.dask_address and fleet.deployment:
        raise FleetError(f"--dask-address {fleet.dask_address} and --deployment {fleet.deployment}: the children run "
                         f"either on a Dask cluster or as runs of the deployment; give one")
    if not fleet.dask_address:
        return
    if importlib.util.find_spec("prefect_dask") is None:
        raise FleetError("--dask-address needs prefect-dask: pip install 'docshift[dask]'")
    if flags := sorted(overridden() & {"mongodb_uri", "migrations_dir"}):
        given = ", ".join("--uri" if f == "mongodb_uri" else "--migrations-dir" for f in flags)
        raise FleetError(f"--dask-address: {given} would not reach the Dask workers, which read their own settings; "
                         f"set DOCSHIFT_MONGODB_URI / DOCSHIFT_MIGRATIONS_DIR (or docshift.toml) where the workers "
                         f"run and here")


def wave_sizes(waves: str, total: int) -> list[int]:
    """How many databases each wave adds, from cumulative counts or shares (`1,5%,25%,100%` of 200: 1, 9, 40, 150);
    the last wave always reaches the whole fleet, and a wave that adds none is dropped."""
    sizes, reached = [], 0
    for part in (p.strip() for p in waves.split(",")):
        if not WAVE.match(part):
            raise FleetError(f"--waves {waves!r}: {part!r} is neither a count nor a share such as 5%; give e.g. "
                             f"1,5%,25%,100%")
        upto = math.ceil(total * float(part[:-1]) / 100) if part.endswith("%") else int(part)
        upto = min(max(upto, reached), total)
        if upto > reached:
            sizes.append(upto - reached)
            reached = upto
    if reached < total:
        sizes.append(total - reached)
    return sizes
