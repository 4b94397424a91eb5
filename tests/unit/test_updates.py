"""The update forms of a migration declared as an update, applied per document (docshift.updates): what `up` makes of
a document, what `down` gives back with and without its pre-image, and what is refused."""

import datetime

import pytest
from bson.int64 import Int64

from docshift.updates import UndoUpdate, check_update

pytestmark = pytest.mark.unit


def test_each_operator_as_the_server_applies_it():
    update = check_update({"$set": {"p.source": "import"}, "$unset": {"legacy": ""}, "$rename": {"name": "full_name"},
                           "$inc": {"a": 1, "b": Int64(2), "c": 0.5, "d": 1}, "$currentDate": {"t": True}})
    doc = {"_id": 1, "name": "N", "legacy": [1], "p": {"bio": "x"}, "a": 2 ** 31 - 1, "b": 1, "c": 1}
    new = update(dict(doc))
    stamp = new.pop("t")
    assert isinstance(stamp, datetime.datetime) and stamp.microsecond % 1000 == 0
    assert new == {"_id": 1, "p": {"bio": "x", "source": "import"}, "a": 2 ** 31, "b": Int64(3), "c": 1.5,
                   "full_name": "N", "d": 1}
    assert type(new["b"]) is Int64 and list(new)[-2:] == ["full_name", "d"]
    assert update.created()["p"] == {"source": "import"} and set(update.touched) == {"p", "legacy", "name", "full_name",
                                                                                      "a", "b", "c", "d", "t"}
    down = UndoUpdate(update)
    assert down(update(dict(doc)), doc) == doc  # values from the pre-image (their order is the writer's)
    assert down({"_id": 2, "full_name": "M", "a": 1}, None) == {"_id": 2, "name": "M"}  # no pre-image: undo what it can


def test_a_document_the_filter_does_not_match_is_left_as_it_is():
    update = check_update({"$set": {"verified": True}}, {"verified": None})
    assert update({"_id": 1, "verified": False}) == {"_id": 1, "verified": False}
    assert update({"_id": 2}) == {"_id": 2, "verified": True}
    assert update({"_id": 3, "verified": None}) == {"_id": 3, "verified": True}


@pytest.mark.parametrize("doc", [{"_id": 1, "n": "1"}, {"_id": 1, "n": True}, {"_id": 1, "p": 5}])
def test_a_value_the_server_would_refuse_to_update_raises(doc):
    with pytest.raises(TypeError):
        check_update({"$inc": {"n": 1}, "$set": {"p.q": 1}})(doc)


@pytest.mark.parametrize("query,words", [
    ({"a": {"$regex": "x"}}, "uses $regex"), ({"$where": "1"}, "'$where'"), ({"a": {"$in": 3}}, "with a list"),
    ({"$or": []}, "non-empty list"), ({"a": {"$eq": "$b"}}, "operators inside values"),
])
def test_a_filter_docshift_cannot_evaluate_per_document_is_refused(query, words):
    with pytest.raises(ValueError, match=words.replace("$", r"\$")):
        check_update({"$set": {"x": 1}}, query)
