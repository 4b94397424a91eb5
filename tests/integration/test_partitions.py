"""Parallel partitions (in-process): `_id` ranges as parallel tasks on threads, each with its own checkpoint."""

from docshift.demo import seed_users
from tests.support.fingerprints import by_user
from tests.support.reference import one_partition_result

N = 1200  # formerly 3000: still three batches of 100 in each of the four `_id` ranges


def test_four_partitions_end_byte_identical_to_one(env):
    expected = one_partition_result(env, N, seed=41)
    seed_users(env.db, N, seed=41)

    result = env.cli("migrate", "4", "--batch-size", "100", "--partitions", "4")

    assert result.returncode == 0, result.stdout + result.stderr
    assert by_user(env.db.users) == expected
    entries = list(env.ledger.find({"kind": "history"}))
    assert all(e["documents"] == N and e["verification"] == "passed" for e in entries)
    assert env.ledger.count_documents({"kind": "partition"}) == 0  # partition checkpoints go with the run's
