"""Session-wide real parts for the integration tests: FerretDB (scripts/ferretdb) and a Prefect server."""

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

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
    home = tmp_path_factory.mktemp("prefect-home")
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_SERVER_API_HOST": "127.0.0.1", "PREFECT_SERVER_API_PORT": str(port),
           "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2",  # a test's schedule fires within seconds
           # alert notifications: their links, and run tags in state events (see deployments/alerts.py)
           "PREFECT_UI_URL": f"http://127.0.0.1:{port}", "PREFECT_SERVER_EVENTS_RELATED_RESOURCE_CACHE_TTL": "PT0S"}
    log = open(home / "server.log", "w")
    server = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                              env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    api = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{api}/health", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        assert server.poll() is None, (home / "server.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "Prefect server did not become healthy in 120 s"
        time.sleep(0.5)
    yield {"PREFECT_API_URL": api, "PREFECT_HOME": str(home)}
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
    log.close()


@pytest.fixture
def migrations_dir(tmp_path):
    """A private copy of the seed migrations that a test may edit or add to."""
    target = tmp_path / "migrations"
    shutil.copytree(ROOT / "migrations", target, ignore=shutil.ignore_patterns("__pycache__"))
    return target
