"""Collection-level steps: what a migration does to indexes and collections rather than to each document.

A migration file names one of these as its `operation` instead of `up`/`down` functions:

    migration = docshift.Migration(version=6, description="SKUs are unique", collection="products",
                                   operation=docshift.CreateIndex(keys=[("sku", 1)], unique=True))

Each operation owns both directions as a short list of Actions, plain records of one change to the database (create
or drop an index, rename, drop or restore a collection, copy documents). The engine (docshift.engine.operations)
checks them before anything is written, backs up what an action destroys, journals each action in the run's history
entry before doing it, verifies the result, and undoes a failed run by inverting its journal. Nothing here does I/O.
"""

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Direction = Literal["up", "down"]
IndexKey = tuple[str, int | str]


@dataclass(frozen=True)
class Action:
    """One change to the database. `do` is one of: create_index, drop_index, restore_index (the index an earlier run
    dropped, as it was), rename, drop_collection (kept whole in the run's backup first), restore_collection (from
    that backup), copy (documents of `collection` matching `filter` into the new collection `to`), delete (documents
    of `collection` matching `filter`, each kept in the run's backup first), undelete (those kept documents put back)."""

    do: str
    collection: str
    to: str | None = None
    index: dict | None = None
    filter: dict = field(default_factory=dict)

    @property
    def record(self) -> dict:
        """The action as its journal entry records it."""
        return {k: v for k, v in asdict(self).items() if v not in (None, {})}


def index_name(keys: list[IndexKey]) -> str:
    """The name MongoDB gives an index of these keys by default (`sku_1`, `a.b_1_c_-1`)."""
    return "_".join(f"{k}_{d}" for k, d in keys)


class Operation(BaseModel):
    """A collection-level step; subclasses say which actions apply (`up`) and revert (`down`) it."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True, extra="forbid", populate_by_name=True)

    def actions(self, collection: str, direction: Direction) -> list[Action]:
        raise NotImplementedError

    def describe(self, collection: str, direction: Direction) -> str:
        raise NotImplementedError

    @property
    def renames_to(self) -> str | None:
        """The collection's new name, when this operation renames it (its documents keep their schema version)."""
        return None

    @property
    def creates(self) -> str | None:
        """A collection this operation creates with new documents (they start at the initial schema, version 1)."""
        return None


class Index(BaseModel):
    """An index: its keys (pairs of field and order, as pymongo takes them) and options. The application declares the
    indexes of a collection with these on its model (`__indexes__`, read by `docshift check` and `docshift new
    --from-model`); `CreateIndex` is the migration step that creates one."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    index_keys: list[IndexKey] = Field(alias="keys", min_length=1)
    """Given as `keys=` (held under another name: an object with a `keys` attribute passes for a mapping in Prefect)."""
    unique: bool = False
    name: str | None = None
    partial_filter: dict | None = None
    sparse: bool = False
    expire_after_seconds: int | None = Field(None, ge=0)

    @property
    def spec(self) -> dict:
        """The index as the engine creates it: name, keys (a list of {field, order}: field names may hold dots, and
        FerretDB stores no nested arrays), server options."""
        options = {"unique": self.unique or None, "partialFilterExpression": self.partial_filter,
                   "sparse": self.sparse or None, "expireAfterSeconds": self.expire_after_seconds}
        return {"name": self.name or index_name(self.index_keys), "keys": key_list(self.index_keys),
                "options": {k: v for k, v in options.items() if v is not None}}


class CreateIndex(Index, Operation):
    """Create an index (`down` drops it). `unique` is refused by `plan` and the run's pre-flight while existing
    documents share a key, naming them. `partial_filter`, `sparse` and `expire_after_seconds` (TTL), and the index
    kinds other than 1/-1 keys (`"text"`, `"2dsphere"`, `"2d"`, `"hashed"`, a wildcard field `"$**"`) need a server
    that has them (FerretDB has none of them: docshift.servers)."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True, extra="forbid", populate_by_name=True)

    def actions(self, collection: str, direction: Direction) -> list[Action]:
        if direction == "up":
            return [Action("create_index", collection, index=self.spec)]
        return [Action("drop_index", collection, index={"name": self.spec["name"]})]

    def describe(self, collection: str, direction: Direction) -> str:
        spec = self.spec
        if direction == "down":
            return f"drop index {spec['name']} of {collection}"
        return f"create {describe_index(spec)} on {collection}"


class DropIndex(Operation):
    """Drop an index by `name` (or by `keys`); its definition is kept in the run's history so that `down` recreates
    it exactly (a unique one only while the data still allows it)."""

    name: str | None = None
    index_keys: list[IndexKey] | None = Field(None, alias="keys")

    @model_validator(mode="after")
    def _name_or_keys(self) -> "DropIndex":
        if (self.name is None) == (self.index_keys is None):
            raise ValueError("DropIndex takes either name or keys")
        if self.index == "_id_":
            raise ValueError("the _id index cannot be dropped")
        return self

    @property
    def index(self) -> str:
        return self.name or index_name(self.index_keys)

    def actions(self, collection: str, direction: Direction) -> list[Action]:
        return [Action("drop_index" if direction == "up" else "restore_index", collection, index={"name": self.index})]

    def describe(self, collection: str, direction: Direction) -> str:
        return f"{'drop' if direction == 'up' else 'recreate'} index {self.index} of {collection}"


