"""Applying a migration function to one document and turning the result into a minimal update."""

import copy
import functools
from collections.abc import Callable, Mapping
from typing import Any

import bson

from .errors import LookupRefused, TransformError
from .spec import INITIAL_VERSION, takes_lookup

VERSION_FIELD = "schema_version"


def version_filter(version: int) -> dict:
    """Selects documents at `version`; the initial version also matches a missing or null field."""
    if version == INITIAL_VERSION:
        return {VERSION_FIELD: {"$in": [None, INITIAL_VERSION]}}
    return {VERSION_FIELD: version}


def versions_filter(versions: list[int]) -> dict:
    """Selects documents at any of `versions`."""
    values: list[Any] = sorted(set(versions))
    if INITIAL_VERSION in values:
        values.append(None)
    return {VERSION_FIELD: {"$in": values}}


def apply(fn: Callable, doc: Mapping, *extra, label: str, lookup=None, private: dict | None = None) -> dict:
    """`fn(doc, *extra)` on a private copy, checked to return a document with the same `_id`; a function with a
    `lookup` parameter is given `lookup`.

    `private`: a copy of `doc` that the caller made for the function (a batch decodes the raw BSON it read a second
    time, several times cheaper than a deep copy); by default a deep copy."""
    result = call(fn, doc, *extra, label=label, lookup=lookup, private=private)
    if not isinstance(result, Mapping):
        raise TransformError(f"{label} returned {type(result).__name__}, not a document (document _id={doc.get('_id')!r})")
    if "_id" not in result or not same(result["_id"], doc.get("_id")):
        raise TransformError(f"{label} removed or changed _id (document _id={doc.get('_id')!r})")
    check_field_names(result, label, doc.get("_id"))
    return dict(result)


def call(fn: Callable, doc: Mapping, *extra, label: str, lookup=None, private: dict | None = None) -> Any:
    """`fn(doc, *extra)` on a private copy (`private`, or a deep copy; with `lookup=` when it takes one); what it
    raises becomes a TransformError, but for a lookup it was refused (a mistake in the migration file, not in the
    document)."""
    try:
        return fn(copy.deepcopy(dict(doc)) if private is None else private, *extra,
                  **({"lookup": lookup} if _takes_lookup(fn) else {}))
    except LookupRefused:
        raise
    except Exception as exc:
        raise TransformError(f"{label} raised {type(exc).__name__}: {exc} (document _id={doc.get('_id')!r})") from exc


@functools.lru_cache(maxsize=256)
def _takes_lookup(fn: Callable) -> bool:
    return takes_lookup(fn)


def check_field_names(result: Mapping, label: str, doc_id: Any) -> None:
    """Refuse a top-level field name that an update would read as a path (`a.b`) or an operator (`$x`)."""
    for key in result:
        if not isinstance(key, str) or "." in key or key.startswith("$"):
            raise TransformError(f"{label} returned the field name {key!r}, which MongoDB cannot store as one field "
                                 f"(document _id={doc_id!r})")


def same(a: Any, b: Any) -> bool:
    """Equal as BSON values: the same type and value (1, 1.0 and True are three different values)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (dict, list)):
        return bson.encode({"v": a}) == bson.encode({"v": b})
    return a == b


def update_for(old: Mapping, new: Mapping, to_version: int) -> dict | None:
    """The $set/$unset that turns `old` into `new` at `to_version`, or None when nothing changes."""
    new = dict(new)
    new.pop(VERSION_FIELD, None)
    to_set = {k: v for k, v in new.items() if k != "_id" and (k not in old or not same(old[k], v))}
    to_unset = {k: "" for k in old if k not in new and k not in ("_id", VERSION_FIELD)}
    if to_version == INITIAL_VERSION:
        if VERSION_FIELD in old:
            to_unset[VERSION_FIELD] = ""
    elif not same(old.get(VERSION_FIELD), to_version):
        to_set[VERSION_FIELD] = to_version
    update = {}
    if to_set:
        update["$set"] = to_set
    if to_unset:
        update["$unset"] = to_unset
    return update or None


def restore_from(doc: dict, pre_image: Mapping | None, *fields: str) -> dict:
    """Give `fields` back as the pre-image had them (set, or removed when it lacked them); without one, leave them."""
    if pre_image is not None:
        for name in fields:
            if name in pre_image:
                doc[name] = pre_image[name]
            else:
                doc.pop(name, None)
    return doc
