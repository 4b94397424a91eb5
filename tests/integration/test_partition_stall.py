"""A stuck partition: a task that makes no checkpoint for DOCSHIFT_PARTITION_STALL_SECONDS pauses its run (not a
rollback: the task may still write), the lock is kept rather than released or renewed for ever, `status` names the
partition and what to do, and after `unlock` a re-run resumes from the partitions' checkpoints."""

import pytest

from docshift.demo import seed_users
from docshift.engine import faults
from tests.support.fingerprints import by_user
from tests.support.reference import one_partition_result

N = 1200
STUCK = {"DOCSHIFT_PARTITION_STALL_SECONDS": "1",
         "DOCSHIFT_FAULT": "checkpoint-saved:2:hang:6"}  # the second partition checkpoint stops its task for 6 s


def read_fault_anew() -> None:
    """DOCSHIFT_FAULT is read once per process (at a command's first fault point): make the next in-process command
    read it again."""
    faults._fault.cache_clear()
    faults._hits.clear()


@pytest.fixture
def fault_read_anew():
    yield
    read_fault_anew()  # the commands of later tests run without it


def test_a_partition_without_a_checkpoint_pauses_the_run_and_keeps_the_lock(env, fault_read_anew):
    expected = one_partition_result(env, N, seed=51, target="2")
    seed_users(env.db, N, seed=51)
    read_fault_anew()

    stuck = env.cli("migrate", "2", "--batch-size", "100", "--partitions", "2", extra=STUCK)

    assert stuck.returncode == 1, stuck.stdout + stuck.stderr
    [line] = stuck.stderr.splitlines()
    assert line.startswith("docshift: error: apply 2 on users: partition ") and "no checkpoint for 1 s" in line, line
    assert "`docshift unlock`" in line and "`docshift migrate` resumes" in line, line
    entry = env.ledger.find_one({"kind": "history", "version": 2})
    assert entry["outcome"] == "stalled"  # paused, not rolled back
    assert env.db.users.count_documents({"schema_version": 2}) > 0
    lock = env.ledger.find_one({"_id": "lock"})
    assert lock is not None and "stalled" in lock["stalled"]  # kept: not released, and no longer renewed
    status = env.cli("status")
    assert "stalled         partition " in status.stdout and "`docshift unlock`" in status.stdout, status.stdout
    refused = env.cli("migrate", "2", "--batch-size", "100", "--partitions", "2")
    assert refused.returncode == 1 and "stalled run" in refused.stderr, refused.stderr

    assert env.cli("unlock").returncode == 0
    read_fault_anew()
    resumed = env.cli("migrate", "2", "--batch-size", "100", "--partitions", "2")

    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert by_user(env.db.users) == expected
    assert env.ledger.find_one({"_id": entry["_id"]})["outcome"] == "applied"
    assert env.ledger.find_one({"_id": "lock"}) is None
