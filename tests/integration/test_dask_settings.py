"""Partitions on Dask workers get the settings in force, command-line flags included: a worker is another process,
so a flag kept only in the command's memory would not reach it."""

from docshift.demo import seed_users

N = 1200


def test_flags_that_differ_from_the_environment_reach_dask_partitions(env, tmp_path):
    seed_users(env.db, N, seed=43)
    misleading = {
        "DOCSHIFT_MONGODB_URI": "mongodb://127.0.0.1:9/",          # nothing listens there
        "DOCSHIFT_MIGRATIONS_DIR": str(tmp_path / "no-such-folder"),
        "DOCSHIFT_TASK_RUNNER": "dask", "DOCSHIFT_DASK_WORKERS": "2", "DOCSHIFT_SERVER_TIMEOUT_MS": "2000",
    }

    result = env.run("--uri", env.uri, "--migrations-dir", str(env.migrations), "migrate", "2", "--batch-size", "100",
                     "--partitions", "2", extra=misleading)

    assert result.returncode == 0, result.stdout + result.stderr
    entry = env.ledger.find_one({"kind": "history", "version": 2})
    assert entry["verification"] == "passed" and entry["documents"] == N
    assert len(entry["partitions"]) == 2 and sum(p["documents"] for p in entry["partitions"]) > 0
    assert env.db.users.count_documents({"schema_version": 2}) == N
