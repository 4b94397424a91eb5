"""The bodies of `docshift inspect` (and the text it prints), apart from docshift.command's migration commands."""

import sys

from rich.console import Console

from .context import RunContext
from .output import print_records
from .profile import Profile
from .sampling import profile_collection
from .settings import get_settings

def inspect(collection: str, sample: int, version: int | None, as_json: bool) -> Profile:
    """Profile `collection` and print it (a table per part, or the JSON of the Profile model)."""
    profile = profile_collection(RunContext.open(get_settings()), collection, sample, version)
    if as_json:
        sys.stdout.write(profile.model_dump_json(indent=2) + "\n")
    else:
        print_profile(Console(soft_wrap=True), profile)  # made now: its width follows COLUMNS as the command has it
    return profile


SHOWN = 50
"""Characters of examples (values, `_id`s) on one line of the text; `--json` has them all."""


def fit(items: list[str], width: int = SHOWN) -> str:
    """As many of `items` as fit in `width` characters joined (the first always, cut to fit), so that a line of
    examples stays within an 80-column terminal."""
    text = ""
    for item in items:
        joined = f"{text}, {item}" if text else item
        if len(joined) > width:
            return text or item[:width - 1] + "…"
        text = joined
    return text


def percent(part: int, whole: int) -> str:
    return f"{part / whole:.0%}" if whole else "-"


def summary(profile: Profile) -> list[str]:
    """The lines above the tables: what was read, how, and how far a sample's shares may be off."""
    read = (f"{profile.documents:,} documents" if profile.exact else
            f"a sample of {profile.documents:,}" + (f" of {profile.total:,} documents" if profile.total is not None else " documents"))
    lines = [f"{profile.collection}: {read}", f"read by  {profile.method}"]
    if profile.bound:
        lines.append(f"sampled  {profile.bound}")
    return lines


def field_rows(profile: Profile) -> list[dict[str, str]]:
    rows = []
    for field in profile.fields:
        rows.append({
            "field": field.path,
            "types": ", ".join(f"{kind} {percent(n, field.values)}" for kind, n in field.types.items()),
            "missing": f"{field.missing(profile.documents):,}" if "[]" not in field.path else "",
            "null": f"{field.nulls:,}" if field.nulls else "",
            "distinct": "" if field.distinct is None else (f"{field.distinct}"),
            "examples": fit(field.examples),
        })
    return rows


def validation_lines(profile: Profile) -> tuple[str, list[dict[str, str]]]:
    """The validation summary line and one row per group of errors."""
    result = profile.validation
    if result is None:
        return "not validated: no migration of this collection declares a target_model", []
    head = (f"validated against {result.model}, the target_model of migration {result.version}\n"
            f"failing  {result.failing:,} of {result.checked:,} documents ({result.failing_at_version:,} of them at "
            f"version {result.version})")
    return head, [{"field": g.loc, "error": g.error, "documents": f"{g.count:,}", "example _ids": fit(g.example_ids)}
                  for g in result.groups]


def print_profile(out: Console, profile: Profile) -> None:
    """The profile readable at any width (docshift.output: tables that fall back to one block per row)."""
    for line in summary(profile):
        out.print(line, markup=False, highlight=False)
    versions = [{"schema_version": v, "documents": f"{n:,}", "share": percent(n, profile.documents)}
                for v, n in profile.versions.items()]
    print_records(out, "Documents per schema_version (none: version 1)", versions,
                  lambda row: (f"version {row['schema_version']}: {row['documents']} ({row['share']})", set(row)))
    print_records(out, "Fields (missing: documents without it; [] an array's elements)", field_rows(profile),
                  lambda row: (f"{row['field']}: {row['types']}", {"field", "types"}))
    head, groups = validation_lines(profile)
    out.print(head, markup=False, highlight=False)
    if groups:
        print_records(out, "Validation errors", groups,
                      lambda row: (f"{row['field']}: {row['error']}, {row['documents']} documents", {"field", "error", "documents"}))
