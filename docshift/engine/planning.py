"""What a migration to a target will do: the steps from the recorded version, their counts, sample diffs."""

from dataclasses import dataclass, replace

from ..context import RunContext
from ..errors import ChangedMigrationError, MigrationFileError, PhaseError, RollbackPendingError, TransformError
from ..ledger import Ledger
from ..loader import ScriptDirectory
from ..lookup import Lookup
from ..servers import Refusal, refused_value, server_name
from ..spec import INITIAL_VERSION
from ..transform import versions_filter
from .drift import carry_from, find_drift, lineage
from .operation_steps import actions_of, check_server_features, check_step, copies_of, planned_documents
from .quarantine import quarantined_versions
from .backups import PreImages, bson_order
from .probe import refusal
from .runs import lookup_for, pre_images_for
from .steps import Step, make_step, make_steps, transform_one


@dataclass(frozen=True)
class PlannedStep:
    version: int
    direction: str
    collection: str
    kind: str
    description: str
    documents: int
    samples: list[tuple[dict, dict]]
    operation: str | None = None
    """A collection-level step: what it does (`create unique index sku_1 (sku: 1) on products`)."""
    notes: tuple[str, ...] = ()
    """What the plan found about a collection-level step (already done, nothing to drop, checked when it runs)."""
    again: bool = False
    """An applied migration run again for documents behind it (quarantined, restored, written by old code)."""
    checked: int = 0
    """Documents transformed in memory and checked for values the server refuses (check_values)."""


@dataclass(frozen=True)
class Plan:
    current: int
    target: int
    steps: list[PlannedStep]


def plan_steps(scripts: ScriptDirectory, current: int, target: int, checkpoint: dict | None,
               retry_from: dict[str, int] | None = None) -> list[Step]:
    """The steps from `current` to `target`: ups ascending or downs descending, as in the original runner.

    An interrupted step (a checkpoint) is resumed when the path contains it; when the path goes the
    other way, the partial step is undone first so that no document is left half-way. Going up, documents behind
    `current` (`retry_from`: collection -> lowest migration they are behind: quarantined or drifted) are first
    carried up to `current` again.
    """
    if checkpoint and checkpoint.get("rolling_back"):
        raise RollbackPendingError(
            f"run {checkpoint['run_id']} is being rolled back; finish it first: docshift rollback --run {checkpoint['run_id']}")
    if checkpoint and checkpoint.get("phase"):
        raise PhaseError(
            f"the {checkpoint['phase']} phase of migration {checkpoint['version']} is unfinished (run {checkpoint['run_id']}, "
            f"{checkpoint.get('done', 0):,} of {checkpoint.get('total', 0):,} documents): run that phase again to continue it, "
            f"or `docshift rollback --run {checkpoint['run_id']}`")
    if target >= current:
        steps = [s for v in scripts.versions if current < v <= target for s in make_steps(scripts, v, "up")]
    else:
        steps = [s for v in reversed(scripts.versions) if target < v <= current for s in make_steps(scripts, v, "down")]
    if target >= current and retry_from:
        retries = [replace(s, recorded_before=current, recorded_after=current)
                   for v in scripts.versions if v <= current for s in make_steps(scripts, v, "up")
                   if s.operation is None and retry_from.get(s.collection, v + 1) <= v]
        steps = retries + steps
    if checkpoint and checkpoint["version"] in scripts.scripts:
        pending = make_step(scripts, checkpoint["version"], checkpoint["direction"], part=checkpoint.get("part", 0))
        keys = [(s.version, s.direction, s.part) for s in steps]
        if (pending.version, pending.direction, pending.part) not in keys:
            steps[:0] = undo_started(scripts, pending, current)
        else:  # the migration goes on from its interrupted step (after it, when that step had finished)
            at = keys.index((pending.version, pending.direction, pending.part)) + bool(checkpoint.get("finished"))
            steps = [s for i, s in enumerate(steps) if i >= at or (s.version, s.direction) != (pending.version, pending.direction)]
    return steps


