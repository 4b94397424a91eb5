"""What the commands print (docshift.output): records that fit the terminal (a table when it fits, blocks with whole ids
when it does not), and values as a person pastes them into the MongoDB shell, never as Python's raw bytes."""

import io
import uuid

import pytest
from bson import Binary, ObjectId, UuidRepresentation
from rich.console import Console

from docshift.output import pack, print_records, shell, shell_id

@pytest.mark.parametrize("width", [200, 60])
def test_records_are_a_table_when_they_fit_and_blocks_otherwise_with_ids_whole(width):
    console = Console(width=width, record=True, soft_wrap=True)
    run_id, flow_run = "v3-up-0123456789", "9d6c1f3e-2b7a-4c8e-9f10-1234567890ab"

    print_records(console, "history", [{"run": run_id, "migration": "3", "flow run": flow_run}],
                  lambda r: (f"{r['run']}  migration {r['migration']}", {"run", "migration"}))

    text = console.export_text()
    assert run_id in text and flow_run in text
    assert ("┃ run" in text) == (width == 200)
    assert all(len(line) <= width for line in text.splitlines())

def render(width: int, rows) -> str:
    out = io.StringIO()
    console = Console(file=out, width=width, soft_wrap=True)
    print_records(console, "docshift history", rows, lambda r: (f"{r['run']}  migration {r['migration']}", {"run", "migration"}))
    return out.getvalue()

def test_records_are_a_table_when_it_fits_and_blocks_with_whole_ids_when_not():
    rows = [{"run": f"v{v}-up-0123456789", "migration": str(v), "outcome": "applied",
             "flow run": "7c0e1234-5678-90ab-cdef-1234567890ab"} for v in (2, 3)]
    wide = render(200, rows)
    assert "┃ run" in wide and "v2-up-0123456789" in wide
    narrow = render(80, rows)
    assert "┃" not in narrow and "…" not in narrow
    assert narrow.splitlines()[1:4] == ["v2-up-0123456789  migration 2",
                                        "  outcome applied   flow run 7c0e1234-5678-90ab-cdef-1234567890ab",
                                        "v3-up-0123456789  migration 3"]
    assert all(len(line) <= 80 for line in narrow.splitlines())

def test_pack_never_splits_an_item():
    assert pack(["a" * 10, "b" * 10, "c" * 100], 24) == ["a" * 10 + "   " + "b" * 10, "c" * 100]


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
