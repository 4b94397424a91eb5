"""Which MongoDB server the tests that need one use: the embedded FerretDB (scripts/ferretdb, started per session),
or the server a user names in DOCSHIFT_TEST_MONGODB_URI (their own MongoDB, to see docshift pass there before
trusting it). Tests that need the embedded server itself are marked `embedded_server("why")` and skip on another.
"""

import os

import pymongo
import pytest
from pymongo.errors import PyMongoError

VARIABLE = "DOCSHIFT_TEST_MONGODB_URI"


def named_server() -> str | None:
    """The URI of the user's server, or None: the session starts the embedded FerretDB."""
    return os.environ.get(VARIABLE) or None


def checked(uri: str) -> str:
    """`uri`, once its server answers `ping`; else the session stops with one line (the password redacted)."""
    from docshift.db import redact  # docshift is imported by the tests, after conftest has set the environment

    try:
        with pymongo.MongoClient(uri, serverSelectionTimeoutMS=10_000) as client:
            client.admin.command("ping")
    except PyMongoError as exc:
        reason = redact(str(exc), uri).split(", Timeout:")[0]
        pytest.exit(f"{VARIABLE} names a server that does not answer: {reason} ({redact(uri, uri)})",
                    returncode=pytest.ExitCode.USAGE_ERROR)
    return uri


def skip_embedded_only(items: list[pytest.Item], uri: str | None) -> None:
    """With a named server, each test marked `embedded_server("why")` gets a skip saying why (nothing otherwise)."""
    if not uri:
        return
    for item in items:
        if (marker := item.get_closest_marker("embedded_server")) is not None:
            why = marker.args[0] if marker.args else "it needs the embedded FerretDB"
            item.add_marker(pytest.mark.skip(reason=f"embedded FerretDB only: {why} ({VARIABLE} names another server)"))
