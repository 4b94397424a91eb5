"""Parallel partitions: `_id` ranges as parallel tasks (threads, or a local Dask cluster), each with its own checkpoint."""

import os
import signal
import time

import bson
import psutil

from docshift.demo import seed_users
from tests.helpers import canonical

N = 3000


def by_user(collection) -> dict:
    """user_id -> canonical BSON without `_id` (fresh ObjectIds per seeding) and `updated_at` (the time `up` ran)."""
    return {d["user_id"]: bson.encode(canonical({k: v for k, v in d.items() if k not in ("_id", "updated_at")}))
            for d in collection.find()}


def one_partition_result(env, seed: int) -> dict:
    other = env.db.client[env.database + "_one"]
    seed_users(other, N, seed=seed)
    result = env.run("migrate", "4", "--batch-size", "100", extra={"DOCSHIFT_DATABASE": other.name})
    assert result.returncode == 0, result.stderr
    expected = by_user(other.users)
    env.db.client.drop_database(other.name)
    return expected


def test_four_partitions_end_byte_identical_to_one(env):
    expected = one_partition_result(env, seed=41)
    seed_users(env.db, N, seed=41)

    result = env.run("migrate", "4", "--batch-size", "100", "--partitions", "4")

    assert result.returncode == 0, result.stdout + result.stderr
    assert by_user(env.db.users) == expected
    entries = list(env.ledger.find({"kind": "history"}))
    assert all(e["documents"] == N and e["verification"] == "passed" for e in entries)
    assert env.ledger.count_documents({"kind": "partition"}) == 0  # partition checkpoints go with the run's


def test_a_killed_dask_worker_resumes_only_its_partition(env):
    expected = one_partition_result(env, seed=42)
    seed_users(env.db, N, seed=42)
    dask = {"DOCSHIFT_TASK_RUNNER": "dask", "DOCSHIFT_DASK_WORKERS": "2", "DOCSHIFT_BATCH_PAUSE_SECONDS": "0.05"}
    proc = env.start("migrate", "2", "--batch-size", "50", "--partitions", "4", extra=dask)
    try:
        deadline = time.monotonic() + 300
        while not (running := env.ledger.find_one({"kind": "partition", "done": {"$gte": 200}, "finished": False})):
            assert proc.poll() is None and time.monotonic() < deadline, "no partition got under way"
            time.sleep(0.05)
        workers = {p.pid for p in psutil.Process(proc.pid).children() if "spawn_main" in " ".join(p.cmdline())}
        assert len(workers) == 2, "the local Dask cluster should have two worker processes"
        pid = int(running["worker"].rsplit(":", 1)[1])
        assert pid in workers  # the partition runs in a Dask worker process, not in the flow's
        os.kill(pid, signal.SIGKILL)
        output, _ = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)

    assert proc.returncode == 0, output
    entry = env.ledger.find_one({"kind": "history", "version": 2})
    assert N - 50 <= entry["documents"] <= N and entry["verification"] == "passed"  # one batch written, not checkpointed
    assert env.db.users.count_documents({"schema_version": 2}) == N
    assert sorted(p["resumed"] for p in entry["partitions"]) == [0, 0, 0, 1]  # the killed worker's partition only
    assert env.run("migrate", "4", "--batch-size", "100").returncode == 0
    assert by_user(env.db.users) == expected
