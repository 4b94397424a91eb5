"""Read-only lookups in other collections, for migration functions that need data besides their own document.

A function with a parameter named `lookup` is given one. It reads the run's own database, through the run's own
connection: the one `--uri`/`--database` chose, and during `docshift rehearse` the scratch copy. It has no way to
write, and it reads only the collections the migration declares in `reads` (which rehearse copies too):

    def up(doc, lookup):
        customer = lookup.find_one("customers", {"_id": doc["customer_id"]})
        doc["customer_name"] = customer["name"] if customer else None
        return doc

    migration = docshift.Migration(..., up=up, down=down, reads={"customers": "customer_id"})

Answers are cached for one batch. A collection declared with a field (`"customers": "customer_id"`) is prefetched:
before each batch, one query reads every customer whose `_id` some document of the batch holds in `customer_id`, so
`find_one(..., {"_id": ...})` costs no round trip per document.
"""

import copy
from collections.abc import Iterable, Mapping
from typing import Any

import bson
from pymongo.database import Database

from . import storage
from .errors import LookupRefused

PREFETCH_CHUNK = 1000
"""`_id`s per prefetch query."""


class Lookup:
    """Finds in the declared collections of one database; no writes, answers are copies."""

    def __init__(self, db: Database, reads: Mapping[str, str | None], owner: str):
        if own := [name for name in reads if storage.is_docshift_collection(name)]:
            raise LookupRefused(f"{owner} declares reads of docshift's own collection(s) {', '.join(own)}: not allowed")
        self._db = db
        self._reads = dict(reads)
        self._owner = owner
        self._cache: dict[tuple, Any] = {}
        self.queries = 0
        """Round trips to the server so far (prefetches included)."""

    def find_one(self, collection: str, filter: Mapping | None = None, projection: Mapping | None = None) -> dict | None:
        """The first document of `collection` matching `filter`, or None."""
        found = self._cached(collection, filter, projection, 1)
        return copy.deepcopy(found[0]) if found else None

    def find(self, collection: str, filter: Mapping | None = None, projection: Mapping | None = None,
             limit: int = 0) -> list[dict]:
        """The documents of `collection` matching `filter` (at most `limit`, 0: all), in `_id` order."""
        return copy.deepcopy(self._cached(collection, filter, projection, limit))

    def count(self, collection: str, filter: Mapping | None = None) -> int:
        key = self._key(collection, filter, None, -1)
        if key not in self._cache:
            self.queries += 1
            self._cache[key] = self._db[collection].count_documents(dict(filter or {}))
        return self._cache[key]

    def new_batch(self, docs: Iterable[Mapping]) -> None:
        """Forget the last batch's answers and prefetch what this batch's documents point at."""
        self._cache.clear()
        docs = list(docs)
        for collection, field in self._reads.items():
            if field:
                self._prefetch(collection, field, docs)

    def _prefetch(self, collection: str, field: str, docs: list[Mapping]) -> None:
        values = {}
        for doc in docs:
            value = _get_path(doc, field)
            if value is not None:
                values.setdefault(bson.encode({"": value}), value)
        ids = list(values.values())
        for start in range(0, len(ids), PREFETCH_CHUNK):
            chunk = ids[start:start + PREFETCH_CHUNK]
            self.queries += 1
            found = {bson.encode({"": d["_id"]}): d for d in self._db[collection].find({"_id": {"$in": chunk}})}
            for value in chunk:
                key = bson.encode({"": value})
                self._cache[self._key(collection, {"_id": value}, None, 1)] = [found[key]] if key in found else []

    def _cached(self, collection: str, filter: Mapping | None, projection: Mapping | None, limit: int) -> list[dict]:
        key = self._key(collection, filter, projection, limit)
        if key not in self._cache:
            self.queries += 1
            cursor = self._db[collection].find(dict(filter or {}), dict(projection) if projection else None)
            self._cache[key] = list(cursor.sort("_id", 1).limit(limit))
        return self._cache[key]

    def _key(self, collection: str, filter, projection, limit: int) -> tuple:
        if collection not in self._reads:
            declared = ", ".join(self._reads) or "none"
            raise LookupRefused(f"{self._owner} looks up collection {collection!r}, which it does not declare: add it to "
                                f"the migration's reads= (declared: {declared})")
        return collection, bson.encode({"f": dict(filter or {}), "p": dict(projection or {}), "l": limit})


def _get_path(doc: Mapping, path: str) -> Any:
    """The value at a dotted path of a document, or None."""
    for part in path.split("."):
        if not isinstance(doc, Mapping):
            return None
        doc = doc.get(part)
    return doc
