"""`docshift fleet rollback` on the real FerretDB and Prefect server: the `rollback-fleet` flow takes each database a
fleet run changed back to its version before that run (a child `migrate` run per database), reading which databases
and versions from the fleet run's `docshift-fleet` table."""

import uuid
from datetime import datetime

from prefect import get_client
from prefect.client.schemas.filters import FlowFilter, FlowFilterName
from prefect.client.schemas.sorting import FlowRunSort

from tests.support.fingerprints import raw_snapshot
from tests.support.fleet import POISON, tenants


def latest_run_id(flow_name: str) -> str:
    with get_client(sync_client=True) as client:
        [run] = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])),
                                      sort=FlowRunSort.START_TIME_DESC, limit=1)
    return str(run.id)


def test_the_latest_fleet_run_is_undone_database_by_database_byte_for_byte(env):
    with tenants(env, 4, 20) as fleet:
        assert env.cli("fleet", "migrate", "2", "--databases", fleet.glob).returncode == 0
        env.break_split_name([POISON], "cannot split")
        fleet.poison(fleet.names[3])
        before = {n: raw_snapshot(fleet.db(n).users) for n in fleet.names}
        run = env.cli("fleet", "migrate", "--databases", fleet.glob, "--max-failed-databases", "2")
        assert run.returncode == 1 and fleet.versions() == dict(zip(fleet.names, [5, 5, 5, 2])), run.stdout
        fleet_run = latest_run_id("migrate-fleet")

        back = env.cli("fleet", "rollback", "--databases", fleet.glob, "--concurrency", "2")

        assert back.returncode == 0, back.stdout + back.stderr
        assert set(fleet.versions().values()) == {2}
        assert {n: raw_snapshot(fleet.db(n).users) for n in fleet.names} == before
        lines = {line.split()[0]: line for line in back.stdout.splitlines()}
        assert [lines[n[:24]].split()[2:4] for n in fleet.names[:3]] == [["5", "2"]] * 3
        assert all(lines[n[:24]].endswith("rolled back") for n in fleet.names[:3])
        assert lines[fleet.names[3][:24]].endswith("unchanged")  # its failed step was rolled back by the fleet run itself
        assert f"of fleet run {fleet_run}: 3 rolled back, 1 unchanged" in back.stdout
        for name in fleet.names[:3]:
            history = list(fleet.db(name)["_migrations"].find({"kind": "history", "direction": "down"}))
            assert sorted(e["version"] for e in history) == [3, 4, 5] and {e["outcome"] for e in history} == {"reverted"}

        again = env.cli("fleet", "rollback", fleet_run, "--databases", fleet.glob)

        assert again.returncode == 0, again.stdout + again.stderr
        assert "3 already back, 1 unchanged" in again.stdout
        assert {n: raw_snapshot(fleet.db(n).users) for n in fleet.names} == before


def test_a_database_changed_since_or_locked_is_left_and_the_rest_taken_back(env):
    with tenants(env, 3, 20) as fleet:
        assert env.cli("fleet", "migrate", "--databases", fleet.glob).returncode == 0
        moved, held, free = fleet.names
        assert env.cli("--database", moved, "migrate", "4").returncode == 0  # another run changed it since
        fleet.db(held)["_migrations"].insert_one({"_id": "lock", "owner": "elsewhere:1:migrate", "acquired_at": None,
                                                  "expires_at": datetime(2100, 1, 1)})
        kept = {n: raw_snapshot(fleet.db(n).users) for n in (moved, held)}

        back = env.cli("fleet", "rollback", "--databases", fleet.glob, "--max-failed-databases", "3")

        assert back.returncode == 1, back.stdout + back.stderr
        assert fleet.versions() == {moved: 4, held: 5, free: 1}
        assert {n: raw_snapshot(fleet.db(n).users) for n in (moved, held)} == kept
        assert "changed since: at version 4, not 5 where the fleet run left it" in back.stdout
        assert "another migration run holds the lock: elsewhere:1:migrate" in back.stdout
        assert "1 locked, 1 changed since of 3 databases" in back.stderr and back.stderr.count("\n") == 1


def test_bad_fleet_run_ids_are_one_plain_message_and_write_nothing(env):
    with tenants(env, 2, 10) as fleet:
        assert env.cli("fleet", "migrate", "--databases", fleet.glob).returncode == 0
        assert env.cli("--database", fleet.names[0], "migrate", "4").returncode == 0
        not_a_fleet = latest_run_id("migrate")
        for given, message in [("nope", "'nope' is not a fleet run id"),
                               (str(uuid.uuid4()), "there is no fleet run "),
                               (not_a_fleet, f"flow run {not_a_fleet} is a `migrate` run, not a fleet run")]:
            result = env.cli("fleet", "rollback", given)
            assert result.returncode == 1 and result.stderr.startswith(f"docshift: error: {message}"), result.stderr
            assert result.stderr.count("\n") == 1
        none = env.cli("fleet", "rollback", "--databases", "nothing_like_it_*")
        assert none.returncode == 1 and "there is no fleet run of --databases 'nothing_like_it_*'" in none.stderr
        assert fleet.versions() == dict(zip(fleet.names, [4, 5]))
