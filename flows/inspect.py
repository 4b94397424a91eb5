"""The inspect flow: a collection's profile as a table artifact, so that it can run as a deployment (before a
change window, say) and be read in the Prefect UI."""

from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from docshift.context import RunContext
from docshift.inspect_commands import field_rows, summary, validation_lines
from docshift.profile import Profile
from docshift.sampling import profile_collection
from docshift.settings import get_settings


@flow(name="inspect", description="Profile a collection: versions, field types, missing and null values, documents "
                                   "failing the latest target_model.")
def inspect(collection: str, sample: int = 1000, version: int | None = None, database: str | None = None) -> Profile:
    """Read the collection (exact when `sample` is 0) and publish its profile as artifacts keyed by the collection."""
    profile = profile_collection(RunContext.open(get_settings(database)), collection, sample, version)
    key = "inspect-" + "".join(c if c.isalnum() else "-" for c in collection.lower())
    head, groups = validation_lines(profile)
    versions = ", ".join(f"{v}: {n:,}" for v, n in profile.versions.items())
    create_markdown_artifact("\n\n".join([*summary(profile), f"schema_version: {versions}", head]),
                             key=f"{key}-summary", description=f"Profile of {collection}")
    create_table_artifact(field_rows(profile), key=f"{key}-fields", description=f"Fields of {collection}")
    if groups:
        create_table_artifact(groups, key=f"{key}-errors", description=f"Documents of {collection} failing {profile.validation.model}")
    return profile
