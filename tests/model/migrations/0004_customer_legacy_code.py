"""Version 4 (customers, destructive): remove `legacy_code`; `down` takes it back from the pre-images."""

import docshift


def up(doc: dict) -> dict:
    doc.pop("legacy_code", None)
    return doc


def down(doc: dict, pre_image: dict | None) -> dict:
    return docshift.restore_from(doc, pre_image, "legacy_code")


migration = docshift.Migration(version=4, description="Remove legacy_code from customers", collection="customers",
                               kind="destructive", up=up, down=down)
