"""The application's model against the documents a collection already holds: what `docshift new --from-model` drafts
for a collection's first migration (no target_model yet), from a profile of its documents (docshift.profile), instead
of treating every field of the model as added.

A field every profiled document holds with a BSON type the model's annotation accepts is not drafted; one some
documents hold with another type, as null where the model refuses None, or not at all, is a finding, drafted as a
stub with the profile's counts; one no profiled document holds is a change, drafted as an added field. Types are
compared as stored (BSON types, as `docshift inspect` shows them), not as pydantic would coerce them: a "42" string
in an int field is a string to convert; an array's elements (`tags[]`) against the item type of a `list[X]`. Pure
functions: no database.
"""

import datetime
import decimal
import enum
import types
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from bson import ObjectId
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from .modeldiff import FieldChange, nested_model, stored_fields, type_text
from .profile import FieldProfile, Profile

SCALARS: dict[type, set[str]] = {
    bool: {"bool"}, int: {"int", "long"}, float: {"double", "int", "long"}, str: {"string"}, bytes: {"binData"},
    datetime.datetime: {"date"}, decimal.Decimal: {"decimal"}, ObjectId: {"objectId"}, dict: {"object"},
    list: {"array"}, tuple: {"array"}, set: {"array"}, frozenset: {"array"}, type(None): {"null"}}
"""The BSON types a document stores for values of a Python type."""
NOT_USER_FIELDS = ("_id", "schema_version")


def accepted_types(annotation: Any) -> set[str] | None:
    """The BSON types stored values of `annotation` have; None when the types cannot say (Any, a custom type)."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return accepted_types(args[0])
    if origin in (Union, types.UnionType):
        parts = [accepted_types(a) for a in args]
        return None if None in parts else set().union(*parts)
    if origin is Literal:
        return accepted_types(Union[tuple(type(v) for v in args)]) if len(args) > 1 else accepted_types(type(args[0]))
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return accepted_types(Literal[tuple(m.value for m in annotation)])
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return {"object"}
    return SCALARS.get(origin or annotation)


def item_annotation(annotation: Any) -> Any | None:
    """The type of the elements of an array field (`int` for `list[int]`, `list[int] | None`, `tuple[int, ...]`;
    `int | str` for `tuple[int, str]`), None when the annotation holds no array or says nothing of its elements."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return item_annotation(args[0])
    if origin in (Union, types.UnionType):
        items = {item for a in args if (item := item_annotation(a)) is not None}
        return items.pop() if len(items) == 1 else None
    items = tuple(a for a in args if a is not Ellipsis)
    if origin not in (list, tuple, set, frozenset) or not items:
        return None
    return Union[items] if len(items) > 1 else items[0]


@dataclass(frozen=True)
class ElementFinding:
    """An array field's elements (`path`: `tags[]`, or `tags[][]` inside them) of BSON types the model's item type
    (`wants`) does not store: `other` of them, out of the counts in `types`."""

    path: str
    wants: str
    types: dict[str, int]
    other: int

    def counts(self) -> str:
        return f"{self.path}: " + ", ".join(f"{kind} {count:,}" for kind, count in self.types.items())


@dataclass(frozen=True)
class DataFinding:
    """A field of the model that profiled documents hold otherwise: with other BSON types (`other`: their counts),
    as null where the model refuses None, or not at all where the model requires it or has a default to write."""

    field: str
    info: FieldInfo
    types: dict[str, int]
    other: int
    nulls: int
    missing: int
    documents: int
    elements: tuple[ElementFinding, ...] = ()

    def counts(self) -> str:
        """What the profile saw, e.g. `int 600, string 380, double 20; missing in 5 of 1,000 documents` (and for an
        array whose elements differ, `; tags[]: int 90, string 10`)."""
        held = ", ".join(f"{kind} {count:,}" for kind, count in self.types.items()) or "no value"
        return "; ".join([f"{held}; missing in {self.missing:,} of {self.documents:,} documents",
                          *(e.counts() for e in self.elements)])


@dataclass
class DataComparison:
    """What the profile says about each field of the model: to draft as added (`changes`), to convert or fill
    (`findings`), held as the model wants (`matching`), and top-level fields only the documents have (`extra`)."""

    how: str
    exact: bool = True
    """Every document was read (else a sample: a field no document read holds may be in one not read)."""
    changes: list[FieldChange] = field(default_factory=list)
    findings: list[DataFinding] = field(default_factory=list)
    matching: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    """Fields whose annotation says no BSON type (Any, a custom type): not compared."""
    extra: dict[str, int] = field(default_factory=dict)


def compare_with_data(app: type[BaseModel], profile: Profile) -> DataComparison:
    """How `profile`'s documents differ from `app`, field by field (nested models by their fields)."""
    sampled = f"{profile.documents:,} documents" + (f" of {profile.total:,}" if not profile.exact and profile.total else "")
    result = DataComparison(how=f"{profile.method}, {sampled}", exact=profile.exact)
    paths = {f.path: f for f in profile.fields}
    compare_fields(app, paths, "", profile.documents, result)
    declared = set(stored_fields(app))
    result.extra = {f.path: f.documents for f in profile.fields
                    if "." not in f.path and "[" not in f.path and f.path not in declared | set(NOT_USER_FIELDS)}
    return result


def compare_fields(model: type[BaseModel], paths: dict[str, FieldProfile], prefix: str, documents: int,
                   result: DataComparison) -> None:
    """Each field of `model` at `prefix` against the profile's paths (`documents`: how many hold the parent)."""
    for name, info in stored_fields(model).items():
        path = prefix + name
        seen = paths.get(path)
        if seen is None or seen.documents == 0:
            result.changes.append(FieldChange("added", path, None, info))
            continue
        accepted = accepted_types(info.annotation)
        if accepted is None:
            result.unknown.append(path)
            continue
        other = sum(count for kind, count in seen.types.items() if kind not in accepted | {"null"})
        nulls = 0 if "null" in accepted else seen.nulls
        missing = documents - seen.documents
        elements = element_findings(info.annotation, paths, path)
        if other or nulls or missing or elements:
            result.findings.append(DataFinding(path, info, dict(seen.types), other, nulls, missing, documents, elements))
        else:
            result.matching.append(path)
        inner = nested_model(info.annotation)
        if inner is not None and seen.types.get("object"):
            compare_fields(inner, paths, path + ".", seen.types["object"], result)


def element_findings(annotation: Any, paths: dict[str, FieldProfile], path: str) -> tuple[ElementFinding, ...]:
    """The elements of the array at `path` (and of arrays inside them) of types `annotation`'s item type does not
    store; nothing when no element was read or the item type names no BSON type."""
    item = item_annotation(annotation)
    seen = paths.get(path + "[]")
    if item is None or seen is None or (accepted := accepted_types(item)) is None:
        return ()
    other = sum(count for kind, count in seen.types.items() if kind not in accepted)
    found = (ElementFinding(seen.path, type_text(item), dict(seen.types), other),) if other else ()
    return found + element_findings(item, paths, seen.path)
