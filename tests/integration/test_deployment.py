"""`docshift deploy`'s deployments on a process work pool, run by a real worker: `prefect deployment run`, a schedule
firing a phase, the whole expand-contract change, rollback and verify; deploying again changes nothing."""

import json
import subprocess
import time
import urllib.request

import pytest

from docshift.demo import seed_users
from tests.conftest import BIN, ROOT
from tests.integration.conftest import raw_snapshot


def prefect(env, *args, timeout=300):
    return subprocess.run([str(BIN / "prefect"), *args], env=env.vars, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def run_deployment(env, name, *params):
    """`prefect deployment run NAME --param … --watch`: exits 0 only if the flow run completed."""
    args = [a for p in params for a in ("--param", p)]
    result = prefect(env, "deployment", "run", name, *args, "--watch", "--watch-timeout", "240", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture
def worker(env):
    """`docshift deploy` of the test's migrations and database, then a process worker that polls every 2 s."""
    env.vars.update(DOCSHIFT_SOAK_SECONDS="0", PREFECT_WORKER_QUERY_SECONDS="2")
    deployed = env.run("deploy")
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    again = env.run("deploy")  # idempotent: nothing is written the second time
    assert again.returncode == 0 and "unchanged migrate/migrate" in again.stdout, again.stdout + again.stderr
    assert not any(line.startswith(("created", "updated")) for line in again.stdout.splitlines()), again.stdout
    process = subprocess.Popen([str(BIN / "prefect"), "worker", "start", "--pool", "docshift"], env=env.vars, cwd="/",
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    yield process
    process.terminate()
    process.communicate(timeout=30)


def test_prefect_deployment_run_migrates_and_rolls_back_through_a_worker(env, worker):
    seed_users(env.db, 500, seed=12)
    run_deployment(env, "migrate/migrate", "target_version=2")
    at_2 = raw_snapshot(env.db.users)
    run_deployment(env, "migrate/migrate", "target_version=3")
    assert env.db.users.count_documents({"schema_version": 3}) == 500
    entries = list(env.ledger.find({"kind": "history"}).sort("started_at"))
    assert [(e["version"], e["outcome"]) for e in entries] == [(2, "applied"), (3, "applied")]
    assert all(e["flow_run_id"] for e in entries)

    run_deployment(env, "rollback/rollback", f"run_id={entries[-1]['_id']}")
    assert raw_snapshot(env.db.users) == at_2
    assert env.ledger.find_one({"_id": "current"})["version"] == 2


def test_expand_contract_change_through_deployments_with_a_schedule_firing_expand(env, worker):
    seed_users(env.db, 500, seed=24)
    with urllib.request.urlopen(f"{env.vars['PREFECT_API_URL']}/deployments/name/backfill/users-email-address") as response:
        backfill = json.load(response)
    [window] = backfill["schedules"]
    assert "FREQ=WEEKLY;BYDAY=TU,WE,TH;BYHOUR=1" in window["schedule"]["rrule"] and window["schedule"]["timezone"] == "Europe/Berlin"
    assert backfill["parameters"] == {"version": 5, "window_minutes": 120} and window["parameters"] == {}
    assert window["active"] is False  # resumed when the change starts
    assert backfill["concurrency_limit"] == 1 or backfill["global_concurrency_limit"]["limit"] == 1
    run_deployment(env, "migrate/migrate", "target_version=4")
    with_email = env.db.users.count_documents({"email": {"$exists": True}})

    # the expand deployment's maintenance-window schedule, shortened to every 5 s: the scheduler fires it
    scheduled = prefect(env, "deployment", "schedule", "create", "expand/users-email-address", "--interval", "5",
                        "--replace", "-y")
    assert scheduled.returncode == 0, scheduled.stdout + scheduled.stderr
    deadline = time.monotonic() + 180
    while "expand" not in (env.ledger.find_one({"_id": "phases:5"}) or {}):
        assert time.monotonic() < deadline, "the expand schedule did not run the phase within 180 s"
        time.sleep(1)
    assert prefect(env, "deployment", "schedule", "clear", "expand/users-email-address", "-y").returncode == 0
    assert env.ledger.find_one({"_id": "phases:5"})["expand"]["flow_run_id"]

    run_deployment(env, "backfill/users-email-address", "batch_size=100")
    assert env.db.users.count_documents({"schema_version": 5, "email_address": {"$exists": True}}) == with_email
    run_deployment(env, "contract/users-email-address")
    run_deployment(env, "cleanup/users-email-address", "approved=true")
    assert env.db.users.count_documents({"email": {"$exists": True}}) == 0
    assert env.db.users.count_documents({"email_address": {"$exists": True}}) == with_email
    assert set(env.ledger.find_one({"_id": "phases:5"})) >= {"expand", "backfill", "contract", "cleanup"}
    run_deployment(env, "verify/verify", "version=5")
