"""Batch sizes and the throttle against FerretDB: the server's limits, adaptive sizes, a standalone server's lag."""

import math

from docshift.demo import seed_users
from docshift.pacing import BatchSizer, Throttle, replication_lag

N = 1500  # formerly 3000: 15 fixed batches of 100 against fewer adaptive ones


def test_the_limits_and_the_lag_come_from_the_server(env):
    sizer = BatchSizer.for_server(env.db, None, 0.5)
    assert sizer.max_documents == 100_000 and sizer.max_bytes == 16 * 1024 * 1024  # FerretDB's hello, as MongoDB's
    if "setName" in env.db.command("hello"):  # a replica set (DOCSHIFT_TEST_MONGODB_URI): its lag is watched
        assert Throttle.for_server(env.db, 0.0, 10.0, 600.0).lag is not None
        return
    assert replication_lag(env.db) is None  # not a replica set: replSetGetStatus is refused
    assert Throttle.for_server(env.db, 0.0, 10.0, 600.0).lag is None  # so there is no lag to wait for


def test_batches_grow_to_the_target_time_unless_the_size_is_given(env):
    seed_users(env.db, N, seed=31)
    fixed = env.cli("migrate", "2", "--batch-size", "100")
    assert fixed.returncode == 0, fixed.stderr
    assert env.ledger.find_one({"kind": "history", "version": 2})["batches"] == math.ceil(N / 100)

    adaptive = env.cli("migrate", "3", extra={"DOCSHIFT_BATCH_TIME_SECONDS": "2"})

    assert adaptive.returncode == 0, adaptive.stderr
    entry = env.ledger.find_one({"kind": "history", "version": 3})
    assert entry["documents"] == N and entry["verification"] == "passed"
    assert entry["batches"] < math.ceil(N / 100)  # started at 100 per batch and grew


def test_the_collection_count_is_the_servers_own_and_exact(env):
    """Verification's "no document gone" reads FerretDB's kept count ($collStats), not a scan: it must be exact."""
    from docshift.engine.cursor import collection_count

    seed_users(env.db, 500, seed=32)
    env.db.users.delete_many({"user_id": {"$in": ["user_1", "user_2"]}})
    env.db.users.insert_one({"user_id": "late"})
    assert [s["count"] for s in env.db.users.aggregate([{"$collStats": {"count": {}}}])] == [499]
    assert collection_count(env.db.users) == env.db.users.count_documents({}) == 499
