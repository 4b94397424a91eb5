"""A migration declared as an update (`Migration(update=..., filter=...)`): the update document checked, and applied
to one document in Python as the server applies it, so that every per-document path (the run's per-document pass,
plans, docshift.compat, docshift.testing, `down`) makes of a document what an `updateMany` would.

Supported: `$set` (top-level or dotted paths into embedded documents), `$unset`, `$rename` (top-level names), `$inc`,
`$currentDate` (a date, from the client's clock, in milliseconds); a filter of field equality, `$eq`, `$ne`, `$in`,
`$nin`, `$gt`, `$gte`, `$lt`, `$lte`, `$exists`, `$and`, `$or`, `$nor`. A document the filter does not match is left
as it is (its `schema_version` still moves). Anything else is refused when the file is loaded, with what to write
instead: an update pipeline (`"$createdOn"` as a field reference) would be stored as a literal string.
"""

import datetime
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import bson
from bson.int64 import Int64
from bson.regex import Regex

OPERATORS = ("$set", "$unset", "$rename", "$inc", "$currentDate")
FILTER_OPERATORS = ("$eq", "$ne", "$in", "$nin", "$gt", "$gte", "$lt", "$lte", "$exists")
LOGICAL = ("$and", "$or", "$nor")
RESERVED = ("_id", "schema_version")
FUNCTIONS = "write up/down functions for this instead"


def now_ms() -> datetime.datetime:
    """The client's clock as BSON stores a date: UTC, naive, whole milliseconds."""
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


@dataclass(frozen=True, eq=False)  # hashed by identity: functions are cached by it (transform._takes_lookup)
class DeclaredUpdate:
    """The checked update document and filter of a migration."""

    ops: dict
    filter: dict

    @property
    def paths(self) -> list[str]:
        """Every field path the update writes or removes (a rename: both names)."""
        paths = [p for op in ("$set", "$unset", "$inc", "$currentDate") for p in self.ops.get(op, {})]
        return paths + [n for pair in self.ops.get("$rename", {}).items() for n in pair]

    @property
    def touched(self) -> tuple[str, ...]:
        """The top-level fields the update may change: a document lacking all of them gets back exactly by removing
        what the update created (see created), so it needs no pre-image."""
        return tuple(dict.fromkeys(p.split(".")[0] for p in self.paths))

    @property
    def creates(self) -> tuple[str, ...]:
        """The top-level fields the update creates on a document that lacks them."""
        return tuple(dict.fromkeys(p.split(".")[0] for op in ("$set", "$inc", "$currentDate") for p in self.ops.get(op, {})))

    def created(self) -> dict:
        """What the update makes of a document lacking every touched field: the top-level values it sets."""
        return apply_ops(self.ops, {})

    def __call__(self, doc: dict) -> dict:
        """`up`: the document as `updateMany(filter, update)` leaves it."""
        return apply_ops(self.ops, doc) if matches(doc, self.filter) else doc


@dataclass(frozen=True, eq=False)
class UndoUpdate:
    """`down` of a migration declared as an update: each touched field as the pre-image had it (set, or removed when
    it lacked it). Without a pre-image (a document that lacked every touched field, so none was kept, or one written at
    the new version since), the created fields are removed and a renamed field gets its old name back."""

    update: DeclaredUpdate

    def __call__(self, doc: dict, pre_image: dict | None) -> dict:
        if pre_image is not None:
            for name in self.update.touched:
                if name in pre_image:
                    doc[name] = pre_image[name]
                else:
                    doc.pop(name, None)
            return doc
        for name in self.update.creates:
            doc.pop(name, None)
        for old, new in self.update.ops.get("$rename", {}).items():
            if new in doc and old not in doc:
                doc[old] = doc.pop(new)
        return doc


# --- applying -------------------------------------------------------------------------------------------------------


def apply_ops(ops: Mapping, doc: dict) -> dict:
    """The update's operators applied to `doc` (changed in place and returned); a value the server would refuse to
    update (`$inc` of a string, `$set` through a number) raises TypeError, which quarantines the document."""
    for path, value in ops.get("$set", {}).items():
        parent, name = container(doc, path, create=True)
        parent[name] = bson.decode(bson.encode({"v": value}))["v"]  # a fresh copy, as BSON stores it
    for path in ops.get("$unset", {}):
        parent, name = container(doc, path, create=False)
        if parent is not None:
            parent.pop(name, None)
    for old, new in ops.get("$rename", {}).items():
        if old in doc:
            value = doc.pop(old)
            doc.pop(new, None)
            doc[new] = value
    for path, amount in ops.get("$inc", {}).items():
        parent, name = container(doc, path, create=True)
        parent[name] = added(parent[name], amount, path) if name in parent else amount
    if ops.get("$currentDate"):
        when = now_ms()
        for path in ops["$currentDate"]:
            parent, name = container(doc, path, create=True)
            parent[name] = when
    return doc


