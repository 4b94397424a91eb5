"""Test your own migrations: hypothesis round-trip properties and BSON-aware comparisons.

    from docshift.loader import ScriptDirectory
    from docshift.testing import documents_from_model, round_trip_test

    SCRIPTS = ScriptDirectory.load("migrations")
    test_0003_round_trip = round_trip_test(SCRIPTS.get(3).migration, documents_from_model(UserV2, version=2))

Every document goes through docshift's own `engine.transform_one`, so `schema_version` is set and removed
exactly as a run does, and through BSON on its way in and out of each function, as it would through the
database. Documents are compared as MongoDB stores them: 1, 1.0, True and Int64(1) differ, key order does
not. Nothing here imports Prefect or pytest; hypothesis and pydantic are the only test-time requirements.
"""

import inspect
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import bson
import hypothesis
from bson import Binary, Decimal128, Int64, ObjectId
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy
from pydantic import BaseModel, ValidationError

from .engine.steps import make_step, transform_one
from .loader import Script, ScriptDirectory
from .spec import INITIAL_VERSION, Migration
from .transform import VERSION_FIELD

__all__ = [
    "OBJECT_IDS", "ROUND_TRIP_SETTINGS", "as_bson", "assert_round_trip", "assert_up_validates", "canonical", "documents_from_model",
    "first_difference", "migrated", "round_trip_test",
]

OBJECT_IDS: SearchStrategy[ObjectId] = st.binary(min_size=12, max_size=12).map(ObjectId)
"""ObjectIds drawn from 12 random bytes, so that hypothesis can replay and shrink them (unlike `ObjectId()`)."""

_REJECT = object()
_SHOWN = 300


# --- comparing documents -----------------------------------------------------------------------------------


def canonical(value):
    """`value` with every document's keys sorted: equal canonical BSON means same fields, values and types."""
    if isinstance(value, dict):
        return {k: canonical(value[k]) for k in sorted(value)}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    return value


def as_bson(doc: dict) -> bytes:
    """Canonical BSON bytes of a document: field order ignored, types kept (1, 1.0, True and Int64(1) differ).

    Datetimes compare as MongoDB stores them: UTC, to the millisecond.
    """
    return bson.encode(canonical(doc))


def first_difference(before: Mapping, after: Mapping) -> str | None:
    """Where two documents first differ as BSON, in words (`name: 'Ada' (string) before, missing after`), or None."""
    return _difference(before, after, ())


def _difference(a: Any, b: Any, path: tuple) -> str | None:
    where = ".".join(str(p) for p in path) or "the document"
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        for key in a:
            if key not in b:
                return f"{_join(path, key)}: {_show(a[key])} before, missing after"
            found = _difference(a[key], b[key], (*path, key))
            if found:
                return found
        for key in b:
            if key not in a:
                return f"{_join(path, key)}: missing before, {_show(b[key])} after"
        return None
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return f"{where}: an array of {len(a)} before, of {len(b)} after ({_show(a)} before, {_show(b)} after)"
        for i, (x, y) in enumerate(zip(a, b)):
            found = _difference(x, y, (*path, i))
            if found:
                return found
        return None
    if _encoded(a) != _encoded(b):
        return f"{where}: {_show(a)} before, {_show(b)} after"
    return None


def _join(path: tuple, key: Any) -> str:
    return ".".join(str(p) for p in (*path, key))


def _encoded(value: Any) -> bytes:
    return bson.encode({"v": canonical(value)})


def _bson_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, Int64):
        return "int64"
    if isinstance(value, int):
        return "int32" if -(2**31) <= value < 2**31 else "int64"
    names = {float: "double", str: "string", datetime: "date", ObjectId: "objectId", bytes: "binData", Binary: "binData",
             Decimal128: "decimal", Mapping: "object", list: "array", tuple: "array"}
    return next((name for kind, name in names.items() if isinstance(value, kind)), type(value).__name__)


def _show(value: Any) -> str:
    text = repr(value)
    return f"{text[:_SHOWN]}{'...' if len(text) > _SHOWN else ''} ({_bson_type(value)})"


