"""Zero downtime: the application (tests/support/live_app.py, a process) writes and reads users through
docshift.compat while migration 5 (the expand-contract rename of `email`) runs in a `docshift` process; nothing it
wrote is lost."""

import json
import subprocess
import sys
import time

from bson import ObjectId

from docshift.compat import read_field, upgrade
from docshift.demo import seed_users
from docshift.loader import ScriptDirectory
from tests.support.paths import ROOT
from tests.support.waiting import process_alive, wait_for_checkpoint

N = 3000


def test_every_acknowledged_application_write_survives_a_live_migration(env, tmp_path):
    seed_users(env.db, N, seed=40)
    assert env.cli("migrate", "4").returncode == 0
    app = subprocess.Popen([sys.executable, str(ROOT / "tests" / "support" / "live_app.py"), env.uri, env.database,
                            str(env.migrations), str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(1)  # the application is writing
        run = env.start("migrate", "--batch-size", "100")
        wait_for_checkpoint(env.db, 5, N // 2, alive=lambda: process_alive(run))
        (tmp_path / "new-only").touch()  # the old instances are replaced half-way: new users at version 5 from now on
        assert run.wait(timeout=600) == 0, run.stdout.read()
        time.sleep(1)  # and it keeps going after the run
    finally:
        (tmp_path / "stop").touch()
        out = app.communicate(timeout=60)[0]

    assert app.returncode == 0, out  # the application never saw an error or a document it could not read
    writes = json.loads((tmp_path / "writes.json").read_text())
    inserted = env.db.users.count_documents({}) - N
    assert len(writes) > 200 and inserted > 50, out
    scripts = ScriptDirectory.load(env.migrations)
    docs = {str(d["_id"]): d for d in env.db.users.find({"_id": {"$in": [ObjectId(i) for i in writes]}})}
    lost = {i: email for i, email in writes.items()
            if i not in docs or read_field(upgrade(docs[i], scripts, "users"), "email_address", "email") != email}
    assert not lost, f"{len(lost)} acknowledged writes lost, e.g. {list(lost.items())[:3]}"
    assert {d.get("email_address") for d in docs.values()} >= set(writes.values())  # at the new name itself, not by fallback
    assert env.db.users.count_documents({"schema_version": {"$ne": 5}}) == 0
    assert env.ledger.find_one({"_id": "current"})["version"] == 5
