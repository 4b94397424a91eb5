"""The one place that opens a database connection, and the redaction of passwords from anything printed."""

import re
from urllib.parse import unquote

from pymongo import MongoClient
from pymongo.database import Database
from pymongo.errors import ConfigurationError, InvalidURI, OperationFailure, PyMongoError

from .errors import DatabaseError
from .settings import Settings

_clients: dict[tuple, MongoClient] = {}
_USERINFO = re.compile(r"(mongodb(?:\+srv)?://[^:/@\s]*:)([^@\s]*)@")


def redact(text: str, uri: str | None = None) -> str:
    """Text with the password of any connection string in it replaced by ***."""
    text = _USERINFO.sub(r"\1***@", text)
    if uri:
        match = _USERINFO.search(uri)
        if match and match.group(2):
            for secret in {match.group(2), unquote(match.group(2))}:
                text = text.replace(secret, "***")
    return text


def connect(settings: Settings) -> Database:
    """The settings' database, on a client shared by this process, checked to answer `ping`."""
    uri = settings.mongodb_uri.get_secret_value()
    key = (uri, settings.server_timeout_ms)
    client = _clients.get(key)
    if client is None:
        try:
            client = MongoClient(
                uri,
                serverSelectionTimeoutMS=settings.server_timeout_ms,
                connectTimeoutMS=settings.server_timeout_ms,
                appname="docshift",
            )
        except (ConfigurationError, InvalidURI, ValueError, TypeError) as exc:
            raise DatabaseError(f"invalid MongoDB URI {redact(uri)}: {redact(str(exc), uri)}") from None
        try:
            client.admin.command("ping")
        except OperationFailure as exc:
            client.close()
            raise DatabaseError(
                f"MongoDB at {redact(uri)} refused docshift: {redact(str(exc.details or exc), uri)}"
            ) from None
        except PyMongoError as exc:
            client.close()
            reason = redact(str(exc), uri).split(", Timeout:")[0]
            raise DatabaseError(f"cannot reach MongoDB at {redact(uri)}: {reason}") from None
        _clients[key] = client
    return client[settings.database]
