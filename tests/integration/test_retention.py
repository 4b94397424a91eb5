"""`docshift backups prune` and pruning after successful runs, on FerretDB: what a `down`, `rollback --run` or an
unfinished run needs survives, and the downs still give back every document exactly."""

import re

from docshift.demo import seed_users
from tests.support.fingerprints import database_snapshot, snapshot


def ok(env, *args, extra=None):
    result = env.cli(*args, extra=extra)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def runs(env) -> list[str]:
    return [e["_id"] for e in sorted(env.ledger.find({"kind": "history"}), key=lambda e: e["started_at"])]


def backup_collections(env) -> set[str]:
    return {n for n in env.db.list_collection_names() if n.startswith("_docshift_backup.")}


def test_pruning_keeps_what_downs_and_rollback_need_and_the_downs_still_restore_everything(env):
    seed_users(env.db, 300, seed=31)
    original = snapshot(env.db.users)  # fields, values and types (a down may order fields anew)
    ok(env, "migrate", "3")
    ok(env, "migrate", "2")
    up2, up3, down3 = runs(env)
    files = env.migrations.parent / "backups"
    untouched, folders = database_snapshot(env.db), sorted(p.name for p in files.iterdir())

    preview = ok(env, "backups", "prune", "--keep-last", "0", "--dry-run")

    assert re.search(rf"would prune +{up3}  migration 3 up: 600 documents, [\d.]+ kB in the database, [\d.]+ kB of files", preview)
    assert re.search(rf"kept +{up2}  migration 2 up: a `down` of migration 2 needs it", preview)
    assert re.search(rf"kept +{down3}  migration 3 down: the latest finished run: `docshift rollback --run` needs it", preview)
    assert "backups: would prune 1 (" in preview
    assert database_snapshot(env.db) == untouched and sorted(p.name for p in files.iterdir()) == folders

    report = ok(env, "migrate", "3", extra={"DOCSHIFT_PRUNE_KEEP_LAST": "0"})  # the setting: pruned after the run

    up3_again = runs(env)[-1]
    assert "backups: pruned 2 (" in report and "kept 2" in report
    assert backup_collections(env) == {f"_docshift_backup.{r}{s}" for r in (up2, up3_again) for s in ("", ".changes")}
    assert sorted(p.name for p in files.iterdir()) == sorted([up2, up3_again])
    assert env.ledger.find_one({"_id": up3})["backup_pruned_at"]

    again = ok(env, "backups", "prune", "--keep-last", "0")
    assert "backups: pruned 0 (0 documents" in again
    assert re.search(rf"kept +{up3_again}  migration 3 up: a `down` of migration 3 needs it", again)

    ok(env, "migrate", "1")  # every down finds its pre-images
    assert snapshot(env.db.users) == original


def test_prune_refuses_without_a_rule_and_reads_ages(env):
    seed_users(env.db, 50, seed=32)
    ok(env, "migrate", "2")
    refused = env.cli("backups", "prune")
    assert refused.returncode == 1 and "say what to prune" in refused.stderr
    bad = env.cli("backups", "prune", "--older-than", "a month")
    assert bad.returncode == 1 and "e.g. 30d" in bad.stderr
    kept = ok(env, "backups", "prune", "--older-than", "30d")
    assert "backups: pruned 0" in kept and "a `down` of migration 2 needs it" in kept
