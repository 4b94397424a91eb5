"""A `down` gives documents back in their pre-image's key order: "exactly as before" is the bytes, not only the values.

The guarded update of the difference ($set/$unset) keeps the fields it changes in place and appends those it adds, so
a field that `up` renamed would come back at the end. Where the pre-image's order differs from what the update would
leave, the document is replaced whole instead, under the same guard, and with the pre-image's own values wherever the
result equals them (a `down` that gives the pre-image back writes its exact bytes).
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import bson
from pymongo import ReplaceOne, ReturnDocument
from pymongo.collection import Collection

from ..transform import same, update_for
from ..servers import has_json_schema
from .guards import as_read_filter, exact_filter, merge_newer, same_document, write_as_read


COMMAND_LIMIT = 16 * 1024 * 1024 - 16 * 1024
"""Bytes of a filter and a replacement that one command may carry (MongoDB's 16 MB, less room for the rest of it)."""


@dataclass(frozen=True)
class Whole:
    """A document a batch replaces whole: as read, the guarded update it stands for, and what it writes."""

    read: dict
    update: dict
    doc: dict


def in_pre_image_order(new: Mapping, pre_image: Mapping) -> dict:
    """`new` with the pre-image's key order for the keys it has (its other keys after them, in its own order), and the
    pre-image's value for each key whose value is equal to it (nested documents in any key order)."""
    ordered = {k: pre_image[k] if equal_values(new[k], pre_image[k]) else new[k] for k in pre_image if k in new}
    ordered.update((k, v) for k, v in new.items() if k not in ordered)
    return ordered


def equal_values(a: Any, b: Any) -> bool:
    """The same values and types, embedded documents compared in any key order (arrays in theirs)."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(equal_values(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(equal_values(x, y) for x, y in zip(a, b))
    return same(a, b)


def whole_if_reordered(read: dict, update: dict, new: Mapping, pre_image: Mapping) -> Whole | None:
    """The whole document to write where the update would leave keys in another order than the pre-image's (or a
    value of it not byte for byte); None where the update alone gives the document back as before, or where the
    guarded replace could not be sent: its filter holds the document as read and its replacement the new one, in one
    command of at most 16 MB (a document of more than about 8 MB then gets the update, and the order it leaves)."""
    doc = in_pre_image_order(new, pre_image)
    unset = update.get("$unset", {})
    kept = {k: v for k, v in read.items() if k not in unset} | update.get("$set", {})
    if list(doc) == [k for k in read if k not in unset] and all(same(doc[k], kept[k]) for k in doc):
        return None
    if len(bson.encode(read)) + len(bson.encode(doc)) > COMMAND_LIMIT:
        return None
    return Whole(read, update, doc)


def replace_whole(coll: Collection, selector: dict, docs: list[Whole], to_version: int) -> tuple[int, int]:
    """Replace each document by its whole new form while it is as read; how many matched and were changed.

    Where the server filters with `$jsonSchema` (MongoDB), one bulk write whose filters also refuse a field added
    since the read. Elsewhere (FerretDB 1.24) each is replaced filtered on every field read, and the document the
    server replaced is compared with the one read: a field an application added in the moment between is written back
    (guards.merge_newer), so that nothing it wrote is lost."""
    if not docs:
        return 0, 0
    if has_json_schema(coll):
        result = coll.bulk_write([ReplaceOne({"_id": w.read["_id"], **selector, **exact_filter(w.read)}, w.doc)
                                  for w in docs], ordered=False)
        return result.matched_count, result.modified_count
    matched = 0
    for w in docs:
        before = coll.find_one_and_replace({"_id": w.read["_id"], **selector, **as_read_filter(w.read, w.update)}, w.doc,
                                           return_document=ReturnDocument.BEFORE)
        if before is None:
            continue  # written since the read: the step's next sweep reads it again
        matched += 1
        if not same_document(before, w.read):
            write_as_read(coll, {"_id": w.read["_id"]},
                          lambda now, w=w, before=before: update_for(now, merge_newer(w.doc, w.read, before), to_version))
    return matched, matched
