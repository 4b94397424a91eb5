"""Deleting documents and splitting one document into many, as versioned collection-level steps through the CLI on
FerretDB: the deleted documents are kept in the run's backup first and `down`, a rollback and a killed run's resume
give every byte back; a copy whose transform returns a list (an unwind) is dropped by `down`, kept in its backup."""

from pathlib import Path

from docshift import dump
from docshift.dump import RAW
from docshift.engine.operations import actions_in
from tests.support.env import only_migrations
from tests.support.fingerprints import raw_snapshot

DELETE_EXPIRED = """\
migration = docshift.Migration(version=2, description="Expired sessions go", collection="sessions",
                               operation=docshift.DeleteDocuments(filter={"expired": True}))
"""
FAIL_AFTER_ACTION = {"DOCSHIFT_FAULT": "operation-done:1:raise"}
KILL_AFTER_SECOND_BATCH = {"DOCSHIFT_FAULT": "batch-written:2", "DOCSHIFT_LOCK_LEASE_SECONDS": "2",
                           "DOCSHIFT_BATCH_SIZE": "40"}


def ok(env, *args, extra=None):
    result = env.run(*args, extra=extra) if extra else env.cli(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def history(env) -> list[dict]:
    entries = sorted(env.ledger.find({"kind": "history"}), key=lambda e: e["started_at"])
    return [{**e, "actions": actions_in(e)} for e in entries]


def sessions(env, n=300) -> dict:
    env.db.sessions.insert_many([{"_id": i, "user": f"u{i % 17}", "expired": i % 3 == 0, "data": {"n": i, "tags": ["a"]}}
                                 for i in range(n)] + [{"_id": "odd", "expired": True, "note": None}])
    env.db.sessions.create_index("user")
    return raw_snapshot(env.db.sessions)


def test_deleted_documents_are_kept_first_and_down_and_rollback_give_them_back_byte_for_byte(env):
    only_migrations(env, **{"0002_delete_expired": DELETE_EXPIRED})
    before = sessions(env)
    expired = {k: v for k, v in before.items() if k == "odd" or k % 3 == 0}

    plan = ok(env, "plan").stdout
    assert "delete the documents matching {'expired': True} of sessions (kept in the run's backup)" in plan
    ok(env, "migrate")

    assert raw_snapshot(env.db.sessions) == {k: v for k, v in before.items() if k not in expired}
    [entry] = history(env)
    action = entry["actions"][0]
    assert (action["deleted"], action["kept"]) == (len(expired), len(expired))
    assert raw_snapshot(env.db[action["kept_as"]]) == expired  # the run's backup: every deleted document's bytes
    backup = env.db["_backups"].find_one({"_id": entry["_id"]})
    assert dump.file_sha256(Path(backup["path"])) == backup["sha256"] and backup["documents"] == len(expired)
    assert {d["_id"]: d.raw for d in dump.read(Path(backup["path"]))} == expired
    assert "user_1" in env.db.sessions.index_information()  # the collection and its indexes stay

    ok(env, "migrate", "1")
    assert raw_snapshot(env.db.sessions) == before

    ok(env, "migrate")
    ok(env, "rollback", "--run", history(env)[-1]["_id"])
    assert raw_snapshot(env.db.sessions) == before


def test_a_failed_delete_is_rolled_back_and_a_killed_one_resumes_with_nothing_lost(env):
    only_migrations(env, **{"0002_delete_expired": DELETE_EXPIRED})
    before = sessions(env)

    failed = env.run("migrate", extra=FAIL_AFTER_ACTION)
    assert failed.returncode == 1 and "rolled back (101 documents restored" in failed.stderr, failed.stdout + failed.stderr
    assert raw_snapshot(env.db.sessions) == before

    killed = env.run("migrate", extra=KILL_AFTER_SECOND_BATCH)  # after two batches were kept and deleted
    assert killed.returncode != 0
    assert 0 < len(raw_snapshot(env.db.sessions)) < len(before) - 30
    env.expire_lease()
    ok(env, "migrate")  # resumes from its checkpoint
    assert env.db.sessions.count_documents({"expired": True}) == 0
    assert history(env)[-1]["resumed"] == 1

    ok(env, "migrate", "1")
    assert raw_snapshot(env.db.sessions) == before


def raw_documents(coll) -> list[bytes]:
    """A collection's exact documents, sorted (their `_id`s are embedded documents: no snapshot keyed by them)."""
    return sorted(d.raw for d in coll.with_options(codec_options=RAW).find())


UNWIND_LINES = """\
def lines(order):
    return [{"_id": {"order": order["_id"], "line": i}, "sku": line["sku"], "qty": line["qty"]}
            for i, line in enumerate(order["lines"])]

migration = docshift.Migration(version=2, description="order lines in their own collection", collection="orders",
                               operation=docshift.CopyDocuments(to="order_lines", transform=lines))
"""


def test_a_copy_whose_transform_returns_a_list_unwinds_and_down_drops_it_into_its_backup(env):
    env.db.orders.insert_many([{"_id": i, "lines": [{"sku": f"S{j}", "qty": j + 1} for j in range(i % 4)]}
                               for i in range(120)])
    before = raw_snapshot(env.db.orders)
    only_migrations(env, **{"0002_lines": UNWIND_LINES.replace('"_id": {"order": order["_id"], "line": i}, ', "")})
    refused = env.cli("plan")
    assert refused.returncode == 1 and "has no _id: each of several copies" in refused.stderr, refused.stderr

    only_migrations(env, **{"0002_lines": UNWIND_LINES})
    assert "copied as {'_id': {'order': 1, 'line': 0}, 'sku': 'S0', 'qty': 1}" in ok(env, "plan").stdout
    ok(env, "migrate")
    lines = raw_documents(env.db.order_lines)
    assert len(lines) == sum(i % 4 for i in range(120)) and raw_snapshot(env.db.orders) == before
    assert env.db.order_lines.find_one({"_id": {"order": 7, "line": 2}}) == {"_id": {"order": 7, "line": 2}, "sku": "S2", "qty": 3}
    assert history(env)[0]["actions"][0]["copied"] == len(lines)

    ok(env, "migrate", "1")
    assert "order_lines" not in env.db.list_collection_names() and raw_snapshot(env.db.orders) == before
    kept = env.db[history(env)[-1]["actions"][0]["kept_as"]]
    assert raw_documents(kept) == lines  # the dropped copy, in the down's backup

    ok(env, "migrate")
    ok(env, "rollback", "--run", history(env)[-1]["_id"])
    assert "order_lines" not in env.db.list_collection_names() and raw_snapshot(env.db.orders) == before
