"""A Dask worker killed under a fleet's child run (`fleet migrate --dask-address`): Dask runs that database's task
again on a worker, whose child run takes the dead worker's lock over and resumes from its checkpoint; every database
ends at the target as an uninterrupted run makes it, each migration applied once."""

import os
import signal
import threading

from distributed import Client, LocalCluster

from tests.support.fingerprints import collection_fingerprint, expected_after_all_ups, fingerprint
from tests.support.fleet import tenants
from tests.support.waiting import wait_for_checkpoint


def test_a_killed_dask_worker_resumes_its_database_from_the_checkpoint(env, monkeypatch):
    monkeypatch.setenv("DOCSHIFT_BATCH_PAUSE_SECONDS", "0.05")  # the worker processes read it when they start
    with tenants(env, 2, 200) as fleet, LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                                    dashboard_address=":0") as cluster, \
            Client(cluster, set_as_default=False) as observer:
        expected = {n: fingerprint(expected_after_all_ups(fleet.db(n).users.find(), env.migrations)) for n in fleet.names}
        workers = set(observer.run(os.getpid).values())
        victim = fleet.db(fleet.names[0])
        killed: list = []

        def kill_its_worker():
            try:
                wait_for_checkpoint(victim, 3, 60)
                owner = victim["_migrations"].find_one({"_id": "lock"})["owner"]
                pid = int(owner.split(":")[1])
                killed.append(pid)
                os.kill(pid, signal.SIGKILL)
            except Exception as exc:  # noqa: BLE001 - reported by the test's own thread
                killed.append(exc)

        killer = threading.Thread(target=kill_its_worker)
        killer.start()
        run = env.cli("fleet", "migrate", "--databases", fleet.glob, "--concurrency", "2", "--batch-size", "20",
                      "--dask-address", cluster.scheduler_address)
        killer.join()

        assert len(killed) == 1 and killed[0] in workers, killed  # the child ran in a Dask worker process, now dead
        assert run.returncode == 0, run.stdout + run.stderr
        assert set(fleet.versions().values()) == {5}
        for name in fleet.names:
            assert collection_fingerprint(fleet.db(name).users, drop={"updated_at"}) == expected[name], name
            applied = [(e["version"], e["outcome"]) for e in fleet.db(name)["_migrations"].find({"kind": "history"})]
            assert sorted(applied) == [(2, "applied"), (3, "applied"), (4, "applied"), (5, "applied")], name
        assert victim["_migrations"].find_one({"kind": "history", "version": 3})["resumed"] == 1  # not started over
