"""`docshift rehearse` (in-process): the real migration on a scratch copy; the source database is never touched."""

from docshift.demo import seed_users
from tests.support.env import scratch_databases
from tests.support.fingerprints import database_snapshot


def test_rehearsal_migrates_a_sample_copy_and_leaves_the_source_alone(env):
    seed_users(env.db, 1000, seed=19)
    assert env.cli("migrate", "2").returncode == 0
    before = database_snapshot(env.db)
    backups = sorted(p.name for p in (env.migrations.parent / "backups").iterdir())

    result = env.cli("rehearse", "--sample", "300", "--batch-size", "100")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "rehearsal on a copy of" in result.stdout and "users: 300" in result.stdout
    rows = [line for line in result.stdout.splitlines() if line.startswith("│ ")]
    assert [r.split("│")[1].strip() + r.split("│")[3].strip() + r.split("│")[9].strip() for r in rows] == [
        "3300passed", "4300passed", "5300passed"]
    assert database_snapshot(env.db) == before
    assert scratch_databases(env) == []
    assert sorted(p.name for p in (env.migrations.parent / "backups").iterdir()) == backups


def test_a_failing_rehearsal_reports_the_failure_and_still_cleans_up(env):
    seed_users(env.db, 500, seed=20)
    before = database_snapshot(env.db)
    env.break_split_name(["user_100"], "rehearsal found")

    result = env.cli("rehearse")

    assert result.returncode == 1
    assert "migration 3 (up) failed and was rolled back" in result.stderr and "rehearsal found user_100" in result.stderr
    assert database_snapshot(env.db) == before
    assert scratch_databases(env) == []
