"""Backup files in mongodump's directory format: `<run>/<db>/<collection>.bson` (concatenated BSON documents)
and `<collection>.metadata.json` (indexes and options), both with `.gz` when gzipped as `mongodump --gzip`
writes them, so that `bsondump` and `mongorestore` can read them too."""

import gzip
import hashlib
from collections.abc import Iterator
from pathlib import Path

import bson
from bson import json_util
from bson.raw_bson import RawBSONDocument
from pymongo.collection import Collection

from .errors import BackupError

RAW = bson.codec_options.CodecOptions(document_class=RawBSONDocument)


def dump_path(backup_dir: Path, run_id: str, database: str, collection: str, gzipped: bool = False) -> Path:
    return Path(backup_dir).resolve() / run_id / database / f"{collection}.bson{'.gz' if gzipped else ''}"


def _file(path: Path, mode: str):
    """A data or metadata file, through gzip when its name ends in .gz (appending adds a gzip member)."""
    return gzip.open(path, mode) if path.suffix == ".gz" else open(path, mode)


def open_dump(path: Path, coll: Collection) -> None:
    """Create the folder, the metadata file and the (empty) data file; a resumed run keeps what is there."""
    gz = ".gz" if path.suffix == ".gz" else ""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        metadata_path = path.parent / f"{coll.name}.metadata.json{gz}"
        if not metadata_path.exists():  # a resumed run keeps the indexes as they were when it started
            metadata = {"options": {}, "indexes": list(coll.list_indexes()), "collectionName": coll.name, "type": "collection"}
            with _file(metadata_path, "wb") as out:
                out.write(json_util.dumps(metadata, json_options=json_util.CANONICAL_JSON_OPTIONS).encode())
        path.touch()
    except OSError as exc:
        raise BackupError(f"cannot write the backup under {path.parent}, so nothing was changed: {exc.strerror or exc}") from exc


def append(path: Path, raws: list[RawBSONDocument]) -> None:
    """Add documents' exact bytes to the data file (a redone batch appends again; the last copy wins on restore)."""
    try:
        with _file(path, "ab") as out:
            out.write(b"".join(raw.raw for raw in raws))
    except OSError as exc:
        raise BackupError(f"cannot append to backup file {path}: {exc.strerror or exc}") from exc


def clear(path: Path) -> None:
    """Empty the data file, to write it again from the start."""
    try:
        with _file(path, "wb"):
            pass
    except OSError as exc:
        raise BackupError(f"cannot write backup file {path}: {exc.strerror or exc}") from exc


def file_sha256(path: Path) -> str:
    """sha256 of the file as stored (what `sha256sum` prints), read as a stream."""
    sha = hashlib.sha256()
    with open(path, "rb") as stored:
        while chunk := stored.read(1 << 20):
            sha.update(chunk)
    return sha.hexdigest()


def digest(path: Path) -> tuple[int, int, str]:
    """(documents, bytes of BSON, sha256 of the file as stored) of a data file."""
    documents, size = 0, 0
    with _file(path, "rb") as data:
        while header := data.read(4):
            length = int.from_bytes(header, "little")
            data.read(length - 4)
            documents, size = documents + 1, size + length
    return documents, size, file_sha256(path)


def read(path: Path) -> Iterator[RawBSONDocument]:
    """The documents of a data file, streamed, with their exact bytes."""
    with _file(path, "rb") as data:
        yield from bson.decode_file_iter(data, codec_options=RAW)