def _stored(doc: Mapping) -> dict:
    """The document as the engine reads it back from the database (through BSON, default codec options)."""
    return bson.decode(bson.encode(doc))


# --- running one migration as the runtime does ---------------------------------------------------------------


def _previous_version(migration: Migration, doc: Mapping, previous_version: int | None) -> int:
    """The version `migration` upgrades `doc` from: `previous_version`, checked against the document's own."""
    found = doc.get(VERSION_FIELD)
    if found is not None and (isinstance(found, bool) or not isinstance(found, int)):
        raise ValueError(f"the document's {VERSION_FIELD} is {found!r}, not a version number")
    at = INITIAL_VERSION if found is None else int(found)
    if previous_version is None:
        previous_version = at
    elif at != previous_version:
        raise ValueError(f"the document is at version {at} ({VERSION_FIELD}={found!r}), not at previous_version "
                         f"{previous_version}: a run of migration {migration.version} would not select it")
    if not INITIAL_VERSION <= previous_version < migration.version:
        raise ValueError(f"migration {migration.version} cannot upgrade documents of version {previous_version}")
    return previous_version


def _scripts(migration: Migration, previous_version: int) -> ScriptDirectory:
    """A script directory in which `migration` upgrades its collection from `previous_version`."""
    scripts = [Script(migration=migration, path=Path(f"<migration {migration.version}>"), checksum="")]
    if previous_version != INITIAL_VERSION:
        placeholder = Migration(version=previous_version, description="the previous version",
                                collection=migration.collection, kind="additive", up=lambda doc: doc, down=lambda doc: doc)
        scripts.append(Script(migration=placeholder, path=Path(f"<migration {previous_version}>"), checksum=""))
    return ScriptDirectory(scripts, Path("<docshift.testing>"))


def _run(migration: Migration, direction: str, doc: Mapping, previous_version: int, pre_image: Mapping | None) -> dict:
    step = make_step(_scripts(migration, previous_version), migration.version, direction)
    result = transform_one(migration, step, _stored(doc), None if pre_image is None else _stored(pre_image))
    try:
        return _stored(result)
    except (bson.errors.InvalidDocument, OverflowError) as exc:
        raise AssertionError(f"migration {migration.version} {direction} returned a document MongoDB cannot store: "
                             f"{exc}\n  {direction}(doc): {_brief(result)}") from exc


def _brief(doc: Any) -> str:
    text = repr(doc)
    return text if len(text) <= 3 * _SHOWN else text[: 3 * _SHOWN] + "..."


def _storable_input(doc: Mapping) -> None:
    try:
        bson.encode(doc)
    except (bson.errors.InvalidDocument, OverflowError, TypeError) as exc:
        raise ValueError(f"the test document cannot be stored in MongoDB ({exc}), so no run would migrate it; "
                         f"fix the strategy: {_brief(doc)}") from exc


# --- assertions ----------------------------------------------------------------------------------------------


def assert_round_trip(migration: Migration, doc: Mapping, *, previous_version: int | None = None,
                      use_pre_image: bool = True) -> dict:
    """Check that `down(up(doc))` gives back `doc` exactly; return `up(doc)`.

    `doc` is a document of the version `migration` upgrades from: `previous_version`, by default the
    document's own `schema_version` (none means 1). Up and down run through `engine.transform_one`, as a run
    does; `down` is given the pre-image (`doc` itself) when it takes one, or None with `use_pre_image=False`
    (what a revert without the original run's backup passes). The result must equal `doc` as BSON: every
    field, value and type (1, 1.0, True differ), at any depth; only key order is ignored. An AssertionError
    names the first differing field.
    """
    _storable_input(doc)
    previous = _previous_version(migration, doc, previous_version)
    after = _run(migration, "up", doc, previous, None)
    back = _run(migration, "down", after, previous, doc if use_pre_image else None)
    if as_bson(back) != as_bson(doc):
        difference = first_difference(doc, back) or "the documents differ as BSON"
        hint = ""
        if difference.startswith(f"{VERSION_FIELD}:") and previous == INITIAL_VERSION:
            hint = (f"\n  note: docshift removes {VERSION_FIELD} from documents reverted to version 1, so a version-1 "
                    f"document must not carry one")
        raise AssertionError(
            f"migration {migration.version} ({migration.description}): down(up(doc)) is not the document it started "
            f"from (down was given {'the pre-image' if use_pre_image and migration.down_uses_pre_image else 'no pre-image'})"
            f"\n  first difference: {difference}{hint}"
            f"\n  doc:            {_brief(doc)}\n  up(doc):        {_brief(after)}\n  down(up(doc)):  {_brief(back)}"
        )
    return after


