"""The fleet's selector and waves (docshift.fleet): a pure function of the server's names and the selector."""

import pytest

from docshift.errors import FleetError
from docshift.fleet import is_reserved, select, wave_sizes

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
