"""One test's database, migrations folder and settings, and the two ways to run `docshift` against them.

`Env.cli(...)` runs the command in this process, through `docshift.cli.main` exactly as the console script does
(its exit status, its one-line `docshift: error:` on stderr), without starting an interpreter and importing Prefect
again. `Env.run(...)` / `Env.start(...)` start a real process: for what needs one (kill -9, signals, fault points,
the process boundary of a message). Both return a `subprocess.CompletedProcess`-like result with `returncode`,
`stdout` and `stderr`.
"""

import contextlib
import io
import logging
import os
import subprocess
import sys
import textwrap
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pymongo

from .paths import BIN

# What the tests' `docshift` sees besides DOCSHIFT_*: wide tables (rich reads COLUMNS when it prints).
CLI_ENV = {"COLUMNS": "200", "PREFECT_LOGGING_LEVEL": "WARNING"}


@dataclass
class Env:
    """One test's database, migrations folder and the environment the CLI runs with.

    `vars` is the environment of the processes `run`/`start` start; the same DOCSHIFT_* values are set in this
    process's environment (by the fixture, with monkeypatch) for `cli` and for flows called directly.
    """

    uri: str
    database: str
    migrations: Path
    vars: dict
    _client: pymongo.MongoClient | None = field(default=None, repr=False)

    @property
    def client(self) -> pymongo.MongoClient:
        """One client for the whole test (closed by the fixture)."""
        if self._client is None:
            self._client = pymongo.MongoClient(self.uri)
        return self._client

    @property
    def db(self):
        return self.client[self.database]

    @property
    def ledger(self):
        return self.db["_migrations"]

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def cli(self, *args: str, extra: dict | None = None) -> subprocess.CompletedProcess:
        """`docshift ARGS` in this process; `extra` environment variables (DOCSHIFT_*, PREFECT_*) for this call only."""
        return invoke(list(args), {**CLI_ENV, **(extra or {})})

    def run(self, *args: str, timeout: float = 600, extra: dict | None = None) -> subprocess.CompletedProcess:
        """`docshift ARGS` as a user runs it, in a new process; returns the finished process (never raises on exit status)."""
        return subprocess.run([str(BIN / "docshift"), *args], env={**self.vars, **(extra or {})}, capture_output=True,
                              text=True, timeout=timeout)

    def start(self, *args: str, extra: dict | None = None) -> subprocess.Popen:
        """`docshift ARGS` in a new process of its own session (to kill it with its children), output piped."""
        return subprocess.Popen([str(BIN / "docshift"), *args], env={**self.vars, **(extra or {})}, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)

    def break_split_name(self, user_ids: list[str], message: str) -> str:
        """Make migration 3's `up` raise ValueError(f"{message} {user_id}") for these users; returns the original source."""
        path = self.migrations / "0003_split_name.py"
        original = path.read_text()
        path.write_text(original.replace("def up(doc: dict) -> dict:\n", "def up(doc: dict) -> dict:\n"
                                         f"    if doc['user_id'] in {user_ids!r}:\n"
                                         f"        raise ValueError({message!r} + ' ' + doc['user_id'])\n", 1))
        return original

    def expire_lease(self, db=None) -> dict | None:
        """A dead run's lock, as it is once its lease has run out: `expires_at` written one second into the past
        (instead of sleeping out the lease). Returns the lock as it was (None: there was none)."""
        return expire_lease((self.db if db is None else db)["_migrations"])


def docshift_settings(uri: str, database: str, migrations: Path, backups: Path) -> dict:
    return {"DOCSHIFT_MONGODB_URI": uri, "DOCSHIFT_DATABASE": database, "DOCSHIFT_MIGRATIONS_DIR": str(migrations),
            "DOCSHIFT_BACKUP_DIR": str(backups)}


