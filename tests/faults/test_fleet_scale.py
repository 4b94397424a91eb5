"""The fleet at the size issue 23 names: 50 tenant databases × 200 users, 2 of them with a user migration 3 rejects,
a canary wave, a failure limit the fleet stays under, and a kill -9 of the fleet run in its last wave, then the same
command again."""

import json
import os
import signal

import pytest

from tests.support.fingerprints import collection_fingerprint, expected_after_all_ups, fingerprint, raw_snapshot
from tests.support.fleet import POISON, tenants
from tests.support.waiting import process_alive, wait_for_checkpoint

pytestmark = pytest.mark.slow


def test_fifty_tenants_with_two_rejecting_killed_mid_wave_then_rerun_end_as_a_reference_run(env):
    with tenants(env, 50, 200) as fleet:
        bad = [fleet.names[3], fleet.names[40]]  # one in the second wave, one after the kill
        for name in bad:
            assert env.cli("--database", name, "migrate", "2").returncode == 0
        env.break_split_name([POISON], "cannot split")
        fleet.poison(*bad)
        before = {name: raw_snapshot(fleet.db(name).users) for name in bad}
        healthy = [n for n in fleet.names if n not in bad]
        expected = {n: fingerprint(expected_after_all_ups(fleet.db(n).users.find(), env.migrations)) for n in healthy}
        args = ("fleet", "migrate", "--databases", fleet.glob, "--waves", "1,10%,100%", "--concurrency", "4",
                "--max-failed-databases", "5", "--batch-size", "20")

        proc = env.start(*args)
        # in wave 3; the fleet reaches it in 2 to 5 minutes, by the load of the machine (the process alive meanwhile)
        wait_for_checkpoint(fleet.db(fleet.names[30]), 3, 60, alive=lambda: process_alive(proc), timeout=1200)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        assert fleet.db(fleet.names[30])["_migrations"].find_one({"_id": "lock"})  # held by the dead process
        versions = fleet.versions()
        assert versions[fleet.names[0]] == 5  # the canary passed
        assert versions[bad[0]] == 2 and raw_snapshot(fleet.db(bad[0]).users) == before[bad[0]]
        assert versions[fleet.names[-1]] == 1  # not started when the run was killed

        again = env.cli(*args)

        assert again.returncode == 1 and "2 failed of 50 databases" in again.stderr, again.stdout + again.stderr
        versions = fleet.versions()
        for name in bad:  # rolled back alone, byte for byte, the rest of the fleet migrated
            assert versions[name] == 2 and raw_snapshot(fleet.db(name).users) == before[name], name
        for name in healthy:  # every document as a run without the kill makes it, every migration applied once
            assert versions[name] == 5, name
            assert collection_fingerprint(fleet.db(name).users, drop={"updated_at"}) == expected[name], name
            applied = [(e["version"], e["outcome"]) for e in fleet.db(name)["_migrations"].find({"kind": "history"})]
            assert sorted(applied) == [(2, "applied"), (3, "applied"), (4, "applied"), (5, "applied")], name
        status = env.cli("fleet", "status", "--databases", fleet.glob, "--json")
        assert json.loads(status.stdout)["summary"] == "48 at 5, 2 failed at 2, 2 pending (latest 5)"
