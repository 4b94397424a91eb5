"""Version 5 (customers, transformative): `name` ('Ada Lovelace') becomes `first_name` and `last_name`.

The model test breaks this file on purpose (its `up` raises on some customers) to quarantine them, then fixes it.
"""

from pydantic import BaseModel, ConfigDict, StrictInt, StrictStr

import docshift


class CustomerV5(BaseModel):
    model_config = ConfigDict(extra="allow")
    schema_version: StrictInt
    first_name: StrictStr
    last_name: StrictStr


def up(doc: dict) -> dict:
    first, _, last = doc.pop("name").partition(" ")
    doc["first_name"], doc["last_name"] = first, last
    return doc


def down(doc: dict) -> dict:
    doc["name"] = f"{doc.pop('first_name')} {doc.pop('last_name')}"
    return doc


migration = docshift.Migration(version=5, description="Split customer names", collection="customers",
                               kind="transformative", up=up, down=down, target_model=CustomerV5)