def undo_started(scripts: ScriptDirectory, pending: Step, current: int) -> list[Step]:
    """The steps that take back an interrupted step that the plan goes away from: its opposite.

    A migration of several steps goes back to the side of it the record is on, as a whole, the record kept at
    `current`: below it, every step up to the interrupted one goes down (last first: an interrupted up, or the undo
    of a failed one); at or above it, every step from the interrupted one goes up (an interrupted down, or its undo).
    The interrupted step itself is then resumed, when that is its own direction, or taken back."""
    parts = [s.part for s in make_steps(scripts, pending.version, "up")]
    if len(parts) == 1:
        return [make_step(scripts, pending.version, "down" if pending.direction == "up" else "up")]
    at = parts.index(pending.part)
    back = ([(p, "down") for p in reversed(parts[: at + 1])] if current < pending.version
            else [(p, "up") for p in parts[at:]])
    return [replace(make_step(scripts, pending.version, direction, part=p), recorded_before=current,
                    recorded_after=current) for p, direction in back]


def check_checksums(ctx: RunContext, current: int, allow_changed: bool) -> None:
    """Refuse to run while an applied migration's file, or a helper module it imports, differs from what was applied
    (unless allowed), or while the database records migrations this folder does not have (never allowed: going down
    would skip their `down`s)."""
    applied = Ledger(ctx.db).applied_checksums(current)
    if unknown := unknown_versions(applied, ctx.scripts, current):
        raise ChangedMigrationError(
            f"the database records migration {', '.join(map(str, unknown))}, which this migrations folder does not have "
            f"(its latest is {ctx.scripts.head}): it was migrated by a newer or a different folder; run docshift from "
            f"that folder")
    changed = changed_files(applied, ctx.scripts)
    if changed and not allow_changed:
        raise ChangedMigrationError(
            "applied migration files were edited since they ran: " + ", ".join(changed)
            + "; restore them, or pass --allow-changed if the edit is intended"
        )


def changed_files(applied: dict[int, str], scripts: ScriptDirectory) -> list[str]:
    """The applied migrations (version: checksum, Ledger.applied_checksums) whose file, or a helper module it imports,
    differs from what was applied, described."""
    return [
        f"{scripts.get(v).path.name} ({_with(scripts.get(v).helpers)}applied as {checksum[:12]}, "
        f"now {scripts.get(v).checksum[:12]})"
        for v, checksum in applied.items()
        if v in scripts.scripts and not scripts.get(v).matches(checksum)
    ]


def unknown_versions(applied: dict[int, str], scripts: ScriptDirectory, current: int) -> list[int]:
    """Versions the ledger records as applied (Ledger.applied_checksums, and its current one) that this migrations
    folder does not have: the database was migrated by a newer or a different folder."""
    versions = set(applied) | ({current} if current != INITIAL_VERSION else set())
    return sorted(v for v in versions if v not in scripts.scripts)


def _with(helpers: tuple[str, ...]) -> str:
    return f"with {', '.join(helpers)}; " if helpers else ""


def migrated_versions(steps: list[Step], index: int) -> list[int]:
    """Schema versions whose documents step `index` will handle: its own source and those earlier steps feed it."""
    step = steps[index]
    return sorted({s.from_version for s in steps[: index + 1] if s.collection == step.collection and not s.operation})


def count_plan(ctx: RunContext, steps: list[Step]) -> list[int]:
    """How many documents each step will touch, counted on the data as it is now."""
    return [planned_documents(ctx.db, ctx.scripts.part(s.version, s.part), s) if s.operation
            else ctx.db[s.collection].count_documents(versions_filter(migrated_versions(steps, i)))
            for i, s in enumerate(steps)]


def touched(ctx: RunContext, step: Step) -> set[str]:
    """The collections a step changes."""
    migration = ctx.scripts.part(step.version, step.part)
    if not step.operation:
        return {step.collection}
    return {name for a in actions_of(migration, step) for name in (a.collection, a.to) if name}


