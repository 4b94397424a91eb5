"""Backup files in mongodump's directory format: `<run>/<db>/<collection>.bson` (concatenated BSON documents)
and `<collection>.metadata.json` (indexes and options), so that `bsondump` and `mongorestore` can read them too."""

import hashlib
from collections.abc import Iterator
from pathlib import Path

import bson
from bson import json_util
from bson.raw_bson import RawBSONDocument
from pymongo.collection import Collection

from .errors import BackupError

RAW = bson.codec_options.CodecOptions(document_class=RawBSONDocument)


def dump_path(backup_dir: Path, run_id: str, database: str, collection: str) -> Path:
    return Path(backup_dir).resolve() / run_id / database / f"{collection}.bson"


def open_dump(path: Path, coll: Collection) -> None:
    """Create the folder, the metadata file and the (empty) data file; a resumed run keeps what is there."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        metadata = {"options": {}, "indexes": list(coll.list_indexes()), "collectionName": coll.name, "type": "collection"}
        path.with_suffix(".metadata.json").write_text(json_util.dumps(metadata, json_options=json_util.CANONICAL_JSON_OPTIONS))
        path.touch()
    except OSError as exc:
        raise BackupError(f"cannot write the backup under {path.parent}, so nothing was changed: {exc.strerror or exc}") from None


def append(path: Path, raws: list[RawBSONDocument]) -> None:
    """Add documents' exact bytes to the data file (a redone batch appends again; the last copy wins on restore)."""
    try:
        with open(path, "ab") as out:
            out.writelines(raw.raw for raw in raws)
    except OSError as exc:
        raise BackupError(f"cannot append to backup file {path}: {exc.strerror or exc}") from None


def digest(path: Path) -> tuple[int, int, str]:
    """(documents, bytes, sha256) of a data file, read once as a stream."""
    sha, documents, size = hashlib.sha256(), 0, 0
    with open(path, "rb") as data:
        while header := data.read(4):
            length = int.from_bytes(header, "little")
            body = data.read(length - 4)
            sha.update(header + body)
            documents, size = documents + 1, size + length
    return documents, size, sha.hexdigest()


def read(path: Path) -> Iterator[RawBSONDocument]:
    """The documents of a data file, streamed, with their exact bytes."""
    with open(path, "rb") as data:
        yield from bson.decode_file_iter(data, codec_options=RAW)
