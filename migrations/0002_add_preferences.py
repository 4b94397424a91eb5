"""Version 2: every user gets default preferences (additive, from the original design)."""

from datetime import datetime, timezone

from pydantic import BaseModel, ConfigDict

import docshift

DEFAULT_PREFERENCES = {"theme": "light", "notifications": True, "language": "en"}


class Preferences(BaseModel):
    theme: str
    notifications: bool
    language: str


class UserV2(BaseModel):
    model_config = ConfigDict(extra="allow")
    schema_version: int
    preferences: Preferences


def up(doc: dict) -> dict:
    doc.setdefault("preferences", dict(DEFAULT_PREFERENCES))
    doc["updated_at"] = datetime.now(timezone.utc)
    return doc


def down(doc: dict, pre_image: dict | None) -> dict:
    """Drop the defaults; a user who had preferences before version 2 keeps them, as they were."""
    if pre_image is None:
        doc.pop("preferences", None)
    return docshift.restore_from(doc, pre_image, "preferences", "updated_at")


migration = docshift.Migration(
    version=2, description="Add user preferences field", collection="users", kind="additive",
    up=up, down=down, target_model=UserV2,
)
