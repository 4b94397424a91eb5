"""The one place that opens a database connection, and the redaction of passwords from anything printed."""

import re
from urllib.parse import unquote

from pymongo import MongoClient
from pymongo.database import Database
from pymongo.errors import ConfigurationError, InvalidURI, OperationFailure, PyMongoError

from .errors import DatabaseError, SettingsError
from .settings import Settings, get_settings

_clients: dict[tuple, MongoClient] = {}
_USERINFO = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)\S*@")


def password_of(uri: str) -> str | None:
    """The password part of a connection string, read as drivers do: up to the last `@` of the authority."""
    rest = uri.split("://", 1)[-1]
    userinfo, at, _ = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return None
    return userinfo.split(":", 1)[1] or None


def redact(text: str, uri: str | None = None) -> str:
    """Text with the password of `uri` (default: the configured one) and of any URL in it replaced by ***."""
    if uri is None:
        try:
            uri = get_settings().mongodb_uri.get_secret_value()
        except SettingsError:  # the settings are what failed: URLs in the text are still redacted below
            uri = ""
    secret = password_of(uri)
    if secret:
        for form in sorted({secret, unquote(secret)}, key=len, reverse=True):
            text = text.replace(form, "***")
    return _USERINFO.sub(r"\1***@", text)


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
            raise DatabaseError(f"invalid MongoDB URI {redact(uri, uri)}: {redact(str(exc), uri)}") from None
        try:
            client.admin.command("ping")
        except OperationFailure as exc:
            client.close()
            raise DatabaseError(
                f"MongoDB at {redact(uri, uri)} refused docshift: {redact(str(exc.details or exc), uri)}"
            ) from None
        except PyMongoError as exc:
            client.close()
            reason = redact(str(exc), uri).split(", Timeout:")[0]
            raise DatabaseError(f"cannot reach MongoDB at {redact(uri, uri)}: {reason}") from None
        _clients[key] = client
    return client[settings.database]
