"""Application-side helpers for reading and writing documents of any version during an expand-contract change.

They are the original design's expand phase as functions (read the new field and fall back to the old one,
write both), plus upgrade-on-read: the MongoDB schema-versioning pattern, using the migrations' own `up`.
"""

from collections.abc import Mapping
from typing import Any

from .engine.steps import make_step, transform_one
from .loader import ScriptDirectory
from .spec import INITIAL_VERSION
from .transform import VERSION_FIELD

def read_field(doc: Mapping, new: str, old: str, default: Any = None) -> Any:
    """The value under `new`, else under `old` (a document not yet backfilled), else `default`."""
    if new in doc:
        return doc[new]
    return doc.get(old, default)


def dual_write(renames: Mapping[str, str], values: Mapping[str, Any]) -> dict:
    """An update that sets each value under its new name and, while old readers exist, under the old one too.

    `renames` maps new field names to old ones (`{"email_address": "email"}`); other fields are set as given.
    """
    fields = {}
    for name, value in values.items():
        fields[name] = value
        if name in renames:
            fields[renames[name]] = value
    return {"$set": fields}


def version_of(doc: Mapping) -> int:
    """A document's schema version; one without the field is at the initial version."""
    return doc.get(VERSION_FIELD) or INITIAL_VERSION


def upgrade(doc: Mapping, scripts: ScriptDirectory, collection: str, to_version: int | None = None) -> dict:
    """`doc` brought up to `to_version` (default: the latest of its collection) by the migrations' own `up` functions.

    Nothing is written: the application reads any version as the newest, while the migration runs or before it.
    """
    versions = scripts.document_versions(collection)
    if to_version is not None:
        target = to_version
    else:
        target = versions[-1] if versions else INITIAL_VERSION
    current = dict(doc)
    for v in versions:
        step = make_step(scripts, v, "up", part=scripts.document_part(v, collection))
        if v <= target and step.from_version == version_of(current):
            current = transform_one(scripts.part(v, step.part), step, current, None)
    if version_of(current) != target and target != INITIAL_VERSION:
        raise ValueError(f"cannot upgrade a document at version {version_of(doc)} of {collection!r} to {target}")
    return current
