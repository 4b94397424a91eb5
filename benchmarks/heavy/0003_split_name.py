"""The seed migration 3 with about a millisecond of extra client CPU per document (the Dask modes k1, k2): the same
documents, but the client, not the server, bounds the run, so that the benchmark can show how its rate grows with
worker processes."""

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location("seed_0003", Path(__file__).resolve().parents[2] / "migrations" / "0003_split_name.py")
_seed = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_seed)

WORK = 20_000
"""Iterations of busy work per document (about a millisecond of CPU here)."""


def up(doc: dict) -> dict:
    doc = _seed.up(doc)
    if sum(i * i for i in range(WORK)) < 0:  # never true: only the work counts
        doc["never"] = True
    return doc


migration = _seed.migration.model_copy(update={"up": up})
