"""The `migrate` and `rollback` deployments of prefect.yaml on a process work pool, run by a real worker via `prefect deployment run`."""

import subprocess

from docshift.demo import seed_users
from tests.conftest import BIN, ROOT
from tests.integration.conftest import raw_snapshot


def prefect(env, *args, timeout=300):
    return subprocess.run([str(BIN / "prefect"), *args], env=env.vars, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_prefect_deployment_run_migrates_through_a_worker(env):
    seed_users(env.db, 500, seed=12)
    env.vars["DOCSHIFT_PROJECT_DIR"] = str(ROOT)
    pool = prefect(env, "work-pool", "create", "docshift", "--type", "process", "--overwrite")
    assert pool.returncode == 0, pool.stdout + pool.stderr
    deployed = prefect(env, "--no-prompt", "deploy", "--all")
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    worker = subprocess.Popen([str(BIN / "prefect"), "worker", "start", "--pool", "docshift"], env=env.vars, cwd="/",
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        run = prefect(env, "deployment", "run", "migrate/migrate", "--param", "target_version=2", "--watch",
                      "--watch-timeout", "240", timeout=300)
        assert run.returncode == 0, run.stdout + run.stderr
        at_2 = raw_snapshot(env.db.users)
        run = prefect(env, "deployment", "run", "migrate/migrate", "--param", "target_version=3", "--watch",
                      "--watch-timeout", "240", timeout=300)
        assert run.returncode == 0, run.stdout + run.stderr
        assert env.db.users.count_documents({"schema_version": 3}) == 500
        entries = list(env.ledger.find({"kind": "history"}).sort("started_at"))
        assert [(e["version"], e["outcome"]) for e in entries] == [(2, "applied"), (3, "applied")]
        assert all(e["flow_run_id"] for e in entries)

        undo = prefect(env, "deployment", "run", "rollback/rollback", "--param", f"run_id={entries[-1]['_id']}", "--watch",
                       "--watch-timeout", "240", timeout=300)
        assert undo.returncode == 0, undo.stdout + undo.stderr
        assert raw_snapshot(env.db.users) == at_2
        assert env.ledger.find_one({"_id": "current"})["version"] == 2
    finally:
        worker.terminate()
        worker.communicate(timeout=30)
