"""A draft migration from a model change (`docshift new --from-model`): the differences docshift.modeldiff finds
between the application's model and the latest target_model, written as a migration file that the user completes.

Every decision is a comment in the draft. A part docshift cannot know (a computed value, a type conversion, the
value of a newly required field) is a stub marked `TODO` that leaves documents as valid as it can; the new
`target_model` is the application's model, so a run whose stubs were not filled in fails its validation and rolls
back instead of writing made-up values.
"""

import builtins
import enum
import re
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from .datadiff import DataComparison, DataFinding
from .modeldiff import FieldChange, type_text
from .spec import Kind

CONSTANTS = (str, int, float, bool, type(None))


@dataclass
class Source:
    """The draft's target models as Python source, and the imports they need. The application's own classes are
    copied, not imported (a migration must not change when the application does, and the application's modules
    need not be importable where migrations run): nested models as classes of the draft, enums as a Literal of
    their stored values."""

    version: int
    project: Path | None = None
    imports: set[str] = field(default_factory=set)
    classes: dict[str, str] = field(default_factory=dict)

    def annotation(self, annotation: Any) -> str:
        """`annotation` as source (`AddressV3 | None`, `list[str]`, `Literal['free', 'pro']`)."""
        origin, args = get_origin(annotation), get_args(annotation)
        if annotation is type(None):
            return "None"
        if origin is Annotated:
            return self.annotation(args[0])  # constraints are the application's business; the type is what is checked
        if origin in (Union, types.UnionType):
            return " | ".join(self.annotation(a) for a in args)
        if origin is Literal or isinstance(annotation, type) and issubclass(annotation, enum.Enum):
            self.imports.add("from typing import Literal")
            values = args if origin is Literal else [m.value for m in annotation]
            return f"Literal[{', '.join(map(repr, values))}]"
        if origin is not None:
            return f"{self.annotation(origin)}[{', '.join(self.annotation(a) for a in args)}]"
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            name = f"{annotation.__name__}V{self.version}"
            if name not in self.classes:
                self.classes[name] = ""  # taken, against a model that refers to itself
                self.classes[name] = self.model(name, annotation, f"A `{annotation.__name__}` inside the document")
            return name
        if isinstance(annotation, type):
            if annotation.__module__ != builtins.__name__:
                self.imports.add(f"from {annotation.__module__} import {annotation.__qualname__.split('.')[0]}")
            return annotation.__qualname__
        return type_text(annotation)

    def importable(self, factory: Any) -> bool:
        """Whether a default factory can be imported where migrations run: a named function of a module outside the
        application's project folder (the standard library, an installed package)."""
        module = sys.modules.get(getattr(factory, "__module__", None) or "")
        where = getattr(module, "__file__", None)
        return ("<" not in getattr(factory, "__qualname__", "<") and module is not None
                and (where is None or self.project is None or not Path(where).resolve().is_relative_to(self.project)))

    def value(self, value: Any) -> str:
        if isinstance(value, enum.Enum):
            return repr(value.value)
        if isinstance(value, BaseModel):
            return f"{self.annotation(type(value))}(**{value.model_dump(by_alias=True)!r})"
        return repr(value)

    def model(self, name: str, model: type[BaseModel], doc: str, version_field: bool = False) -> str:
        """A class with the fields of `model` (and `schema_version` for the document itself), extra fields allowed."""
        lines = [f"class {name}(BaseModel):", f'    """{doc}: the fields of {model.__module__}.{model.__qualname__} '
                 f'as the draft was written."""', "", '    model_config = ConfigDict(extra="allow")']
        if version_field:
            lines.append("    schema_version: int")
        for stored, info in model.model_fields.items():
            stored = info.alias or stored
            if stored == "schema_version":
                continue
            default = ""
            if info.default_factory is not None and info.default_factory.__module__ == builtins.__name__:
                self.imports.add("from pydantic import Field")
                default = f" = Field(default_factory={info.default_factory.__qualname__})"
            elif info.default_factory is not None and self.importable(info.default_factory):
                factory = info.default_factory
                self.imports |= {"from pydantic import Field",
                                 f"from {factory.__module__} import {factory.__qualname__.split('.')[0]}"}
                default = f" = Field(default_factory={factory.__qualname__})"
            elif info.default_factory is not None:
                default = ("  # TODO its default_factory is the application's own: copy it here or `check` reports "
                           "the field as optional in the application")
            elif info.default is not PydanticUndefined:
                default = f" = {self.value(info.default)}"
            lines.append(f"    {stored}: {self.annotation(info.annotation)}{default}")
        return "\n".join(lines)

    def target(self, name: str, model: type[BaseModel], collection: str) -> str:
        """The draft's target_model, after the classes it refers to."""
        main = self.model(name, model, f"A `{collection}` document at version {self.version}", version_field=True)
        return "\n\n\n".join([*self.classes.values(), main])