def container(doc: dict, path: str, create: bool) -> tuple[dict | None, str]:
    """The embedded document holding the last name of `path`, and that name; embedded documents on the way are
    created (`create`) or the answer is None when one is missing."""
    *parents, name = path.split(".")
    here = doc
    for part in parents:
        if part not in here and create:
            here[part] = {}
        if part not in here:
            return None, name
        if not isinstance(here[part], dict):
            if not create:
                return None, name
            raise TypeError(f"cannot write {path}: {part} holds {type(here[part]).__name__}, not an embedded document")
        here = here[part]
    return here, name


def added(value: Any, amount: Any, path: str) -> Any:
    """`$inc`: the sum with the server's types (an int32 sum too big becomes int64; a double makes a double)."""
    if not is_number(value):
        raise TypeError(f"cannot $inc {path}: it holds {type(value).__name__}, not a number")
    total = value + amount
    if isinstance(total, float):
        return total
    return Int64(total) if isinstance(value, Int64) or isinstance(amount, Int64) else total


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# --- matching -------------------------------------------------------------------------------------------------------


def matches(doc: Mapping, query: Mapping) -> bool:
    """Whether the filter matches the document, as the server's query would (the supported operators only)."""
    for key, cond in query.items():
        if key == "$and" and not all(matches(doc, q) for q in cond):
            return False
        if key == "$or" and not any(matches(doc, q) for q in cond):
            return False
        if key == "$nor" and any(matches(doc, q) for q in cond):
            return False
        if key in LOGICAL:
            continue
        values = values_at(doc, key.split("."))
        conditions = cond.items() if is_operators(cond) else [("$eq", cond)]
        if not all(holds(values, op, arg) for op, arg in conditions):
            return False
    return True


def is_operators(cond: Any) -> bool:
    return isinstance(cond, Mapping) and bool(cond) and all(str(k).startswith("$") for k in cond)


def values_at(value: Any, parts: list[str]) -> list:
    """The values a query compares at a path: the field's value, and each element of an array there (an array on the
    way is looked into element by element); empty when the field is missing."""
    if not parts:
        return [value, *value] if isinstance(value, list) else [value]
    if isinstance(value, Mapping):
        return values_at(value[parts[0]], parts[1:]) if parts[0] in value else []
    if isinstance(value, list):
        return [v for element in value if isinstance(element, Mapping) for v in values_at(element, parts)]
    return []


def holds(values: list, op: str, arg: Any) -> bool:
    if op == "$exists":
        return bool(values) == bool(arg)
    if op == "$eq":
        return (arg is None and not values) or any(equal(v, arg) for v in values)
    if op == "$ne":
        return not holds(values, "$eq", arg)
    if op == "$in":
        return any(holds(values, "$eq", a) for a in arg)
    if op == "$nin":
        return not holds(values, "$in", arg)
    if arg is None:  # $gte/$lte null match null and missing; $gt/$lt null nothing
        return op in ("$gte", "$lte") and holds(values, "$eq", None)
    return any(compare(v, arg, op) for v in values)


def bracket(value: Any) -> Any:
    """Values of one bracket compare with each other (numbers of any type with numbers)."""
    return "number" if is_number(value) else type(value)


def equal(a: Any, b: Any) -> bool:
    """BSON equality: numbers by value whatever their type, documents field by field in order, arrays element-wise."""
    if bracket(a) != bracket(b):
        return False
    if isinstance(a, Mapping):
        return list(a) == list(b) and all(equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b))
    return a == b


def compare(value: Any, arg: Any, op: str) -> bool:
    if bracket(value) != bracket(arg) or isinstance(value, (Mapping, list)):
        return False
    return {"$gt": value > arg, "$gte": value >= arg, "$lt": value < arg, "$lte": value <= arg}[op]


# --- checking -------------------------------------------------------------------------------------------------------


