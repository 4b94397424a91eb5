"""What the commands print about a plan, a run, quarantined documents and backup retention (docshift.command calls
these with its console, so that every line goes through the one console a command writes to)."""

from rich.console import Console

from .engine.drift import advice, describe_all
from .engine.planning import Plan
from .engine.retention import Retention
from .loader import ScriptDirectory
from .output import print_records, shell, shell_id, size
from .transform import update_for


def print_plan(console: Console, report: Plan) -> None:
    """The steps `migrate` would take, the documents each touches and sample diffs."""
    console.print(f"from version {report.current} to {report.target}")
    if not report.steps:
        console.print("nothing to do: already at the target version")
    for step in report.steps:
        again = ", applied before: for documents behind it" if step.again else ""
        console.print(f"  {step.direction:4} {step.version} {step.collection}: {step.description} "
                      f"({step.kind}, {step.documents:,} documents{again})")
        if step.operation:
            console.print(f"      {step.operation}", markup=False, highlight=False)
        for note in step.notes:
            console.print(f"      note: {note}", markup=False, highlight=False)
        if step.checked:
            console.print(f"      checked: {step.checked:,} documents transformed in memory, none with a value the "
                          f"server refuses")
        for before, after in step.samples:
            change = after if step.operation else update_for(before, after, after.get("schema_version", 1))
            console.print(f"      _id {shell_id(before['_id'])}: {'copied as ' if step.operation else ''}{shell(change)}",
                          markup=False, highlight=False)


def step_of(scripts: ScriptDirectory, version: int, part: int, collection: str | None) -> str:
    """Which step of a migration of several steps a run is (nothing for a migration of one)."""
    steps = len(scripts.get(version).parts) if version in scripts.scripts else 1
    return f" (step {part + 1} of {steps}: {collection})" if steps > 1 else ""


def print_report(console: Console, report, title: str = "docshift") -> None:
    """The migrate flow's MigrationReport as a table (one block per step where it does not fit; an applied migration
    run again for documents behind it says `up again`), backups pruned after it, and the documents each step left
    at the old version because they were written there while it ran. Where the database is now: print_outcome."""
    rows = [{"migration": str(s.version), "direction": "up again" if s.direction == "up" and s.version <= report.current
             else s.direction, "documents": f"{s.documents:,}",
             "changed": f"{s.changed:,}", "quarantined": str(s.quarantined), "seconds": f"{s.duration_s:.1f}",
             "docs/s": f"{s.docs_per_s:,.0f}", "backup": s.backup, "verification": s.verification} for s in report.steps]
    if rows:
        print_records(console, f"{title}: {report.database} from version {report.current} to {report.target}", rows,
                      lambda r: (f"migration {r['migration']} {r['direction']}: {r['verification']}",
                                 {"migration", "direction", "verification"}))
    else:
        console.print("already at the target version: nothing to do")
    if retention := getattr(report, "retention", None):
        print_retention(console, retention, summary_only=True)
    for s in report.steps:
        if s.behind:
            console.print(f"migration {s.version}: {s.behind:,} document{'s' if s.behind != 1 else ''} written at the old "
                          f"version during the run {'were' if s.behind != 1 else 'was'} left there (`behind` in its "
                          f"history entry)")


def print_outcome(console: Console, report) -> None:
    """Where a real run left the database, last: quarantined documents to retry, documents still behind the recorded
    version (engine.drift) named instead of claiming a version they have not reached, or where a paused run stopped."""
    if any(s.quarantined for s in report.steps):
        console.print("some documents were quarantined and left unchanged: see `docshift quarantine`; "
                      "fix the migration and run `docshift migrate --allow-changed` to retry them")
    paused = next((s for s in report.steps if s.paused), None)
    if paused is None and report.behind:
        where = "behind or ahead of" if any(d.ahead for d in report.behind) else "behind"
        console.print(f"the database is recorded at version {report.version}, but documents are {where} it (drift): "
                      f"{describe_all(list(report.behind))}; {advice(list(report.behind))}", markup=False,
                      highlight=False)
    elif paused is None and report.taken:
        console.print(f"the database is recorded at version {report.version}, but documents were already there before "
                      f"this run, ahead of the record, and it took them as they were (neither migrated nor checked): "
                      f"{describe_all(list(report.taken))}; `docshift verify {report.version}` checks them",
                      markup=False, highlight=False)
    elif paused is None:
        console.print(f"database is now at version {report.version}")
    else:
        console.print(f"paused at the maintenance window's end: migration {paused.version} {paused.direction} at "
                      f"{paused.documents:,} of {paused.total:,} documents (run {paused.run_id}); the database stays at "
                      f"version {report.version} and the next window's run continues from the checkpoint "
                      f"(`docshift migrate`)", markup=False, highlight=False)


def print_quarantined(console: Console, entries: list[dict], runs: bool = True) -> None:
    """One line per document: migration, `_id` (whole), error, where the function raised (and the run)."""
    for e in entries:
        console.print(f"  migration {e['version']} {e['direction']} {e['collection']} _id={shell(e['doc_id'])!r}: {e['error']} "
                      f"[at {(e['traceback'] or ['?'])[-1]}" + (f"; run {e['run_id']}]" if runs else "]"),
                      markup=False, highlight=False)


def print_retention(console: Console, retention: Retention, summary_only: bool = False) -> None:
    """Each backup kept (and why) or pruned, one line each, oldest first; then the totals."""
    verb = "would prune" if retention.dry_run else "pruned"
    for b, why in [] if summary_only else retention.decisions:
        if why is not None:
            line = f"kept         {b.run_id}  {what_backup(b)}: {why}"
        else:
            line = (f"{verb:<12} {b.run_id}  {what_backup(b)}: {b.documents:,} documents, {size(b.data_bytes)} in the "
                    f"database, {size(b.file_bytes)} of files")
        console.print(line, markup=False, highlight=False)
    documents, data, files = retention.totals()
    console.print(f"backups: {verb} {len(retention.pruned)} ({documents:,} documents, {size(data)} of server data, "
                  f"{size(files)} of files), kept {len(retention.kept)}", markup=False, highlight=False)


def what_backup(b) -> str:
    return f"migration {b.version} {b.direction}" if b.version is not None else "no run in the history"