@dataclass
class Draft:
    """What the draft does, decided from the changes: kind, up/down lines, the comments that say why."""

    kind: Kind = "additive"
    sets: dict = field(default_factory=dict)
    """Constant values of added fields: a declared `update` when nothing else changes."""
    up: list[str] = field(default_factory=list)
    down: list[str] = field(default_factory=list)
    restores: list[str] = field(default_factory=list)
    """Fields `down` gives back from each document's pre-image."""
    notes: list[str] = field(default_factory=list)

    def raise_kind(self, kind: Kind) -> None:
        order = ("additive", "transformative", "destructive")
        self.kind = max(self.kind, kind, key=order.index)


@dataclass(frozen=True)
class Basis:
    """What a draft is drafted from: the latest target_model's name (None: there is none yet) and its differences to
    the application's model; for a collection's first migration, what its documents hold (`data`) instead."""

    target: str | None
    changes: list[FieldChange]
    data: DataComparison | None = None


def is_constant(value: Any) -> bool:
    """Whether a default can be written into the draft as a literal (and set on the server)."""
    if isinstance(value, (list, tuple)):
        return all(is_constant(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and is_constant(v) for k, v in value.items())
    return isinstance(value, CONSTANTS)


def rename_pair(changes: list[FieldChange]) -> tuple[FieldChange, FieldChange] | None:
    """One top-level field removed and one added with the same type: most likely a rename."""
    removed = [c for c in changes if c.kind == "removed" and "." not in c.field]
    added = [c for c in changes if c.kind == "added" and "." not in c.field]
    if len(removed) == 1 and len(added) == 1 and removed[0].before.annotation == added[0].after.annotation:
        return removed[0], added[0]
    return None


def decide(changes: list[FieldChange]) -> Draft:
    """The draft's decisions, one per change, each with the comment that explains it."""
    draft = Draft()
    pair = rename_pair(changes)
    if pair is not None:
        old, new = pair[0].field, pair[1].field
        draft.raise_kind("transformative")
        draft.notes.append(f"{old} -> {new}: one field removed and one added of the same type, drafted as a RENAME. "
                           f"If it is not one, write {new}'s value instead. Without downtime, make it an "
                           f"expand-contract change (see the ExpandContract comment below).")
        draft.up += [f"if {old!r} in doc:", f"    doc[{new!r}] = doc.pop({old!r})"]
        draft.down += [f"if {new!r} in doc:", f"    doc[{old!r}] = doc.pop({new!r})"]
        changes = [c for c in changes if c not in pair]
    for change in changes:
        decide_one(draft, change)
    fold_sets(draft)
    return draft


def fold_sets(draft: Draft, always: bool = False) -> None:
    """The update form is for a constant $set alone: with anything else to do, the $set goes into `up` as a
    `setdefault` (`always`, too, after a sample: a document not read may hold the field, and $set would overwrite it)."""
    if draft.sets and (draft.up or draft.restores or always):
        draft.notes.append(f"{', '.join(draft.sets)}: set in `up` with setdefault (never overwriting), not as an update: "
                           + ("the draft changes more than a $set can" if draft.up or draft.restores else
                              "only a sample was read, and a document not read may hold it"))
        for name, value in draft.sets.items():
            draft.up.append(f"doc.setdefault({name!r}, {value!r})")
            draft.restores.append(name)
        draft.sets = {}


def decide_one(draft: Draft, change: FieldChange) -> None:
    name, top = change.field, "." not in change.field
    parent, _, leaf = name.rpartition(".")
    target = f"doc[{name!r}]" if top else f"{leaf} inside doc[{parent!r}]"
    if change.kind == "added":
        after = change.after
        if after.default_factory is not None:
            draft.notes.append(f"{name}: added with a computed default ({type_text(after.annotation)}): "
                               f"additive, `up` sets it: TODO compute the value")
            draft.up += ([f"# TODO: the value of {name} (the model computes it with "
                          f"{after.default_factory.__qualname__}()); until then None, which its type may refuse",
                          f"doc.setdefault({name!r}, None)"] if top else
                         [f"# TODO: set {leaf} inside doc[{parent!r}] (a computed default)"])
            draft.restores.append(name if top else parent)
        elif not after.is_required() and is_constant(after.default) and top:
            draft.notes.append(f"{name}: added with the constant default {after.default!r}: set on the server "
                               f"(an update declared as $set; down removes it)")
            draft.sets[name] = after.default
        elif not after.is_required() and is_constant(after.default):
            draft.notes.append(f"{name}: added inside {parent} with the default {after.default!r}: `up` sets it where "
                               f"{parent} is a document")
            draft.up += set_default(name, after.default)
            draft.restores.append(parent.split(".")[0])
        else:
            draft.raise_kind("transformative")
            draft.notes.append(f"{name}: added, required, no default: TODO `up` must give every document a value")
            draft.up.append(f"# TODO: set {target} for every document (required {type_text(after.annotation)})")
            draft.restores.append(name.split(".")[0])
    elif change.kind == "removed":
        draft.raise_kind("destructive")
        draft.notes.append(f"{name}: removed: destructive; its values stay in the run's backup and `down` gives them "
                           f"back from each document's pre-image")
        draft.up.append(f"doc.pop({name!r}, None)" if top else f"if isinstance(doc.get({parent!r}), dict):\n"
                                                               f"    doc[{parent!r}].pop({leaf!r}, None)")
        draft.restores.append(name.split(".")[0])
    elif change.kind == "retyped":
        draft.raise_kind("transformative")
        draft.notes.append(f"{name}: {type_text(change.before.annotation)} -> {type_text(change.after.annotation)}: "
                           f"transformative; TODO write the conversion in `up` (down gives the old values back "
                           f"from the pre-images)")
        draft.up.append(f"# TODO: convert {target} from {type_text(change.before.annotation)} to "
                        f"{type_text(change.after.annotation)}")
        draft.restores.append(name.split(".")[0])
    elif change.kind == "required":
        draft.raise_kind("transformative")
        draft.notes.append(f"{name}: now required: TODO `up` must fill it where it is missing or null")
        draft.up.append(f"# TODO: give {target} a value where it is missing or None")
        draft.restores.append(name.split(".")[0])
    else:
        draft.notes.append(f"{name}: {change.describe().split(': ', 1)[1]}: documents keep the values they have; "
                           f"nothing to migrate for it")


def set_default(name: str, value: Any) -> list[str]:
    """`up` lines that give the field `name` (a dotted path: where its parent is a document) the value `value` where
    it is missing."""
    parent, _, leaf = name.rpartition(".")
    if not parent:
        return [f"doc.setdefault({name!r}, {value!r})"]
    return [f"if isinstance(doc.get({parent!r}), dict):", f"    doc[{parent!r}].setdefault({leaf!r}, {value!r})"]


def decide_data(draft: Draft, data: DataComparison) -> None:
    """The decisions of a collection's first migration from what its documents hold (docshift.datadiff)."""
    draft.notes.append(f"no target_model yet: the model was compared with the documents the collection holds "
                       f"({data.how}); a document not read may differ: the run validates every document it writes "
                       f"against target_model and rolls back when one fails")
    if data.matching:
        draft.notes.append(f"held as the model wants by every document read: {', '.join(data.matching)}: "
                           f"nothing to migrate for them")
    for change in data.changes:
        decide_one(draft, change)
    for finding in data.findings:
        decide_finding(draft, finding)
    if data.unknown:
        draft.notes.append(f"{', '.join(data.unknown)}: their types name no BSON type: not compared (`docshift "
                           f"inspect` shows what the documents hold)")
    if data.extra:
        draft.notes.append("only in the documents, not in the model: " + ", ".join(
            f"{name} (in {count:,})" for name, count in data.extra.items()) + ": kept as they are (the target_model "
            "allows other fields); remove them in a migration of their own if they should go")


def decide_finding(draft: Draft, finding: DataFinding) -> None:
    """A field the documents read hold otherwise than the model wants: its default where only missing, else a TODO
    with the counts."""
    name, info = finding.field, finding.info
    parent, _, leaf = name.rpartition(".")
    target = f"{leaf} inside doc[{parent!r}]" if parent else f"doc[{name!r}]"
    wants = type_text(info.annotation)
    draft.restores.append(name.split(".")[0])
    if not finding.other and not finding.nulls and not finding.elements and not info.is_required() \
            and info.default_factory is None and is_constant(info.default):
        draft.notes.append(f"{name}: the documents read hold {finding.counts()}: `up` sets the model's default "
                           f"{info.default!r} where it is missing")
        draft.up += set_default(name, info.default)
        return
    draft.raise_kind("transformative")
    tasks = [f"convert {target} to {wants} where it holds another type"] if finding.other else []
    tasks += [f"convert the elements of {target if e.path == name + '[]' else e.path} to {e.wants} where they hold "
              f"another type" for e in finding.elements]
    if finding.nulls or finding.missing:
        tasks.append(f"give {target} a value where it is missing" + (" or None" if finding.nulls else ""))
    draft.notes.append(f"{name}: the documents read hold {finding.counts()}, the model wants {wants}: "
                       f"transformative; TODO in `up`")
    draft.up.append(f"# TODO: {' and '.join(tasks)} (read: {finding.counts()})")


def enum_notes(changes: list[FieldChange]) -> list[str]:
    """Enum fields whose members changed: their stored values need remapping."""
    return [f"{c.field}: the enum's members changed: TODO map old stored values to new ones in `up`"
            for c in changes if c.kind == "retyped" and isinstance(c.after.annotation, type)
            and issubclass(c.after.annotation, enum.Enum)]


def body(draft: Draft) -> str:
    """`up` and `down` (or nothing: an update declared as $set)."""
    if draft.sets and not draft.up:
        return ""
    up = "\n".join("    " + line.replace("\n", "\n    ") for line in draft.up) or "    pass  # nothing to change"
    restores = list(dict.fromkeys(draft.restores))
    down_lines = list(draft.down)
    if restores:
        down_lines.append(f"return docshift.restore_from(doc, pre_image, {', '.join(map(repr, restores))})")
    else:
        down_lines.append("return doc")
    down = "\n".join("    " + line for line in down_lines)
    return (f"\n\ndef up(doc: dict) -> dict:\n    \"\"\"The document at this version: see the decisions above.\"\"\"\n"
            f"{up}\n    return doc\n\n\n"
            f"def down(doc: dict, pre_image: dict | None) -> dict:\n"
            f"    \"\"\"Back to the version before: what `up` changed comes back from the document's pre-image.\"\"\"\n"
            f"{down}\n")


def draft_source(version: int, description: str, collection: str, app: type[BaseModel], basis: Basis,
                 project: Path | None = None) -> str:
    """The source of the draft migration file (`project`: the folder of the application's own modules)."""
    source = Source(version, project)
    name = re.sub(r"\W", "", "".join(w.capitalize() for w in re.split(r"[^A-Za-z0-9]+", collection))) or "Document"
    model = source.target(f"{name}V{version}", app, collection)
    if basis.data is None:
        draft = decide(basis.changes)
    else:
        draft = Draft()
        decide_data(draft, basis.data)
        fold_sets(draft, always=not basis.data.exact)
    notes = [*draft.notes, *enum_notes(basis.changes if basis.data is None else basis.data.changes)]
    target_name = basis.target or ("the documents of " + collection if basis.data else None)
    functions = body(draft)
    arguments = (f"update={{'$set': {draft.sets!r}}}" if draft.sets and not functions else "up=up, down=down")
    imports = "\n".join(sorted(source.imports | {"from pydantic import BaseModel, ConfigDict"}))
    header = (f'"""Version {version}: {description}.\n\nDRAFT written by `docshift new --from-model '
              f'{app.__module__}:{app.__qualname__}` from the differences to '
              f'{target_name or "no earlier target_model"}. Read every decision below, fill in each TODO, then '
              f'`docshift plan`.\n"""\n\n')
    decisions = "\n".join(f"# - {note}" for note in notes)
    return (f"{header}{imports}\n\nimport docshift\n\n# Decisions (docshift new --from-model):\n{decisions}\n\n\n"
            f"{model}\n{functions}\n\nmigration = docshift.Migration(\n"
            f"    version={version}, description={description!r}, collection={collection!r}, kind={draft.kind!r},\n"
            f"    {arguments}, target_model={name}V{version},\n"
            f"    # expand_contract=docshift.ExpandContract(backfill=..., removes=(...,), timezone=\"UTC\"),\n)\n")
