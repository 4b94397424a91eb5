"""The fleet's selector, waves and summary (docshift.fleet): pure functions of the server's names and the selector."""

import uuid

import mongomock
import pytest

from docshift.errors import FleetError
from docshift.fleet import Reading, is_reserved, resolve, select, summary, wave_sizes
from docshift.status import DatabaseStatus, Failure

SERVER = ["admin", "config", "local", "tenant_b", "tenant_a", "tenant_a_rehearsal_0123abcd", "billing", "tenant_c"]


def test_a_glob_selects_the_matching_names_sorted_never_reserved_ones():
    assert select("tenant_*", SERVER) == ["tenant_a", "tenant_b", "tenant_c"]
    assert select("*", SERVER) == ["billing", "tenant_a", "tenant_b", "tenant_c"]


def test_names_keep_the_selector_order_and_mix_with_globs_without_repeats():
    assert select("tenant_c, billing,tenant_?", SERVER) == ["tenant_c", "billing", "tenant_a", "tenant_b"]
    assert select("new_tenant", SERVER) == ["new_tenant"]  # not on the server yet: the mistyped check decides


@pytest.mark.parametrize("selector", ["admin", "tenant_a,local", "config", "tenant_a_rehearsal_0123abcd"])
def test_the_servers_and_docshifts_own_databases_named_explicitly_are_refused(selector):
    with pytest.raises(FleetError, match="never migrated"):
        select(selector, SERVER)


@pytest.mark.parametrize("selector", ["nomatch_*", "", " , "])
def test_an_empty_selection_is_a_plain_error_listing_the_servers_databases(selector):
    with pytest.raises(FleetError, match="selects no database; databases on this server: billing, tenant_a, tenant_b"):
        select(selector, SERVER)


def test_invalid_names_are_refused():
    with pytest.raises(FleetError, match="invalid database name"):
        select("tenant.a", SERVER)


def test_reserved_names():
    assert is_reserved("admin") and is_reserved("x_rehearsal_deadbeef")
    assert not is_reserved("tenant_a") and not is_reserved("admin2")


@pytest.mark.parametrize(("waves", "total", "sizes"), [
    ("1,5%,25%,100%", 200, [1, 9, 40, 150]),
    ("1,5%,25%,100%", 12, [1, 2, 9]),  # 5% of 12 rounds up to 1: that wave adds none and is dropped
    ("100%", 7, [7]),
    ("2,4", 10, [2, 2, 6]),  # the last wave always reaches the whole fleet
    ("50", 3, [3]),
    ("1,100%", 0, []),
])
def test_waves_are_cumulative_counts_or_shares(waves, total, sizes):
    assert wave_sizes(waves, total) == sizes


@pytest.mark.parametrize("waves", ["", "1,,5%", "canary", "-1", "5%%"])
def test_bad_waves_are_a_plain_error(waves):
    with pytest.raises(FleetError, match="--waves"):
        wave_sizes(waves, 10)


def test_a_project_function_selects_from_a_control_database(tmp_path):
    client = mongomock.MongoClient()
    client.control.tenants.insert_many([{"db": "tenant_x", "active": True}, {"db": "tenant_y", "active": False},
                                        {"db": "tenant_z", "active": True}])
    module = f"tenants_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(
        "def active(client):\n    return [t['db'] for t in client.control.tenants.find({'active': True})]\n"
        "def none():\n    return []\n"
        "def broken():\n    raise RuntimeError('control database down')\n"
        "def one():\n    return 'tenant_x'\n"
        "def system():\n    return ['tenant_x', 'admin']\n")

    assert resolve(f"{module}:active", client, tmp_path) == ["tenant_x", "tenant_z"]
    for function, message in [("none", "selects no database"), ("broken", "RuntimeError: control database down"),
                              ("one", "returned str, not a list"), ("system", "never migrated"),
                              ("missing", "AttributeError")]:
        with pytest.raises(FleetError, match=message):
            resolve(f"{module}:{function}", client, tmp_path)


def test_the_summary_counts_versions_failures_and_what_needs_a_person():
    def at(name, current, failed=False, pending=()):
        return Reading(name, DatabaseStatus(name, current, 7, tuple(pending),
                                            failed=Failure("r1", current + 1, "boom") if failed else None))

    readings = [at("a", 7), at("b", 7), at("c", 6, failed=True, pending=[7]), at("d", 5, pending=[6, 7]),
                Reading("e", error="AutoReconnect: gone")]

    assert summary(readings, ["typo"]) == "2 at 7, 1 at 5, 1 failed at 6, 2 pending, 1 unreadable, 1 mistyped (latest 7)"
    assert summary([]) == "no databases"
