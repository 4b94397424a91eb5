"""A user's own project: the files `docshift init` starts it with, and the migration templates of `docshift new`.

Nothing here overwrites a file: what exists already is refused, in one message, before anything is written.
"""

import json
import re
from dataclasses import dataclass
from pathlib import Path

from .db import password_of, redact
from .errors import ProjectError
from .loader import ScriptDirectory
from .settings import PYPROJECT, SETTINGS_FILE, Settings, default_project, read_toml
from .spec import Kind

HEADER = '''"""Version {version}: {description}."""

from pydantic import BaseModel, ConfigDict

import docshift


class {model}(BaseModel):
    """A `{collection}` document at version {version}: `verify` checks migrated documents against it."""

    model_config = ConfigDict(extra="allow")
    schema_version: int
    # declare here the fields this version guarantees, e.g. `email_address: str`
'''

BODIES: dict[str, str] = {
    "additive": '''
FIELD = "new_field"  # the field this migration adds
DEFAULT = None  # its value on the documents that lack it


def up(doc: dict) -> dict:
    """Add FIELD where it is missing; docshift writes only the difference and sets schema_version."""
    doc.setdefault(FIELD, DEFAULT)
    return doc


def down(doc: dict, pre_image: dict | None) -> dict:
    """Remove FIELD again; a document that had it before version {version} gets its own value back from its backup."""
    if pre_image is None:
        doc.pop(FIELD, None)
        return doc
    return docshift.restore_from(doc, pre_image, FIELD)
''',
    "transformative": '''

def up(doc: dict) -> dict:
    """Return `doc` at version {version} (rename, split, convert fields); docshift writes only the difference."""
    return doc


def down(doc: dict, pre_image: dict | None) -> dict:
    """Return `doc` as it was before version {version}: the inverse of `up` (`pre_image` is its backup, if kept)."""
    return doc
''',
    "destructive": '''
FIELDS = ("old_field",)  # the fields this migration removes


def up(doc: dict) -> dict:
    """Remove FIELDS; their values stay in the run's backup."""
    for name in FIELDS:
        doc.pop(name, None)
    return doc


def down(doc: dict, pre_image: dict | None) -> dict:
    """`up` removed data that cannot be invented again: it comes back from each document's backed-up pre-image."""
    return docshift.restore_from(doc, pre_image, *FIELDS)
''',
}

FOOTER = '''

migration = docshift.Migration(
    version={version}, description={description!r}, collection={collection!r}, kind="{kind}",
    up=up, down=down, target_model={model},
    # Without downtime, as four scheduled Prefect deployments (`docshift deploy`): a `backfill(doc)` that keeps the
    # old fields beside the new ones, and the fields cleanup removes at the end.
    # expand_contract=docshift.ExpandContract(backfill=backfill, removes=("old_field",), timezone="UTC"),
)
'''


def migration_source(version: int, description: str, collection: str, kind: Kind) -> str:
    """The source of a new migration file of `kind`, with a `target_model` stub."""
    model = "".join(w.capitalize() for w in re.split(r"[^A-Za-z0-9]+", collection) if w) or "Document"
    values = dict(version=version, description=description, collection=collection, kind=kind,
                  model=f"{model if model[0].isalpha() else 'C' + model}V{version}")
    return (HEADER + BODIES[kind] + FOOTER).format(**values)


def new_migration(folder: Path, description: str, collection: str, kind: Kind) -> Path:
    """Write the next-numbered migration file of `folder` (created when missing) and return its path."""
    version, path = next_migration(folder, description)
    path.write_text(migration_source(version, description, collection, kind))
    return path


