"""docshift.Migration and its operations as declared: what a collection-level step replaces and needs, which
parameters a function's signature may have, which indexes may be dropped."""

import pytest
from pydantic import ValidationError

import docshift

def same(doc):
    return doc

def test_an_operation_replaces_up_and_down():
    m = docshift.Migration(version=2, description="d", collection="c", kind="additive",
                           operation=docshift.CreateIndex(keys=[("a.b", 1), ("c", -1)], unique=True))
    assert m.up is None and m.operation.spec == {
        "name": "a.b_1_c_-1", "keys": [{"field": "a.b", "order": 1}, {"field": "c", "order": -1}],
        "options": {"unique": True}}
    with pytest.raises(ValidationError, match="has no up/down"):
        docshift.Migration(version=2, description="d", collection="c", kind="additive", up=same, down=same,
                           operation=docshift.DropCollection())
    with pytest.raises(ValidationError, match="down: Field required"):
        docshift.Migration(version=2, description="d", collection="c", kind="additive", up=same)

def test_a_lookup_parameter_is_not_counted_as_the_document_or_the_pre_image():
    def up(doc, lookup):
        return doc

    def down(doc, pre_image, lookup=None):
        return doc

    m = docshift.Migration(version=2, description="d", collection="c", kind="additive", up=up, down=down,
                           reads=["customers"])
    assert m.reads == {"customers": None} and m.down_uses_pre_image
    with pytest.raises(ValidationError, match="up must take the document"):
        docshift.Migration(version=2, description="d", collection="c", kind="additive", up=lambda a, b: a, down=same)

def test_drop_index_takes_a_name_or_keys_but_never_the_id_index():
    assert docshift.DropIndex(keys=[("sku", 1)]).index == "sku_1"
    for bad in ({}, {"name": "x", "keys": [("x", 1)]}, {"name": "_id_"}):
        with pytest.raises(ValidationError):
            docshift.DropIndex(**bad)

def test_a_collection_level_step_needs_no_kind_and_a_document_migration_does():
    index = docshift.Migration(version=2, description="d", collection="products",
                               operation=docshift.CreateIndex(keys=[("sku", 1)], unique=True))
    assert index.kind is None
    with pytest.raises(ValidationError, match="kind: Field required"):
        docshift.Migration(version=2, description="d", collection="products", up=lambda d: d, down=lambda d: d)
