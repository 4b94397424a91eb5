"""kill -9 of a `docshift fleet migrate` process mid-wave, then the same command again: every database at the
target, every document as an uninterrupted run makes it, no database migrated twice."""

import os
import signal

from tests.support.fingerprints import collection_fingerprint, expected_after_all_ups, fingerprint
from tests.support.fleet import tenants
from tests.support.waiting import process_alive, wait_for_checkpoint


def test_kill_9_of_a_fleet_run_mid_wave_then_a_rerun_finishes_every_database_once(env):
    with tenants(env, 5, 200) as fleet:
        expected = {n: fingerprint(expected_after_all_ups(fleet.db(n).users.find(), env.migrations)) for n in fleet.names}
        args = ("fleet", "migrate", "--databases", fleet.glob, "--waves", "1,100%", "--concurrency", "2",
                "--batch-size", "20")
        proc = env.start(*args)
        wait_for_checkpoint(fleet.db(fleet.names[2]), 3, 60, alive=lambda: process_alive(proc))  # in wave 2
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        assert fleet.db(fleet.names[2])["_migrations"].find_one({"_id": "lock"})  # held by the dead process
        assert fleet.versions()[fleet.names[-1]] == 1  # not started yet

        again = env.cli(*args)

        assert again.returncode == 0, again.stdout + again.stderr
        assert set(fleet.versions().values()) == {5}
        for name in fleet.names:
            assert collection_fingerprint(fleet.db(name).users, drop={"updated_at"}) == expected[name], name
            applied = [(e["version"], e["outcome"]) for e in fleet.db(name)["_migrations"].find({"kind": "history"})]
            assert sorted(applied) == [(2, "applied"), (3, "applied"), (4, "applied"), (5, "applied")], name
