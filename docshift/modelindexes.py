"""The indexes an application declares on its model against those its collection's migrations create: the index part
of `docshift check` and `docshift new --from-model`.

The application declares a collection's indexes as a class attribute of its pydantic model that pydantic ignores:

    class User(BaseModel):
        __indexes__: ClassVar[list[docshift.Index]] = [docshift.Index(keys=[("email", 1)], unique=True)]

The migrations' indexes are what their collection-level steps leave, replayed in version order: CreateIndex adds one,
DropIndex removes it, RenameCollection moves them to the new name, DropCollection removes them all. An index made
outside the migrations (by hand, by the application) is not known here: declared, it is drafted as a CreateIndex.
Indexes are compared by name (MongoDB's default name when none is given, `email_1`) and then by keys and options.
Pure functions: no database.
"""

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel

from .errors import DocshiftError
from .loader import ScriptDirectory
from .operations import CreateIndex, DropCollection, DropIndex, Index, RenameCollection, describe_index

ATTRIBUTE = "__indexes__"


class IndexDeclarationError(DocshiftError):
    """A model's `__indexes__` is not a list of docshift.Index."""


@dataclass(frozen=True)
class MigratedIndex:
    """An index the migrations leave on the collection, and the migration that created it."""

    index: Index
    version: int


@dataclass(frozen=True)
class IndexChange:
    """An index declared on the model that no migration creates (`added`), or one a migration created that the model
    no longer declares (`removed`, with that migration's version). An index declared with other keys or options than
    the migrations gave it is both: removed, then added."""

    kind: Literal["added", "removed"]
    index: Index
    version: int | None = None

    @property
    def name(self) -> str:
        return self.index.spec["name"]

    def describe(self) -> str:
        """The difference in one line, as `check` prints it."""
        if self.kind == "added":
            return f"index {self.name}: added ({describe_index(self.index.spec)})"
        return f"index {self.name}: removed (was {describe_index(self.index.spec)}, created by migration {self.version})"


def declared_indexes(model: type[BaseModel], spec: str) -> dict[str, Index]:
    """The indexes `model` declares (`__indexes__`, none when it has no such attribute) by name."""
    declared = getattr(model, ATTRIBUTE, ())
    if not isinstance(declared, (list, tuple)) or not all(isinstance(i, Index) for i in declared):
        raise IndexDeclarationError(f"model {spec}: {ATTRIBUTE} must be a list of docshift.Index, e.g. "
                                    f"[docshift.Index(keys=[('email', 1)], unique=True)]")
    found: dict[str, Index] = {}
    for index in declared:
        name = index.spec["name"]
        if name in found or name == "_id_":
            raise IndexDeclarationError(f"model {spec}: {ATTRIBUTE} declares index {name} "
                                        f"{'twice' if name in found else 'which MongoDB makes itself'}")
        found[name] = as_index(index)
    return found


def as_index(index: Index) -> Index:
    """The index alone (a CreateIndex without its migration-step part), so that equal indexes compare equal."""
    return Index.model_validate(index.model_dump(by_alias=True))


def migrated_indexes(scripts: ScriptDirectory, collection: str) -> dict[str, MigratedIndex]:
    """The indexes the migrations of `scripts` leave on `collection`, by name (the `_id` index left out)."""
    by_collection: dict[str, dict[str, MigratedIndex]] = {}
    for version, migration in scripts.units():  # every step of every migration, in order
        operation = migration.operation
        indexes = by_collection.setdefault(migration.collection, {})
        if isinstance(operation, CreateIndex):
            indexes[operation.spec["name"]] = MigratedIndex(as_index(operation), version)
        elif isinstance(operation, DropIndex):
            indexes.pop(operation.index, None)
        elif isinstance(operation, RenameCollection):
            by_collection[operation.to] = by_collection.pop(migration.collection)
        elif isinstance(operation, DropCollection):
            indexes.clear()
    return by_collection.get(collection, {})


def compare_indexes(migrated: dict[str, MigratedIndex], declared: dict[str, Index]) -> list[IndexChange]:
    """Removed indexes first (a changed one is dropped before it is created anew), then added ones, by name."""
    removed = [IndexChange("removed", m.index, m.version) for name, m in sorted(migrated.items())
               if name not in declared or declared[name].spec != m.index.spec]
    added = [IndexChange("added", index) for name, index in sorted(declared.items())
             if name not in migrated or migrated[name].index.spec != index.spec]
    return removed + added


def index_draft_source(version: int, description: str, collection: str, change: IndexChange, spec: str,
                       again: bool = False) -> str:
    """The source of a draft collection-level migration for one index change (`again`: an index of that name is
    dropped by the draft before, for being declared with other keys or options)."""
    name = change.name
    if change.kind == "added":
        arguments = ", ".join(f"{k}={v!r}" for k, v in change.index.model_dump(by_alias=True, exclude_defaults=True).items())
        operation = f"docshift.CreateIndex({arguments})"
        notes = [f"{name}: declared on {spec} ({describe_index(change.index.spec)}) and "
                 f"{'created anew with its new keys or options' if again else 'created by no migration of ' + collection}"
                 f": CreateIndex; `down` drops it"]
        if change.index.unique:
            notes.append(f"{name} is unique: `docshift plan` and the run refuse it, naming them, while documents "
                         f"share a key; make the values unique in a document migration before this one")
        if change.index.partial_filter or change.index.sparse or change.index.expire_after_seconds is not None:
            notes.append(f"{name}: a partial, sparse or TTL index needs a server that has them (MongoDB does; not "
                         f"every server that speaks its protocol)")
    else:
        operation = f"docshift.DropIndex(name={name!r})"
        notes = [f"{name}: created by migration {change.version} and "
                 f"{'declared with other keys or options' if again else 'no longer declared on ' + spec}: DropIndex; "
                 f"the run keeps its definition in its history, so `down` recreates it as it was"]
    decisions = "\n".join(f"# - {note}" for note in notes)
    return (f'"""Version {version}: {description}.\n\nDRAFT written by `docshift new --from-model {spec}` from the '
            f'indexes the model declares ({ATTRIBUTE}) and those the migrations create on {collection}. A '
            f'collection-level step: it changes no document. Read the decisions below, then `docshift plan`.\n"""\n\n'
            f"import docshift\n\n# Decisions (docshift new --from-model):\n{decisions}\n\n"
            f"migration = docshift.Migration(\n    version={version}, description={description!r}, "
            f"collection={collection!r},\n    operation={operation},\n)\n")
