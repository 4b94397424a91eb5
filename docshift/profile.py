"""What a collection's documents look like, field by field: the counting behind `docshift inspect`.

A Profiler takes documents one at a time and keeps only counters per field path and capped sets of examples and
distinct values, so its memory depends on how many paths the documents have, never on how many documents it saw.
Nothing here reads a database (docshift.sampling does) or imports Prefect (the `inspect` flow shows the result).
"""

import datetime
import re
from collections import Counter

import bson
from bson import Binary, Code, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp
from pydantic import BaseModel, ValidationError

from .transform import VERSION_FIELD

EXAMPLES = 3
"""Example values kept per field path."""
DISTINCT_LIMIT = 20
"""Distinct values counted per field path; beyond it the path says "more than 20"."""
FAILURE_IDS = 5
"""Example `_id`s kept per group of validation errors."""
SHOWN = 40
"""Characters of an example value shown."""
SECRET = re.compile(r"pass(word|wd)?|secret|token|key|credential|auth|salt|hash|private|otp|ssn", re.IGNORECASE)
"""Field names whose values are never shown (examples and distinct values)."""
REDACTED = "***"
INT32 = range(-2**31, 2**31)


KINDS: dict[type, str] = {
    str: "string", float: "double", bool: "bool", dict: "object", list: "array", type(None): "null", Int64: "long",
    ObjectId: "objectId", datetime.datetime: "date", bytes: "binData", Binary: "binData", Decimal128: "decimal",
    Regex: "regex", re.Pattern: "regex", Timestamp: "timestamp", Code: "javascript", MinKey: "minKey", MaxKey: "maxKey"}
"""The BSON type name of each type pymongo decodes to: one dict lookup per value (subclasses take bson_type's loop)."""
HASHED = frozenset({"string", "int", "long", "bool", "null", "objectId", "date"})
"""Types whose values are their own distinct key (with the type name: 1, 1.0 and True are three values in BSON)."""


def bson_type(value) -> str:
    """The BSON type name of a decoded value, as MongoDB's `$type` names it."""
    kind = KINDS.get(type(value))
    if kind is not None:
        return kind
    if type(value) is int:
        return "int" if value in INT32 else "long"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, Int64):
        return "long"
    if isinstance(value, int):
        return "int" if value in INT32 else "long"
    for kind, name in ((float, "double"), (str, "string"), (dict, "object"), (list, "array"), (ObjectId, "objectId"),
                       (datetime.datetime, "date"), ((Binary, bytes), "binData"), (Decimal128, "decimal"),
                       ((Regex, re.Pattern), "regex"), (Timestamp, "timestamp"), (Code, "javascript"),
                       (MinKey, "minKey"), (MaxKey, "maxKey")):
        if isinstance(value, kind):
            return name
    return type(value).__name__


def distinct_key(value, kind: str):
    """A value as one distinct value: as BSON has it, so 0.0 and -0.0 differ and a NaN equals itself."""
    if kind in HASHED:
        return kind, value
    if kind == "double":
        return kind, value.hex()
    return kind, bson.encode({"v": value})


def looks_secret(path: str) -> bool:
    """Whether any part of a field path is named like a secret (password, token, api_key, ...)."""
    return any(SECRET.search(part) for part in re.split(r"[.\[\]]+", path) if part)


def shown(value) -> str:
    """A short text of a value for examples: its repr, cut at SHOWN characters."""
    text = repr(value)
    return text if len(text) <= SHOWN else text[:SHOWN - 1] + "…"


class FieldProfile(BaseModel):
    """One field path (`a.b` inside documents, `tags[]` for array elements): what values it holds."""

    path: str
    documents: int = 0
    """Documents in which the path occurs at least once."""
    values: int = 0
    """Values seen at the path (an array's elements each count at `tags[]`)."""
    types: dict[str, int] = {}
    nulls: int = 0
    examples: list[str] = []
    distinct: int | None = 0
    """Distinct values seen; None when more than DISTINCT_LIMIT (or not kept: a secret, a document or an array)."""
    redacted: bool = False

    def missing(self, total: int) -> int:
        return total - self.documents

    def share(self, kind: str) -> float:
        return self.types.get(kind, 0) / self.values if self.values else 0.0


class FailureGroup(BaseModel):
    """Documents that fail the target model the same way: same field (pydantic's loc) and error type."""

    loc: str
    error: str
    message: str
    count: int = 0
    example_ids: list[str] = []


class Validation(BaseModel):
    """The profiled documents checked against a migration's target_model."""

    model: str
    version: int
    checked: int = 0
    failing: int = 0
    failing_at_version: int = 0
    """Of the failing documents, those that are at `version` already (the others are still to be migrated)."""
    groups: list[FailureGroup] = []


class Profile(BaseModel):
    """A collection's documents, field by field (`docshift inspect --json` prints this model)."""

    collection: str
    method: str
    """How the documents were read: an exact scan, `$sample`, or a reservoir sample over one scan."""
    exact: bool
    documents: int
    """Documents profiled."""
    total: int | None
    """Documents in the collection, when known (exact, or counted by the sample's scan)."""
    bound: str | None = None
    """How far a sample's shares may be from the collection's, at 95%."""
    versions: dict[str, int]
    """Documents per schema_version ("none": without one, i.e. version 1)."""
    fields: list[FieldProfile]
    validation: Validation | None = None


