"""Passwords never reach output: redact() on URIs and text, and connect()'s errors."""

from urllib.parse import quote_plus

import pytest
from pymongo.errors import OperationFailure

import docshift.db
from docshift.db import connect, redact
from docshift.errors import DatabaseError
from docshift.settings import Settings

PASSWORD = "Sup3r-S3cret!"
ENCODED = quote_plus("p@ss:w/rd%Z")  # p%40ss%3Aw%2Frd%25Z


# --- redact --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("uri, expected", [
    (f"mongodb://admin:{PASSWORD}@db.example.com:27017/app", "mongodb://admin:***@db.example.com:27017/app"),
    (f"mongodb+srv://admin:{PASSWORD}@cluster0.example.net/?retryWrites=true", "mongodb+srv://admin:***@cluster0.example.net/?retryWrites=true"),
    (f"mongodb://admin:{ENCODED}@h1:1,h2:2/db?authSource=admin", "mongodb://admin:***@h1:1,h2:2/db?authSource=admin"),
    ("mongodb://:pw@host/", "mongodb://:***@host/"),
])
def test_password_of_a_uri_is_hidden(uri, expected):
    assert redact(uri) == expected


@pytest.mark.parametrize("uri", ["mongodb://host:27017/db", "mongodb://h1:1,h2:2/?replicaSet=rs", "mongodb://user@host/db",
                                 "no uri here: just text"])
def test_text_without_password_is_unchanged(uri):
    assert redact(uri) == uri


def test_every_uri_in_arbitrary_text_is_redacted():
    text = (f"tried mongodb://a:{PASSWORD}@x:1/ then\nmongodb+srv://b:{ENCODED}@y/ and failed "
            f"(see mongodb://c:other@z/)")
    result = redact(text)
    assert PASSWORD not in result and ENCODED not in result and "other" not in result
    assert result == "tried mongodb://a:***@x:1/ then\nmongodb+srv://b:***@y/ and failed (see mongodb://c:***@z/)"


def test_password_of_the_given_uri_is_hidden_anywhere_in_text():
    uri = f"mongodb://admin:{PASSWORD}@db.example.com/"
    result = redact(f"auth failed for user admin with password {PASSWORD} (twice: {PASSWORD})", uri)
    assert PASSWORD not in result
    assert result == "auth failed for user admin with password *** (twice: ***)"


def test_url_encoded_password_is_hidden_encoded_and_decoded():
    uri = f"mongodb://admin:{ENCODED}@db.example.com/"
    result = redact(f"raw {ENCODED} decoded p@ss:w/rd%Z in {uri}", uri)
    assert ENCODED not in result and "p@ss:w/rd%Z" not in result
    assert result == "raw *** decoded *** in mongodb://admin:***@db.example.com/"


# --- connect -------------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def no_shared_clients(monkeypatch):
    """connect() caches clients per process; every test starts without any and leaves none behind."""
    monkeypatch.setattr(docshift.db, "_clients", {})


def settings(uri: str) -> Settings:
    return Settings(mongodb_uri=uri, server_timeout_ms=300)


def assert_no_password(error: DatabaseError, *secrets: str) -> None:
    message = str(error)
    for secret in secrets:
        assert secret not in message, f"{secret!r} leaked in: {message}"


@pytest.mark.parametrize("uri", [
    f"mongodb://admin:{PASSWORD}@127.0.0.1:notaport/",                 # port not a number
    f"mongodb://admin:{PASSWORD}@",                                    # no host
    f"mongodb+srv://admin:{PASSWORD}@cluster.example.net:27017/",      # srv with a port
    f"mongodb://admin:{PASSWORD}@[::1/",                               # broken IPv6 literal
    f"mongodb://admin:{PASSWORD}@127.0.0.1/?tls=true&ssl=false",     # conflicting options
])
def test_malformed_uri_raises_database_error_without_the_password(uri):
    with pytest.raises(DatabaseError) as info:
        connect(settings(uri))
    assert str(info.value).startswith("invalid MongoDB URI ")
    assert_no_password(info.value, PASSWORD)


@pytest.mark.parametrize("uri, secrets", [
    # the scheme is wrong, so the URI does not look like a connection string to redact()
    (f"mongo://admin:{PASSWORD}@127.0.0.1/", [PASSWORD]),
    # an unescaped "@": pymongo takes everything up to the last "@" as the password, redact() only up to the first
    ("mongodb://admin:Sup3r@S3cret@127.0.0.1/", ["Sup3r@S3cret", "S3cret"]),
])
def test_malformed_uri_error_hides_the_password_whatever_is_wrong_with_the_uri(uri, secrets):
    with pytest.raises(DatabaseError) as info:
        connect(settings(uri))
    assert_no_password(info.value, *secrets)


def test_unreachable_server_raises_database_error_without_the_password():
    with pytest.raises(DatabaseError) as info:
        connect(settings(f"mongodb://admin:{PASSWORD}@127.0.0.1:1/"))
    message = str(info.value)
    assert message.startswith("cannot reach MongoDB at mongodb://admin:***@127.0.0.1:1/")
    assert_no_password(info.value, PASSWORD)
    assert docshift.db._clients == {}


def test_unreachable_server_with_url_encoded_password():
    with pytest.raises(DatabaseError) as info:
        connect(settings(f"mongodb://admin:{ENCODED}@127.0.0.1:1/"))
    assert_no_password(info.value, ENCODED, "p@ss:w/rd%Z")


def test_password_with_a_space_is_hidden_when_the_server_is_unreachable():
    """pymongo accepts an unescaped space in the password (it unquotes with unquote_plus)."""
    with pytest.raises(DatabaseError) as info:
        connect(settings("mongodb://admin:Sup3r S3cret@127.0.0.1:1/"))
    assert_no_password(info.value, "Sup3r S3cret", "S3cret")


def test_refused_authentication_is_reported_without_the_password(monkeypatch):
    """A server that refuses the login may echo what it was given; the message is redacted."""

    class RefusingClient:
        closed = False

        def __init__(self, uri, **kwargs):
            self.admin = self

        def command(self, name):
            raise OperationFailure(f"Authentication failed for admin / {PASSWORD}", 18, {"errmsg": f"bad {PASSWORD}", "code": 18})

        def close(self):
            RefusingClient.closed = True

    monkeypatch.setattr(docshift.db, "MongoClient", RefusingClient)
    with pytest.raises(DatabaseError) as info:
        connect(settings(f"mongodb://admin:{PASSWORD}@db.example.com/"))
    assert str(info.value).startswith("MongoDB at mongodb://admin:***@db.example.com/ refused docshift")
    assert_no_password(info.value, PASSWORD)
    assert RefusingClient.closed


def test_reachable_server_client_is_shared(monkeypatch):
    made = []

    class AnsweringClient:
        def __init__(self, uri, **kwargs):
            made.append(kwargs)
            self.admin = self

        def command(self, name):
            return {"ok": 1}

        def __getitem__(self, name):
            return ("db", name)

    monkeypatch.setattr(docshift.db, "MongoClient", AnsweringClient)
    s = Settings(mongodb_uri="mongodb://127.0.0.1:9/", server_timeout_ms=300, database="shop")
    assert connect(s) == ("db", "shop") and connect(s) == ("db", "shop")
    assert len(made) == 1 and made[0]["serverSelectionTimeoutMS"] == 300
