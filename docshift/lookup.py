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
`find_one(..., {"_id": ...})` costs no round trip per document. A collection declared with `Prefetch(key=...)` is
prefetched by another key: `reads={"orders": Prefetch(key="user_id")}` reads, before each batch, every order whose
`user_id` is the `_id` of a document of the batch (`field=` names another field of the migrated document), so
`find`, `find_one` and `count` of `{"user_id": value}` cost no round trip per document; with `counts=True` only
the orders' `user_id`s are read, for `count`.
"""

import copy
from collections.abc import Iterable, Mapping
from typing import Any

import bson
from pydantic import BaseModel, ConfigDict
from pymongo.database import Database

from . import storage
from .errors import LookupRefused

PREFETCH_CHUNK = 1000
"""`_id`s per prefetch query."""


class Prefetch(BaseModel):
    """How a declared collection is read ahead per batch: its documents whose `key` equals the value at `field` of a
    document of the batch (all of them, or with `counts` only their number per value, for `lookup.count`)."""

    model_config = ConfigDict(frozen=True)

    key: str
    field: str = "_id"
    counts: bool = False


def match_key(value: Any) -> tuple:
    """What `{key: value}` compares on the server, as a dict key: numbers by value (1, 1.0 and Int64(1) are equal
    there, as in Python), a bool apart from 1 and 0, anything else by its BSON."""
    if isinstance(value, bool):
        return "bool", value
    if isinstance(value, (int, float)):
        return "number", value
    return "bson", bson.encode({"": value})


class Lookup:
    """Finds in the declared collections of one database; no writes, answers are copies."""

    def __init__(self, db: Database, reads: Mapping[str, "str | Prefetch | None"], owner: str):
        if own := [name for name in reads if storage.is_docshift_collection(name)]:
            raise LookupRefused(f"{owner} declares reads of docshift's own collection(s) {', '.join(own)}: not allowed")
        self._db = db
        self._reads = dict(reads)
        self._owner = owner
        self._cache: dict[tuple, Any] = {}
        self._groups: dict[str, dict[tuple, list]] = {}
        """Per collection prefetched by a key: match_key(value) -> its documents in `_id` order (or [count])."""
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
        if (group := self._group(collection, filter, None)) is not None:
            spec = self._reads[collection]
            return group[0] if spec.counts else len(group)
        key = self._key(collection, filter, None, -1)
        if key not in self._cache:
            self.queries += 1
            self._cache[key] = self._db[collection].count_documents(dict(filter or {}))
        return self._cache[key]

    def new_batch(self, docs: Iterable[Mapping]) -> None:
        """Forget the last batch's answers and prefetch what this batch's documents point at."""
        self._cache.clear()
        self._groups.clear()
        docs = list(docs)
        for collection, field in self._reads.items():
            if isinstance(field, Prefetch):
                self._prefetch_by_key(collection, field, docs)
            elif field:
                self._prefetch(collection, field, docs)

    def _prefetch_by_key(self, collection: str, spec: Prefetch, docs: list[Mapping]) -> None:
        """One query per chunk of values: the documents whose `spec.key` is one of them, grouped by value (a value
        held in an array counts for each of its elements, as `{key: value}` matches them on the server)."""
        values = {}
        for doc in docs:
            value = _get_path(doc, spec.field)
            if value is not None:
                values.setdefault(match_key(value), value)
        groups: dict[tuple, list] = {k: [0] if spec.counts else [] for k in values}
        values_list = list(values.values())
        for start in range(0, len(values_list), PREFETCH_CHUNK):
            self.queries += 1
            query = {spec.key: {"$in": values_list[start:start + PREFETCH_CHUNK]}}
            for found in self._db[collection].find(query, {spec.key: 1} if spec.counts else None).sort("_id", 1):
                held = _get_path(found, spec.key)
                for k in {match_key(v) for v in (held if isinstance(held, list) else [held])} & groups.keys():
                    if spec.counts:
                        groups[k][0] += 1
                    else:
                        groups[k].append(found)
        self._groups[collection] = groups

    def _group(self, collection: str, filter: Mapping | None, projection: Mapping | None) -> list | None:
        """The prefetched answer for `{key: value}` (no projection), or None when the filter is another one."""
        spec, groups = self._reads.get(collection), self._groups.get(collection)
        if groups is None or projection or not filter or len(filter) != 1 or spec.key not in filter:
            return None
        value = filter[spec.key]
        if isinstance(value, Mapping) and any(str(k).startswith("$") for k in value):
            return None  # an operator, not a value
        return groups.get(match_key(value))

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
        if (group := self._group(collection, filter, projection)) is not None and not self._reads[collection].counts:
            return group[:limit] if limit else group
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
