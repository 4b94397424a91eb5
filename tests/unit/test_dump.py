"""Backup files in mongodump format, plain and gzipped: what is appended is read back exactly and checksummed."""

import gzip

import bson
import pytest
from bson.raw_bson import RawBSONDocument

from docshift import dump


def raws(docs):
    return [RawBSONDocument(bson.encode(d)) for d in docs]


class FakeCollection:
    name = "users"

    def list_indexes(self):
        return [{"v": 2, "key": {"_id": 1}, "name": "_id_"}]


@pytest.mark.parametrize("gzipped", [False, True])
def test_appended_documents_read_back_exactly_with_a_stable_digest(tmp_path, gzipped):
    path = dump.dump_path(tmp_path, "run-1", "app", "users", gzipped)
    dump.open_dump(path, FakeCollection())
    first = raws([{"_id": 1, "name": "Zoë", "n": 1.0}, {"_id": 2, "tags": ["a", {"b": None}]}])
    second = raws([{"_id": 3, "big": "x" * 100_000}])
    dump.append(path, first)
    dump.append(path, second)

    back = list(dump.read(path))
    documents, size, sha256 = dump.digest(path)

    assert [d.raw for d in back] == [r.raw for r in first + second]
    assert (documents, size) == (3, sum(len(r.raw) for r in first + second))
    assert path.name == ("users.bson.gz" if gzipped else "users.bson")
    metadata = path.parent / ("users.metadata.json.gz" if gzipped else "users.metadata.json")
    text = (gzip.decompress(metadata.read_bytes()) if gzipped else metadata.read_bytes()).decode()
    assert '"collectionName": "users"' in text and '"_id_"' in text
    if gzipped:
        assert gzip.decompress(path.read_bytes()) == b"".join(r.raw for r in first + second)

    tampered = bytearray(path.read_bytes())
    tampered[-5] ^= 0xFF
    path.write_bytes(bytes(tampered))
    assert dump.file_sha256(path) != sha256  # what restore compares before it reads a single document