def assert_up_validates(migration: Migration, doc: Mapping, *, previous_version: int | None = None) -> BaseModel:
    """Check that `up(doc)`, as stored, validates against `migration.target_model`; return the validated model.

    The migrated document is validated after a trip through BSON, as `verify` reads it back from the database
    (datetimes naive UTC, to the millisecond). A ValueError when the migration has no `target_model`.
    """
    model = migration.target_model
    if model is None:
        raise ValueError(f"migration {migration.version} ({migration.description}) has no target_model, so there is "
                         f"nothing to validate up(doc) against: give its Migration a target_model=<pydantic model>")
    _storable_input(doc)
    after = _run(migration, "up", doc, _previous_version(migration, doc, previous_version), None)
    try:
        return model.model_validate(after)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"]) or "the document"
        raise AssertionError(
            f"migration {migration.version} ({migration.description}): up(doc) does not validate as {model.__name__}: "
            f"{exc.error_count()} error(s), the first at {where}: {error['msg']} (input {_brief(error.get('input'))})"
            f"\n  doc:      {_brief(doc)}\n  up(doc):  {_brief(after)}"
        ) from exc


# --- strategies ----------------------------------------------------------------------------------------------


def documents_from_model(model: type[BaseModel], *, version: int = INITIAL_VERSION,
                         ids: SearchStrategy = OBJECT_IDS, **fields: SearchStrategy) -> SearchStrategy[dict]:
    """Documents of schema `version` as `model` describes them, ready to be migrated.

    Each field is drawn with `st.from_type` of its annotation (pydantic constraints such as `ge` or
    `max_length` included) unless `fields` gives a strategy for it, by the name the model's constructor
    takes (its alias, if any). A field aliased `_id` is drawn from `ids`, a field typed `ObjectId` from
    OBJECT_IDS; ObjectIds deeper in a field (`list[ObjectId]`) need a strategy of yours. Optional fields are
    sometimes left out, as in real collections, and values the model rejects are discarded. Every document
    gets an `_id` from `ids` unless the model has one, and `schema_version` = `version`, or none for
    version 1. Values MongoDB cannot store (integers beyond 64 bits, keys with NUL) are discarded; a field
    of a type BSON has no encoding for (`date`, `Decimal`, `set`, an `Enum`...) raises a TypeError asking
    for a strategy for it.
    """
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise TypeError(f"documents_from_model needs a pydantic model class, not {model!r}")
    required, optional = {}, {}
    for name, param in inspect.signature(model).parameters.items():
        if param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
            continue
        strategy = fields.get(name)
        if strategy is None:
            strategy = ids if name == "_id" else _from_annotation(param.annotation, param.empty)
        (required if param.default is param.empty else optional)[name] = strategy
    unknown = set(fields) - set(required) - set(optional)
    if unknown:
        raise TypeError(f"{model.__name__} has no field(s) {', '.join(sorted(unknown))}")

    def build(kwargs: dict) -> Any:
        try:
            instance = model(**kwargs)
        except ValidationError:
            return _REJECT
        doc = instance.model_dump(mode="python", by_alias=True, exclude_unset=True)
        return _as_document(model, doc, kwargs)

    return st.tuples(st.fixed_dictionaries(required, optional=optional).map(build), ids).map(
        lambda pair: pair[0] if pair[0] is _REJECT else _with_id_and_version(pair[0], pair[1], version)
    ).filter(lambda doc: doc is not _REJECT)


