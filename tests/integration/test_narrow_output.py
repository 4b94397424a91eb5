"""The command line at 80 columns (no wider COLUMNS): ids whole, tables readable, and a run that paused at its
maintenance window's end says so on its last line."""

import re

from docshift.demo import seed_users

NARROW = {"COLUMNS": "80"}


def narrow(env, *args):
    result = env.cli(*args, extra=NARROW)  # in-process: the console's width follows COLUMNS as in a new process
    assert result.returncode == 0, result.stdout + result.stderr
    assert "…" not in result.stdout  # nothing cut
    return result.stdout


def test_at_80_columns_ids_are_whole_and_a_paused_run_says_so_last(env):
    seed_users(env.db, 3000, seed=41)

    paused = narrow(env, "migrate", "2", "--batch-size", "20", "--window-minutes", "0.05")

    checkpoint = env.ledger.find_one({"_id": "checkpoint"})
    last = paused.strip().splitlines()[-1]
    assert re.fullmatch(rf"paused at the maintenance window's end: migration 2 up at {checkpoint['done']:,} of 3,000 "
                        rf"documents \(run {checkpoint['run_id']}\); the database stays at version 1 and the next "
                        rf"window's run continues from the checkpoint \(`docshift migrate`\)", last), last
    assert "database is now at version" not in paused

    done = narrow(env, "migrate", "3")
    run_ids = [e["_id"] for e in sorted(env.ledger.find({"kind": "history"}), key=lambda e: e["started_at"])]
    assert re.search(r"^migration 2 up: passed$", done, re.M) and re.search(r"^migration 3 up: passed$", done, re.M)
    for run_id in run_ids:
        assert f"backup _docshift_backup.{run_id}" in done
    assert done.strip().splitlines()[-1] == "database is now at version 3"

    history = narrow(env, "history")
    assert all(len(line) <= 80 for line in history.splitlines()), history
    shown = re.findall(r"^(v\d+-\w+-[0-9a-f]{10})  migration", history, re.M)
    assert shown == run_ids
    for entry in env.ledger.find({"kind": "history"}):
        assert entry["flow_run_id"] in history

    rolled = narrow(env, "rollback", "--run", shown[-1])  # an id as history shows it is usable
    assert "database is at version 2" in rolled

    listing = narrow(env, "backups")
    for run_id in run_ids:
        assert re.search(rf"^{run_id}  migration \d up, users$", listing, re.M)