class _Path:
    """Counters of one field path; examples and distinct values capped. `fields` and `items` are the paths inside it
    (a document's fields by name, an array's elements), so that a walk looks paths up by key, not by a built name."""

    __slots__ = ("path", "documents", "values", "types", "nulls", "examples", "distinct", "overflow", "secret", "last",
                 "fields", "items")

    def __init__(self, path: str, secret: bool):
        self.path = path
        self.documents = self.values = self.nulls = 0
        self.types: dict[str, int] = {}
        self.examples: list[str] = []
        self.distinct: set = set()
        self.overflow = False
        self.secret = secret
        self.last = -1  # the number of the last document that had this path, to count documents once
        self.fields: dict[str, _Path] = {}
        self.items: _Path | None = None

    def add(self, value, kind: str, document: int) -> None:
        if self.last != document:
            self.last, self.documents = document, self.documents + 1
        self.values += 1
        self.types[kind] = self.types.get(kind, 0) + 1
        if value is None:
            self.nulls += 1
        if self.secret or kind == "object" or kind == "array":
            return
        if not self.overflow:
            key = distinct_key(value, kind)
            if key in self.distinct:
                return  # its example text was considered when it was first seen
            self.distinct.add(key)
            if len(self.distinct) > DISTINCT_LIMIT:
                self.overflow, self.distinct = True, set()
        if len(self.examples) < EXAMPLES and (text := shown(value)) not in self.examples:
            self.examples.append(text)


class _Group:
    """A FailureGroup while it is counted (plain attributes: a pydantic model's are slow to set per document)."""

    __slots__ = ("loc", "error", "message", "count", "ids")

    def __init__(self, loc: str, error: str, message: str):
        self.loc, self.error, self.message, self.count, self.ids = loc, error, message, 0, []


class Profiler:
    """Counts documents fed to it one by one; `profile()` gives the result. Memory: per path, not per document."""

    def __init__(self, collection: str, model: type[BaseModel] | None = None, version: int | None = None):
        self.collection, self.model, self.version = collection, model, version
        self.count = 0
        self.versions: Counter = Counter()
        self.root = _Path("", False)
        self.paths: dict[str, _Path] = {}
        self.failing = self.failing_at_version = 0
        self.groups: dict[tuple[tuple, str], _Group] = {}

    def add(self, doc: dict) -> None:
        self.count += 1
        version = doc.get(VERSION_FIELD)
        self.versions["none" if version is None else str(version)] += 1
        self._fields(doc, self.root)
        if self.model is not None:
            self._validate(doc, version)

    def _path(self, path: str) -> _Path:
        """The counters of `path`, made at its first value (shared when two places name one path: a key `a.b` and
        `b` inside `a`, as before paths were looked up by key)."""
        stats = self.paths.get(path)
        if stats is None:
            stats = self.paths[path] = _Path(path, looks_secret(path))
        return stats

    def _fields(self, doc: dict, parent: _Path) -> None:
        fields = parent.fields
        for key, value in doc.items():
            stats = fields.get(key)
            if stats is None:
                stats = fields[key] = self._path(f"{parent.path}.{key}" if parent.path else key)
            self._value(value, stats)

    def _value(self, value, stats: _Path) -> None:
        kind = KINDS.get(type(value)) or bson_type(value)
        stats.add(value, kind, self.count)
        if kind == "object":
            self._fields(value, stats)
        elif kind == "array":
            items = stats.items or self._path(f"{stats.path}[]")
            stats.items = items
            for inner in value:
                self._value(inner, items)

    def _validate(self, doc: dict, version) -> None:
        try:
            self.model.model_validate(doc)
        except ValidationError as exc:
            self.failing += 1
            self.failing_at_version += version == self.version
            for error in exc.errors(include_url=False, include_input=False, include_context=False):
                key = (error["loc"], error["type"])
                group = self.groups.get(key)
                if group is None:
                    loc = ".".join(str(p) for p in error["loc"]) or "(document)"
                    group = self.groups[key] = _Group(loc, error["type"], error["msg"])
                group.count += 1
                if len(group.ids) < FAILURE_IDS:
                    group.ids.append(str(doc.get("_id")))

    def profile(self, method: str, exact: bool, total: int | None = None, bound: str | None = None) -> Profile:
        fields = [FieldProfile(path=path, documents=s.documents, values=s.values, types=dict(Counter(s.types).most_common()),
                               nulls=s.nulls, examples=[REDACTED] if s.secret else list(s.examples),
                               distinct=None if s.overflow or s.secret or not (s.distinct or not s.values) else len(s.distinct),
                               redacted=s.secret)
                  for path, s in sorted(self.paths.items())]
        validation = None
        if self.model is not None:
            groups = sorted(self.groups.values(), key=lambda g: (-g.count, g.loc, g.error))
            validation = Validation(model=self.model.__name__, version=self.version, checked=self.count,
                                    failing=self.failing, failing_at_version=self.failing_at_version,
                                    groups=[FailureGroup(loc=g.loc, error=g.error, message=g.message, count=g.count,
                                                         example_ids=list(g.ids)) for g in groups])
        return Profile(collection=self.collection, method=method, exact=exact, documents=self.count,
                       total=self.count if exact else total, bound=bound, versions=dict(sorted(self.versions.items(), key=_version_order)),
                       fields=fields, validation=validation)


def _version_order(item: tuple[str, int]) -> tuple[int, int]:
    return (0, 0) if item[0] == "none" else (1, int(item[0]) if item[0].lstrip("-").isdigit() else 0)
