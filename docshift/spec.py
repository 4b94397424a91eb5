"""What a migration is: a plain, Prefect-free definition that application code can import too."""

import copy
import inspect
import re
from collections.abc import Callable
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator, model_validator

from .lookup import Prefetch
from .operations import Operation
from .updates import DeclaredUpdate, UndoUpdate, check_update

INITIAL_VERSION = 1
"""A document without `schema_version` is at its collection's initial schema, version 1."""
LOOKUP = "lookup"
"""A migration function with a parameter of this name is given the run's read-only Lookup (docshift.lookup)."""

Kind = Literal["additive", "transformative", "destructive"]
Direction = Literal["up", "down"]
Phase = Literal["expand", "backfill", "contract", "cleanup"]
PHASES: tuple[Phase, ...] = ("expand", "backfill", "contract", "cleanup")
"""The expand-contract phases, in the order each waits for the one before it."""


class ExpandContract(BaseModel):
    """How a migration runs as an expand-contract change: four phases, scheduled apart, while the application runs.

    expand: nothing written; the application starts writing old and new fields (docshift.compat.dual_write).
    backfill: `backfill(doc)` brings each document to this version with the old fields kept, so old readers still work.
    contract: nothing written; every document must be backfilled; the application stops using the old fields.
    cleanup: `removes` are deleted (destructive: a soak time after contract and a human's approval first).

    `docshift deploy` makes each phase a Prefect deployment, `PHASE/NAME`, scheduled as declared here (cron, or an
    RRULE such as `FREQ=WEEKLY;BYDAY=TU,WE,TH;BYHOUR=1`; None: run by hand only). Schedules ship paused. The defaults
    spread one change over a week: expand Monday 21:00, backfill Tuesday to Thursday 01:00, contract Friday 03:30,
    cleanup Saturday 02:00 (after the soak time); backfill and cleanup runs stop at a checkpoint after
    `window_minutes` (None: they run to the end).
    """

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True, extra="forbid")

    backfill: Callable
    removes: tuple[str, ...] = Field(min_length=1, description="Old fields the cleanup phase deletes.")
    name: str | None = Field(
        None, pattern=r"^[a-z0-9][a-z0-9-]*$",
        description="Name of the four phase deployments; default `<collection>-<slug of the file name>`.",
    )
    timezone: str | None = Field(None, description="Timezone of the schedules (IANA name); default the `timezone` setting.")
    window_minutes: float | None = Field(
        120, gt=0, description="Maintenance window of backfill and cleanup deployment runs: they pause when it ends.",
    )
    expand_schedule: str | None = "0 21 * * 1"
    backfill_schedule: str | None = "0 1 * * 2-4"
    contract_schedule: str | None = "30 3 * * 5"
    cleanup_schedule: str | None = "0 2 * * 6"

    @field_validator("expand_schedule", "backfill_schedule", "contract_schedule", "cleanup_schedule")
    @classmethod
    def _cron_or_rrule(cls, when: str | None) -> str | None:
        if when is not None and not (RRULE.match(when) or len(when.split()) in (5, 6)):
            raise ValueError(f"{when!r} is neither a cron expression (five fields) nor an RRULE (FREQ=...)")
        return when

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, name: str | None) -> str | None:
        return name if name is None else check_timezone(name)

    def schedule(self, phase: Phase) -> str | None:
        """When `phase` is scheduled: a cron expression, an RRULE, or None."""
        return getattr(self, f"{phase}_schedule")


def check_timezone(name: str) -> str:
    """`name` if it is a timezone this machine knows, else a ValueError saying what is wanted."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown timezone {name!r} (an IANA name such as Europe/Berlin or UTC)") from exc
    return name


RRULE = re.compile(r"^(DTSTART|RRULE:|FREQ=)", re.IGNORECASE)
"""An iCalendar recurrence rule, as Prefect's RRuleSchedule takes it."""


