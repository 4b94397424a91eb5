"""Comparison helpers shared by the unit and integration tests: docshift.testing's own, re-exported."""

from docshift.testing import as_bson, canonical

__all__ = ["as_bson", "canonical"]
