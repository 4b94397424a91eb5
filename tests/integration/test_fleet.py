"""Fleet runs across tenant databases on the real FerretDB and Prefect server: `docshift fleet migrate` (the
`migrate-fleet` flow, a child `migrate` run per database) and `docshift fleet status`."""

import json
import time
from datetime import datetime

import httpx
from prefect import get_client
from prefect.client.schemas.filters import (FlowFilter, FlowFilterName, FlowRunFilter, FlowRunFilterId,
                                           FlowRunFilterParentFlowRunId)
from prefect.client.schemas.sorting import FlowRunSort
from prefect.exceptions import PrefectHTTPStatusError

import docshift.flows.fleet as fleet_flows

from tests.support.fingerprints import raw_snapshot
from tests.support.fleet import POISON, tenants


def recorded_task_runs(client, flow_run_ids: list, at_least: int) -> list:
    """The task runs of these flow runs, once the server has recorded `at_least` of them (it records task runs from
    their events, after the run; at most 60 s)."""
    deadline = time.monotonic() + 60
    while True:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=flow_run_ids)), limit=200)
        if len(runs) >= at_least or time.monotonic() > deadline:
            return runs
        time.sleep(0.5)


def fleet_status(env, glob: str) -> dict:
    result = env.cli("fleet", "status", "--databases", glob, "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def test_canary_then_halt_failing_tenants_roll_back_alone_and_a_rerun_finishes(env):
    with tenants(env, 12, 50) as fleet:
        assert env.cli("fleet", "migrate", "2", "--databases", fleet.glob, "--concurrency", "4").returncode == 0
        env.break_split_name([POISON], "cannot split")
        bad = [fleet.names[5], fleet.names[9]]
        fleet.poison(*bad)
        before = {name: raw_snapshot(fleet.db(name).users) for name in bad}

        run = env.cli("fleet", "migrate", "--databases", fleet.glob, "--waves", "1,50%,100%", "--concurrency", "2",
                      "--max-failed-databases", "1")

        assert run.returncode == 1, run.stdout + run.stderr
        assert "halted: 1 failed databases reached --max-failed-databases 1" in run.stderr
        versions = fleet.versions()
        assert [versions[n] for n in fleet.names[:5]] == [5] * 5  # the canary, and wave 2 up to the failing tenant
        assert versions[bad[0]] == 2 and raw_snapshot(fleet.db(bad[0]).users) == before[bad[0]]
        assert [versions[n] for n in fleet.names[6:]] == [2] * 6  # wave 3 never started
        assert raw_snapshot(fleet.db(bad[1]).users) == before[bad[1]]
        assert f"{bad[0]}" in run.stdout and "cannot split poison_user" in run.stdout
        assert "5 migrated, 1 failed, 6 not started" in run.stdout

        status = fleet_status(env, fleet.glob)
        assert status["summary"] == "5 at 5, 6 at 2, 1 failed at 2, 7 pending (latest 5)"
        [failed] = [d for d in status["databases"] if d["failed"]]
        assert failed["database"] == bad[0] and failed["failed"]["version"] == 3
        assert "cannot split poison_user" in failed["failed"]["error"]
        text = env.cli("fleet", "status", "--databases", fleet.glob)
        assert max(map(len, text.stdout.splitlines())) <= 80
        assert f"{bad[0]}   2       3  FAILED at 3: " in text.stdout

        single = env.cli("--database", bad[0], "status")
        assert "last run failed" in single.stdout and "(migration 3): " in single.stdout

        fleet.cure(*bad)
        again = env.cli("fleet", "migrate", "--databases", fleet.glob, "--concurrency", "2")

        assert again.returncode == 0, again.stdout + again.stderr
        assert set(fleet.versions().values()) == {5}
        assert "7 migrated, 5 at target" in again.stdout
        assert fleet_status(env, fleet.glob)["summary"] == "12 at 5 (latest 5)"


def test_under_the_failure_limit_the_fleet_continues_and_the_record_shows_each_child(env):
    with tenants(env, 6, 50) as fleet:
        env.break_split_name([POISON], "cannot split")
        fleet.poison(fleet.names[2], fleet.names[4])

        run = env.cli("fleet", "migrate", "--databases", fleet.glob, "--waves", "1,100%", "--max-failed-databases", "3")

        assert run.returncode == 1 and "2 failed of 6 databases" in run.stderr, run.stdout + run.stderr
        versions = fleet.versions()
        assert [versions[n] for n in fleet.names] == [5, 5, 2, 5, 2, 5]  # migration 2 applied, 3 rolled back
        assert fleet_status(env, fleet.glob)["summary"] == "4 at 5, 2 failed at 2, 2 pending (latest 5)"
        with get_client(sync_client=True) as client:
            [parent] = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["migrate-fleet"])),
                                             sort=FlowRunSort.START_TIME_DESC, limit=1)
            children = client.read_flow_runs(flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent.id])))
            migrate_runs = [c for c in children if f"fleet:{parent.id}" in c.tags]
            assert parent.state.is_failed()
            assert sorted(t for c in migrate_runs for t in c.tags if t.startswith("db:")) == sorted(
                f"db:{n}" for n in fleet.names)
            assert sum(c.state.is_failed() for c in migrate_runs) == 2
            steps = client.read_flow_runs(flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[c.id for c in migrate_runs])))
            assert steps and all(f"fleet:{parent.id}" in s.tags for s in steps)  # apply-migration runs too
            # the tag is the runs', not their task runs': a tagged task run asks the server for a concurrency slot
            # per tag before it starts (tasks.notify.labelled)
            child_tasks = recorded_task_runs(client, [r.id for r in migrate_runs + steps], 3 * len(steps))
            assert len(child_tasks) >= 3 * len(steps) and not [t.name for t in child_tasks if t.tags]