def check_operations(ctx: RunContext, steps: list[Step]) -> list[tuple[str, ...]]:
    """Refuse a plan whose collection-level step cannot run on the data as it is (a unique index the data violates,
    a feature the server lacks, …), naming the cause; notes per step. A step whose collections an earlier step of the
    plan changes is checked against the data when it runs, before it writes anything (what the server lacks: now)."""
    notes, changed = [], set()
    for step in steps:
        if step.operation:
            check_server_features(ctx.db, ctx.scripts.part(step.version, step.part), step)
        if step.operation and touched(ctx, step) & changed:
            notes.append((f"checked when it runs: an earlier step changes {', '.join(sorted(touched(ctx, step) & changed))}",))
        elif step.operation:
            notes.append(tuple(check_step(ctx.db, ctx.scripts.part(step.version, step.part), step)))
        else:
            notes.append(())
        changed |= touched(ctx, step)
    return notes


def sample_plan(ctx: RunContext, steps: list[Step], size: int = 2, skip_raising: bool = False) -> list[list[tuple[dict, dict]]]:
    """Before/after pairs per step from real documents run through the real functions in memory, a `down` with the
    pre-images the real run gives it; writes nothing.

    A function that returns something unusable (not a document, `_id` dropped, a field name with a dot) is refused
    here, naming its file; one that raises on a document raises its TransformError (a run quarantines it), or
    with `skip_raising` leaves that document out of the samples."""
    samples, pre_images = [], [pre_images_for(ctx, s) for s in steps]
    for i, step in enumerate(steps):
        pairs = []
        chain = [(s, pre) for s, pre in zip(steps[: i + 1], pre_images) if s.collection == step.collection and not s.operation]
        if step.operation:
            samples.append(sample_copies(ctx, step, size))
            continue
        docs = sorted(ctx.db[step.collection].find(versions_filter(migrated_versions(steps, i))).limit(size),
                      key=lambda d: bson_order(d["_id"]))  # in `_id` order, as pre-images are streamed
        lookups = {(s.version, s.part): lookup_for(ctx.db, ctx.scripts.part(s.version, s.part)) for s, _ in chain}
        for lookup in lookups.values():
            lookup.new_batch(docs)  # one prefetch for all of them, as a run's batch has
        for doc in docs:
            try:
                pairs += [(before, after) for s, before, after in _chained(ctx, chain, doc, lookups) if s is step]
            except TransformError:
                if not skip_raising:
                    raise
        samples.append(pairs)
    return samples


def sample_copies(ctx: RunContext, step: Step, size: int) -> list[tuple[dict, dict]]:
    """For a copy into a new collection: real documents and what the new collection would get of them."""
    migration = ctx.scripts.part(step.version, step.part)
    action = actions_of(migration, step)[0]
    if action.do != "copy":
        return []
    lookup = lookup_for(ctx.db, migration)
    docs = list(ctx.db[action.collection].find(action.filter).sort("_id", 1).limit(size))
    lookup.new_batch(docs)
    return [(doc, copied) for doc in docs for copied in copies_of(migration.operation.transform, doc, lookup, f"migration {step.version}")]


def _chained(ctx: RunContext, chain: list[tuple[Step, PreImages | None]], doc: dict,
             lookups: dict[tuple[int, int], Lookup]) -> list[tuple[Step, dict, dict]]:
    """`doc` through each step of `chain` that takes its version, in order: (step, before, after) for each; each
    function given its migration's lookups."""
    version, done = doc.get("schema_version") or INITIAL_VERSION, []
    for s, pre in chain:
        if s.from_version == version:
            script, migration = ctx.scripts.get(s.version), ctx.scripts.part(s.version, s.part)
            try:
                after = transform_one(migration, s, doc, pre.get(doc["_id"]) if pre else None,
                                      lookups[(s.version, s.part)])
            except TransformError as exc:
                if exc.__cause__ is None:  # no exception inside the function: what it returned is unusable
                    raise MigrationFileError(script.path, str(exc)) from exc
                raise
            done.append((s, doc, after))
            doc, version = after, s.to_version
    return done