SET_BY_MAIN = ("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "PREFECT_LOGGING_HANDLERS_DEBUG_LEVEL")
"""Variables docshift.cli.main sets when they are not set: a test's docshift runs without them, as a user's does."""


def process_environment(prefect_api: dict, settings: dict) -> dict:
    """The environment of a `docshift` or `prefect` process a test starts: as a user's shell would have it."""
    variables = {**os.environ, **prefect_api, **settings, **CLI_ENV}
    for name in SET_BY_MAIN:  # docshift.cli.main sets them itself: the tests check that
        variables.pop(name, None)
    return variables


def expire_lease(ledger) -> dict | None:
    from docshift.ledger import now

    return ledger.find_one_and_update({"_id": "lock"}, {"$set": {"expires_at": now() - timedelta(seconds=1)}})


def invoke(argv: list[str], environ: dict) -> subprocess.CompletedProcess:
    """Run `docshift.cli.main()` with `argv` as a console script would: output captured, `SystemExit` turned into
    the exit status, an exception that escapes `main` into status 1 with its traceback on stderr (as Python does)."""
    from docshift import cli, settings

    out, err = io.StringIO(), io.StringIO()
    code: int = 0
    with _environ(environ), _prefect_settings(environ), _argv(["docshift", *argv]), _console_follows_environ(), \
            contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            cli.main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            if isinstance(exc.code, str):
                print(exc.code, file=sys.stderr)
        except Exception:  # noqa: BLE001 - what an uncaught exception does to a process
            traceback.print_exc()
            code = 1
        finally:
            settings.configure()  # the command's --uri/--database flags end with it
    return subprocess.CompletedProcess(["docshift", *argv], code, out.getvalue(), err.getvalue())


@contextlib.contextmanager
def _environ(values: dict) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in (*values, *SET_BY_MAIN)}
    raise_exceptions = logging.raiseExceptions  # main() sets it too
    os.environ.update({key: str(value) for key, value in values.items()})
    try:
        yield
    finally:
        logging.raiseExceptions = raise_exceptions
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def _prefect_settings(values: dict) -> Iterator[None]:
    """PREFECT_* values among `values` for this call: Prefect reads its settings once, at import, so they are
    entered as temporary settings (a new process would have read them from its environment)."""
    updates = {key: value for key, value in values.items() if key.startswith("PREFECT_") and key != "PREFECT_LOGGING_LEVEL"}
    if not updates:
        yield
        return
    import prefect.settings

    with prefect.settings.temporary_settings(updates={getattr(prefect.settings, k): v for k, v in updates.items()}):
        yield


@contextlib.contextmanager
def _console_follows_environ() -> Iterator[None]:
    """docshift.command's rich console takes its width from COLUMNS as this call has it, as in a new process (rich
    fixes the width when the console is created if COLUMNS is set then, as pytest-xdist's workers have it)."""
    from docshift import command

    console = getattr(command, "console", None)
    saved = getattr(console, "_width", None)
    if console is not None:
        console._width = None
    try:
        yield
    finally:
        if console is not None:
            console._width = saved


@contextlib.contextmanager
def _argv(argv: list[str]) -> Iterator[None]:
    saved = sys.argv
    sys.argv = argv
    try:
        yield
    finally:
        sys.argv = saved


def only_migrations(env: "Env", **files: str) -> None:
    """Replace the seed migrations by these files (name -> `migration = ...` source, after `import docshift`)."""
    for path in env.migrations.glob("*.py"):
        path.unlink()
    for name, source in files.items():
        (env.migrations / f"{name}.py").write_text("import docshift\n\n" + textwrap.dedent(source))


def only_default_plan(env: "Env") -> None:
    """Only migration 2 of users, declared as an update: a default plan set on the server (docshift.engine.ranges)."""
    only_migrations(env, **{"0002_default_plan": """\
        migration = docshift.Migration(version=2, description="Default plan", collection="users", kind="additive",
                                       update={"$set": {"plan": {"name": "free", "seats": 1}}})
        """})


def scratch_databases(env: "Env") -> list[str]:
    """The scratch copies `rehearse` left in the server (it must leave none)."""
    return [name for name in env.client.list_database_names() if name.startswith(f"{env.database}_rehearsal_")]
