"""The seed migrations 0002..0005 on messy version-1 users: every chain up and back down is lossless.

Documents go through `engine.transform_one` with the engine's own steps, exactly as a run applies them,
with `pre_image` being the document each `up` saw (what the run's backup keeps).
"""

import copy
import random
from datetime import datetime, timezone

import pytest
from bson import Int64
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from docshift import demo
from docshift.engine.steps import make_step, transform_one
from docshift.loader import ScriptDirectory
from tests.support.fingerprints import as_bson

from tests.support.paths import SEED_MIGRATIONS
from tests.support.strategies import ABSENT, OWN_PREFERENCES, users_v1

SCRIPTS = ScriptDirectory.load(SEED_MIGRATIONS)
UP = [2, 3, 4, 5]
SETTINGS = settings(max_examples=250, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# --- helpers -------------------------------------------------------------------------------------------------


def run_up(doc: dict, versions=UP) -> tuple[dict, dict[int, dict]]:
    """`doc` through each version's up; returns it and the pre-image each up saw."""
    pre_images = {}
    for v in versions:
        pre_images[v] = copy.deepcopy(doc)
        doc = transform_one(SCRIPTS.get(v).migration, make_step(SCRIPTS, v, "up"), doc, None)
        assert doc["schema_version"] == v
    return doc, pre_images


def run_down(doc: dict, pre_images: dict[int, dict] | None, versions=UP) -> dict:
    for v in reversed(versions):
        doc = transform_one(SCRIPTS.get(v).migration, make_step(SCRIPTS, v, "down"), doc,
                            None if pre_images is None else pre_images[v])
    return doc


def assert_same_name(result: dict, original: dict) -> None:
    if "name" in original:
        assert "name" in result, f"name {original['name']!r} was lost"
        assert as_bson({"name": result["name"]}) == as_bson({"name": original["name"]}), (result["name"], original["name"])
    else:
        assert "name" not in result, f"name {result['name']!r} appeared"


# --- properties ----------------------------------------------------------------------------------------------


def test_canonical_form_tells_bson_types_apart():
    assert as_bson({"a": 1, "b": {"y": 1, "x": 2}}) == as_bson({"b": {"x": 2, "y": 1}, "a": 1})
    assert len({as_bson({"a": v}) for v in (1, 1.0, True, Int64(1), "1")}) == 5


@SETTINGS
@given(users_v1())
def test_up_2_to_5_then_down_with_pre_images_gives_back_the_original(original):
    frozen = as_bson(original)
    migrated, pre_images = run_up(original)
    assert as_bson(original) == frozen, "a transform changed its input"
    assert "name" not in migrated and "deprecated_field" not in migrated and "email" not in migrated
    result = run_down(migrated, pre_images)
    assert as_bson(result) == frozen


@SETTINGS
@given(users_v1(), st.sampled_from(UP))
def test_each_step_up_then_down_with_its_pre_image_gives_back_its_input(original, version):
    before, _ = run_up(original, [v for v in UP if v < version])
    after, pre_images = run_up(before, [version])
    assert as_bson(run_down(after, pre_images, [version])) == as_bson(before)


@SETTINGS
@given(users_v1())
def test_without_pre_images_migration_3_down_restores_name_exactly(original):
    at_2, _ = run_up(original, [2])
    at_3, _ = run_up(at_2, [3])
    back = run_down(at_3, None, [3])
    assert_same_name(back, original)
    assert not {"first_name", "last_name", "name_source"} & set(back)
    assert back["schema_version"] == 2


@SETTINGS
@given(users_v1())
def test_without_pre_images_the_whole_chain_down_restores_name_and_email(original):
    migrated, _ = run_up(original)
    back = run_down(migrated, None)
    assert_same_name(back, original)
    assert "schema_version" not in back
    assert not {"first_name", "last_name", "name_source", "preferences"} & set(back)
    if "email" in original and "email_address" not in original:
        assert as_bson({"e": back["email"]}) == as_bson({"e": original["email"]})
        assert "email_address" not in back


@SETTINGS
@given(users_v1())
def test_up_results_validate_against_the_target_models(original):
    if "preferences" in original and original["preferences"] != OWN_PREFERENCES:
        del original["preferences"]  # preferences of another shape before version 2 are kept by design, not fixed
    at_2, _ = run_up(original, [2])
    SCRIPTS.get(2).migration.target_model.model_validate(at_2)
    at_3, _ = run_up(at_2, [3])
    model = SCRIPTS.get(3).migration.target_model.model_validate(at_3)
    assert model.schema_version == 3
    name = original.get("name", ABSENT)
    if isinstance(name, str):
        assert isinstance(at_3["first_name"], str) and isinstance(at_3["last_name"], str)
        assert at_3["first_name"] == name.split(None, 1)[0] if name.split() else at_3["first_name"] == ""
        assert ("name_source" in at_3) == (" ".join(p for p in (at_3["first_name"], at_3["last_name"]) if p) != name)
    elif name is not ABSENT:  # a missing name: test_a_user_without_name_gets_no_first_or_last_name
        assert at_3["first_name"] is None and at_3["last_name"] is None
        assert as_bson({"n": at_3["name_source"]}) == as_bson({"n": name})


@pytest.mark.parametrize("name", [ABSENT, None, 42])
def test_a_user_without_a_string_name_gets_no_first_or_last_name(name):
    """0003's comment: "None, a number, or MISSING" get first_name/last_name None, the original kept in name_source."""
    original = {"_id": 1} if name is ABSENT else {"_id": 1, "name": name}
    at_3, _ = run_up(original, [2, 3])
    assert at_3["first_name"] is None, f"first_name is {at_3['first_name']!r}"
    assert at_3["last_name"] is None, f"last_name is {at_3['last_name']!r}"
    assert_same_name(run_down(at_3, None, [3]), original)


def test_demo_generator_users_round_trip():
    """The demo's own messy users, through the same chains."""
    rng = random.Random(7)
    for i in range(300):
        original = demo.user(i, rng)
        frozen = as_bson(original)
        migrated, pre_images = run_up(original)
        assert as_bson(run_down(migrated, pre_images)) == frozen
        assert_same_name(run_down(migrated, None), original)


@pytest.mark.parametrize("with_pre_images", [True, False])
def test_a_user_literally_named_like_the_missing_marker_keeps_the_name(with_pre_images):
    """0003_split_name uses the string "__missing__" as its marker for "no name": a real name equal to it is lost."""
    original = {"_id": 1, "name": "__missing__", "email": "x@example.com"}
    migrated, pre_images = run_up(original)
    back = run_down(migrated, pre_images if with_pre_images else None)
    assert_same_name(back, original)


def test_updated_at_is_refreshed_by_up_and_restored_by_down():
    stamp = datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=timezone.utc)
    original = {"_id": 1, "name": "Ada Lovelace", "updated_at": stamp}
    migrated, pre_images = run_up(original)
    assert migrated["updated_at"] > stamp
    assert run_down(migrated, pre_images)["updated_at"] == stamp
