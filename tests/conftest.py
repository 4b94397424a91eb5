"""Session-wide real parts for the integration tests: FerretDB (scripts/ferretdb) and a Prefect server."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from docshift.deployments.local_server import local_prefect_server

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def ferretdb_uri(tmp_path_factory):
    """A FerretDB server of the session, started and stopped by the project's own script."""
    env = {**os.environ, "FERRETDB_PORT": str(_free_port()), "FERRETDB_DIR": str(tmp_path_factory.mktemp("ferretdb")),
           "DOCSHIFT_PYTHON": sys.executable}
    script = ROOT / "scripts" / "ferretdb"
    started = subprocess.run([str(script), "start"], env=env, capture_output=True, text=True, timeout=600)
    assert started.returncode == 0, f"scripts/ferretdb start failed:\n{started.stderr}"
    yield started.stdout.strip()
    subprocess.run([str(script), "stop"], env=env, timeout=60)


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory):
    """A real Prefect server (SQLite, loopback) for every flow run of the session."""
    port = _free_port()
    settings = {"PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2",  # a test's schedule fires within seconds
                # alert notifications: their links, and run tags in state events (see deployments/alerts.py)
                "PREFECT_UI_URL": f"http://127.0.0.1:{port}", "PREFECT_SERVER_EVENTS_RELATED_RESOURCE_CACHE_TTL": "PT0S"}
    with local_prefect_server(tmp_path_factory.mktemp("prefect-home"), port, settings) as api:
        yield api


@pytest.fixture
def migrations_dir(tmp_path):
    """A private copy of the seed migrations that a test may edit or add to."""
    target = tmp_path / "migrations"
    shutil.copytree(ROOT / "migrations", target, ignore=shutil.ignore_patterns("__pycache__"))
    return target
