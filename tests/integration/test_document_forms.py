"""Splitting one document into many, as a versioned collection-level step through the CLI on FerretDB: a copy whose
transform returns a list (an unwind) is dropped by `down`, kept in its backup."""

from docshift.dump import RAW
from docshift.engine.operations import actions_in
from tests.support.env import only_migrations
from tests.support.fingerprints import raw_snapshot


def ok(env, *args):
    result = env.cli(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def history(env) -> list[dict]:
    entries = sorted(env.ledger.find({"kind": "history"}), key=lambda e: e["started_at"])
    return [{**e, "actions": actions_in(e)} for e in entries]


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
