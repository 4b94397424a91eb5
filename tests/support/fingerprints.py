"""Comparison helpers shared by the unit and integration tests: docshift.testing's own, the "nothing lost"
fingerprint, and snapshots of a collection or a whole database."""

import hashlib
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import bson
from bson.raw_bson import RawBSONDocument

from docshift.engine.steps import make_step, transform_one
from docshift.dump import RAW
from docshift.loader import ScriptDirectory
from docshift.testing import as_bson, canonical

__all__ = ["as_bson", "by_user", "canonical", "collection_fingerprint", "database_snapshot", "expected_after_all_ups", "fingerprint",
           "raw_snapshot", "snapshot"]


def fingerprint(docs: Iterable, drop: Iterable[str] = (), exact: bool = True) -> Counter:
    """The multiset of (`_id`, sha256 of the document's BSON) that every fault scenario compares: a lost, duplicated
    or changed document changes it. Raw documents count with their exact bytes (field order too) when `exact` and
    nothing is dropped; dicts, and the other raw ones, in canonical form (field order ignored, types kept)."""
    drop = set(drop)
    result: Counter = Counter()
    for doc in docs:
        if isinstance(doc, RawBSONDocument):
            data = doc.raw if exact and not drop else as_bson({k: v for k, v in bson.decode(doc.raw).items() if k not in drop})
        else:
            data = as_bson({k: v for k, v in doc.items() if k not in drop})
        result[(repr(doc["_id"]), hashlib.sha256(data).hexdigest())] += 1
    return result


def collection_fingerprint(collection, drop: Iterable[str] = (), exact: bool = True) -> Counter:
    """A collection's fingerprint, read with the exact bytes the server returns."""
    return fingerprint(collection.with_options(codec_options=RAW).find(), drop, exact)


def expected_after_all_ups(docs: Iterable, migrations: Path, to_version: int | None = None) -> list[dict]:
    """What an uninterrupted run to the latest version (or `to_version`) makes of `docs`: the same functions applied
    in memory (`updated_at` left out: the migrations set it to the time they run)."""
    scripts = ScriptDirectory.load(migrations)
    result = []
    for doc in docs:
        doc = bson.decode(doc.raw) if isinstance(doc, RawBSONDocument) else dict(doc)
        for version in scripts.versions[: None if to_version is None else scripts.versions.index(to_version) + 1]:
            doc = transform_one(scripts.get(version).migration, make_step(scripts, version, "up"), doc, None)
        doc.pop("updated_at")
        result.append(doc)
    return result


def snapshot(collection, drop=()) -> dict:
    """_id -> canonical BSON bytes of each document (fields in `drop` left out)."""
    return {doc["_id"]: bson.encode(canonical({k: v for k, v in doc.items() if k not in drop})) for doc in collection.find()}


def raw_snapshot(collection) -> dict:
    """_id -> the exact BSON bytes the server returns (field order included)."""
    return {doc["_id"]: doc.raw for doc in collection.with_options(codec_options=RAW).find()}


def database_snapshot(db) -> dict:
    """Every collection's exact documents: for asserting that nothing at all was written."""
    return {name: raw_snapshot(db[name]) for name in sorted(db.list_collection_names())}


def by_user(collection, drop=("_id", "updated_at")) -> dict:
    """user_id -> canonical BSON of the document without the fields that differ between two equal runs (fresh
    ObjectIds per seeding, the time `up` ran)."""
    return {d["user_id"]: bson.encode(canonical({k: v for k, v in d.items() if k not in drop})) for d in collection.find()}