def check_server_accepts(ctx: RunContext, steps: list[Step]) -> list[int]:
    """Refuse a plan whose functions make documents the server cannot store, before anything is written: up to
    DOCSHIFT_PLAN_CHECK_DOCUMENTS real documents per step, transformed in memory, are checked for what the server
    refuses (check_values), and the first of them is stored on a scratch collection that is dropped at once
    (engine.probe), for what docshift.servers does not know of. FerretDB 1.24 refuses nested arrays, keys with a dot
    or `$`, and a Decimal128 (its handler panics and closes the connection), which a run would otherwise meet only
    when it writes. Also refuses, as sample_plan does, a function returning something unusable. Returns the
    documents checked per step."""
    samples = sample_plan(ctx, steps, size=ctx.settings.plan_check_documents, skip_raising=True)
    for step, pairs in zip(steps, samples):
        if pairs and (refused := refusal(ctx.db, pairs[0][1])) is not None:
            raise refused_by_server(ctx, step, refused, pairs[0][1])
    return check_values(ctx, steps, samples)


def check_values(ctx: RunContext, steps: list[Step], samples: list[list[tuple[dict, dict]]]) -> list[int]:
    """Refuse the first transformed document of `samples` holding a value the server refuses to store, without asking
    it (docshift.servers.refused_value); returns how many documents were checked per step."""
    name = server_name(ctx.db)
    for step, pairs in zip(steps, samples):
        for _, after in pairs:
            if (refused := refused_value(name, after)) is not None:
                raise refused_by_server(ctx, step, refused, after, len(pairs))
    return [len(pairs) for pairs in samples]


def refused_by_server(ctx: RunContext, step: Step, refused: Refusal, after: dict,
                      checked: int | None = None) -> MigrationFileError:
    script = ctx.scripts.get(step.version)
    among = "" if checked is None else f", found among {checked:,} documents transformed in memory"
    return MigrationFileError(script.path, (
        f"migration {step.version} {step.phase or step.direction} returns a document the server refuses to store: "
        f"{refused} (made from document _id={after['_id']!r}{among}); nothing was changed"))


def current_plan(ctx: RunContext, target: int) -> tuple[int, list[Step]]:
    """The database's recorded version and the steps to `target` from there, as the ledger and quarantine stand."""
    ledger = Ledger(ctx.db)
    current, checkpoint = ledger.current_version(), ledger.checkpoint()
    steps = plan_steps(ctx.scripts, current, target, checkpoint, behind_from(ctx, current, checkpoint))
    for step in steps:
        started = ledger.phases(step.version)
        if step.direction == "up" and under_way(started):
            raise PhaseError(f"migration {step.version} is being applied in expand-contract phases "
                             f"({', '.join(sorted(started))} done): continue with its phases, not `migrate`")
    return current, steps


def behind_from(ctx: RunContext, current: int, checkpoint: dict | None) -> dict[str, int]:
    """Per collection, the lowest applied migration whose documents are behind: quarantined ones (retried) and
    drifted ones (carried up again). A collection whose migration is mid-way through expand-contract phases is left
    to its backfill phase."""
    retry, ledger = quarantined_versions(ctx.db, current), Ledger(ctx.db)
    for collection, version in carry_from(ctx.scripts, find_drift(ctx.db, ctx.scripts, current, checkpoint)).items():
        if not any(under_way(ledger.phases(v)) for v in lineage(ctx.scripts, collection, current) if v >= version):
            retry[collection] = min(retry.get(collection, version), version)
    return retry


def under_way(phases: dict) -> bool:
    """An expand-contract change has started and not finished with its cleanup."""
    return bool(phases) and "cleanup" not in phases


def plan_report(ctx: RunContext, target: int) -> Plan:
    """What migrating to `target` would do: the steps, the documents each touches, sample diffs. Writes nothing."""
    current, steps = current_plan(ctx, target)
    notes = check_operations(ctx, steps)
    checked = check_values(ctx, steps, sample_plan(ctx, steps, size=ctx.settings.plan_check_documents, skip_raising=True))
    counts, samples = count_plan(ctx, steps), sample_plan(ctx, steps)
    planned = []
    for s, n, pairs, found, shapes in zip(steps, counts, samples, notes, checked):
        migration = ctx.scripts.part(s.version, s.part)
        what = migration.operation.describe(s.collection, s.direction) if migration.operation else None
        planned.append(PlannedStep(s.version, s.direction, s.collection, migration.kind or "collection-level",
                                   migration.description, n, pairs, what, found,
                                   s.direction == "up" and s.version <= current, shapes))
    return Plan(current, target, planned)
