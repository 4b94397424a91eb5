"""Version 2 of the benchmark's additive step (mode u): migration 2's default preferences declared as an update,
which docshift runs on the server by `_id` ranges. The shipped migrations/0002_add_preferences.py keeps its
functions: it also stamps `updated_at` with the clock and keeps the preferences a user had, neither of which a
constant `$set` does; with `updated_at` in the update every document would need its pre-image read and saved."""

import docshift

DEFAULT_PREFERENCES = {"theme": "light", "notifications": True, "language": "en"}

migration = docshift.Migration(
    version=2, description="Add user preferences field (as an update)", collection="users", kind="additive",
    update={"$set": {"preferences": DEFAULT_PREFERENCES}},
)
