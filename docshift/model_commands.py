"""The bodies of `docshift check` and `docshift new --from-model`: the application's pydantic models (`module:Class`,
imported from the project's folder) against the migrations' target models. No database is needed (`check` reads one
only when it is named: the documents against the target models)."""

import importlib
import sys
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from .context import RunContext
from .errors import DocshiftError
from .datadiff import DataComparison, compare_with_data
from .db import connect
from .draft import Basis, draft_source
from .loader import ScriptDirectory
from .modeldiff import FieldChange, compare_models, latest_target
from .modelindexes import IndexChange, compare_indexes, declared_indexes, index_draft_source, migrated_indexes
from .project import next_migration
from .sampling import profile_collection
from .settings import find_settings_file, get_settings


class ModelError(DocshiftError):
    """An application model named as `module:Class` cannot be used: bad form, failing import, not a pydantic model."""


def project_folder() -> Path:
    """Where user modules are imported from: the settings file's folder, else the working directory."""
    found = find_settings_file()
    return found.parent if found else Path.cwd()


def import_model(spec: str, folder: Path | None = None) -> type[BaseModel]:
    """The class `module:Class` names, imported with `folder` (default: the project's) first on the path; modules
    of that folder imported for it are forgotten again, so that a changed file is read anew by the next command in this process."""
    module_name, colon, attribute = spec.partition(":")
    if not colon or not module_name or not attribute:
        raise ModelError(f"model {spec!r}: expected module:Class, e.g. app.models:User")
    folder = str((folder or project_folder()).resolve())
    before = set(sys.modules)
    sys.path.insert(0, folder)
    try:
        importlib.invalidate_caches()
        found = importlib.import_module(module_name)
        for part in attribute.split("."):
            found = getattr(found, part)
    except Exception as exc:  # a user module can raise anything at import
        raise ModelError(f"cannot import model {spec} (from {folder}): {type(exc).__name__}: {exc}") from exc
    finally:
        sys.path.remove(folder)
        for name in set(sys.modules) - before:
            if str(getattr(sys.modules[name], "__file__", None) or "").startswith(folder):
                del sys.modules[name]
    if not (isinstance(found, type) and issubclass(found, BaseModel)):
        raise ModelError(f"model {spec} is a {type(found).__name__}, not a pydantic model class")
    return found


def parse_models(given: list[str]) -> dict[str, str]:
    """`COLLECTION=module:Class` flags as {collection: spec}; none given: the `models` setting."""
    models = {}
    for item in given:
        collection, equals, spec = item.partition("=")
        if not equals or not collection or not spec:
            raise ModelError(f"--model {item!r}: expected COLLECTION=module:Class, e.g. users=app.models:User")
        models[collection] = spec
    if not models:
        models = get_settings().models
    if not models:
        raise ModelError("no models to check: give --model COLLECTION=module:Class, or a `models` table in the "
                         "settings file (models = { users = \"app.models:User\" })")
    return models


@dataclass(frozen=True)
class ModelCheck:
    """One collection's application model against the latest target_model of its migrations."""

    collection: str
    spec: str
    version: int | None
    target: str | None
    changes: list[FieldChange]
    indexes: list[IndexChange]

    def lines(self) -> list[str]:
        against = f"{self.target} (migration {self.version})" if self.target else "no target_model yet"
        return ([f"{self.collection}: {change.describe()} [{self.spec} against {against}]" for change in self.changes]
                + [f"{self.collection}: {change.describe()} [{self.spec} against the indexes its migrations create]"
                   for change in self.indexes])


def compare_with_migrations(collection: str, spec: str, scripts: ScriptDirectory) -> ModelCheck:
    version, target = latest_target(scripts, collection)
    app = import_model(spec)
    return ModelCheck(collection, spec, version, target.__name__ if target else None, compare_models(target, app),
                      compare_indexes(migrated_indexes(scripts, collection), declared_indexes(app, spec)))


def check(given: list[str], database: str | None = None) -> list[str]:
    """Compare every model with its collection's latest target_model, and with `database` also the documents at
    that version with the target_model; print and return one line per difference (agreements printed too)."""
    scripts = ScriptDirectory.load(get_settings().migrations_dir)
    results = [compare_with_migrations(collection, spec, scripts) for collection, spec in parse_models(given).items()]
    problems = [line for result in results for line in result.lines()]
    if database is not None:
        problems += failing_documents(RunContext.open(get_settings(database)), results)
    for line in problems:
        print(line)
    for result in results:
        if not result.changes and not result.indexes:
            print(f"{result.collection}: {result.spec} agrees with {result.target} (migration {result.version})")
    return problems


def failing_documents(ctx: RunContext, results: list[ModelCheck]) -> list[str]:
    """A line per collection whose documents at its latest target_model's version fail that model (every document
    of the collection is read, as `docshift inspect --sample 0` does)."""
    lines = []
    present = set(ctx.db.list_collection_names())
    for result in results:
        if result.version is None or result.collection not in present:
            continue
        validation = profile_collection(ctx, result.collection, 0, result.version).validation
        if validation.failing_at_version:
            lines.append(f"{result.collection}: {validation.failing_at_version:,} documents at version {validation.version} "
                         f"fail {validation.model} in database {ctx.db.name}: `docshift inspect {result.collection} "
                         f"--sample 0` groups them")
    return lines


def read_data(collection: str, app: type[BaseModel], scripts: ScriptDirectory, sample: int) -> DataComparison:
    """The application's model against a profile of the collection's documents (`sample` of them, 0: all), for its
    first migration; a collection the database does not have yet: every field of the model is added."""
    ctx = RunContext(get_settings(), scripts, connect(get_settings()))
    if collection not in ctx.db.list_collection_names():
        return DataComparison(how=f"database {ctx.db.name} has no collection {collection} yet",
                              changes=compare_models(None, app))
    return compare_with_data(app, profile_collection(ctx, collection, sample))


def new_from_model(description: str, collection: str, spec: str, sample: int = 1000) -> list[Path]:
    """Write draft migrations of `collection` from the differences between the application's model `spec` and its
    migrations: one for the fields (against the latest target_model; for a collection without one, against a
    `sample` of its documents), then one collection-level step per index change, numbered in a row; refused (nothing
    written) when they agree."""
    folder = get_settings().migrations_dir
    scripts = ScriptDirectory.load(folder) if folder.is_dir() else ScriptDirectory([], folder)
    result = compare_with_migrations(collection, spec, scripts)
    if not result.changes and not result.indexes:
        raise ModelError(f"{spec} agrees with {result.target} (migration {result.version}) and with the indexes of "
                         f"the migrations: nothing to draft; nothing was written")
    paths, version = [], None
    if result.changes:
        app = import_model(spec)
        data = read_data(collection, app, scripts, sample) if result.target is None else None
        version, path = next_migration(folder, description)
        path.write_text(draft_source(version, description, collection, app, Basis(result.target, result.changes, data),
                                     project_folder().resolve()))
        paths.append(path)
    redeclared = {c.name for c in result.indexes if c.kind == "added"} & {c.name for c in result.indexes if c.kind == "removed"}
    for change in result.indexes:
        what = f"{description}: {'create' if change.kind == 'added' else 'drop'} index {change.name}"
        version, path = next_migration(folder, what, version + 1 if version else None)
        path.write_text(index_draft_source(version, what, collection, change, spec, change.name in redeclared))
        paths.append(path)
    return paths
