"""Version 2 (orders, additive): every order gets `currency`, EUR by default."""

import docshift


def up(doc: dict) -> dict:
    doc.setdefault("currency", "EUR")
    return doc


def down(doc: dict) -> dict:
    doc.pop("currency", None)
    return doc


migration = docshift.Migration(version=2, description="Add currency to orders", collection="orders",
                               kind="additive", up=up, down=down)