def check_update(update: Any, query: Any = None) -> DeclaredUpdate:
    """The update document and filter, checked: what docshift applies on the server and per document alike."""
    if isinstance(update, list):
        raise ValueError(f"update is a pipeline (a list of stages): docshift runs update documents only, on every "
                         f"server; {FUNCTIONS}")
    if not isinstance(update, dict) or not update or any(op not in OPERATORS for op in update):
        raise ValueError(f"update must be an update document of {', '.join(OPERATORS)} "
                         f"(e.g. {{\"$set\": {{field: value}}}}); {FUNCTIONS}")
    for op, fields in update.items():
        if not isinstance(fields, dict) or not fields:
            raise ValueError(f"update's {op} must be a non-empty document of fields")
        for path, value in fields.items():
            check_path(op, path, top_level=op == "$rename")
            CHECKS[op](path, value)
    paths = DeclaredUpdate(update, {}).paths
    for i, a in enumerate(paths):
        for b in paths[i + 1:]:
            if a == b or a.startswith(b + ".") or b.startswith(a + "."):
                raise ValueError(f"update writes both {a} and {b}: they conflict (MongoDB refuses such an update)")
    return DeclaredUpdate(update, check_filter(query or {}))


def check_path(op: str, path: Any, top_level: bool) -> None:
    parts = path.split(".") if isinstance(path, str) else [""]
    if not all(parts) or any(p.startswith("$") or p.isdigit() for p in parts) or parts[0] in RESERVED \
            or (top_level and len(parts) > 1):
        shape = "a top-level field name" if top_level else "a field name or a dotted path into embedded documents"
        raise ValueError(f"update's {op} names {path!r}: it must be {shape}, other than _id and schema_version, "
                         f"without a leading $ or array positions; {FUNCTIONS}")


def _check_set(path: str, value: Any) -> None:
    try:
        bson.encode({"v": value})
    except Exception as exc:
        raise ValueError(f"update sets {path!r} to a value that is not BSON: {exc}") from exc
    if (ref := dollar_string(value)) is not None:
        raise ValueError(f"update sets {path!r} to {ref!r}, which MongoDB would store as that literal string: a field "
                         f"reference needs an update pipeline, which docshift does not run; "
                         f"{FUNCTIONS} (e.g. up: doc[{path!r}] = doc.get({ref[1:]!r}))")


def dollar_string(value: Any) -> str | None:
    """A `$`-prefixed string or key in a value: a pipeline's field reference or expression written as a constant."""
    if isinstance(value, str) and value.startswith("$"):
        return value
    items = value.items() if isinstance(value, Mapping) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        if isinstance(key, str) and key.startswith("$"):
            return key
        if (found := dollar_string(item)) is not None:
            return found
    return None


def _check_unset(path: str, value: Any) -> None:
    return None


def _check_rename(path: str, value: Any) -> None:
    check_path("$rename", value, top_level=True)
    if value == path:
        raise ValueError(f"update's $rename renames {path!r} to itself")


def _check_inc(path: str, value: Any) -> None:
    if not is_number(value):
        raise ValueError(f"update's $inc of {path!r} must be a number, not {value!r}")


def _check_current_date(path: str, value: Any) -> None:
    if value is not True and value != {"$type": "date"}:
        raise ValueError(f"update's $currentDate of {path!r} must be true or {{\"$type\": \"date\"}} (a timestamp is "
                         f"not supported); {FUNCTIONS}")


CHECKS = {"$set": _check_set, "$unset": _check_unset, "$rename": _check_rename, "$inc": _check_inc,
          "$currentDate": _check_current_date}


def check_filter(query: Any) -> dict:
    """A filter docshift can evaluate per document exactly as the server does, or a ValueError naming what is not."""
    if not isinstance(query, dict):
        raise ValueError(f"filter must be a query document, not {type(query).__name__}")
    for key, cond in query.items():
        if key in LOGICAL:
            if not isinstance(cond, list) or not cond:
                raise ValueError(f"filter's {key} must be a non-empty list of query documents")
            for q in cond:
                check_filter(q)
            continue
        if not isinstance(key, str) or not key or key.startswith("$"):
            raise ValueError(f"filter uses {key!r}, which docshift cannot evaluate per document; supported: field "
                             f"conditions with {', '.join(FILTER_OPERATORS)}, and {', '.join(LOGICAL)}; {FUNCTIONS}")
        for op, arg in (cond.items() if is_operators(cond) else [("$eq", cond)]):
            if op not in FILTER_OPERATORS or (op in ("$in", "$nin") and not isinstance(arg, list)):
                raise ValueError(f"filter's condition on {key!r} uses {op}, which docshift cannot evaluate per "
                                 f"document; supported: {', '.join(FILTER_OPERATORS)} ($in and $nin with a list); "
                                 f"{FUNCTIONS}")
            values = arg if isinstance(arg, list) else [arg]
            if any(isinstance(a, (Regex, re.Pattern)) for a in values) or dollar_string(arg):
                raise ValueError(f"filter's condition on {key!r} holds {arg!r}: regular expressions and operators "
                                 f"inside values are not supported; {FUNCTIONS}")
    try:
        bson.encode(query)
    except Exception as exc:
        raise ValueError(f"filter is not BSON: {exc}") from exc
    return query
