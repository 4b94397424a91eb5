"""Every place where docshift treats one server differently from another: FerretDB 1.24 (the embedded server the
project's tests run on) beside MongoDB, and the probes that pick a fast path where the server has it.

The engine asks this module ("is this FerretDB?", "does it filter with `$jsonSchema`?") and tests no server's name
itself. A MongoDB user reads here what the proof on FerretDB covers, and can run the suite on their own server
(`DOCSHIFT_TEST_MONGODB_URI`, see the Tests docs): each difference below says which path MongoDB takes.

Asked of the server here, each with why:

- `server_name`: FerretDB says so in `buildInfo` (`ferretdbVersion`); any other server is taken for MongoDB.
- `lacking`: index options and kinds FerretDB 1.24 does not have: partial indexes, sparse ones (it accepts the option
  and ignores it, so the index would not be what the migration says) and TTL ones; text, 2dsphere, 2d and hashed
  indexes (it answers IndexNotFound) and wildcard ones (`$**`: an SQL error); and collMod. A CreateIndex with one is
  refused plainly by `plan` and the pre-flight, before anything is written, whichever step of the plan it is
  (engine.operations.check_features); MongoDB has them all, so nothing is refused there.
- `refused_value`: what FerretDB 1.24 refuses to store (nested arrays, keys with a dot or starting with `$`, a
  Decimal128, which makes its handler panic and close the connection), found in a document without asking the
  server. `plan` and the pre-flight check up to DOCSHIFT_PLAN_CHECK_DOCUMENTS (1,000) transformed documents per step
  with it, naming the first offending `_id` and field (engine.planning.check_values); MongoDB stores all of these, so
  nothing is refused there.
- `renames_to_dotted_names`: FerretDB refuses `renameCollection` to a name with a dot, so such a RenameCollection is
  refused before anything is written (engine.operation_steps); MongoDB renames it.
- `has_json_schema`: MongoDB filters with `$jsonSchema`; FerretDB 1.24 and mongomock do not. With it, rollback puts
  a batch back in one bulk write whose filters match only the whole document as the run left it, no field added
  (engine.rollback.restore_exactly); without it, document by document with `find_one_and_replace`, filtered on
  every field and checked against the document replaced (restore_each).
- `UNSUPPORTED`: what a server without an aggregation stage or command raises. Each fast path that catches it has a
  portable fallback: `$collStats` count (engine.cursor.collection_count; mongomock lacks it: counts the documents),
  `$bucketAuto` (engine.partitions.partition_bounds; FerretDB 1.24 and mongomock lack it: the `_id`s at the
  quantiles are read by skipping along the `_id` order), `collStats` (engine.retention.data_size: 0 where missing).
- `NOT_IMPLEMENTED`: the error code a server answers for an index it cannot make; `create_index` says so plainly.

Done the same way on every server because of FerretDB (no branch; named so that nobody takes them for needless):

- The pre-flight also stores one transformed document per step in a scratch collection (engine.probe,
  engine.planning.check_server_accepts), for what `refused_value` does not know of. MongoDB stores them: there the
  probe passes, at the cost of one insert and one drop per step.
- A batch whose reply lacks `nModified` (FerretDB's answer to such a value), or whose connection closes while the
  server still answers, is taken for a value the server refuses, named, and not retried (engine.batches).
- The journal of collection-level steps keeps each action as extended JSON text (engine.operations.actions_in), and
  an index's keys as a list of `{field, order}` (docshift.operations.CreateIndex.spec): FerretDB stores neither
  `$`-keys, dotted keys nor nested arrays.
- A dropped collection is kept as `_docshift_dropped_<run>`, with no dot (docshift.storage.KEPT_PREFIX).
- Nothing needs transactions, an update with an aggregation pipeline, `$merge`/`$out`/`$lookup`, validators or
  `dbHash`, which FerretDB 1.24 lacks: writes are guarded by filters (engine.guards), verification reads documents.
- Stock FerretDB 1.24 reads and writes an updated document in separate transactions, so two writers of one document
  at the same instant could lose a write whatever the filter; the embedded server's patch makes each update one
  read-modify-write, as MongoDB's are (scripts/ferretdb, tests/integration/test_ferretdb_server.py).
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bson.decimal128 import Decimal128
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import OperationFailure, PyMongoError

FERRETDB = "FerretDB"

UNSUPPORTED = (OperationFailure, NotImplementedError)
"""What a server without an aggregation stage raises: OperationFailure (FerretDB, compatibles), NotImplementedError
(mongomock)."""

NOT_IMPLEMENTED = 238
"""MongoDB's error code NotImplemented: a server's answer to an index option it does not have."""

LACKING = {FERRETDB: {"partialFilterExpression": "partial indexes", "sparse": "sparse indexes (it accepts the option "
                      "and ignores it)", "expireAfterSeconds": "TTL indexes", "collMod": "collMod",
                      "text": "text indexes", "2dsphere": "2dsphere indexes", "2d": "2d indexes",
                      "hashed": "hashed indexes", "$**": "wildcard indexes"}}
"""What servers known to docshift lack, by index option, index kind (`index_kinds`) or command."""

WILDCARD = "$**"


def server_name(db: Database) -> str | None:
    """'FerretDB' when the server says it is (its buildInfo carries `ferretdbVersion`), else None (MongoDB, unknown)."""
    try:
        info = db.command("buildInfo")
    except (PyMongoError, NotImplementedError):
        return None
    return FERRETDB if "ferretdbVersion" in info else None


def is_ferretdb(db: Database) -> bool:
    return server_name(db) == FERRETDB


def index_kinds(keys: Iterable[tuple[str, int | str]]) -> list[str]:
    """The kinds of index MongoDB documents that these (field, order) keys make beyond ascending and descending ones:
    a key's type (text, 2dsphere, 2d, hashed), and `$**` for a wildcard field (`$**` or `path.$**`)."""
    kinds = [WILDCARD if field == WILDCARD or field.endswith("." + WILDCARD) else order for field, order in keys]
    return list(dict.fromkeys(k for k in kinds if isinstance(k, str)))


