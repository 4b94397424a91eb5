"""The script directory: finds, imports and checks migration files; knows nothing of any database."""

import hashlib
import importlib.util
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from .errors import MigrationFileError, TargetError
from .spec import INITIAL_VERSION, Migration

FILE_NAME = re.compile(r"^(\d+)_\w+\.py$")


@dataclass(frozen=True)
class Script:
    """A loaded migration file: its migration (one step, or several steps of one version: `migrations = [...]`), where
    it came from, and the checksum of its source and of the helper modules it imports from its folder."""

    migration: Migration
    """Its first (often only) step: what the file says about the whole version (its version, its description)."""
    path: Path
    checksum: str
    helpers: tuple[str, ...] = ()
    """The helper modules' files it imports from its folder (paths in the folder), covered by `checksum`."""
    file_checksum: str | None = None
    """The file's alone, where helpers make it differ from `checksum`: what a docshift that did not checksum helpers
    recorded (see matches)."""
    later: tuple[Migration, ...] = ()
    """The further steps of a migration of several (`migrations = [...]`)."""

    def matches(self, recorded: str) -> bool:
        """Whether a checksum recorded when the migration ran says it is unchanged. One recorded before helpers were
        checksummed covers the file alone: it is compared with the file alone, as then, until the migration runs again."""
        return recorded in (self.checksum, self.file_checksum)

    @property
    def parts(self) -> tuple[Migration, ...]:
        """The steps of this version, in the order they are applied (reverted in the opposite order)."""
        return (self.migration, *self.later)

    @property
    def version(self) -> int:
        return self.migration.version


class ScriptDirectory:
    """All migrations of a folder, in version order, with the version arithmetic the runtime needs."""

    def __init__(self, scripts: list[Script], path: Path):
        self.path = path
        self.scripts = {s.version: s for s in sorted(scripts, key=lambda s: s.version)}

    @classmethod
    def load(cls, path: Path) -> "ScriptDirectory":
        """Import every NNNN_slug.py of `path`, refusing the first file that is not a usable migration."""
        path = Path(path)
        if not path.is_dir():
            raise MigrationFileError(path, "migrations folder not found")
        scripts: list[Script] = []
        seen: dict[int, Path] = {}
        for file in sorted(p for p in path.iterdir() if FILE_NAME.match(p.name)):
            script = load_file(file)
            if script.version in seen:
                raise MigrationFileError(file, f"duplicate version {script.version}, also defined in {seen[script.version].name}")
            seen[script.version] = file
            scripts.append(script)
        return cls(scripts, path)

    @property
    def versions(self) -> list[int]:
        return list(self.scripts)

    @property
    def head(self) -> int:
        """The latest version, or the initial one when there are no migrations."""
        return self.versions[-1] if self.scripts else INITIAL_VERSION

    def get(self, version: int) -> Script:
        return self.scripts[version]

    def check_target(self, target: int) -> int:
        """`target` if it names a schema version that exists (1 or a migration's), else a TargetError."""
        if isinstance(target, bool) or not isinstance(target, int) or (target != INITIAL_VERSION and target not in self.scripts):
            known = ", ".join(str(v) for v in [INITIAL_VERSION, *self.versions])
            raise TargetError(f"unknown target version {target!r}; known versions: {known} (1 is the initial schema)")
        return target

    def global_predecessor(self, version: int) -> int:
        """The database version once `version` is reverted: the migration before it, or the initial one."""
        earlier = [v for v in self.scripts if v < version]
        return earlier[-1] if earlier else INITIAL_VERSION

    def part(self, version: int, part: int = 0) -> Migration:
        """Step `part` of migration `version` (a migration of one step has only step 0)."""
        return self.scripts[version].parts[part]

    def units(self, below: tuple[int, int] | None = None) -> list[tuple[int, Migration]]:
        """Every step of every migration as (version, step), in the order they are applied; with `below`, only those
        applied before step (version, part)."""
        return [(v, m) for v, s in self.scripts.items() for i, m in enumerate(s.parts)
                if below is None or (v, i) < below]

    def collection_predecessor(self, version: int, part: int = 0) -> int:
        """The schema version that step `part` of migration `version` upgrades from, within its own collection: the
        latest earlier document migration of it (an earlier step of the same migration counts as earlier), followed back
        through renames; a collection created by a copy starts at version 1. Collection-level steps (operations) change
        no document's version."""
        collection = self.part(version, part).collection
        for v, migration in reversed(self.units(below=(version, part))):
            if migration.operation is None and migration.collection == collection:
                return v
            if migration.operation is not None and migration.operation.renames_to == collection:
                collection = migration.collection
            elif migration.operation is not None and migration.operation.creates == collection:
                return INITIAL_VERSION
        return INITIAL_VERSION

    def document_part(self, version: int, collection: str) -> int:
        """Which step of migration `version` changes the documents of `collection` (by that name); 0 if none does."""
        return next((i for i, m in enumerate(self.get(version).parts)
                     if m.collection == collection and m.operation is None), 0)

    def document_versions(self, collection: str) -> list[int]:
        """The migrations that change documents of `collection` (by that name), in order."""
        return [v for v, m in self.units() if m.collection == collection and m.operation is None]