class Migration(BaseModel):
    """One schema change of one collection.

    `up(doc)` returns the document at `version`; `down(doc)` returns it at the collection's previous version.
    `down` may take a second argument, `pre_image`: the document as it was before `up` ran (from the run's
    backup), or None when none was kept; destructive migrations use it to give back what `up` removed.
    Either may take a parameter named `lookup`: read-only lookups in the collections named in `reads`, on the run's
    own database (its rehearsal copy too). The framework writes only the difference and sets `schema_version` itself.
    A collection-level step (an index, a rename, a dropped or copied collection) is an `operation` instead.

    Instead of `up` and `down`, a change may be declared as an update document (`update={"$set": {...}}`, with
    `$unset`, `$rename`, `$inc`, `$currentDate`) and a `filter`, as `updateMany(filter, update)` takes them: documents
    that lack every field it touches are updated on the server (`update_many` per `_id` range) without being read,
    the others per document with their pre-images; `up`/`down` are derived (docshift.updates) for everything else
    that applies a migration to a document.
    """

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True, extra="forbid")

    version: StrictInt = Field(ge=INITIAL_VERSION + 1, description="Global, unique, increasing; 1 is the initial schema.")
    description: str = Field(min_length=1)
    collection: str = Field(min_length=1, pattern=r"^[^$\x00]+$")
    kind: Kind | None = None
    """What `up` does to documents; required unless the migration is an `operation` (which changes no document)."""
    up: Callable | None = None
    down: Callable | None = None
    target_model: type[BaseModel] | None = Field(
        None, description="Pydantic model every migrated document must validate against (used by verify)."
    )
    verify_sample_rate: float = Field(
        1.0, gt=0, le=1, description="Share of migrated documents verify validates against target_model (1.0: all)."
    )
    expand_contract: ExpandContract | None = Field(
        None, description="Phases for applying this migration without downtime (besides the one-step `up`)."
    )
    update: dict | None = Field(
        None, description='The change as an update document, `{"$set": {field: value}}` (also `$unset`, `$rename`, '
                          "`$inc`, `$currentDate`), run on the server; `up` and `down` are derived from it."
    )
    filter: dict | None = Field(
        None, description="With `update`: the documents it changes, as `updateMany(filter, update)`; the others only "
                          "move to the new schema version.")

    @model_validator(mode="before")
    @classmethod
    def _functions_from_update(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("filter") is not None and data.get("update") is None:
            raise ValueError("filter goes with update (the documents it changes); up/down functions choose for themselves")
        if isinstance(data, dict) and data.get("update") is not None:
            if "up" in data or "down" in data:
                raise ValueError("give either up and down, or update (from which they are derived), not both")
            declared = check_update(copy.deepcopy(data["update"]), copy.deepcopy(data.get("filter")))
            data = {**data, "update": declared.ops, "filter": declared.filter or None, "up": declared,
                    "down": UndoUpdate(declared)}
        return data

    @property
    def declared(self) -> DeclaredUpdate | None:
        """The update and filter of a migration declared as an update (None for up/down functions)."""
        return self.up if isinstance(self.up, DeclaredUpdate) else None

    operation: Operation | None = Field(
        None, description="A collection-level step (docshift.CreateIndex, RenameCollection, …) that owns its up and down; "
                          "then `up`/`down` are left out.")
    reads: dict[str, str | Prefetch | None] = Field(
        default_factory=dict, description="Other collections `up`/`down` look up through `lookup` (read-only), each with "
                                          "the field of the migrated document that holds the looked-up `_id` (prefetched "
                                          "per batch), a docshift.Prefetch (prefetched per batch by another key), or None.")

    @field_validator("reads", mode="before")
    @classmethod
    def _names_or_mapping(cls, reads):
        return {name: None for name in reads} if isinstance(reads, (list, tuple, set, frozenset)) else reads

    @model_validator(mode="after")
    def _functions_or_operation(self) -> "Migration":
        if self.operation is not None and (self.up is not None or self.down is not None):
            raise ValueError("a migration with an operation has no up/down: the operation is both")
        if self.operation is not None and self.expand_contract is not None:
            raise ValueError("a collection-level step (operation) has no expand-contract phases")
        if self.operation is None and self.kind is None:
            raise ValueError("kind: Field required (additive, transformative or destructive)")
        if self.operation is None and (missing := [n for n in ("up", "down") if getattr(self, n) is None]):
            raise ValueError(f"{' and '.join(missing)}: Field required (or, instead of up and down, an operation "
                             f"such as docshift.CreateIndex)")
        return self

    @field_validator("up", "down")
    @classmethod
    def _one_or_two_arguments(cls, fn: Callable | None, info) -> Callable | None:
        if fn is None:
            return fn
        required = [
            p for p in inspect.signature(fn).parameters.values()
            if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != LOOKUP
        ]
        limit = 2 if info.field_name == "down" else 1
        if not 1 <= len(required) <= limit:
            raise ValueError(f"{info.field_name} must take the document" + (" (and optionally pre_image)" if limit == 2 else ""))
        return fn

    @property
    def down_uses_pre_image(self) -> bool:
        """Whether `down` wants the backed-up pre-image of each document as its second argument."""
        return self.down is not None and len(document_parameters(self.down)) >= 2


def document_parameters(fn: Callable) -> list[str]:
    """A migration function's parameters besides `lookup`: the document, and for `down` the pre-image."""
    return [name for name in inspect.signature(fn).parameters if name != LOOKUP]


def takes_lookup(fn: Callable) -> bool:
    """Whether a migration function wants the run's read-only Lookup (a parameter named `lookup`)."""
    return LOOKUP in inspect.signature(fn).parameters
