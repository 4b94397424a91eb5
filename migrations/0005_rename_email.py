"""Version 5: rename `email` to `email_address` (the expand-contract example of the original design).

`docshift migrate` applies it in one step (`up`). Without downtime it runs as four phases instead, each its own
Prefect deployment: expand (the application dual-writes), backfill (`backfill`: both fields, old readers keep
working), contract (the application reads only `email_address`), cleanup (`email` removed). `docshift deploy` makes
them `expand/users-email-address` … `cleanup/users-email-address`, scheduled in one week's maintenance windows.
"""

from datetime import datetime, timezone

import docshift


def up(doc: dict) -> dict:
    if "email" in doc:
        doc.setdefault("email_address", doc.pop("email"))
    doc["updated_at"] = datetime.now(timezone.utc)
    return doc


def backfill(doc: dict) -> dict:
    """The new field beside the old one: what `up` does, minus removing `email`."""
    if "email" in doc:
        doc.setdefault("email_address", doc["email"])
    doc["updated_at"] = datetime.now(timezone.utc)
    return doc


def down(doc: dict, pre_image: dict | None) -> dict:
    """Back to `email`; a document that already had both fields (dual-written) gets both back."""
    if pre_image is not None:
        return docshift.restore_from(doc, pre_image, "email", "email_address", "updated_at")
    if "email_address" in doc:
        doc["email"] = doc.pop("email_address")
    return doc


migration = docshift.Migration(
    version=5, description="Rename email to email_address", collection="users", kind="transformative",
    up=up, down=down,
    expand_contract=docshift.ExpandContract(
        backfill=backfill, removes=("email",), name="users-email-address", timezone="Europe/Berlin",
        expand_schedule="0 21 * * 1",  # Monday 21:00, after the dual-writing application release
        backfill_schedule="FREQ=WEEKLY;BYDAY=TU,WE,TH;BYHOUR=1;BYMINUTE=0",  # 01:00-03:00 on three nights
        contract_schedule="30 3 * * 5",  # Friday 03:30, after the last backfill night
        cleanup_schedule="0 2 * * 6",  # Saturday 02:00-04:00, a day's soak after contract
        window_minutes=120,
    ),
)
