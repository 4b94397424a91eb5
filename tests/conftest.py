"""Session-wide real parts (a MongoDB server: FerretDB by scripts/ferretdb, or the user's; a Prefect server), one
test's `env`, and the markers.

Markers come from the folder a test lives in: `unit`, `integration`, `faults`, `deployment`, `ui`; `slow` is set
by hand on tests that wait on purpose for minutes; `embedded_server` on tests that skip when DOCSHIFT_TEST_MONGODB_URI
names another server than the embedded FerretDB (tests/support/servers.py). Under pytest-xdist every worker has its
own FerretDB and Prefect server (session fixtures), and every test its own database.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

from tests.support.env import Env, docshift_settings, process_environment
from tests.support.paths import ROOT, free_port
from tests.support.servers import checked, named_server, skip_embedded_only

# Prefect reads its settings once, when it is first imported; flows called in this process (and `Env.cli`) must
# find the session's server, so its address is in the environment before any test module imports Prefect.
PREFECT_PORT = free_port()
PREFECT_HOME = Path(tempfile.mkdtemp(prefix="docshift-tests-prefect-"))
os.environ.update({
    "PREFECT_API_URL": f"http://127.0.0.1:{PREFECT_PORT}/api",
    "PREFECT_HOME": str(PREFECT_HOME),
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_LOGGING_LEVEL": "WARNING",
    # what docshift.cli.main sets for its own process; set here for this one (processes the tests start do not get it)
    "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "CRITICAL",
})

# The FerretDB servers the tests start (the session's; the one a fault test stops and restarts) commit without an
# fsync each (scripts/ferretdb: FERRETDB_SYNCHRONOUS): what they must survive is the server process stopping or
# dying, never the machine. An fsync per commit cost about 4 ms, thousands of times per test file.
os.environ.setdefault("FERRETDB_SYNCHRONOUS", "NORMAL")

KINDS = ("unit", "integration", "faults", "deployment", "ui")
# Modules whose tests share something expensive set up once per module (a deployment and its worker): under
# pytest-xdist the whole module goes to one worker, which sets it up once.
ONE_WORKER_MODULES = {"tests/deployment/test_deployment.py"}


# The order tests start in: under pytest-xdist the long ones first (most of a `slow` test is waiting), the short
# unit tests last, where they fill the workers' tails. Tests of one module with the same kind stay together.
START_ORDER = ("slow", "deployment", "ui", "faults", "integration", "unit")


def pytest_collection_modifyitems(items):
    """Each test is marked with the kind of its folder (tests/<kind>/test_*.py), and they start in START_ORDER; on a
    server the user names, tests of the embedded one skip."""
    for item in items:
        parts = Path(str(item.path)).relative_to(ROOT / "tests").parts
        if parts[0] in KINDS:
            item.add_marker(getattr(pytest.mark, parts[0]))
    skip_embedded_only(items, named_server())

    def start(item) -> int:
        return min((START_ORDER.index(m.name) for m in item.iter_markers() if m.name in START_ORDER), default=len(START_ORDER))

    items.sort(key=start)  # stable: the collection order within each kind


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """With `-n N` (`--dist load`): every test is a unit of work of its own, except the tests of a module in
    ONE_WORKER_MODULES, which are one unit together. (This is `--dist loadgroup` with `xdist_group` marks, which
    pytest 9.2 breaks: pytest-xdist issue #1386, the marks reach no worker and the module is split.)"""
    if config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class OneWorkerModules(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return module if module in ONE_WORKER_MODULES else nodeid

    return OneWorkerModules(config, log)


def pytest_unconfigure(config):
    shutil.rmtree(PREFECT_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def mongodb_uri(tmp_path_factory):
    """The session's server: the one DOCSHIFT_TEST_MONGODB_URI names (tests only make and drop databases of their
    own there), else a FerretDB started and stopped by the project's own script."""
    if uri := named_server():
        yield checked(uri)
        return
    env = {**os.environ, "FERRETDB_PORT": str(free_port()), "FERRETDB_DIR": str(tmp_path_factory.mktemp("ferretdb")),
           "DOCSHIFT_PYTHON": sys.executable}
    script = ROOT / "scripts" / "ferretdb"
    started = subprocess.run([str(script), "start"], env=env, capture_output=True, text=True, timeout=600)
    assert started.returncode == 0, f"scripts/ferretdb start failed:\n{started.stderr}"
    yield started.stdout.strip()
    subprocess.run([str(script), "stop"], env=env, timeout=60)


@pytest.fixture(scope="session")
def prefect_api():
    """A real Prefect server (SQLite, loopback) for every flow run of the session, in-process or not."""
    from docshift.deployments.local_server import local_prefect_server

    settings = {"PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2",  # a test's schedule fires within seconds
                # alert notifications: their links, and run tags in state events (see deployments/alerts.py)
                "PREFECT_UI_URL": f"http://127.0.0.1:{PREFECT_PORT}", "PREFECT_SERVER_EVENTS_RELATED_RESOURCE_CACHE_TTL": "PT0S"}
    with local_prefect_server(PREFECT_HOME, PREFECT_PORT, settings) as api:
        assert api["PREFECT_API_URL"] == os.environ["PREFECT_API_URL"]
        yield api
        if "prefect" in sys.modules:  # send what this process's flow runs still queue before the server goes
            from prefect.events.worker import EventsWorker
            from prefect.logging.handlers import APILogWorker

            APILogWorker.drain_all(timeout=10)
            EventsWorker.drain_all(timeout=10)


@pytest.fixture
def migrations_dir(tmp_path):
    """A private copy of the seed migrations that a test may edit or add to."""
    target = tmp_path / "migrations"
    shutil.copytree(ROOT / "migrations", target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


@pytest.fixture
def env(mongodb_uri, prefect_api, migrations_dir, monkeypatch):
    """This test's database (dropped after it) on the session's server, with its own migrations and backup folders.

    The DOCSHIFT_* settings are in this process's environment for the test (docshift.settings reads it on every
    call) and in `env.vars` for the processes it starts."""
    settings = docshift_settings(mongodb_uri, f"t_{uuid.uuid4().hex[:10]}", migrations_dir, migrations_dir.parent / "backups")
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    e = Env(mongodb_uri, settings["DOCSHIFT_DATABASE"], migrations_dir, process_environment(prefect_api, settings))
    yield e
    e.client.drop_database(e.database)
    e.close()
