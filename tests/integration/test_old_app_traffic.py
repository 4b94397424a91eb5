"""Old application code (tests/old_app.py, plain pymongo) inserts users without `schema_version` and sets
`last_login` on random users while `docshift migrate` takes the database from 1 to 5 (issue 12, item 10).

Before the fix, migration 2 failed verification on the users inserted after its last sweep and its rollback put
pre-images over users whose only change since the run was an added `last_login`: acknowledged writes were lost.
"""

import json
import subprocess
import sys
import time

import pytest
from bson import ObjectId

from docshift.demo import seed_users
from tests.support.paths import ROOT

N = 4000


@pytest.mark.parametrize("fails", [False, True], ids=["healthy-run", "run-rolled-back"])
def test_no_acknowledged_write_of_old_code_is_lost_and_a_healthy_run_completes(env, tmp_path, fails):
    seed_users(env.db, N, seed=70)
    if fails:
        env.break_split_name(["user_3900"], "late failure")  # migration 3 fails after most users are written
    app = subprocess.Popen([sys.executable, str(ROOT / "tests" / "old_app.py"), env.uri, env.database, str(tmp_path)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(1)  # the application is writing
        result = env.run("migrate", "--batch-size", "100")
        time.sleep(1)  # and it keeps going after the run
    finally:
        (tmp_path / "stop").touch()
        out = app.communicate(timeout=60)[0]

    assert app.returncode == 0, out
    writes = json.loads((tmp_path / "writes.json").read_text())
    assert len(writes["last_login"]) > 500 and len(writes["inserted"]) > 100, out
    docs = {str(d["_id"]): d for d in env.db.users.find({}, {"last_login": 1})}
    lost = {i: stamp for i, stamp in writes["last_login"].items() if docs.get(i, {}).get("last_login") != stamp}
    assert not lost, f"{len(lost)} of {len(writes['last_login'])} acknowledged last_login writes lost, e.g. {list(lost.items())[:3]}"
    assert all(i in docs for i in writes["inserted"]) and len(docs) == N + len(writes["inserted"])
    entries = {e["version"]: e for e in env.ledger.find({"kind": "history"})}
    if fails:
        assert result.returncode == 1 and "migration 3 (up) failed and was rolled back" in result.stderr, result.stderr
        assert "late failure user_3900" in result.stderr and entries[3]["outcome"] == "rolled_back"
        assert env.ledger.find_one({"_id": "current"})["version"] == 2
    else:
        assert result.returncode == 0, result.stdout + result.stderr
        assert [entries[v]["outcome"] for v in (2, 3, 4, 5)] == ["applied"] * 4
        assert [entries[v]["behind"] for v in (3, 4, 5)] == [0, 0, 0]  # nobody writes versions 2 to 4
        assert env.db.users.count_documents({"schema_version": {"$nin": [1, 5, None]}}) == 0
    assert entries[2]["outcome"] == "applied" and isinstance(entries[2]["behind"], int)  # counted, not a failure
    assert len(entries[2]["behind_ids"]) == min(entries[2]["behind"], 10)  # the first ten named
    assert all(isinstance(i, ObjectId) for i in entries[2]["behind_ids"])
