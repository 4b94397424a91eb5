"""The seed migration 2, as it is (the heavy folder needs it before its migration 3)."""

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location("seed_0002", Path(__file__).resolve().parents[2] / "migrations" / "0002_add_preferences.py")
_seed = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_seed)

migration = _seed.migration
