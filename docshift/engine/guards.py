"""Filters that let a write through only while the document is as docshift read or left it, so that no
application write in between is overwritten; and the whole-document comparison that filters alone cannot make.

A filter of `$eq` per field sees a changed or removed field, not a field someone *added*: MongoDB expresses
"exactly these fields" with `$jsonSchema` (`additionalProperties: false`), FerretDB 1.24 has neither it nor a usable
`$expr` (only `$type` and `$sum`). So writes that must not erase an added field say which fields they expect to be
absent (`as_read_filter`), or are checked against the whole document read back (`same_document`).
"""

import re
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

import bson
from bson.code import Code
from bson.dbref import DBRef
from bson.regex import Regex
from pymongo.collection import Collection

from ..errors import DatabaseError
from ..transform import same


QUALIFIED = (Mapping, DBRef, Regex, re.Pattern, Code)
"""Values a filter must wrap in `$eq` to compare them for equality."""
BARE = frozenset({int, bson.int64.Int64, float, str, bool, list, bytes, datetime, bson.ObjectId})
"""Types that stand for themselves in a filter (checked by exact type first: an isinstance of an ABC costs more)."""


def equals(value: Any) -> Any:
    """A filter's condition that a field equals `value`, in the fewest bytes: the value itself, which MongoDB
    matches exactly as `{$eq: value}` (arrays included); `$eq` only where a bare value would mean something else (an
    embedded document may read as operators, a regex as a pattern, a DBRef as `$ref`). A null matches a missing
    field either way: field_filter adds `$exists`."""
    if type(value) in BARE:
        return value
    return {"$eq": value} if isinstance(value, QUALIFIED) else value


def field_filter(doc: Mapping, absent: Iterable[str] = ()) -> dict:
    """Matches while every field of `doc` (but `_id`) holds its value and the `absent` ones are missing.

    A null value also needs the field to exist (`$eq: null` alone matches a missing field). Each other value is
    compared as itself where that means `$eq` (equals): about 10 bytes less per field, in every guarded update."""
    fields = {k: {"$eq": v, "$exists": True} if v is None else equals(v) for k, v in doc.items() if k != "_id"}
    return {**fields, **{k: {"$exists": False} for k in absent if k not in doc}}


def as_read_filter(doc: Mapping, update: Mapping) -> dict:
    """Matches the document only while it is as read: every field it had, and none of those the update sets that
    it lacked. A field the application adds meanwhile and the update sets is thus never overwritten (the update
    matches nothing and a sweep reads the newer document); one the update leaves alone is kept as it is."""
    return field_filter(doc, absent=update.get("$set", {}))


def same_document(a: Mapping, b: Mapping) -> bool:
    """The same fields with the same values and types, in any order (the server may reorder fields on update)."""
    return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)


def exact_filter(doc: Mapping) -> dict:
    """Matches only a document with exactly `doc`'s fields and values: `field_filter` plus a `$jsonSchema` that
    allows no other field. Only for servers that have `$jsonSchema` (docshift.servers.has_json_schema)."""
    schema = {"required": list(doc), "properties": {k: {} for k in doc}, "additionalProperties": False}
    return {**field_filter(doc), "$jsonSchema": schema}


def write_as_read(coll: Collection, query: dict, change: Callable[[dict], dict | None], attempts: int = 5) -> bool:
    """Read the document, write `change(document)` guarded on it as read; read again if it was written meanwhile.

    False when no document matches `query` (any more) or `change` has nothing to write."""
    for _ in range(attempts):
        current = coll.find_one(query)
        if current is None or (update := change(current)) is None:
            return False
        if coll.update_one({**query, **as_read_filter(current, update)}, update).matched_count:
            return True
    raise DatabaseError(f"document _id={query.get('_id')!r} in {coll.name} was written by someone else each of "
                        f"{attempts} times docshift read it; run the same command again when it is quieter")


def merge_newer(ours: Mapping, written: Mapping, current: Mapping) -> dict:
    """`ours` with what others changed since `written` was stored (fields set, added or removed): a three-way merge
    that keeps their writes."""
    merged = dict(ours)
    merged.update((k, v) for k, v in current.items() if k not in written or not same(written[k], v))
    for k in written:
        if k not in current:
            merged.pop(k, None)
    return merged