class RenameCollection(Operation):
    """Rename the migration's collection to `to` in the same database (`down` renames it back). Later migrations name
    the new collection; its documents keep their schema version. A collection named `to` that exists already is
    refused, unless `drop_target`: then it is dropped first, as DropCollection drops one (kept whole in the run's backup
    and its mongodump-format file), and `down` puts it back after renaming back."""

    to: str = Field(min_length=1, pattern=r"^[^$\x00]+$")
    drop_target: bool = False

    def actions(self, collection: str, direction: Direction) -> list[Action]:
        dropped = [Action("drop_collection", self.to)] if self.drop_target else []
        if direction == "up":
            return [*dropped, Action("rename", collection, to=self.to)]
        return [Action("rename", self.to, to=collection), *(Action("restore_collection", a.collection) for a in dropped)]

    @property
    def renames_to(self) -> str:
        return self.to

    def describe(self, collection: str, direction: Direction) -> str:
        if direction == "up":
            dropped = f", dropping the existing {self.to} (kept in the run's backup)" if self.drop_target else ""
            return f"rename {collection} to {self.to}{dropped}"
        restored = f" and restore the dropped {self.to} from its backup" if self.drop_target else ""
        return f"rename {self.to} back to {collection}{restored}"


class DropCollection(Operation):
    """Drop the migration's collection. It is moved whole into the run's backup and written to the run's
    mongodump-format file first; `down` (and a rollback) put it back exactly, documents and indexes."""

    def actions(self, collection: str, direction: Direction) -> list[Action]:
        return [Action("drop_collection" if direction == "up" else "restore_collection", collection)]

    def describe(self, collection: str, direction: Direction) -> str:
        return f"drop collection {collection} (kept in the run's backup)" if direction == "up" else \
            f"restore collection {collection} from its backup"


class CopyDocuments(Operation):
    """Copy the documents of the migration's collection that match `filter` into the new collection `to`, each as
    `transform(doc)` returns it (None: not copied; a list: several documents, each with its own `_id`, as an unwind;
    may take `lookup`), e.g. to split part of each document out. The
    source is left as it is (a later migration may remove what moved). The copies start at schema version 1. `down`
    drops `to`, keeping it in the run's backup."""

    to: str = Field(min_length=1, pattern=r"^[^$\x00]+$")
    filter: dict = Field(default_factory=dict)
    transform: Callable | None = None

    def actions(self, collection: str, direction: Direction) -> list[Action]:
        if direction == "up":
            return [Action("copy", collection, to=self.to, filter=self.filter)]
        return [Action("drop_collection", self.to)]

    @property
    def creates(self) -> str:
        return self.to

    def describe(self, collection: str, direction: Direction) -> str:
        which = "the documents" if not self.filter else f"the documents matching {self.filter}"
        if direction == "up":
            return f"copy {which} of {collection} into the new collection {self.to}"
        return f"drop the copied collection {self.to} (kept in the run's backup)"


class DeleteDocuments(Operation):
    """Delete the documents of the migration's collection that match `filter` (as `deleteMany(filter)`; `{}`: all of
    them, keeping the collection and its indexes). Each is kept in the run's backup before it is deleted, and `down`
    (and a rollback) put them back byte for byte; one whose `_id` exists again by then is left as it is."""

    filter: dict

    def actions(self, collection: str, direction: Direction) -> list[Action]:
        return [Action("delete" if direction == "up" else "undelete", collection, filter=self.filter)]

    def describe(self, collection: str, direction: Direction) -> str:
        if direction == "up":
            return f"delete the documents matching {self.filter} of {collection} (kept in the run's backup)"
        return f"put back the documents deleted from {collection} (from its backup)"


def key_list(keys) -> list[dict]:
    """Index keys as docshift stores them: [{field, order}, …] from pairs or a key document."""
    pairs = keys.items() if hasattr(keys, "items") else keys
    return [{"field": k, "order": d} for k, d in pairs]


def describe_index(spec: dict) -> str:
    """`unique index sku_1 (sku: 1)` and the like, from an index spec (name, keys pairs, options)."""
    options = spec.get("options", {})
    kinds = [word for word, key in (("unique", "unique"), ("sparse", "sparse"), ("partial", "partialFilterExpression"),
                                    ("TTL", "expireAfterSeconds")) if options.get(key)]
    keys = ", ".join(f"{k['field']}: {k['order']}" for k in spec["keys"])
    return f"{' '.join(kinds + ['index'])} {spec['name']} ({keys})"
