"""Version 4: remove `deprecated_field` (destructive, from the original design).

`down` cannot invent what `up` removed: it takes the values back from the pre-images the run backed up.
"""

from datetime import datetime, timezone

import docshift


def up(doc: dict) -> dict:
    doc.pop("deprecated_field", None)
    doc["updated_at"] = datetime.now(timezone.utc)
    return doc


def down(doc: dict, pre_image: dict | None) -> dict:
    return docshift.restore_from(doc, pre_image, "deprecated_field", "updated_at")


migration = docshift.Migration(
    version=4, description="Remove deprecated_field", collection="users", kind="destructive", up=up, down=down,
)
