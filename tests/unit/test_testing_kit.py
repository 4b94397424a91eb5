"""docshift.testing, the kit users test their own migrations with: on the seed migrations, and on broken ones."""

import subprocess
import sys
from datetime import date, datetime, timezone
from typing import Literal

import bson
import pytest
from bson import ObjectId
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

import tests.support.fingerprints
from docshift import Migration
from docshift import testing
from docshift.loader import ScriptDirectory
from docshift.testing import (
    as_bson, assert_round_trip, assert_up_validates, documents_from_model, first_difference, migrated, round_trip_test,
)

from tests.support.paths import ROOT, SEED_MIGRATIONS
from tests.support.strategies import OWN_PREFERENCES, users_v1

SCRIPTS = ScriptDirectory.load(SEED_MIGRATIONS)
M2, M3, M4, M5 = (SCRIPTS.get(v).migration for v in (2, 3, 4, 5))
KIT = settings(database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _only_default_shaped_preferences(doc: dict) -> dict:
    """Preferences of another shape before version 2 are kept by 0002 as they are, by design: not a UserV2."""
    if "preferences" in doc and doc["preferences"] != OWN_PREFERENCES:
        del doc["preferences"]
    return doc


class UserV1(BaseModel):
    """What a version-1 user looks like, for documents_from_model."""

    model_config = ConfigDict(extra="allow")
    user_id: str
    name: str | None = None
    email: str | None = None
    deprecated_field: int | str | None = None
    created_at: datetime


# --- (1) the seed migrations, one line each ------------------------------------------------------------------

test_0002_round_trip = round_trip_test(M2, users_v1().map(_only_default_shaped_preferences), settings=settings(KIT, max_examples=200))
test_0002_round_trip_with_foreign_preferences = round_trip_test(M2, users_v1(), validate=False, settings=settings(KIT, max_examples=200))
test_0002_round_trip_from_a_model = round_trip_test(M2, documents_from_model(UserV1), settings=settings(KIT, max_examples=100))
test_0003_round_trip = round_trip_test(M3, migrated(users_v1(), M2), settings=settings(KIT, max_examples=200))
test_0004_round_trip = round_trip_test(M4, migrated(users_v1(), M2, M3), settings=settings(KIT, max_examples=200))
test_0005_round_trip = round_trip_test(M5, migrated(users_v1(), M2, M3, M4), settings=settings(KIT, max_examples=200))


def test_round_trip_tests_are_named_and_documented_for_pytest():
    assert test_0003_round_trip.__name__ == "test_round_trip_3"
    assert "Split name" in test_0003_round_trip.__doc__ and "validates as UserV3" in test_0003_round_trip.__doc__
    assert "validates" not in test_0004_round_trip.__doc__  # 0004 has no target model


@KIT
@given(migrated(users_v1(), M2, M3))
def test_migrated_documents_are_at_the_version_the_chain_ends_at(doc):
    assert doc["schema_version"] == 3 and "name" not in doc and "first_name" in doc


def test_assert_round_trip_returns_up_doc_and_ignores_key_order():
    reorder = Migration(version=2, description="Add a flag, reorder keys", collection="things", kind="additive",
                        up=lambda doc: {"flag": True, **doc},
                        down=lambda doc: {k: doc[k] for k in reversed(doc) if k != "flag"})
    after = assert_round_trip(reorder, {"_id": 1, "a": 1, "b": {"y": 1.0, "x": [1, "2"]}})
    assert after == {"flag": True, "_id": 1, "a": 1, "b": {"y": 1.0, "x": [1, "2"]}, "schema_version": 2}


def test_previous_version_must_match_the_document():
    v1_user = {"_id": 1, "name": "Ada Lovelace"}
    with pytest.raises(ValueError, match=r"at version 1 .*not at previous_version 2"):
        assert_round_trip(M3, v1_user, previous_version=2)
    with pytest.raises(ValueError, match="cannot upgrade documents of version 3"):
        assert_round_trip(M3, {**v1_user, "schema_version": 3})
    assert_round_trip(M3, {**v1_user, "schema_version": 2}, previous_version=2)


def test_without_pre_image_a_destructive_down_cannot_give_back_what_up_removed():
    doc = {"_id": 1, "deprecated_field": "legacy", "schema_version": 3}
    assert_round_trip(M4, doc)
    with pytest.raises(AssertionError, match=r"(?s)given no pre-image.*first difference: deprecated_field: 'legacy' "
                                             r"\(string\) before, missing after"):
        assert_round_trip(M4, doc, use_pre_image=False)


def test_an_explicit_schema_version_1_is_reported_as_lost_with_the_reason():
    with pytest.raises(AssertionError, match=r"schema_version: 1 \(int32\) before, missing after\n  note: docshift "
                                             r"removes schema_version from documents reverted to version 1"):
        assert_round_trip(M2, {"_id": 1, "schema_version": 1})


def test_up_output_that_mongodb_cannot_store_fails_clearly():
    bad = Migration(version=2, description="Store a set", collection="things", kind="additive",
                    up=lambda doc: {**doc, "tags": {"a"}}, down=lambda doc: doc)
    with pytest.raises(AssertionError, match="migration 2 up returned a document MongoDB cannot store"):
        assert_round_trip(bad, {"_id": 1})


# --- (2) the kit fails broken migrations ---------------------------------------------------------------------


def _move_email_into_contact(doc: dict) -> dict:
    if "email_address" in doc:
        doc["contact"] = {"email": doc.pop("email_address")}
    return doc


def _drop_contact(doc: dict) -> dict:
    doc.pop("contact", None)  # the bug: email_address is not put back
    return doc


FORGETFUL = Migration(version=6, description="Move email_address into contact", collection="users",
                      kind="transformative", up=_move_email_into_contact, down=_drop_contact)


def test_the_kit_fails_a_down_that_forgets_to_restore_a_field():
    broken = round_trip_test(FORGETFUL, migrated(users_v1(), M2, M3, M4, M5), settings=settings(KIT, max_examples=100))
    with pytest.raises(AssertionError) as failure:
        broken()
    message = str(failure.value)
    assert "migration 6 (Move email_address into contact): down(up(doc)) is not the document it started from" in message
    assert "first difference: email_address: " in message and "before, missing after" in message
    notes = "\n".join(getattr(failure.value, "__notes__", []))
    assert "Failing test case: test_round_trip_6(" in notes, notes  # hypothesis reported its falsifying example


class Counter(BaseModel):
    visits: int = Field(ge=0, le=1000)


def test_the_kit_tells_1_from_1_0_where_python_equality_does_not():
    """A down that gives back 3.0 for 3: equal in Python, a different BSON type (int32 vs double) in MongoDB."""
    per_day = Migration(version=2, description="visits as a rate", collection="counters", kind="transformative",
                        up=lambda doc: {**{k: v for k, v in doc.items() if k != "visits"}, "rate": doc["visits"] / 1},
                        down=lambda doc: {**{k: v for k, v in doc.items() if k != "rate"}, "visits": doc["rate"]})
    broken = round_trip_test(per_day, documents_from_model(Counter), settings=settings(KIT, max_examples=50))
    with pytest.raises(AssertionError, match=r"first difference: visits: 0 \(int32\) before, 0\.0 \(double\) after"):
        broken()


def test_first_difference_names_the_path_and_the_bson_types():
    assert first_difference({"a": {"b": [1, 2]}}, {"a": {"b": [1, 2.0]}}) == "a.b.1: 2 (int32) before, 2.0 (double) after"
    assert first_difference({"a": 1}, {"a": 1, "b": None}) == "b: missing before, None (null) after"
    assert first_difference({"t": True}, {"t": 1}) == "t: True (bool) before, 1 (int32) after"
    assert first_difference({"a": [1]}, {"a": []}).startswith("a: an array of 1 before, of 0 after")
    assert first_difference({"a": 1, "b": 2}, {"b": 2, "a": 1}) is None


# --- (3) documents_from_model ---------------------------------------------------------------------------------


class Address(BaseModel):
    city: str = Field(min_length=1)
    postcode: str | None = None


class Customer(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str = Field(min_length=1, max_length=40)
    age: int = Field(ge=0, le=150)
    balance: int
    score: float
    vip: bool = False
    tags: list[str] = []
    address: Address | None = None
    joined: datetime
    kind: Literal["person", "company"]


@KIT
@given(documents_from_model(Customer))
def test_documents_from_model_validate_against_the_model_and_can_be_stored(doc):
    Customer.model_validate(doc)
    assert isinstance(doc["_id"], ObjectId) and list(doc)[0] == "_id"
    assert "schema_version" not in doc
    bson.encode(doc)  # no integer beyond 64 bits, nothing BSON cannot hold


@KIT
@given(documents_from_model(M3.target_model, version=3))
def test_documents_from_model_at_a_later_version_carry_it(doc):
    assert doc["schema_version"] == 3
    M3.target_model.model_validate(doc)


def test_documents_from_model_sometimes_leave_optional_fields_out():
    seen = []

    @settings(KIT, max_examples=100)
    @given(documents_from_model(Customer))
    def collect(doc):
        seen.append(doc)

    collect()
    assert any("vip" in d for d in seen) and any("vip" not in d for d in seen)
    assert any(isinstance(d.get("address"), dict) for d in seen) and any("address" not in d for d in seen)


@KIT
@given(documents_from_model(Customer, name=st.just("Ada"), ids=st.integers(1, 9)))
def test_documents_from_model_take_strategies_for_fields_and_ids(doc):
    assert doc["name"] == "Ada" and 1 <= doc["_id"] <= 9


class Order(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)
    id: ObjectId = Field(alias="_id")
    customer: ObjectId
    parent: ObjectId | None = None


@KIT
@given(documents_from_model(Order, version=4, ids=st.just(ObjectId("0" * 24))))
def test_documents_from_model_fill_an_id_field_from_ids_and_objectid_fields(doc):
    assert doc["_id"] == ObjectId("0" * 24) and isinstance(doc["customer"], ObjectId) and doc["schema_version"] == 4
    assert Order.model_validate(doc).id == doc["_id"]


def test_documents_from_model_refuse_unknown_fields_and_types_bson_cannot_store():
    with pytest.raises(TypeError, match="Customer has no field"):
        documents_from_model(Customer, nickname=st.just("x"))

    class Birthday(BaseModel):
        day: date

    with pytest.raises(TypeError, match=r"field 'day' holds a value BSON cannot encode.*day=st\."):
        find(documents_from_model(Birthday), lambda d: True, settings=KIT)
    documents_from_model(Birthday, day=st.datetimes())  # a strategy for the field is the way out


# --- (4) assert_up_validates ----------------------------------------------------------------------------------


class Person(BaseModel):
    schema_version: int
    full_name: str


def _full_name_up(doc: dict) -> dict:
    doc["full_name"] = doc.pop("name", None)  # wrong: a person without a name gets full_name None
    return doc


def _full_name_down(doc: dict, pre_image: dict | None) -> dict:
    name = doc.pop("full_name")
    if pre_image is None or "name" in pre_image:
        doc["name"] = name
    return doc


WRONG_UP = Migration(version=2, description="name becomes full_name", collection="people", kind="transformative",
                     up=_full_name_up, down=_full_name_down, target_model=Person)


def test_assert_up_validates_fails_clearly_for_a_wrong_up():
    assert assert_up_validates(WRONG_UP, {"_id": 1, "name": "Ada"}).full_name == "Ada"
    assert_round_trip(WRONG_UP, {"_id": 2})  # reversible all the same
    with pytest.raises(AssertionError, match=r"migration 2 \(name becomes full_name\): up\(doc\) does not validate as "
                                             r"Person: 1 error\(s\), the first at full_name: Input should be a valid "
                                             r"string \(input None\)"):
        assert_up_validates(WRONG_UP, {"_id": 2})


def test_round_trip_test_checks_the_target_model_too():
    broken = round_trip_test(WRONG_UP, st.fixed_dictionaries({"_id": st.integers(0, 10**6)}, optional={"name": st.text()}),
                             settings=settings(KIT, max_examples=50))
    with pytest.raises(AssertionError, match="does not validate as Person"):
        broken()
    round_trip_test(WRONG_UP, st.fixed_dictionaries({"_id": st.integers(0, 10**6)}, optional={"name": st.text()}),
                    validate=False, settings=settings(KIT, max_examples=50))()


def test_assert_up_validates_needs_a_target_model():
    with pytest.raises(ValueError, match="migration 4 .* has no target_model"):
        assert_up_validates(M4, {"_id": 1, "schema_version": 3})


def test_up_validates_the_document_as_verify_reads_it_back():
    """Validation sees the stored document, as `verify` does: an aware datetime comes back naive UTC."""
    class Stamped(BaseModel):
        stamped_at: AwareDatetime

    stamp = Migration(version=2, description="stamp", collection="things", kind="additive",
                      up=lambda doc: {**doc, "stamped_at": datetime.now(timezone.utc)},
                      down=lambda doc: {k: v for k, v in doc.items() if k != "stamped_at"}, target_model=Stamped)
    Stamped.model_validate(stamp.up({"_id": 1}))  # fine in memory, but not once stored
    with pytest.raises(AssertionError, match=r"does not validate as Stamped: .* stamped_at: Input should have timezone info"):
        assert_up_validates(stamp, {"_id": 1})


# --- the helpers the project's own tests use ------------------------------------------------------------------


def test_tests_helpers_are_the_kits_own():
    assert tests.support.fingerprints.as_bson is testing.as_bson is as_bson
    assert tests.support.fingerprints.canonical is testing.canonical


def test_importing_the_kit_does_not_import_prefect():
    code = ("import sys, docshift.testing; "
            "loaded = sorted(m for m in sys.modules if m == 'prefect' or m.startswith('prefect.')); "
            "assert not loaded, loaded")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
