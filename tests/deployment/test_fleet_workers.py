"""The `migrate-fleet/<project>` deployment that `docshift deploy` makes, run as a scheduled run would be: taken by
one of two process workers of one pool, its child runs (runs of the `migrate/<project>` deployment, one per database)
shared by both workers; then the `rollback-fleet/<project>` deployment, as an operator runs it from the UI, undoes it."""

import re
import shutil
import subprocess
import time
import uuid

from prefect import get_client
from prefect.client.schemas.filters import (FlowFilter, FlowFilterName, FlowRunFilter,
                                            FlowRunFilterParentFlowRunId)
from prefect.client.schemas.sorting import FlowRunSort

from tests.support.env import Env, docshift_settings, process_environment
from tests.support.fingerprints import raw_snapshot
from tests.support.fleet import tenants
from tests.support.prefect_api import api_post, prefect, start_worker, stop_worker
from tests.support.paths import ROOT

SUBMITTED = "prefect.worker.submitted-flow-run"
"""The event a worker emits when it has taken a flow run (Prefect 3.9.1, workers/base.py): the worker is the event's
resource (`prefect.resource.name`: its `--name`), the flow run one of its related resources (role `flow-run`)."""


def workers_of(api: str, run_ids: list[str]) -> dict[str, str]:
    """Which worker took each of these flow runs, from the events the workers sent (stored a moment later)."""
    related = [f"prefect.flow-run.{run_id}" for run_id in run_ids]
    query = {"filter": {"event": {"name": [SUBMITTED]}, "related": {"id": related}}, "limit": 50}
    deadline = time.monotonic() + 30
    while True:
        taken = {r["prefect.resource.id"].removeprefix("prefect.flow-run."): e["resource"]["prefect.resource.name"]
                 for e in api_post(api, "/events/filter", query)["events"]
                 for r in e["related"] if r["prefect.resource.id"] in related}
        if len(taken) == len(run_ids) or time.monotonic() > deadline:
            return taken
        time.sleep(1)


def test_two_workers_share_a_run_of_the_fleet_deployment(mongodb_uri, prefect_api, tmp_path, monkeypatch):
    migrations = tmp_path / "migrations"
    shutil.copytree(ROOT / "migrations", migrations, ignore=shutil.ignore_patterns("__pycache__"))
    settings = docshift_settings(mongodb_uri, f"t_fleet_{uuid.uuid4().hex[:8]}", migrations, tmp_path / "backups")
    variables = {**process_environment(prefect_api, settings), "DOCSHIFT_PROJECT_DIR": str(ROOT),
                 "DOCSHIFT_WORK_POOL": "fleet", "PREFECT_WORKER_QUERY_SECONDS": "2"}
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    env = Env(mongodb_uri, settings["DOCSHIFT_DATABASE"], migrations, variables)
    deployed = env.run("deploy", extra={"DOCSHIFT_WORK_POOL": "fleet"})
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    [fleet_deployment], [undo_deployment] = (
        re.findall(rf"^(?:created|updated|unchanged)\s+({flow}/\S+)$", deployed.stdout, re.MULTILINE)
        for flow in ("migrate-fleet", "rollback-fleet"))
    # Two runs at most per worker: the fleet run takes a slot of one, so its four children at once need both.
    workers = [start_worker(variables, subprocess.DEVNULL, "fleet", "--name", f"w{i}", "--limit", "2")
               for i in range(2)]
    try:
        with tenants(env, 4, 30) as fleet:
            before = {n: raw_snapshot(fleet.db(n).users) for n in fleet.names}
            run = prefect(variables, "deployment", "run", fleet_deployment, "--param", f"databases={fleet.glob}",
                          "--watch", "--watch-timeout", "600", timeout=660)

            with get_client(sync_client=True) as client:
                [parent] = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["migrate-fleet"])),
                                                 sort=FlowRunSort.START_TIME_DESC, limit=1)
                children = client.read_flow_runs(flow_run_filter=FlowRunFilter(
                    parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent.id])))
                states = [(c.parameters.get("database"), c.state.name, c.state.message) for c in children]
                assert run.returncode == 0 and parent.deployment_id and parent.state.is_completed(), (
                    f"{parent.state.message}; children: {states}; {run.stdout[-2000:]}")
            assert set(fleet.versions().values()) == {5}
            assert len(children) == 4 and all(c.deployment_id and c.state.is_completed() for c in children)
            assert sorted(c.parameters["database"] for c in children) == fleet.names
            taken = workers_of(prefect_api["PREFECT_API_URL"], [str(r.id) for r in (parent, *children)])
            assert len(taken) == 5, taken
            by_child = [taken[str(c.id)] for c in children]
            assert {"w0", "w1"} == set(by_child), f"each worker runs some tenants: {by_child}"

            undo = prefect(variables, "deployment", "run", undo_deployment, "--param", f"databases={fleet.glob}",
                           "--watch", "--watch-timeout", "600", timeout=660)

            assert undo.returncode == 0, undo.stdout[-2000:] + undo.stderr[-2000:]
            assert set(fleet.versions().values()) == {1}
            assert {n: raw_snapshot(fleet.db(n).users) for n in fleet.names} == before
    finally:
        for worker in workers:
            stop_worker(worker)
        env.client.drop_database(env.database)
        env.close()
