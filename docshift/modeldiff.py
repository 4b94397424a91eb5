"""How an application's pydantic model differs from a migration's `target_model`: the comparison behind
`docshift check` (a migration is missing) and `docshift new --from-model` (draft that migration).

Pure functions over two model classes; fields are compared by the name they are stored under (their alias), nested
models field by field (`address.city`), enums by their members, `schema_version` left out (docshift owns it).
"""

import enum
import re
from dataclasses import dataclass
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from .loader import ScriptDirectory
from .transform import VERSION_FIELD

ChangeKind = Literal["added", "removed", "retyped", "required", "optional", "default"]


@dataclass(frozen=True)
class FieldChange:
    """One difference: `field` (a dotted path) added, removed, of another type, now required or optional, or with
    another default. `before`/`after` are the field as the target model and the application's model declare it."""

    kind: ChangeKind
    field: str
    before: FieldInfo | None
    after: FieldInfo | None

    def describe(self) -> str:
        """The difference in one line, as `check` prints it."""
        before, after = self.before, self.after
        if self.kind == "added":
            return f"{self.field}: added ({field_text(after)})"
        if self.kind == "removed":
            return f"{self.field}: removed (was {field_text(before)})"
        if self.kind == "retyped":
            return f"{self.field}: type {type_text(before.annotation)} -> {type_text(after.annotation)}"
        if self.kind == "required":
            return f"{self.field}: now required (was optional, {default_text(before)})"
        if self.kind == "optional":
            return f"{self.field}: now optional ({default_text(after)})"
        return f"{self.field}: default {default_text(before)} -> {default_text(after)}"


def type_text(annotation: Any) -> str:
    """An annotation as people write it: `str | None`, `list[Address]`, not `typing.Optional[app.models.Address]`."""
    if isinstance(annotation, type) and not get_args(annotation):
        return annotation.__name__
    return re.sub(r"\b(?:[A-Za-z_]\w*\.)+([A-Za-z_]\w*)", r"\1", repr(annotation))


def default_text(field: FieldInfo) -> str:
    if field.default_factory is not None:
        return f"computed by {getattr(field.default_factory, '__qualname__', repr(field.default_factory))}()"
    return "no default" if field.default is PydanticUndefined else f"default {stored(field.default)!r}"


def field_text(field: FieldInfo) -> str:
    return f"{type_text(field.annotation)}, " + ("required" if field.is_required() else default_text(field))


def stored_fields(model: type[BaseModel]) -> dict[str, FieldInfo]:
    """The model's fields by the name documents store them under, without schema_version."""
    return {(field.alias or name): field for name, field in model.model_fields.items()
            if (field.alias or name) != VERSION_FIELD}


def nested_model(annotation: Any) -> type[BaseModel] | None:
    """The model of a field that holds one document (`Address` or `Address | None`), else None."""
    args = [a for a in get_args(annotation) if a is not type(None)] if get_origin(annotation) in (Union, type(int | None)) else [annotation]
    if len(args) == 1 and isinstance(args[0], type) and issubclass(args[0], BaseModel):
        return args[0]
    return None


def same_type(a: Any, b: Any) -> bool:
    """Whether two annotations accept the same stored values: models field by field, enums by their values (an enum
    and the Literal of its values are the same), generics argument by argument."""
    a, b = as_literal(a), as_literal(b)
    if a == b:
        return True
    if isinstance(a, type) and isinstance(b, type):
        if issubclass(a, BaseModel) and issubclass(b, BaseModel):
            return not compare_models(a, b)
        return False
    origin_a, origin_b = get_origin(a), get_origin(b)
    if origin_a is None or origin_a != origin_b and {origin_a, origin_b} != {Union, type(int | None)}:
        return False
    args_a, args_b = get_args(a), get_args(b)
    return len(args_a) == len(args_b) and all(same_type(x, y) for x, y in zip(args_a, args_b))


def as_literal(annotation: Any) -> Any:
    """An enum as the values documents store: `Literal['free', 'pro']` for an Enum with those values."""
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return Literal[tuple(m.value for m in annotation)]
    return annotation


def same_default(a: FieldInfo, b: FieldInfo) -> bool:
    """Equal constants (of one type), or factories of the same name (functions cannot be compared otherwise)."""
    if a.default_factory is not None or b.default_factory is not None:
        return name_of(a.default_factory) == name_of(b.default_factory)
    before, after = stored(a.default), stored(b.default)  # an enum member as its value: the draft copies it so
    return type(before) is type(after) and before == after


def name_of(factory: Any) -> tuple | None:
    return None if factory is None else (getattr(factory, "__module__", None), getattr(factory, "__qualname__", None))


def stored(value: Any) -> Any:
    """A default as a document stores it: an enum member as its value, a model as its fields."""
    if isinstance(value, enum.Enum):
        return value.value
    return value.model_dump(by_alias=True) if isinstance(value, BaseModel) else value


def compare_models(target: type[BaseModel] | None, app: type[BaseModel], prefix: str = "") -> list[FieldChange]:
    """The differences from `target` (a migration's target_model; None: no model yet) to `app`: removed fields
    first, then added ones, then changed ones, each in the order the models declare them."""
    old = stored_fields(target) if target is not None else {}
    new = stored_fields(app)
    changes = [FieldChange("removed", prefix + name, field, None) for name, field in old.items() if name not in new]
    changes += [FieldChange("added", prefix + name, None, field) for name, field in new.items() if name not in old]
    for name in (n for n in new if n in old):
        before, after = old[name], new[name]
        inner_before, inner_after = nested_model(before.annotation), nested_model(after.annotation)
        if inner_before is not None and inner_after is not None:
            changes += compare_models(inner_before, inner_after, f"{prefix}{name}.")
        elif not same_type(before.annotation, after.annotation):
            changes.append(FieldChange("retyped", prefix + name, before, after))
        if before.is_required() != after.is_required():
            changes.append(FieldChange("required" if after.is_required() else "optional", prefix + name, before, after))
        elif not before.is_required() and not same_default(before, after):
            changes.append(FieldChange("default", prefix + name, before, after))
    return changes


def latest_target(scripts: ScriptDirectory, collection: str, version: int | None = None
                  ) -> tuple[int | None, type[BaseModel] | None]:
    """The latest migration of `collection` (up to `version`) that declares a target_model, and that model;
    (None, None) when none does."""
    for v in reversed(scripts.document_versions(collection)):
        model = scripts.part(v, scripts.document_part(v, collection)).target_model
        if (version is None or v <= version) and model is not None:
            return v, model
    return None, None
