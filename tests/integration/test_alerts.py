"""`docshift alerts setup`: the Prefect automations deliver notifications to a real HTTP receiver on 127.0.0.1."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from docshift.deployments.alerts import BLOCK, DESTRUCTIVE_PHASE, ROLLED_BACK, RUN_FAILED, ZOMBIES
from docshift.demo import seed_users
from tests.conftest import BIN, ROOT
from tests.integration.test_commands import api_post
from tests.integration.test_crash_resume import wait_for_checkpoint

TOKEN = "s3cr3t-hook-token"  # part of the alert URLs: must never be printed
HOOK = f"/hook/{TOKEN}"  # the path of the URL in the Secret block, where notifications must arrive
SECRET = "docshift-alert-url"


class Receiver(ThreadingHTTPServer):
    """An HTTP server on 127.0.0.1 that records the JSON body (and the path, as `path`) of every POST it gets."""

    def __init__(self):
        self.bodies: list[dict] = []
        super().__init__(("127.0.0.1", 0), _Record)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def wait_for(self, *parts: str, timeout: float = 60) -> dict:
        """The first notification whose body contains every part, waiting for it up to `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for body in list(self.bodies):
                if all(part in body["body"] for part in parts):
                    assert body["path"] == HOOK, body["path"]
                    return body
            time.sleep(0.25)
        raise AssertionError(f"no notification containing {parts} in {timeout} s; received: {self.bodies}")


class _Record(BaseHTTPRequestHandler):
    def do_POST(self):
        self.server.bodies.append({**json.loads(self.rfile.read(int(self.headers["Content-Length"]))), "path": self.path})
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def receiver():
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def alerts(receiver, prefect_api):
    """`docshift alerts setup` run twice, first with DOCSHIFT_ALERT_URL, then with DOCSHIFT_ALERT_SECRET naming a Secret
    block with another URL, which is the one that stays; automations and blocks are removed from the shared server after."""
    variables = {**os.environ, **prefect_api, "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30"}
    saved = subprocess.run([sys.executable, "-c", "import sys; from prefect.blocks.system import Secret; "
                            f"Secret(value=sys.argv[1]).save({SECRET!r}, overwrite=True)", receiver.url(HOOK)],
                           env=variables, capture_output=True, text=True, timeout=120)
    assert saved.returncode == 0, saved.stderr
    runs = [subprocess.run([str(BIN / "docshift"), "alerts", "setup"], env={**variables, **setting}, capture_output=True,
                           text=True, timeout=120)
            for setting in ({"DOCSHIFT_ALERT_URL": receiver.url(f"/replaced/{TOKEN}")}, {"DOCSHIFT_ALERT_SECRET": SECRET})]
    api = prefect_api["PREFECT_API_URL"]
    yield runs, api
    for automation in api_post(api, "/automations/filter", {}):
        if automation["name"] in (RUN_FAILED, ROLLED_BACK, DESTRUCTIVE_PHASE, ZOMBIES):
            api_delete(api, f"/automations/{automation['id']}")
    for block in api_post(api, "/block_documents/filter", {"block_documents": {"name": {"any_": [BLOCK, SECRET]}}}):
        api_delete(api, f"/block_documents/{block['id']}")


def api_delete(api: str, path: str) -> None:
    urllib.request.urlopen(urllib.request.Request(f"{api}{path}", method="DELETE"), timeout=10).close()


def test_setup_is_idempotent_and_never_prints_the_url(alerts):
    runs, api = alerts
    for run in runs:
        assert run.returncode == 0, run.stdout + run.stderr
        assert TOKEN not in run.stdout + run.stderr
    assert "created  automation 'docshift: run failed or crashed'" in runs[0].stdout
    assert "updated  automation 'docshift: run failed or crashed'" in runs[1].stdout

    names = [a["name"] for a in api_post(api, "/automations/filter", {})]
    assert sorted(names) == sorted([RUN_FAILED, ROLLED_BACK, DESTRUCTIVE_PHASE, ZOMBIES])
    zombies = next(a for a in api_post(api, "/automations/filter", {}) if a["name"] == ZOMBIES)
    assert zombies["trigger"]["posture"] == "Proactive" and zombies["trigger"]["within"] == 90.0  # 3 heartbeats of 30 s
    assert "zombie runs are crashed 90 s after their last heartbeat" in runs[0].stdout and "warning" not in runs[0].stdout
    assert zombies["actions"] == [{"type": "change-flow-run-state", "name": None, "state": "CRASHED", "force": False,
                                   "message": "Flow run marked as crashed due to missing heartbeats."}]
    blocks = api_post(api, "/block_documents/filter", {"block_documents": {"name": {"any_": [BLOCK]}}})
    assert len(blocks) == 1 and TOKEN not in json.dumps(blocks)


def test_a_failed_migration_notifies_failure_and_rollback(env, receiver, alerts):
    seed_users(env.db, 300, seed=21)
    assert env.run("migrate", "2").returncode == 0
    env.break_split_name(["user_150"], "cannot split")

    failed = env.run("migrate")

    assert failed.returncode == 1
    entry = env.ledger.find_one({"kind": "history", "version": 3})
    assert entry["outcome"] == "rolled_back"
    link = f"/runs/flow-run/{entry['flow_run_id']}"
    for state in ("state: Failed", "state: rolled back"):
        note = receiver.wait_for(link, state)
        assert f"database: {env.database}\nmigration: 3\nphase: -\n{state}\nreason: " in note["body"]
        assert "ValueError: cannot split user_150" in note["body"].split("reason: ", 1)[1]
        assert note["subject"] in note["text"] and env.database in note["subject"]


def test_a_destructive_phase_notifies_and_a_harmless_one_does_not(env, receiver, alerts):
    code = ("from prefect import flow\n"
            "from docshift.tasks.notify import announce\n"
            "@flow\n"
            "def phases(db: str):\n"
            "    announce('phase.completed', db, 5, 'expand')\n"
            "    announce('phase.completed', db, 5, 'cleanup', 'old fields dropped', destructive=True)\n"
            f"phases({env.database!r})\n")
    ran = subprocess.run([sys.executable, "-c", code], env=env.vars, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr

    note = receiver.wait_for(f"database: {env.database}\n", "phase: cleanup")
    assert "migration: 5\nphase: cleanup\nstate: destructive phase completed\nreason: old fields dropped" in note["body"]
    assert "/runs/flow-run/" in note["body"]
    time.sleep(3)  # the harmless event was emitted first: had it matched, its notification would be here by now
    assert not [b for b in receiver.bodies if env.database in b["body"] and "phase: expand" in b["body"]]


def test_a_killed_run_is_crashed_by_the_zombie_automation_and_notified(env, receiver, alerts):
    seed_users(env.db, 3000, seed=22)
    proc = env.start("migrate", "2", "--batch-size", "100", extra={"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30"})
    checkpoint = wait_for_checkpoint(env, proc, 2, 200)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    flow_run_id = env.ledger.find_one({"_id": checkpoint["run_id"]})["flow_run_id"]

    # three missed heartbeats of 30 s: at most 90 s after the kill, plus the trigger's evaluation
    note = receiver.wait_for(f"/runs/flow-run/{flow_run_id}", "state: Crashed", timeout=150)

    assert f"database: {env.database}\nmigration: 2\nphase: -\nstate: Crashed\n" in note["body"]
    assert "reason: Flow run marked as crashed due to missing heartbeats." in note["body"]


def test_setup_with_an_unknown_secret_is_a_plain_error(prefect_api):
    result = subprocess.run([str(BIN / "docshift"), "alerts", "setup"], capture_output=True, text=True, timeout=120,
                            env={**os.environ, **prefect_api, "DOCSHIFT_ALERT_SECRET": "no-such-secret"})

    assert result.returncode == 1
    assert result.stderr.startswith("docshift: error: there is no Prefect Secret block named 'no-such-secret'")
    assert result.stderr.count("\n") == 1 and result.stdout == ""