def test_bad_input_is_one_plain_message_and_writes_nothing(env):
    with tenants(env, 3, 20) as fleet:
        for selector, message in [("nothing_here_*", "selects no database"), ("admin", "never migrated"),
                                  (f"{fleet.names[0]},local", "never migrated")]:
            result = env.cli("fleet", "migrate", "--databases", selector)
            assert result.returncode == 1 and message in result.stderr, (selector, result.stderr)
            assert result.stderr.count("\n") == 1
        assert env.cli("fleet", "migrate").stderr.startswith("docshift: error: no databases selected")
        bad_waves = env.cli("fleet", "migrate", "--databases", fleet.glob, "--waves", "canary")
        assert bad_waves.returncode == 1 and "--waves 'canary'" in bad_waves.stderr
        assert set(fleet.versions().values()) == {1}
        assert all("_migrations" not in fleet.db(n).list_collection_names() for n in fleet.names)


def test_a_held_lock_and_a_mistyped_database_leave_the_rest_of_the_fleet_migrated(env):
    with tenants(env, 3, 20) as fleet:
        mistyped = f"{fleet.names[0].rsplit('_', 1)[0]}_typo"
        env.client[mistyped].other.insert_one({"x": 1})
        held = fleet.names[1]
        fleet.db(held)["_migrations"].insert_one({"_id": "lock", "owner": "elsewhere:1:migrate",
                                                  "acquired_at": None, "expires_at": datetime(2100, 1, 1)})
        try:
            run = env.cli("fleet", "migrate", "--databases", fleet.glob, "--max-failed-databases", "1")

            assert run.returncode == 1 and "1 locked of 4 databases" in run.stderr, run.stdout + run.stderr
            assert "another migration run holds the lock: elsewhere:1:migrate" in run.stdout
            assert fleet.versions() == {fleet.names[0]: 5, held: 1, fleet.names[2]: 5}
            assert f"{mistyped}" in run.stdout and "mistyped" in run.stdout
            assert env.client[mistyped].list_collection_names() == ["other"]
            status = env.cli("fleet", "status", "--databases", fleet.glob)
            assert "locked by elsewhere:1:migrate" in status.stdout and "mistyped?" in status.stdout
        finally:
            env.client.drop_database(mistyped)


def test_fleet_verify_checks_each_database_and_fails_when_one_does(env):
    with tenants(env, 3, 20) as fleet:
        assert env.cli("fleet", "migrate", "--databases", fleet.glob, "--concurrency", "3").returncode == 0
        fleet.db(fleet.names[1]).users.update_one({"user_id": "user_3"}, {"$set": {"schema_version": 2}})

        run = env.cli("fleet", "verify", "--databases", fleet.glob)

        assert run.returncode == 1, run.stdout + run.stderr
        lines = {line.split()[0]: line for line in run.stdout.splitlines() if line.startswith(env.database)}
        assert sorted(lines) == fleet.names
        assert lines[fleet.names[0]].split()[1:] == ["5", "passed"] and lines[fleet.names[2]].endswith("passed")
        assert "FAILED: documents behind or ahead" in lines[fleet.names[1]]
        assert "2 passed, 1 failed of 3 databases" in run.stdout
        fleet.db(fleet.names[1]).users.update_one({"user_id": "user_3"}, {"$set": {"schema_version": 5}})
        assert env.cli("fleet", "verify", "--databases", fleet.glob).returncode == 0


