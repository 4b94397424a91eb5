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
