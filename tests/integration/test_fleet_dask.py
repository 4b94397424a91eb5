"""Fleet runs whose children run on a Dask cluster (`docshift fleet migrate --dask-address`): a real local cluster of
worker processes, the real FerretDB and Prefect server; the same waves, failure limit and per-database rollback as
children in threads."""

import os

import dask
from distributed import Client, LocalCluster, get_task_stream

from tests.support.fleet import POISON, tenants


def test_each_child_runs_on_a_dask_worker_and_a_failing_tenant_rolls_back_alone(env):
    with tenants(env, 3, 20) as fleet, LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                                    dashboard_address=":0") as cluster, \
            Client(cluster, set_as_default=False) as observer:
        env.break_split_name([POISON], "cannot split")
        bad = fleet.names[1]
        fleet.poison(bad)
        worker_pids = observer.run(os.getpid)

        with get_task_stream(client=observer) as stream:
            run = env.cli("fleet", "migrate", "--databases", fleet.glob, "--waves", "1,100%", "--concurrency", "2",
                          "--max-failed-databases", "2", "--dask-address", cluster.scheduler_address)

        assert run.returncode == 1 and "1 failed of 3 databases" in run.stderr, run.stdout + run.stderr
        versions = fleet.versions()
        assert [versions[n] for n in fleet.names] == [5, 2, 5]  # migration 2 applied, 3 rolled back
        assert fleet.db(bad).users.count_documents({"schema_version": {"$ne": 2}}) == 0
        assert "2 migrated, 1 failed" in run.stdout and "cannot split poison_user" in run.stdout
        children = [t for t in stream.data if t["key"].startswith("run_database")]
        assert len(children) == 3, [t["key"] for t in stream.data]  # one Dask task per database, none in this process
        assert {t["worker"] for t in children} <= set(worker_pids) and os.getpid() not in worker_pids.values()

        fleet.cure(bad)
        again = env.cli("fleet", "migrate", "--databases", fleet.glob, "--dask-address", cluster.scheduler_address)

        assert again.returncode == 0, again.stdout + again.stderr
        assert set(fleet.versions().values()) == {5} and "1 migrated, 2 at target" in again.stdout


def test_dask_options_that_cannot_work_are_one_plain_message_and_write_nothing(env):
    with tenants(env, 2, 10) as fleet:
        address = ["--databases", fleet.glob, "--dask-address", "tcp://127.0.0.1:9"]  # nothing listens there
        both = env.cli("fleet", "migrate", *address, "--deployment", "migrate/x")
        assert both.returncode == 1 and "give one" in both.stderr and both.stderr.count("\n") == 1, both.stderr
        flag = env.cli("--uri", env.uri, "fleet", "migrate", *address)
        assert flag.returncode == 1 and "--uri would not reach the Dask workers" in flag.stderr, flag.stderr
        with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):
            nobody = env.cli("fleet", "migrate", *address)
        assert nobody.returncode == 1, nobody.stdout + nobody.stderr
        assert "--dask-address tcp://127.0.0.1:9: no Dask scheduler answers there" in nobody.stderr
        assert set(fleet.versions().values()) == {1}
        assert all("_migrations" not in fleet.db(n).list_collection_names() for n in fleet.names)