def test_a_database_whose_ledger_the_folder_does_not_match_is_left_and_the_rest_migrated(env):
    with tenants(env, 3, 20) as fleet:
        assert env.cli("fleet", "migrate", "2", "--databases", fleet.glob).returncode == 0
        newer, edited, fine = fleet.names
        ledger = fleet.db(newer)["_migrations"]  # migrated by a newer folder: version 6, which this one lacks
        ledger.insert_one({**ledger.find_one({"kind": "history", "version": 2}), "_id": "v6-up-newer", "version": 6,
                           "started_at": datetime(2100, 1, 1)})
        ledger.update_one({"_id": "current"}, {"$set": {"version": 6}})
        fleet.db(edited)["_migrations"].update_one({"kind": "history", "version": 2}, {"$set": {"checksum": "0" * 64}})

        run = env.cli("fleet", "migrate", "--databases", fleet.glob, "--max-failed-databases", "1")

        assert run.returncode == 1 and "2 head differs of 3 databases" in run.stderr, run.stdout + run.stderr
        assert fleet.versions() == {newer: 6, edited: 2, fine: 5}
        assert "head differs: applied 6, which this migrations folder does not have" in run.stdout
        assert "head differs: applied files edited since: 0002_add_preferences.py" in run.stdout
        status = fleet_status(env, fleet.glob)
        assert status["summary"] == "1 at 6, 1 at 5, 1 at 2, 1 pending, 2 head differs (latest 5)"
        differs = {d["database"]: d["head_differs"] for d in status["databases"]}
        assert differs[newer] == {"unknown": [6], "changed": []} and differs[fine] is None
        assert differs[edited]["changed"][0].startswith("0002_add_preferences.py (applied as 000000000000, now ")
        text = env.cli("fleet", "status", "--databases", fleet.glob).stdout
        assert "head differs: applied 6" in text and "head differs: applied files edited" in text


def service_unavailable(path: str) -> PrefectHTTPStatusError:
    """What the Prefect client raises when the server's database stays busy through its retries (a 503)."""
    request = httpx.Request("POST", f"http://127.0.0.1:4200/api/{path}")
    try:
        httpx.Response(503, request=request, json={"exception_message": "Service Unavailable"}).raise_for_status()
    except httpx.HTTPStatusError as exc:
        return PrefectHTTPStatusError.from_httpx_error(exc)


def test_a_prefect_api_failing_a_childs_start_runs_it_again_and_the_rest_of_the_fleet_goes_on(env, monkeypatch):
    with tenants(env, 3, 20) as fleet:
        once, always = fleet.names[0], fleet.names[1]
        calls = []
        real = fleet_flows.migrate

        def migrate(**parameters):  # the subflow call raises before the child run exists, as under a busy server
            calls.append(parameters["database"])
            if parameters["database"] == always or (parameters["database"] == once and calls.count(once) == 1):
                raise service_unavailable("task_runs/")
            return real(**parameters)

        monkeypatch.setattr(fleet_flows, "migrate", migrate)
        monkeypatch.setattr(fleet_flows, "ORCHESTRATION_PAUSE_SECONDS", 0)

        run = env.cli("fleet", "migrate", "--databases", fleet.glob, "--max-failed-databases", "2")

        assert run.returncode == 1 and "1 failed of 3 databases" in run.stderr, run.stdout + run.stderr
        assert calls.count(once) == 2 and calls.count(always) == fleet_flows.ORCHESTRATION_ATTEMPTS
        assert fleet.versions() == {once: 5, always: 1, fleet.names[2]: 5}
        applied = sorted(e["version"] for e in fleet.db(once)["_migrations"].find({"kind": "history"}))
        assert applied == [2, 3, 4, 5]
        assert "PrefectHTTPStatusError: Server error '503 Service Unavailable'" in run.stdout


def test_the_prefect_api_failing_the_fleet_run_itself_is_one_plain_line(env, monkeypatch):
    with tenants(env, 2, 20) as fleet:
        def refused(*args, **kwargs):
            raise service_unavailable("artifacts/")

        monkeypatch.setattr(fleet_flows, "create_table_artifact", refused)

        run = env.cli("fleet", "migrate", "--databases", fleet.glob)

        assert run.returncode == 1 and run.stderr.count("\n") == 1, run.stderr
        assert run.stderr.startswith("docshift: error: the Prefect API failed during the run (PrefectHTTPStatusError: "
                                     "Server error '503 Service Unavailable' for url "), run.stderr
        assert "run the command again to resume" in run.stderr
        assert set(fleet.versions().values()) == {5}
        assert not [n for n in fleet.names if fleet.db(n)["_migrations"].find_one({"_id": "lock"})]
