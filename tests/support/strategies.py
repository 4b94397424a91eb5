"""Hypothesis strategies of messy version-1 `users`, shared by the seed-migration tests and the testing-kit tests."""

from datetime import datetime, timezone

import bson
from bson import Int64, ObjectId
from hypothesis import strategies as st

ABSENT = object()
"""A field left out of the document (as opposed to present with the value None)."""

NON_SPACE = st.characters(exclude_categories=("Cs", "Zs", "Zl", "Zp", "Cc"))
WORD = st.text(NON_SPACE, min_size=1, max_size=12)
SPACES = st.text(alphabet=" \t\n\u00a0\u2003\u3000\x1c", min_size=1, max_size=4)
MS_DATETIMES = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2100, 1, 1)).map(
    lambda t: t.replace(microsecond=t.microsecond // 1000 * 1000, tzinfo=timezone.utc))
INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)


@st.composite
def several_words(draw):
    words = draw(st.lists(WORD, min_size=2, max_size=5))
    text = draw(st.sampled_from(["", " ", "  "]))
    for i, word in enumerate(words):
        text += word + (draw(st.one_of(st.just(" "), SPACES)) if i < len(words) - 1 else "")
    return text + draw(st.sampled_from(["", " ", "\t"]))


NAMES = st.one_of(
    st.just(ABSENT),
    st.none(),
    st.just(""),
    SPACES,
    WORD,
    several_words(),
    st.sampled_from(["🦄 Ó Súilleabháin 🚀", "李 明", "Zoë  Nørgaard", "José\u00a0García Márquez", "Ana María van der Berg",
                     "O'Brien", " Jean-Luc ", "👩‍👩‍👧 family", "\u200bzero width"]),
    st.text(max_size=20),
    st.integers(min_value=-(2**31), max_value=2**31 - 1),
    INT64.map(Int64),
    st.floats(allow_nan=True),
    st.booleans(),
    st.lists(st.text(max_size=5), max_size=3),
    st.fixed_dictionaries({"first": st.text(max_size=5), "last": st.text(max_size=5)}),
)

BSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**31), max_value=2**31 - 1), INT64.map(Int64),
              st.floats(allow_nan=False), st.text(max_size=10), MS_DATETIMES, st.binary(max_size=8).map(bson.Binary)),
    lambda children: st.one_of(st.lists(children, max_size=3),
                               st.dictionaries(st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00.$"),
                                                       min_size=1, max_size=5),
                                               children, max_size=3)),
    max_leaves=6,
)

OWN_PREFERENCES = {"theme": "dark", "notifications": False, "language": "fr"}
EMAILS = st.one_of(st.emails(), st.text(max_size=10), st.none(), st.integers(0, 10))


@st.composite
def users_v1(draw):
    doc = {"_id": draw(st.one_of(st.builds(ObjectId), st.integers(0, 10**9), st.text(min_size=1, max_size=8)))}
    if draw(st.booleans()):
        doc["user_id"] = f"user_{draw(st.integers(0, 10**6))}"
    name = draw(NAMES)
    if name is not ABSENT:
        doc["name"] = name
    if draw(st.integers(0, 3)):
        doc["email"] = draw(EMAILS)
    if draw(st.integers(0, 5)) == 0:
        doc["email_address"] = draw(EMAILS)  # dual-written already
    if draw(st.integers(0, 2)) == 0:
        doc["deprecated_field"] = draw(BSON_VALUES)
    if draw(st.integers(0, 5)) == 0:
        doc["preferences"] = draw(st.one_of(st.just(dict(OWN_PREFERENCES)), BSON_VALUES))
    for field in ("created_at", "updated_at"):
        if draw(st.integers(0, 4)):
            doc[field] = draw(MS_DATETIMES)
    keys = draw(st.permutations(list(doc)))
    return {k: doc[k] for k in keys}