def _from_annotation(annotation: Any, empty: Any) -> SearchStrategy:
    if annotation is empty:
        return _ANY
    if annotation is ObjectId:  # st.from_type(ObjectId) calls ObjectId(<anything>) and fails
        return OBJECT_IDS
    if annotation == ObjectId | None:
        return st.none() | OBJECT_IDS
    return st.from_type(annotation)


_ANY = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats() | st.text()


def _as_document(model: type[BaseModel], doc: dict, kwargs: dict) -> Any:
    try:
        bson.encode(doc)
    except OverflowError:
        return _REJECT  # an integer beyond 64 bits: MongoDB cannot hold it, so no real document has it
    except bson.errors.InvalidDocument as exc:
        if "NULL byte" in str(exc):
            return _REJECT
        culprit = next((k for k, v in doc.items() if not _encodes(v)), None)
        field = f"field {culprit!r}" if culprit else "a field"
        raise TypeError(f"documents of {model.__name__} cannot be stored in MongoDB: {field} holds a value BSON cannot "
                        f"encode ({exc}); pass a strategy for it: documents_from_model({model.__name__}, "
                        f"{culprit or 'field'}=st....)") from None
    return doc


def _encodes(value: Any) -> bool:
    try:
        bson.encode({"v": value})
        return True
    except (bson.errors.InvalidDocument, OverflowError):
        return False


def _with_id_and_version(doc: dict, new_id: ObjectId, version: int) -> dict:
    result = {"_id": doc.pop("_id", new_id), **doc}
    result.pop(VERSION_FIELD, None)
    if version != INITIAL_VERSION:
        result[VERSION_FIELD] = version
    return result


def migrated(documents: SearchStrategy[dict], *migrations: Migration) -> SearchStrategy[dict]:
    """`documents` taken up through `migrations`, in order, as a run would: e.g. version-3 users from version-1 ones."""
    def upgrade(doc: dict) -> dict:
        for migration in migrations:
            doc = _run(migration, "up", doc, _previous_version(migration, doc, None), None)
        return doc

    upgrade.__name__ = upgrade.__qualname__ = "up_through_" + "_".join(str(m.version) for m in migrations)
    return documents.map(upgrade)


# --- one-line tests ------------------------------------------------------------------------------------------


ROUND_TRIP_SETTINGS = hypothesis.settings(max_examples=200, deadline=None)


def round_trip_test(migration: Migration, documents: SearchStrategy[dict], *, previous_version: int | None = None,
                    use_pre_image: bool = True, validate: bool = True,
                    settings: hypothesis.settings = ROUND_TRIP_SETTINGS) -> Callable[[], None]:
    """A hypothesis test that pytest collects: `test_0003_round_trip = round_trip_test(migration, documents)`.

    For each generated document of the previous version: `up(doc)` validates against the migration's
    `target_model` (when it has one and `validate` is true; see assert_up_validates), and `down(up(doc))` gives
    back `doc` (see assert_round_trip). `settings`: hypothesis' settings of the test (200 examples, no deadline by
    default; e.g. `hypothesis.settings(ROUND_TRIP_SETTINGS, max_examples=50)`); the deadline is always off, since a
    migration's first call may import things.
    """
    def test(doc: dict) -> None:
        if validate and migration.target_model is not None:
            assert_up_validates(migration, doc, previous_version=previous_version)
        assert_round_trip(migration, doc, previous_version=previous_version, use_pre_image=use_pre_image)

    test.__name__ = test.__qualname__ = f"test_round_trip_{migration.version}"
    test.__doc__ = (f"Migration {migration.version} ({migration.description}): down(up(doc)) == doc"
                    + (f" and up(doc) validates as {migration.target_model.__name__}"
                       if validate and migration.target_model is not None else "") + ".")
    # Tests made here share one source; this keeps their examples apart in hypothesis's example database.
    test._hypothesis_internal_add_digest = repr(
        (migration.collection, migration.version, migration.description, previous_version, use_pre_image)).encode()
    return hypothesis.settings(settings, deadline=None)(given(documents)(test))
