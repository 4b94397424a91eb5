"""A fleet run whose child runs are runs of the `migrate` deployment, taken by two process workers of one pool:
`docshift fleet migrate --deployment migrate/migrate` (run_deployment with the database as a parameter)."""

import re
import shutil
import uuid

from prefect import get_client
from prefect.client.schemas.filters import FlowFilter, FlowFilterName, FlowRunFilter, FlowRunFilterParentFlowRunId
from prefect.client.schemas.sorting import FlowRunSort

from tests.support.env import Env, docshift_settings, process_environment
from tests.support.fleet import tenants
from tests.support.paths import ROOT
from tests.support.prefect_api import start_worker, stop_worker


def test_two_workers_share_a_fleet_run_of_deployment_runs(mongodb_uri, prefect_api, tmp_path, monkeypatch):
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
    [migrate] = re.findall(r"^(?:created|updated|unchanged)\s+(migrate/\S+)$", deployed.stdout, re.MULTILINE)
    workers = [start_worker({**variables, "PREFECT_WORKER_NAME": f"w{i}"}, pool="fleet") for i in range(2)]
    try:
        with tenants(env, 4, 30) as fleet:
            run = env.cli("fleet", "migrate", "--databases", fleet.glob, "--deployment", migrate,
                          "--concurrency", "4", "--waves", "1,100%")

            assert run.returncode == 0, run.stdout + run.stderr
            assert set(fleet.versions().values()) == {5} and "4 migrated" in run.stdout
            with get_client(sync_client=True) as client:
                [parent] = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["migrate-fleet"])),
                                                 sort=FlowRunSort.START_TIME_DESC, limit=1)
                children = client.read_flow_runs(flow_run_filter=FlowRunFilter(
                    parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent.id])))
            assert len(children) == 4 and all(c.deployment_id and c.state.is_completed() for c in children)
            assert sorted(c.parameters["database"] for c in children) == fleet.names
    finally:
        for worker in workers:
            stop_worker(worker)
        env.client.drop_database(env.database)
        env.close()
