"""Version 3: split `name` into `first_name` and `last_name` (transformative, from the original design).

Real names are messy: one word, runs of spaces, unicode, missing or null, not even a string. `up` splits on
the first run of whitespace and keeps the original in `name_source` only when splitting would lose it, so
that `down` gives back exactly the `name` there was (or none, when there was none).
"""

from datetime import datetime, timezone

from pydantic import BaseModel, ConfigDict

import docshift


class UserV3(BaseModel):
    model_config = ConfigDict(extra="allow")
    schema_version: int
    first_name: str | None
    last_name: str | None


def split(name):
    """("Ada", "García Márquez") for "  Ada   García  Márquez "; whitespace-only or one word leaves last_name empty."""
    words = name.split()
    if not words:
        return "", ""
    return words[0], " ".join(words[1:])


def join(first, last):
    return f"{first} {last}" if last else first


def up(doc: dict) -> dict:
    if "name" not in doc:
        doc["first_name"], doc["last_name"], doc["name_absent"] = None, None, True
    elif isinstance(name := doc.pop("name"), str):
        first, last = split(name)
        doc["first_name"], doc["last_name"] = first, last
        if join(first, last) != name:
            doc["name_source"] = name  # extra spaces or whitespace: joining would not give it back
    else:
        doc["first_name"], doc["last_name"] = None, None
        doc["name_source"] = name  # None or not a string: kept so that down restores it exactly
    doc["updated_at"] = datetime.now(timezone.utc)
    return doc


def down(doc: dict, pre_image: dict | None) -> dict:
    first, last = doc.pop("first_name", None), doc.pop("last_name", None)
    if not doc.pop("name_absent", False):
        doc["name"] = doc.pop("name_source") if "name_source" in doc else join(first or "", last or "")
    return docshift.restore_from(doc, pre_image, "updated_at")


migration = docshift.Migration(
    version=3, description="Split name into first_name and last_name", collection="users", kind="transformative",
    up=up, down=down, target_model=UserV3,
)