def load_file(file: Path) -> Script:
    """Import one migration file and return it with its checksum, or raise a MigrationFileError naming it."""
    source = file.read_bytes()
    module_name = f"docshift_migrations.{file.stem}"
    spec = importlib.util.spec_from_file_location(module_name, file)
    module = importlib.util.module_from_spec(spec)
    with helpers_imported(file) as helpers:
        try:
            spec.loader.exec_module(module)
        except SyntaxError as exc:
            raise MigrationFileError(file, f"syntax error at line {exc.lineno}: {exc.msg}") from exc
        except ValidationError as exc:
            raise MigrationFileError(file, f"invalid migration: {_validation_summary(exc)}") from exc
        except Exception as exc:  # a user file can raise anything at import
            raise MigrationFileError(file, f"cannot import: {type(exc).__name__}: {exc}") from exc
        finally:
            sys.modules.pop(module_name, None)
    helpers = sorted(helpers)
    first, *later = parts_of(module, file)
    return Script(migration=first, path=file, checksum=checksum_of(source, file.parent, helpers), helpers=tuple(helpers),
                  file_checksum=hashlib.sha256(source).hexdigest() if helpers else None, later=tuple(later))


def parts_of(module, file: Path) -> tuple[Migration, ...]:
    """The steps a migration file defines: `migration = docshift.Migration(...)`, or `migrations = [...]`, several steps
    of one version (each a docshift.Migration of its own collection), applied in that order and reverted together."""
    one, several = getattr(module, "migration", None), getattr(module, "migrations", None)
    if one is not None and several is not None:
        raise MigrationFileError(file, "defines both `migration` and `migrations`: one migration per file")
    if one is None and several is None:
        raise MigrationFileError(file, "defines no module-level `migration = docshift.Migration(...)` "
                                       "(or `migrations = [docshift.Migration(...), ...]` of one version)")
    parts = (one,) if several is None else several
    if not isinstance(parts, (list, tuple)) or not parts:
        raise MigrationFileError(file, "`migrations` must be a non-empty list of docshift.Migration")
    for i, part in enumerate(parts):
        if not isinstance(part, Migration):
            where = "`migration`" if several is None else f"`migrations[{i}]`"
            raise MigrationFileError(file, f"{where} is a {type(part).__name__}, not a docshift.Migration")
    check_parts(file, tuple(parts))
    return tuple(parts)


def check_parts(file: Path, parts: tuple[Migration, ...]) -> None:
    """Several steps of one migration: one version; each collection's documents changed by at most one step (a
    document moves from its collection's previous version to this one once); no expand-contract phases (they are
    scheduled per migration)."""
    if len(parts) == 1:
        return
    if len({p.version for p in parts}) > 1:
        raise MigrationFileError(file, f"the steps of one migration share its version; `migrations` has versions "
                                       f"{', '.join(str(p.version) for p in parts)}")
    changed = [p.collection for p in parts if p.operation is None]
    if twice := sorted({c for c in changed if changed.count(c) > 1}):
        raise MigrationFileError(file, f"two steps change the documents of {', '.join(twice)}: one step per collection "
                                       f"(put both changes in one up/down)")
    if any(p.expand_contract is not None for p in parts):
        raise MigrationFileError(file, "a migration of several steps has no expand-contract phases: give that step "
                                       "a migration of its own")


@contextmanager
def helpers_imported(file: Path) -> Iterator[list[str]]:
    """While a migration file is imported: its folder importable (after every other place, so that a helper never
    hides an installed module), and the modules imported from that folder listed (their paths in it) when it is done.

    Those modules are forgotten again, so that each migration file, and each later load, imports them afresh from
    their source as it is now: what a migration runs with is what its checksum covers."""
    folder, own = file.parent.resolve(), file.resolve()
    before, added = set(sys.modules), str(folder) not in sys.path
    if added:
        sys.path.append(str(folder))
    found: list[str] = []
    try:
        yield found
    finally:
        if added:
            sys.path.remove(str(folder))
        for name in set(sys.modules) - before:
            origin = getattr(sys.modules[name], "__file__", None)
            if origin and (path := Path(origin).resolve()).is_relative_to(folder) and path != own:
                found.append(path.relative_to(folder).as_posix())
                del sys.modules[name]


def checksum_of(source: bytes, folder: Path, helpers: list[str]) -> str:
    """The SHA-256 of the migration file, followed by each helper's path in the folder and bytes, in order of path:
    with no helper, the checksum of the file alone, as recorded before helpers were covered."""
    digest = hashlib.sha256(source)
    for name in helpers:
        digest.update(b"\0" + name.encode() + b"\0" + (folder / name).read_bytes())
    return digest.hexdigest()


def _validation_summary(exc: ValidationError) -> str:
    """Pydantic's errors as `field: message`; a check of the whole migration names its fields itself."""
    def one(error) -> str:
        where = ".".join(str(p) for p in error["loc"])
        return f"{where + ': ' if where else ''}{error['msg'].removeprefix('Value error, ')}"
    return "; ".join(one(e) for e in exc.errors())
