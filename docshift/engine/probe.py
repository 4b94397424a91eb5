"""Whether the server can store a document, tried on a scratch collection (storage.probe) that is dropped at once.

FerretDB 1.24 refuses nested arrays and keys with a dot or a `$` with a write error; a Decimal128 makes its handler
panic, so the connection is closed without an error (the server itself survives). A refused document is narrowed
down to the field the server refuses by storing its fields one at a time, so that the message can name it. MongoDB
stores all of these: there the probe passes (one of the differences docshift.servers lists).
"""

from collections.abc import Iterable, Mapping
from typing import Any

from bson import ObjectId
from bson.errors import InvalidDocument
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import AutoReconnect, ConnectionFailure, NetworkTimeout, OperationFailure, PyMongoError

from .. import storage
from ..errors import DatabaseError
from ..servers import Refusal

CLOSED = "the server closed the connection instead of storing it"


def refusal(db: Database, doc: Mapping) -> Refusal | None:
    """What the server refuses in `doc`, or None when it stores it."""
    return first_refusal(db, [doc])[1]


def first_refusal(db: Database, docs: Iterable[Mapping]) -> tuple[Any, Refusal | None]:
    """The `_id` of the first of `docs` that the server refuses and what it refuses in it; (None, None) if none."""
    scratch = storage.probe(db)
    try:
        for doc in docs:
            if (reason := _store(scratch, doc)) is not None:
                return doc.get("_id"), _narrow(scratch, doc, (), reason)
        return None, None
    finally:
        try:
            scratch.drop()
        except PyMongoError:
            pass  # the server went away: nothing of the scratch collection can be left but its name


def server_answers(db: Database) -> bool:
    """Whether the server answers `ping` now (after a closed connection: it closed that one, or it is down)."""
    try:
        db.client.admin.command("ping")
    except ConnectionFailure:
        return False
    return True


def _store(scratch: Collection, doc: Mapping) -> str | None:
    """Store `doc` under a new `_id`: None if the server took it, else why not."""
    try:
        scratch.insert_one({**doc, "_id": ObjectId()})
    except (OperationFailure, InvalidDocument) as exc:  # WriteError is an OperationFailure
        return (getattr(exc, "details", None) or {}).get("errmsg") or str(exc)
    except AutoReconnect as exc:
        if isinstance(exc, NetworkTimeout) or not server_answers(scratch.database):
            raise DatabaseError(f"the server stopped answering when docshift tried to store a document in it: {exc}") from exc
        return CLOSED
    return None


def _narrow(scratch: Collection, doc: Mapping, path: tuple, reason: str) -> Refusal:
    """The first field of `doc` (at `path`) that the server refuses alone, looked for inside subdocuments too."""
    for key, value in doc.items():
        if key == "_id" and not path:
            continue
        wrapped: Any = {key: value}
        for outer in reversed(path):
            wrapped = {outer: wrapped}
        if (why := _store(scratch, wrapped)) is not None:
            if isinstance(value, Mapping) and value:
                return _narrow(scratch, value, (*path, key), why)
            return Refusal(".".join((*path, key)), type(value).__name__, why)
    return Refusal(".".join(path) or "(the whole document)", "document", reason)