def lacking(name: str | None, options: Mapping, keys: Iterable[tuple[str, int | str]] = ()) -> list[str]:
    """Of an index's `options` and the kinds its `keys` make, those the server called `name` lacks, each as
    "what it is (option or kind)"."""
    missing = LACKING.get(name or "", {})
    return [f"{missing[o]} ({o})" for o in [*options, *index_kinds(keys)] if o in missing]


@dataclass(frozen=True)
class Refusal:
    """What the server would not store: the field (a dotted path), its value's type, and the server's reason."""

    field: str
    kind: str
    reason: str

    def __str__(self) -> str:
        return f"field {self.field!r} ({self.kind}): {self.reason}"


def refused_value(name: str | None, doc: Mapping) -> Refusal | None:
    """The first value of `doc` that the server called `name` refuses to store, found without asking it (FerretDB
    1.24: nested arrays, keys with a dot or starting with `$`, Decimal128), or None."""
    return _refused_in(doc, ()) if name == FERRETDB else None


def _refused_in(value: Any, path: tuple[str, ...]) -> Refusal | None:
    if isinstance(value, Decimal128):
        return Refusal(".".join(path), "Decimal128", "FerretDB's handler panics on it and closes the connection")
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = Refusal(".".join(path), "list", "nested arrays are not supported") if isinstance(item, list) \
                else _refused_in(item, (*path, str(i)))
            if found:
                return found
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(key, str) and ("." in key or key.startswith("$")):
                why = "key must not contain '.'" if "." in key else "key must not start with '$'"
                return Refusal(".".join((*path, key)), type(item).__name__, why)
            if found := _refused_in(item, (*path, key)):
                return found
    return None


def renames_to_dotted_names(name: str | None) -> bool:
    """Whether the server called `name` can rename a collection to a name with a dot (FerretDB cannot)."""
    return name != FERRETDB


def has_json_schema(coll: Collection) -> bool:
    """Whether the server filters with `$jsonSchema` (MongoDB does; FerretDB 1.24 and mongomock do not)."""
    try:
        coll.find_one({"$jsonSchema": {}})
    except UNSUPPORTED:
        return False
    return True