def next_migration(folder: Path, description: str, version: int | None = None) -> tuple[int, Path]:
    """The next version of `folder` (created when missing; `version` when given, for drafts written in a row) and its
    file's path, refused when that file exists."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    version = version or ScriptDirectory.load(folder).head + 1
    slug = re.sub(r"[^a-z0-9]+", "_", description.lower()).strip("_")[:40] or "migration"
    path = folder / f"{version:04d}_{slug}.py"
    if path.exists():
        raise ProjectError(f"{path} exists already; nothing was written")
    return version, path


TEAM_README = '''# Schema migrations

This folder holds the MongoDB schema migrations of {database}, one file per change, applied in order by
[docshift](https://pypi.org/project/docshift/). Every migrated document carries `schema_version`; the database's
`_migrations` collection records which migrations ran, when, and what they did.

- Settings: `{settings}` (`DOCSHIFT_*` environment variables and flags win; keep passwords in the environment).
- A new change: `docshift new "what it does" --collection NAME --kind additive|transformative|destructive`, then
  fill in `up`, `down` and the `target_model` of the new file. Never edit a file that has run anywhere: write a
  new one (docshift refuses to run a changed applied migration).
- Before merging: `docshift plan` shows what would change, with sample diffs, and writes nothing;
  `docshift rehearse --sample 1000` runs it on a scratch copy.
- Apply: `docshift migrate` (or `docshift migrate N` to go back to version N); `docshift status`, `docshift history`.
- Undo a run: `docshift rollback --run RUN_ID` puts its backed-up pre-images back (backups in `{backups}/`:
  keep that folder out of version control).
- From Prefect: `docshift deploy` makes this project's deployments, named after its `project` setting
  (`{project}`): `migrate/{project}`, `rollback/{project}`, `verify/{project}`. Another project on the same
  Prefect server keeps its own; docshift refuses to overwrite them.
- Without downtime: a migration with `expand_contract=docshift.ExpandContract(...)` runs as four phases. After
  `docshift deploy`, each is a Prefect deployment (`expand/{project}-NAME`, `backfill/{project}-NAME`,
  `contract/{project}-NAME`, `cleanup/{project}-NAME`) with the schedules the file declares, paused until someone
  resumes them; a worker (`prefect worker start --pool {pool}`) runs them.
'''


@dataclass(frozen=True)
class Layout:
    """What `docshift init` writes: the settings (a file of its own, or a table in pyproject.toml), the migrations
    folder and its README for the team."""

    settings_file: Path
    migrations: Path
    readme: Path


def plan_layout(folder: Path, settings: Settings) -> Layout:
    """Where init would write in `folder`; a ProjectError naming every file it would have to overwrite."""
    pyproject = folder / PYPROJECT
    settings_file = pyproject if pyproject.is_file() and not (folder / SETTINGS_FILE).exists() else folder / SETTINGS_FILE
    migrations = folder / settings.migrations_dir
    layout = Layout(settings_file, migrations, migrations / "README.md")
    taken = [p for p in (layout.settings_file, layout.readme) if p.exists() and p.name != PYPROJECT]
    if settings_file.name == PYPROJECT and "docshift" in read_toml(pyproject).get("tool", {}):
        taken.insert(0, Path(f"{pyproject} [tool.docshift]"))
    if migrations.exists() and not migrations.is_dir():
        taken.append(migrations)
    if taken:
        raise ProjectError(f"docshift init would overwrite {', '.join(map(str, taken))}; nothing was written")
    return layout


def settings_table(settings: Settings) -> str:
    """The settings file's lines: where the data and the files are, and the optional alert destination."""
    uri = settings.mongodb_uri.get_secret_value()
    toml = json.dumps  # a JSON string is a TOML basic string
    lines = ["# docshift settings. DOCSHIFT_* environment variables and command-line flags win over these;",
             "# folders are relative to this file.",
             f"mongodb_uri = {toml(uri)}" if not password_of(uri) else
             f"# mongodb_uri = {toml(redact(uri, uri))}  # holds a password: set DOCSHIFT_MONGODB_URI instead",
             f"database = {toml(settings.database)}",
             f"migrations_dir = {toml(str(settings.migrations_dir))}",
             f"backup_dir = {toml(str(settings.backup_dir))}",
             f"project = {toml(settings.project)}  # names this project's deployments: migrate/{settings.project}, …",
             f"work_pool = {toml(settings.work_pool)}  # the Prefect work pool of `docshift deploy`",
             f"timezone = {toml(settings.timezone)}  # of schedules that name none",
             "# Alerts (`docshift alerts setup`): the name of a Prefect Secret block holding the webhook URL, or the",
             "# URL itself (it may carry a token: DOCSHIFT_ALERT_URL in the environment keeps it out of this file).",
             f"alert_secret = {toml(settings.alert_secret)}" if settings.alert_secret else
             '# alert_secret = "docshift-alert-url"',
             '# alert_url = "https://hooks.slack.com/services/..."']
    return "\n".join(lines) + "\n"


def init_project(folder: Path, settings: Settings) -> Layout:
    """Start docshift in `folder`: settings, migrations folder and the team's README; refuses to overwrite anything."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ProjectError(f"{folder} is not a folder; nothing was written")
    layout = plan_layout(folder, settings)
    if "project" not in settings.model_fields_set:  # named after the folder it starts in, wherever init runs
        settings = settings.model_copy(update={"project": default_project(folder)})
    folder.mkdir(parents=True, exist_ok=True)
    if layout.settings_file.name == PYPROJECT:
        text = layout.settings_file.read_text()
        layout.settings_file.write_text(text + ("\n" if text and not text.endswith("\n") else "") + "\n[tool.docshift]\n"
                                        + settings_table(settings))
    else:
        layout.settings_file.write_text(settings_table(settings))
    layout.migrations.mkdir(parents=True, exist_ok=True)
    layout.readme.write_text(TEAM_README.format(
        database=f"`{settings.database}`", settings=layout.settings_file.name if layout.settings_file.name == SETTINGS_FILE
        else "pyproject.toml, [tool.docshift]", backups=settings.backup_dir, pool=settings.work_pool,
        project=settings.project))
    return layout
