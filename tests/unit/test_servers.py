"""Where docshift treats servers differently, kept in docshift.servers; and the tests' choice of server
(tests/support/servers.py: DOCSHIFT_TEST_MONGODB_URI, the `embedded_server` marker)."""

import ast
from pathlib import Path

import mongomock
import pytest

from docshift import servers
from tests.support.servers import VARIABLE, skip_embedded_only

ROOT = Path(__file__).resolve().parents[2]
NAMES = ("FerretDB", "ferretdbVersion")


def test_only_docshift_servers_names_a_server_in_code():
    """No other module of docshift (or its flows and tasks) tells servers apart by name: they ask docshift.servers.
    Docstrings and comments may say why something is so (they are not compared with anything)."""
    found = []
    for path in (p for folder in ("docshift", "flows", "tasks", "deployments") for p in (ROOT / folder).rglob("*.py")):
        if path.name == "servers.py":
            continue
        tree = ast.parse(path.read_text())
        docstrings = {id(node.value) for node in ast.walk(tree)  # a string alone as a statement: a docstring
                      if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)}
        found += [f"{path.relative_to(ROOT)}:{node.lineno}" for node in ast.walk(tree)
                  if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
                  and any(name in node.value for name in NAMES)]
    assert found == []


def test_what_ferretdb_lacks_is_named_and_mongodb_lacks_nothing():
    options = {"unique": True, "partialFilterExpression": {"price": {"$lt": 10}}, "expireAfterSeconds": 60}
    assert servers.lacking(servers.FERRETDB, options) == ["partial indexes (partialFilterExpression)",
                                                          "TTL indexes (expireAfterSeconds)"]
    assert servers.lacking(None, options) == []
    keys = [("title", "text"), ("body", "text"), ("where", "2dsphere"), ("attrs.$**", 1), ("n", -1)]
    assert servers.lacking(servers.FERRETDB, {"unique": True}, keys) == [
        "text indexes (text)", "2dsphere indexes (2dsphere)", "wildcard indexes ($**)"]
    assert servers.lacking(servers.FERRETDB, {}, [("n", 1), ("m", -1)]) == []
    assert servers.lacking(None, {}, keys) == []
    assert not servers.renames_to_dotted_names(servers.FERRETDB) and servers.renames_to_dotted_names(None)


def test_a_server_without_build_info_nor_json_schema_is_taken_for_what_it_has():
    """mongomock answers neither `buildInfo` nor `$jsonSchema`: not FerretDB, and rollback takes the portable path."""
    db = mongomock.MongoClient()["t"]
    assert servers.server_name(db) is None and not servers.is_ferretdb(db)
    assert not servers.has_json_schema(db["users"])


class Item:
    """What skip_embedded_only reads and writes of a collected test: its markers."""

    def __init__(self, *markers: pytest.MarkDecorator):
        self.markers = [m.mark for m in markers]

    def get_closest_marker(self, name: str):
        return next((m for m in self.markers if m.name == name), None)

    def add_marker(self, marker: pytest.MarkDecorator) -> None:
        self.markers.append(marker.mark)


def test_on_a_named_server_the_embedded_servers_tests_skip_saying_why():
    embedded, other = Item(pytest.mark.embedded_server("it stops the server")), Item(pytest.mark.integration)

    skip_embedded_only([embedded, other], "mongodb://app:s3cr3t@db.example:27017/?replicaSet=rs0")

    skip = embedded.get_closest_marker("skip")
    assert skip.kwargs["reason"] == f"embedded FerretDB only: it stops the server ({VARIABLE} names another server)"
    assert other.get_closest_marker("skip") is None


def test_on_the_embedded_server_nothing_skips():
    embedded = Item(pytest.mark.embedded_server("it stops the server"))
    skip_embedded_only([embedded], None)
    assert embedded.get_closest_marker("skip") is None


def test_the_marker_is_registered(pytestconfig):
    assert any(line.startswith("embedded_server") for line in pytestconfig.getini("markers"))


def test_what_ferretdb_refuses_to_store_is_found_without_asking_it():
    from bson.decimal128 import Decimal128

    refused = {"grid": ({"grid": [1, [2]]}, "grid", "list"), "dot": ({"a": {"b": [{"c.d": 1}]}}, "a.b.0.c.d", "int"),
               "dollar": ({"a": {"$e": "x"}}, "a.$e", "str"), "decimal": ({"a": [{"x": Decimal128("1")}]}, "a.0.x", "Decimal128")}
    for doc, field, kind in refused.values():
        found = servers.refused_value(servers.FERRETDB, doc)
        assert (found.field, found.kind) == (field, kind)
        assert servers.refused_value(None, doc) is None  # MongoDB stores them
    assert servers.refused_value(servers.FERRETDB, {"a": {"": 1, "b$": [1, {"c": [2]}]}, "m": [{"n": [1]}]}) is None
