"""Fixtures of the fast unit tests: mongomock instead of a server, no Prefect.

Two gaps between mongomock 4.3.0 and what docshift's engine does on a real server are shimmed here, each
with `monkeypatch`, so that they are undone after every test and nothing outside tests/unit sees them.
"""


import random

import bson
import mongomock
import mongomock.collection
import pytest
from bson.raw_bson import RawBSONDocument

from docshift import demo
from docshift.loader import ScriptDirectory
from tests.support.mock_runs import N
from tests.support.paths import SEED_MIGRATIONS


@pytest.fixture
def mongomock_bulk_sort_shim(monkeypatch):
    """Let mongomock's bulk_write accept pymongo >= 4.11's UpdateOne and ReplaceOne.

    Since pymongo 4.11, `UpdateOne._add_to_bulk` and `ReplaceOne._add_to_bulk` always pass a `sort=` keyword
    (the new "sort before updating one" option) to the bulk builder. mongomock 4.3.0's
    `BulkOperationBuilder.add_update`/`add_replace` do not know that keyword and fail with
    `TypeError: add_update() got an unexpected keyword argument 'sort'` (mongomock issue #912).
    docshift never uses that option, so the shim drops `sort` when it is None; a real sort is passed on
    unchanged and still fails loudly, so that no test silently relies on an unsupported feature.
    """
    builder = mongomock.collection.BulkOperationBuilder

    def without_none_sort(original):
        def method(self, *args, **kwargs):
            if "sort" in kwargs and kwargs["sort"] is None:
                del kwargs["sort"]
            return original(self, *args, **kwargs)
        return method

    monkeypatch.setattr(builder, "add_update", without_none_sort(builder.add_update))
    monkeypatch.setattr(builder, "add_replace", without_none_sort(builder.add_replace))


def _plain(document):
    """A RawBSONDocument as the dict it encodes (mongomock only stores mutable mappings)."""
    return bson.decode(document.raw) if isinstance(document, RawBSONDocument) else document


class _RawCursor:
    """A mongomock cursor that yields each document as the BSON bytes a server would send."""

    def __init__(self, cursor):
        self._cursor = cursor

    def sort(self, *args, **kwargs):
        self._cursor.sort(*args, **kwargs)
        return self

    def batch_size(self, *args, **kwargs):
        self._cursor.batch_size(*args, **kwargs)
        return self

    def limit(self, *args, **kwargs):
        self._cursor.limit(*args, **kwargs)
        return self

    def skip(self, *args, **kwargs):
        self._cursor.skip(*args, **kwargs)
        return self

    def __iter__(self):
        return (RawBSONDocument(bson.encode(doc)) for doc in self._cursor)


class _RawCollection:
    """A mongomock collection whose reads return RawBSONDocument; everything else is the collection's own."""

    def __init__(self, collection):
        self._collection = collection

    def find(self, *args, **kwargs):
        return _RawCursor(self._collection.find(*args, **kwargs))

    def find_one(self, *args, **kwargs):
        doc = self._collection.find_one(*args, **kwargs)
        return None if doc is None else RawBSONDocument(bson.encode(doc))

    def __getattr__(self, name):
        return getattr(self._collection, name)


@pytest.fixture
def mongomock_raw_bson_shim(monkeypatch):
    """Let mongomock read and write RawBSONDocument, which the engine uses to keep pre-images byte-exact.

    The engine reads with `collection.with_options(codec_options=CodecOptions(document_class=RawBSONDocument))`
    (BatchCursor, rollback) and writes those raw documents back (insert_many of pre-images, ReplaceOne in
    rollback). mongomock 4.3.0 raises NotImplementedError for any custom `document_class` and refuses to
    insert a RawBSONDocument ("document must be an instance of dict"). The shim returns, for such a
    collection, a proxy whose `find` yields `RawBSONDocument(bson.encode(stored_doc))` - the stored document's
    bytes, in stored key order, as a server would send them - and decodes RawBSONDocuments before mongomock
    stores them. BSON types (int32/int64/double/bool, key order) survive both directions; datetimes come back
    naive UTC, which encodes to the same BSON bytes.
    """
    collection = mongomock.collection.Collection
    builder = mongomock.collection.BulkOperationBuilder
    with_options, insert_one, insert_many = collection.with_options, collection.insert_one, collection.insert_many
    add_replace, add_insert = builder.add_replace, builder.add_insert

    def patched_with_options(self, codec_options=None, **kwargs):
        if codec_options is not None and codec_options.document_class is RawBSONDocument:
            return _RawCollection(with_options(self, **kwargs))
        return with_options(self, codec_options=codec_options, **kwargs)

    def patched_insert_one(self, document, *args, **kwargs):
        return insert_one(self, _plain(document), *args, **kwargs)

    def patched_insert_many(self, documents, *args, **kwargs):
        return insert_many(self, [_plain(d) for d in documents], *args, **kwargs)

    def patched_add_replace(self, selector, doc, *args, **kwargs):
        return add_replace(self, selector, _plain(doc), *args, **kwargs)

    def patched_add_insert(self, doc):
        return add_insert(self, _plain(doc))

    monkeypatch.setattr(collection, "with_options", patched_with_options)
    monkeypatch.setattr(collection, "insert_one", patched_insert_one)
    monkeypatch.setattr(collection, "insert_many", patched_insert_many)
    monkeypatch.setattr(builder, "add_replace", patched_add_replace)
    monkeypatch.setattr(builder, "add_insert", patched_add_insert)


@pytest.fixture
def mock_db(mongomock_bulk_sort_shim, mongomock_raw_bson_shim):
    """A fresh, empty mongomock database (with both shims active)."""
    return mongomock.MongoClient()["t"]


@pytest.fixture(scope="session")
def seed_scripts() -> ScriptDirectory:
    """The project's seed migrations (0002..0005 on `users`), loaded once."""
    return ScriptDirectory.load(SEED_MIGRATIONS)


@pytest.fixture
def empty_project(tmp_path, monkeypatch):
    """An empty folder as the working directory, with no DOCSHIFT_* variable and no command-line flag in force."""
    import os

    from docshift.settings import configure

    for name in [n for n in os.environ if n.startswith("DOCSHIFT_")]:
        monkeypatch.delenv(name)
    configure()
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    configure()


@pytest.fixture
def users(mock_db):
    """N messy demo users at version 1, as stored (in `_id` order)."""
    rng = random.Random(3)
    mock_db.users.insert_many([demo.user(i, rng) for i in range(N)])
    return list(mock_db.users.find().sort("_id", 1))
