"""`docshift deploy`'s deployments on a process work pool, run by a real worker: `prefect deployment run`, a schedule
firing a phase, the whole expand-contract change, rollback and verify; deploying again changes nothing.

The pool, `docshift deploy` and the worker are set up once for the module (they are the same for every
test); the worker's settings name the module's database, which each test gets emptied (`deployed`). Under
pytest-xdist the module runs whole on one worker (tests/conftest.py, ONE_WORKER_MODULES).
"""

import json
import shutil
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from docshift.demo import seed_users
from docshift.deployments.deploy import deployment_name
from tests.support.env import Env, docshift_settings, process_environment
from tests.support.fingerprints import raw_snapshot
from tests.support.paths import ROOT
from tests.support.prefect_api import prefect, run_deployment, start_worker, stop_worker

PROJECT = "docshift-demo"  # the checkout's, pinned in its pyproject.toml ([tool.docshift]); `deploy` runs there
MIGRATE, ROLLBACK, VERIFY = (deployment_name(flow, PROJECT) for flow in ("migrate", "rollback", "verify"))


def phase(name: str) -> str:
    return deployment_name(name, PROJECT, "users-email-address")

@pytest.fixture(scope="module")
def worker(mongodb_uri, prefect_api, tmp_path_factory):
    """`docshift deploy` of the module's migrations and database (twice: the second writes nothing), then a process
    worker that polls every 2 s; yields the settings and environment the worker's flow runs have."""
    home = tmp_path_factory.mktemp("deployment")
    migrations = home / "migrations"
    shutil.copytree(ROOT / "migrations", migrations, ignore=shutil.ignore_patterns("__pycache__"))
    settings = docshift_settings(mongodb_uri, f"t_deploy_{uuid.uuid4().hex[:8]}", migrations, home / "backups")
    variables = {**process_environment(prefect_api, settings), "DOCSHIFT_PROJECT_DIR": str(ROOT),
                 "DOCSHIFT_SOAK_SECONDS": "0", "PREFECT_WORKER_QUERY_SECONDS": "2"}
    deployed = Env(mongodb_uri, settings["DOCSHIFT_DATABASE"], migrations, variables)
    first = deployed.run("deploy")
    assert first.returncode == 0, first.stdout + first.stderr
    again = deployed.run("deploy")  # idempotent: nothing is written the second time
    assert again.returncode == 0 and f"unchanged {MIGRATE}" in again.stdout, again.stdout + again.stderr
    assert not any(line.startswith(("created", "updated")) for line in again.stdout.splitlines()), again.stdout
    deployed.close()
    process = start_worker(variables)
    yield settings, variables
    stop_worker(process)


@pytest.fixture
def deployed(worker, mongodb_uri, monkeypatch):
    """The module's database, empty at the start and the end of each test, as an Env."""
    settings, variables = worker
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    e = Env(mongodb_uri, settings["DOCSHIFT_DATABASE"], Path(settings["DOCSHIFT_MIGRATIONS_DIR"]), variables)
    e.client.drop_database(e.database)
    yield e
    e.client.drop_database(e.database)
    e.close()


def test_prefect_deployment_run_migrates_and_rolls_back_through_a_worker(deployed):
    env = deployed
    seed_users(env.db, 500, seed=12)
    run_deployment(env.vars, MIGRATE, "target_version=2")
    at_2 = raw_snapshot(env.db.users)
    run_deployment(env.vars, MIGRATE, "target_version=3")
    assert env.db.users.count_documents({"schema_version": 3}) == 500
    entries = list(env.ledger.find({"kind": "history"}).sort("started_at"))
    assert [(e["version"], e["outcome"]) for e in entries] == [(2, "applied"), (3, "applied")]
    assert all(e["flow_run_id"] for e in entries)

    run_deployment(env.vars, ROLLBACK, f"run_id={entries[-1]['_id']}")
    assert raw_snapshot(env.db.users) == at_2
    assert env.ledger.find_one({"_id": "current"})["version"] == 2


def test_expand_contract_change_through_deployments_with_a_schedule_firing_expand(deployed):
    env = deployed
    seed_users(env.db, 500, seed=24)
    with urllib.request.urlopen(f"{env.vars['PREFECT_API_URL']}/deployments/name/{phase('backfill')}") as response:
        backfill = json.load(response)
    [window] = backfill["schedules"]
    assert "FREQ=WEEKLY;BYDAY=TU,WE,TH;BYHOUR=1" in window["schedule"]["rrule"] and window["schedule"]["timezone"] == "Europe/Berlin"
    assert backfill["parameters"] == {"version": 5, "window_minutes": 120} and window["parameters"] == {}
    assert window["active"] is False  # resumed when the change starts
    assert backfill["concurrency_limit"] == 1 or backfill["global_concurrency_limit"]["limit"] == 1
    run_deployment(env.vars, MIGRATE, "target_version=4")
    with_email = env.db.users.count_documents({"email": {"$exists": True}})

    # the expand deployment's maintenance-window schedule, shortened to every 5 s: the scheduler fires it
    scheduled = prefect(env.vars, "deployment", "schedule", "create", phase("expand"), "--interval", "5",
                        "--replace", "-y")
    assert scheduled.returncode == 0, scheduled.stdout + scheduled.stderr
    deadline = time.monotonic() + 180
    while "expand" not in (env.ledger.find_one({"_id": "phases:5"}) or {}):
        assert time.monotonic() < deadline, "the expand schedule did not run the phase within 180 s"
        time.sleep(1)
    assert prefect(env.vars, "deployment", "schedule", "clear", phase("expand"), "-y").returncode == 0
    assert env.ledger.find_one({"_id": "phases:5"})["expand"]["flow_run_id"]

    run_deployment(env.vars, phase("backfill"), "batch_size=100")
    assert env.db.users.count_documents({"schema_version": 5, "email_address": {"$exists": True}}) == with_email
    run_deployment(env.vars, phase("contract"))
    run_deployment(env.vars, phase("cleanup"), "approved=true")
    assert env.db.users.count_documents({"email": {"$exists": True}}) == 0
    assert env.db.users.count_documents({"email_address": {"$exists": True}}) == with_email
    assert set(env.ledger.find_one({"_id": "phases:5"})) >= {"expand", "backfill", "contract", "cleanup"}
    run_deployment(env.vars, VERIFY, "version=5")
