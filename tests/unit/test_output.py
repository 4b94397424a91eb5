"""How values and `_id`s print: as a person pastes them into the MongoDB shell, never as Python's raw bytes."""

import uuid

from bson import Binary, ObjectId, UuidRepresentation

from docshift.output import shell, shell_id


def test_a_uuid_id_prints_as_mongosh_writes_it_and_other_ids_as_before():
    key = uuid.UUID("c1552101-8f2e-4b0a-9d51-0c2a4e1f7b3d")
    assert shell_id(Binary.from_uuid(key)) == 'UUID("c1552101-8f2e-4b0a-9d51-0c2a4e1f7b3d")'
    legacy = Binary.from_uuid(key, UuidRepresentation.PYTHON_LEGACY)
    assert shell_id(legacy) == 'Binary.createFromBase64("wVUhAY8uSwqdUQwqTh97PQ==", 3)'
    oid = ObjectId("656f1f77bcf86cd799439011")
    assert shell_id(oid) == "656f1f77bcf86cd799439011" and shell_id("user_7") == "user_7" and shell_id(7) == "7"


def test_values_inside_a_change_print_the_same_way():
    key = uuid.UUID(int=1)
    change = {"$set": {"owner": Binary.from_uuid(key), "tags": [Binary(b"\x01\x02", 0)], "n": 1}}
    assert repr(shell(change)) == ("{'$set': {'owner': UUID(\"00000000-0000-0000-0000-000000000001\"), "
                                   "'tags': [Binary.createFromBase64(\"AQI=\", 0)], 'n': 1}}")
    assert shell(change["$set"]["n"]) == 1
