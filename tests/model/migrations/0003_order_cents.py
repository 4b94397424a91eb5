"""Version 3 (orders, transformative): the amount string ('70.12', '5', '070.1') becomes integer cents.

`down` writes the cents back as a string; the original spelling ('070.1') comes back from the pre-image when the
pre-image still agrees with the cents (an application may have changed the amount since).
"""

from pydantic import BaseModel, ConfigDict, StrictInt, StrictStr

import docshift


class OrderV3(BaseModel):
    model_config = ConfigDict(extra="allow")
    schema_version: StrictInt
    amount_cents: StrictInt
    currency: StrictStr


def cents(amount: str) -> int:
    whole, _, fraction = amount.partition(".")
    return int(whole) * 100 + int((fraction + "00")[:2])


def spelled(amount_cents: int) -> str:
    return f"{amount_cents // 100}.{amount_cents % 100:02d}"


def up(doc: dict) -> dict:
    doc["amount_cents"] = cents(doc.pop("amount"))
    return doc


def down(doc: dict, pre_image: dict | None) -> dict:
    amount_cents = doc.pop("amount_cents")
    before = (pre_image or {}).get("amount")
    doc["amount"] = before if isinstance(before, str) and cents(before) == amount_cents else spelled(amount_cents)
    return doc


migration = docshift.Migration(version=3, description="Order amounts in cents", collection="orders",
                               kind="transformative", up=up, down=down, target_model=OrderV3)
