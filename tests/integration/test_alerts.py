"""`docshift alerts setup` (in-process): the Prefect automations deliver notifications to a real HTTP receiver on
127.0.0.1. The zombie automation's notification of a killed run is tests/faults/test_zombie_alert.py."""

import json
import time

import pytest
from prefect import flow

from docshift.deployments.alerts import BLOCK, DESTRUCTIVE_PHASE, FLEET, MIGRATE_STARTED, ROLLED_BACK, RUN_FAILED, ZOMBIES
from docshift.demo import seed_users
from docshift.tasks.notify import announce
from tests.support.alerts import HEARTBEAT, HOOK, SECRET, TOKEN, alerts_set_up
from tests.support.env import CLI_ENV, invoke
from tests.support.fleet import tenants
from tests.support.prefect_api import api_post
from tests.support.receiver import receiving


@pytest.fixture(scope="module")
def receiver():
    with receiving(HOOK) as server:
        yield server


@pytest.fixture(scope="module")
def alerts(receiver, prefect_api):
    api = prefect_api["PREFECT_API_URL"]
    with alerts_set_up(receiver, api) as runs:
        yield runs, api


@flow
def phases(db: str):
    """Two phase completions of migration 5 as the phase flows announce them: a harmless one, then the destructive one."""
    announce("phase.completed", db, 5, "expand")
    announce("phase.completed", db, 5, "cleanup", "old fields dropped", destructive=True)


def test_setup_is_idempotent_and_never_prints_the_url(alerts):
    runs, api = alerts
    for run in runs:
        assert run.returncode == 0, run.stdout + run.stderr
        assert TOKEN not in run.stdout + run.stderr
    assert "created  automation 'docshift: run failed or crashed'" in runs[0].stdout
    assert "updated  automation 'docshift: run failed or crashed'" in runs[1].stdout

    names = [a["name"] for a in api_post(api, "/automations/filter", {})]
    assert sorted(names) == sorted([RUN_FAILED, ROLLED_BACK, DESTRUCTIVE_PHASE, FLEET, ZOMBIES])
    zombies = next(a for a in api_post(api, "/automations/filter", {}) if a["name"] == ZOMBIES)
    assert zombies["trigger"]["posture"] == "Proactive" and zombies["trigger"]["within"] == 90.0  # 3 heartbeats of 30 s
    assert "zombie runs are crashed 90 s after their last heartbeat" in runs[0].stdout and "warning" not in runs[0].stdout
    assert zombies["actions"] == [{"type": "change-flow-run-state", "name": None, "state": "CRASHED", "force": False,
                                   "message": "Flow run marked as crashed due to missing heartbeats."}]
    blocks = api_post(api, "/block_documents/filter", {"block_documents": {"name": {"any_": [BLOCK]}}})
    assert len(blocks) == 1 and TOKEN not in json.dumps(blocks)


def test_a_failed_migration_notifies_failure_and_rollback(env, receiver, alerts):
    seed_users(env.db, 300, seed=21)
    assert env.cli("migrate", "2").returncode == 0
    env.break_split_name(["user_150"], "cannot split")

    failed = env.cli("migrate")

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
    phases(env.database)

    note = receiver.wait_for(f"database: {env.database}\n", "phase: cleanup")
    assert "migration: 5\nphase: cleanup\nstate: destructive phase completed\nreason: old fields dropped" in note["body"]
    assert "/runs/flow-run/" in note["body"]
    time.sleep(3)  # the harmless event was emitted first: had it matched, its notification would be here by now
    assert not [b for b in receiver.bodies if env.database in b["body"] and "phase: expand" in b["body"]]


def test_a_fleet_run_notifies_its_start_each_wave_and_its_end_and_each_migrate_start_when_asked(env, receiver, alerts):
    _, api = alerts
    setting = {**CLI_ENV, **HEARTBEAT, "DOCSHIFT_ALERT_SECRET": SECRET}
    with_starts = invoke(["alerts", "setup", "--migrate-start"], setting)
    assert with_starts.returncode == 0 and f"created  automation {MIGRATE_STARTED!r}" in with_starts.stdout
    try:
        with tenants(env, 2, 10) as fleet:
            run = env.cli("fleet", "migrate", "--databases", fleet.glob, "--waves", "1,100%")
            assert run.returncode == 0, run.stdout + run.stderr

            where = f"database: {fleet.glob}\n"
            started = receiver.wait_for(where, "state: fleet.started")
            assert "reason: to version 5: 2 of 2 databases to migrate" in started["body"]
            assert "/runs/flow-run/" in started["body"] and "docshift: fleet.started: database " in started["subject"]
            for wave in (1, 2):
                assert receiver.wait_for(where, "state: fleet.wave-passed", f"reason: wave {wave}: 1 databases, 0 failed")
            completed = receiver.wait_for(where, "state: fleet.completed")
            assert "migration: 5\n" in completed["body"] and ": 2 migrated" in completed["body"]
            for name in fleet.names:
                note = receiver.wait_for(f"database: {name}\n", "state: migrate started")
                assert "migration: 5\n" in note["body"] and "reason: from version 1 to 5: 4 steps" in note["body"]
    finally:
        without = invoke(["alerts", "setup"], setting)
    assert without.returncode == 0 and f"removed  automation {MIGRATE_STARTED!r}" in without.stdout
    assert MIGRATE_STARTED not in [a["name"] for a in api_post(api, "/automations/filter", {})]


def test_setup_with_an_unknown_secret_is_a_plain_error(prefect_api):
    result = invoke(["alerts", "setup"], {**CLI_ENV, "DOCSHIFT_ALERT_SECRET": "no-such-secret"})

    assert result.returncode == 1
    assert result.stderr.startswith("docshift: error: there is no Prefect Secret block named 'no-such-secret'")
    assert result.stderr.count("\n") == 1 and result.stdout == ""
