"""Prefect servers of one's own on loopback: one with its own PREFECT_HOME for the tests and the benchmark, and the
temporary one a `docshift` command starts when no PREFECT_API_URL is set; and how a command tells that its server
still answers."""

import fcntl
import importlib.util
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from docshift.errors import OrchestrationError
from docshift.stop import Unhealthy


@dataclass(frozen=True)
class PrefectServer:
    """A server this process started: its API and its process (None when the server is someone else's)."""

    api: str
    process: subprocess.Popen | None = None

    def health(self) -> Unhealthy | None:
        """None while the API answers, whatever it answers (a busy server's 503 is not a server gone); else why not,
        final when this process's own server has exited."""
        if self.process is not None and (code := self.process.poll()) is not None:
            return Unhealthy(f"the temporary Prefect server exited (status {code})", final=True)
        try:
            with urllib.request.urlopen(f"{self.api}/health", timeout=5):
                return None
        except urllib.error.HTTPError:
            return None
        except OSError as exc:
            return Unhealthy(not_answering(self.api, exc))

    def kill(self) -> None:
        """Stop this process's own server now (a command that must exit without its run)."""
        if self.process is not None:
            self.process.kill()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _started(process: subprocess.Popen, api: str, log: Path, timeout: float) -> None:
    """Wait until the server's API answers; stop it and raise with its log's reason if it exits or never answers."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{api}/health", timeout=2):
                return
        except OSError as exc:
            if process.poll() is not None or time.monotonic() > deadline:
                code = process.poll()
                _stop(process)
                ended = f"did not answer within {timeout:g} s" if code is None else f"exited with status {code}"
                reason = failure_reason(log.read_text(errors="replace"))
                raise OrchestrationError(f"the Prefect server {ended}{': ' + reason if reason else ''}") from exc
            time.sleep(0.2)


def failure_reason(log: str) -> str:
    """Why a server failed, from its log: the exception its last traceback ends with (uvicorn logs the traceback of
    a failed startup, then "Application startup failed"), else the log's last line."""
    lines = [line for line in log.splitlines() if line.strip()]
    starts = [i for i, line in enumerate(lines) if "Traceback (most recent call last):" in line]
    if starts:
        return next((line for line in lines[starts[-1] + 1:] if not line[0].isspace()), lines[-1])
    return lines[-1] if lines else ""


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if process.stdin is not None:
        process.stdin.close()


@contextmanager
def local_prefect_server(home: Path, port: int, settings: dict | None = None, timeout: float = 300) -> Iterator[dict]:
    """Start `prefect server start` on 127.0.0.1:`port`, wait until healthy (at most `timeout` seconds), yield the
    client's environment, stop it.

    `settings` are extra PREFECT_* variables of the server process. Its log is `home/server.log`.
    """
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_SERVER_API_HOST": "127.0.0.1", "PREFECT_SERVER_API_PORT": str(port), **(settings or {})}
    with open(home / "server.log", "w") as log:
        server = subprocess.Popen([str(Path(sys.executable).parent / "prefect"), "server", "start", "--host", "127.0.0.1",
                                   "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        api = f"http://127.0.0.1:{port}/api"
        _started(server, api, home / "server.log", timeout)
        try:
            yield {"PREFECT_API_URL": api, "PREFECT_HOME": str(home)}
        finally:
            _stop(server)


@contextmanager
def temporary_prefect_server(timeout: float = 300) -> Iterator[PrefectServer]:
    """The server Prefect itself would start for a run without PREFECT_API_URL (same app, same PREFECT_HOME), but in
    a session of its own, so that a Ctrl-C in the terminal reaches the `docshift` process alone: the run can then stop
    cleanly and record it here before the server goes. The server ends itself when this process is gone, however it
    ended (docshift.deployments.tethered: its stdin is a pipe from here). It may take long to start (creating its
    database under a busy machine's load took 41 s here, Prefect's own limit being 20 s); one that exits is reported
    at once, with its reason. Sets PREFECT_API_URL for this context (and the threads that copy it) and for child
    processes."""
    from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings

    port = free_port()
    prefect_dir = Path(importlib.util.find_spec("prefect").submodule_search_locations[0])
    # its errors in its log (docshift.cli.main silences Prefect's console handler, which the server would inherit)
    env = {**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1",
           "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "ERROR"}
    with tempfile.NamedTemporaryFile("w", prefix="docshift-prefect-", suffix=".log") as log:
        with starting_alone(Path(get_current_settings().home)):
            process = subprocess.Popen(
                [sys.executable, "-m", "docshift.deployments.tethered", "--app-dir", str(prefect_dir.parent),
                 "--factory", "prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port", str(port),
                 "--log-level", "error", "--lifespan", "on"],
                env=env, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            api = f"http://127.0.0.1:{port}/api"
            _started(process, api, Path(log.name), timeout)
        os.environ["PREFECT_API_URL"] = api
        try:
            with temporary_settings(updates={PREFECT_API_URL: api}):
                yield PrefectServer(api, process)
        finally:
            os.environ.pop("PREFECT_API_URL", None)
            drain_prefect()
            _stop(process)


@contextmanager
def starting_alone(home: Path) -> Iterator[None]:
    """Hold PREFECT_HOME's start lock while a temporary server starts: it creates or upgrades the home's database
    (Prefect serializes its Alembic migrations with a lock of one process only), so servers started together on a
    fresh home raced for it and all but one could exit with status 3. The lock goes when the file is closed, or
    when this process dies."""
    home.mkdir(parents=True, exist_ok=True)
    with open(home / "docshift-server-start.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@contextmanager
def prefect_server() -> Iterator[PrefectServer]:
    """The Prefect server a command's flow runs report to: PREFECT_API_URL's, or a temporary one of its own."""
    from prefect.settings import get_current_settings

    if api := get_current_settings().api.url:
        yield answering(api.rstrip("/"))
        return
    with temporary_prefect_server() as server:
        yield server


def answering(api: str) -> PrefectServer:
    """PREFECT_API_URL's server, if a Prefect API answers there: else one line before the run, where Prefect's client
    would fail with a traceback after the command had begun. Asks what Prefect's client asks first, its version: a
    busy server's 5xx or a refused login (auth the client adds) still count as a Prefect API answering."""
    try:
        with urllib.request.urlopen(f"{api}/admin/version", timeout=10) as response:
            json.loads(response.read())
    except urllib.error.HTTPError as exc:
        if exc.code >= 500 or exc.code in (401, 403):
            return PrefectServer(api)
        raise _not_prefect(api, f"HTTP {exc.code}") from exc
    except ValueError as exc:  # a page, not JSON: the UI's address, or another web server
        raise _not_prefect(api, "not JSON") from exc
    except OSError as exc:
        raise OrchestrationError(f"{not_answering(api, exc)}: start that server, or unset PREFECT_API_URL to let "
                                 "docshift start a temporary one") from exc
    return PrefectServer(api)


def not_answering(api: str, error: OSError) -> str:
    return f"the Prefect API at {api} does not answer ({getattr(error, 'reason', error)})"


def _not_prefect(api: str, answer: str) -> OrchestrationError:
    return OrchestrationError(f"{api} answers, but not as a Prefect API ({answer} for /admin/version): PREFECT_API_URL "
                              "is the API's address, e.g. http://127.0.0.1:4200/api")


def drain_prefect(timeout: float = 5) -> None:
    """Send Prefect's queued log lines and events before the server goes, instead of retrying them against it at exit."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=timeout)
    EventsWorker.drain_all(timeout=timeout)
