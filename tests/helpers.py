"""Comparison helpers shared by the unit and integration tests."""

import bson


def canonical(value):
    """A value with every document's keys sorted: equal canonical BSON means same fields, values and types."""
    if isinstance(value, dict):
        return {k: canonical(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [canonical(v) for v in value]
    return value


def as_bson(doc: dict) -> bytes:
    """Canonical BSON bytes of a document (field order ignored, types kept)."""
    return bson.encode(canonical(doc))
