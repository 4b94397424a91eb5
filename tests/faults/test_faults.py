"""The fault suite: kill -9 at exact points of a migration and of a rollback (DOCSHIFT_FAULT, engine.fault_point),
then a re-run; every scenario ends with the fingerprint of an uninterrupted run, or of the original data.

The runs that die are real `docshift` processes (the fault point kills its own process); the re-runs are the
command in-process. A dead run's lease is expired by writing it into the past (Env.expire_lease), not slept out.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pymongo
import pytest

from docshift import dump
from docshift.demo import seed_users
from docshift.dump import RAW
from tests.support.env import expire_lease
from tests.support.fingerprints import collection_fingerprint, database_snapshot, expected_after_all_ups, fingerprint
from tests.support.paths import BIN, ROOT, free_port
from tests.support.waiting import wait_for_checkpoint

N, BATCH, LEASE = 500, 50, 2
LEASE_ENV = {"DOCSHIFT_LOCK_LEASE_SECONDS": str(LEASE)}
KILLS = [  # (point, n): migrations 2-5 of N documents in batches of BATCH are 40 batches, so n=1..40 spans the run
    # (500 in batches of 50, formerly 1000 in batches of 100: the same 40 batches, half the documents)
    ("backup", 1), ("backup", 2), ("backup", 4),
    ("pre-images-saved", 1), ("pre-images-saved", 40),
    ("batch-written", 1), ("batch-written", 10), ("batch-written", 11), ("batch-written", 25), ("batch-written", 40),
    ("checkpoint-saved", 5), ("checkpoint-saved", 20), ("checkpoint-saved", 40),
    ("verify", 1), ("verify", 2), ("verify", 4),
    ("finish", 1), ("finish", 4),
]


def killed(env, result) -> None:
    assert result.returncode == -signal.SIGKILL, f"expected death by SIGKILL:\n{result.stdout}\n{result.stderr}"
    env.expire_lease()  # the dead run's lease runs out


@pytest.mark.parametrize("point,n", KILLS, ids=[f"{p}-{n}" for p, n in KILLS])
def test_kill_9_at_a_point_of_the_migration_then_rerun_converges(env, point, n):
    seed_users(env.db, N, seed=n)
    original = list(env.db.users.with_options(codec_options=RAW).find())
    expected = fingerprint(expected_after_all_ups(original, env.migrations))

    killed(env, env.run("migrate", "--batch-size", str(BATCH), extra={"DOCSHIFT_FAULT": f"{point}:{n}"}))
    assert env.ledger.find_one({"_id": "checkpoint"}) is not None  # died with a run unfinished
    rerun = env.cli("migrate", "--batch-size", str(BATCH))

    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert collection_fingerprint(env.db.users, drop={"updated_at"}) == expected
    assert env.ledger.find_one({"_id": "current"})["version"] == 5
    assert env.ledger.find_one({"_id": "checkpoint"}) is None and env.ledger.find_one({"_id": "lock"}) is None
    entries = sorted(env.ledger.find({"kind": "history"}), key=lambda e: e["version"])
    assert [(e["version"], e["outcome"]) for e in entries] == [(2, "applied"), (3, "applied"), (4, "applied"), (5, "applied")]
    assert sorted(e["resumed"] for e in entries) == [0, 0, 0, 1]  # the killed run was resumed, not started again
    # the pre-images are intact: migration 2's backup holds every original document byte for byte, in the
    # collection once and in the sealed mongodump file (a batch redone after the kill appends its documents again)
    assert collection_fingerprint(env.db[entries[0]["backup"]]) == fingerprint(original)
    for entry in env.db["_backups"].find():
        path = Path(entry["path"])
        assert dump.file_sha256(path) == entry["sha256"]
        if entry["version"] == 2:
            assert set(fingerprint(dump.read(path))) == set(fingerprint(original))


ROLLBACK_KILLS = [("automatic", 1), ("automatic", 2), ("by-hand", 1)]
ROLLBACK_BATCH = 100  # 1500 documents: a failure at user_1450 leaves two rollback batches of pre-images


@pytest.mark.parametrize("scenario,n", ROLLBACK_KILLS, ids=[f"{s}-rollback-batch-{n}" for s, n in ROLLBACK_KILLS])
def test_kill_9_during_rollback_then_rollback_again_restores_every_byte(env, scenario, n):
    """`automatic`: a failing migration rolls itself back; `by-hand`: `docshift rollback --run` of a killed run."""
    seed_users(env.db, 1500, seed=20 + n)
    fault = {"DOCSHIFT_FAULT": f"rollback-batch:{n}"}
    if scenario == "automatic":
        assert env.cli("migrate", "2").returncode == 0
        before = collection_fingerprint(env.db.users)
        env.break_split_name(["user_1450"], "late failure")  # two rollback batches of pre-images by then
        killed(env, env.run("migrate", "--batch-size", str(ROLLBACK_BATCH), extra=fault))
    else:
        before = collection_fingerprint(env.db.users)
        killed(env, env.run("migrate", "--batch-size", str(ROLLBACK_BATCH), extra={"DOCSHIFT_FAULT": "batch-written:12"}))
        run_id = env.ledger.find_one({"_id": "checkpoint"})["run_id"]
        killed(env, env.run("rollback", "--run", run_id, extra=fault))
    checkpoint = env.ledger.find_one({"_id": "checkpoint"})
    assert checkpoint["rolling_back"] and env.ledger.find_one({"_id": checkpoint["run_id"]})["outcome"] != "rolled_back"

    again = env.cli("rollback", "--run", checkpoint["run_id"])

    assert again.returncode == 0, again.stdout + again.stderr
    assert collection_fingerprint(env.db.users) == before
    assert env.ledger.find_one({"_id": checkpoint["run_id"]})["outcome"] == "rolled_back"
    assert env.ledger.find_one({"_id": "checkpoint"}) is None


BACKUP_FAULTS = {  # case: tmpfs mount options for the backup folder (None: the folder would be under a regular file)
    "not-a-directory": (None, "is not writable (Not a directory)"),
    "read-only-filesystem": ("ro,size=1m", "is not writable (Read-only file system)"),
    "disk-full": ("size=64k", "has 65,536 bytes free but the pre-images of this run may need"),
}


@pytest.mark.parametrize("case", list(BACKUP_FAULTS))
def test_a_backup_folder_that_cannot_take_the_pre_images_stops_the_run_before_any_change(env, tmp_path, case):
    """Real faults, also for root: a tmpfs mounted read-only or 64 KiB small in a private mount namespace
    (`unshare`), or a folder path through a regular file."""
    options, message = BACKUP_FAULTS[case]
    seed_users(env.db, N, seed=7)
    before = database_snapshot(env.db)
    backup_dir = tmp_path / "backups"
    command = [str(BIN / "docshift"), "migrate"]
    if options is None:
        (tmp_path / "file").write_text("")
        backup_dir = tmp_path / "file" / "backups"
    else:
        backup_dir.mkdir()
        command = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                   'mount -t tmpfs -o "$0" tmpfs "$1" && shift && exec "$@"', options, str(backup_dir), *command]

    result = subprocess.run(command, env={**env.vars, "DOCSHIFT_BACKUP_DIR": str(backup_dir)}, capture_output=True,
                            text=True, timeout=300)

    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.startswith(f"docshift: error: backup folder {backup_dir} ") and message in result.stderr, result.stderr
    assert "nothing was changed" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert database_snapshot(env.db) == before


@pytest.fixture
def own_ferretdb(tmp_path):
    """A FerretDB of this test alone, to stop and start (the session's server is left alone)."""
    variables = {**os.environ, "FERRETDB_PORT": str(free_port()), "FERRETDB_DIR": str(tmp_path / "ferretdb"),
                 "DOCSHIFT_PYTHON": sys.executable}

    def script(action: str) -> str:
        done = subprocess.run([str(ROOT / "scripts" / "ferretdb"), action], env=variables, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    yield script
    script("stop")


@pytest.mark.embedded_server("it stops and restarts a server, which it can do only to a FerretDB it starts itself")
def test_database_server_stopped_and_restarted_mid_run_loses_nothing(env, own_ferretdb):
    uri = own_ferretdb("start")
    client = pymongo.MongoClient(uri)
    db = client[env.database]
    try:
        seed_users(db, 3000, seed=31)
        expected = fingerprint(expected_after_all_ups(db.users.with_options(codec_options=RAW).find(), env.migrations))
        variables = {**env.vars, **LEASE_ENV, "DOCSHIFT_MONGODB_URI": uri, "DOCSHIFT_SERVER_TIMEOUT_MS": "2000"}
        run = subprocess.Popen([str(BIN / "docshift"), "migrate", "--batch-size", "100"], env=variables,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        wait_for_checkpoint(db, 3, 1000, alive=lambda: run.poll() is None, poll=0.05)

        own_ferretdb("stop")
        time.sleep(3)
        own_ferretdb("start")
        out, err = run.communicate(timeout=600)

        if run.returncode != 0:  # the retries did not ride it out: a plain error, and a re-run resumes
            assert run.returncode == 1 and "Traceback" not in err and err.startswith("docshift: error:"), out + err
            expire_lease(db["_migrations"])  # the dead run's lease runs out
            rerun = subprocess.run([str(BIN / "docshift"), "migrate"], env=variables, capture_output=True, text=True, timeout=600)
            assert rerun.returncode == 0, rerun.stdout + rerun.stderr
        assert collection_fingerprint(db.users, drop={"updated_at"}) == expected
        assert db["_migrations"].find_one({"_id": "current"})["version"] == 5
        assert db["_migrations"].find_one({"_id": "checkpoint"}) is None
    finally:
        client.close()
