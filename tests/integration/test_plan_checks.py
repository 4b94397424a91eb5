"""What `plan` and the run's pre-flight catch before anything is written (issue 25, item 8): an index of a kind the
server lacks, even in a step whose collection an earlier step of the plan changes, and a value the server refuses
that only some documents get (the shape check of a bounded number of transformed documents)."""

import pytest

from tests.support.env import only_migrations
from tests.support.fingerprints import database_snapshot

pytestmark = pytest.mark.embedded_server("these index kinds and values are refused by FerretDB 1.24; MongoDB has them")


def refused(env, *args):
    result = env.cli(*args)
    assert result.returncode == 1, result.stdout + result.stderr
    [error] = result.stderr.strip().splitlines()
    assert error.startswith("docshift: error: "), error
    return error


ADD_SLUG = """\
migration = docshift.Migration(version=2, description="slugs", collection="products", kind="additive",
                               up=lambda d: {**d, "slug": d["title"].lower()}, down=lambda d: {k: v for k, v in d.items() if k != "slug"})
"""
INDEX = """\
migration = docshift.Migration(version=3, description="search", collection="products", kind="additive",
                               operation=docshift.CreateIndex(keys=[({field!r}, {order!r})]))
"""
KINDS = {"text": ("title", "text", "text indexes (text)"), "2dsphere": ("where", "2dsphere", "2dsphere indexes (2dsphere)"),
         "hashed": ("title", "hashed", "hashed indexes (hashed)"), "wildcard": ("attrs.$**", 1, "wildcard indexes ($**)")}


@pytest.mark.parametrize("kind", list(KINDS))
def test_an_index_kind_the_server_lacks_is_refused_before_any_step_runs(env, kind):
    """Migration 3 indexes the collection migration 2 changes: its data checks wait for its turn, but what the server
    lacks does not depend on the data, so `plan` and `migrate` refuse it before migration 2 writes anything."""
    field, order, named = KINDS[kind]
    only_migrations(env, **{"0002_slug": ADD_SLUG, "0003_index": INDEX.format(field=field, order=order)})
    env.db.products.insert_many([{"_id": i, "title": f"Item {i}", "where": {"type": "Point", "coordinates": [i, 1]},
                                  "attrs": {"size": i}} for i in range(50)])
    untouched = database_snapshot(env.db)

    for command in ("plan", "migrate"):
        error = refused(env, command)
        assert f"migration 3 (up): this server is FerretDB, which has no {named}" in error, error
        assert "nothing was changed" in error, error
        assert database_snapshot(env.db) == untouched  # migration 2 did not run, no history entry


SOME_GRIDS = """\
def up(doc):
    return {**doc, "grid": [[1, 2], [3, 4]] if doc["_id"] == 150 else [1, 2]}

migration = docshift.Migration(version=2, description="grids", collection="products", kind="additive", up=up,
                               down=lambda d: {k: v for k, v in d.items() if k != "grid"})
"""
SOME_PRICES = """\
from bson.decimal128 import Decimal128

def price_of(doc):
    return {"price": {"currency": "EUR", "amount": Decimal128("1.5") if doc["_id"] == 150 else 1.5}}

migration = docshift.Migration(version=2, description="prices apart", collection="products", kind="additive",
                               operation=docshift.CopyDocuments(to="prices", transform=price_of))
"""
ONLY_SOME = {"nested array from up": (SOME_GRIDS, "field 'grid' (list): nested arrays are not supported"),
             "Decimal128 from a copy's transform": (SOME_PRICES, "field 'price.amount' (Decimal128)")}


@pytest.mark.parametrize("case", list(ONLY_SOME))
def test_a_refused_value_only_some_documents_get_is_caught_within_the_bound(env, case):
    """Only document 150 of 200 gets the value: the one-document probe passes it, the shape check of up to
    DOCSHIFT_PLAN_CHECK_DOCUMENTS (1,000) transformed documents names it; with a bound below it, `plan` passes and says
    how many documents it checked."""
    source, named = ONLY_SOME[case]
    only_migrations(env, **{"0002_some": source})
    env.db.products.insert_many([{"_id": i, "title": f"Item {i}"} for i in range(200)])
    untouched = database_snapshot(env.db)

    for command in ("plan", "migrate"):
        error = refused(env, command)
        assert "0002_some.py" in error and "migration 2 up returns a document the server refuses to store" in error, error
        assert named in error and "made from document _id=150" in error and "nothing was changed" in error, error
        assert database_snapshot(env.db) == untouched

    bounded = env.cli("plan", extra={"DOCSHIFT_PLAN_CHECK_DOCUMENTS": "100"})
    assert bounded.returncode == 0, bounded.stdout + bounded.stderr
    assert "checked: 100 documents transformed in memory, none with a value the server refuses" in bounded.stdout
