"""What docshift tells Prefect so that the alert automations (`docshift alerts setup`) can name what happened.

Failed and Crashed notifications come from Prefect's own flow-run state events, which carry the run's tags:
`label_run` puts the database, migration and phase there while the run is alive, so that even a run killed
with its worker can be named. Outcomes that are not a run state (rolled back, a phase completed) are
`announce`d as docshift events.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from prefect import get_client
from prefect.events import emit_event
from prefect.runtime import flow_run

_labels: ContextVar[tuple[str, ...]] = ContextVar("docshift_run_labels", default=())


@contextmanager
def labelled(*labels: str) -> Iterator[None]:
    """Tags that `label_run` gives the runs started in this context (a fleet's `fleet:<id>` on its child runs).
    Not Prefect's `tags()` context: that tags every task run too, and a tagged task run asks the server for a
    concurrency slot of each tag before it starts (a request per task run, 0.4 s each on a loaded server)."""
    token = _labels.set(_labels.get() + labels)
    try:
        yield
    finally:
        _labels.reset(token)


def label_run(database: str, migration: int | None = None, phase: str | None = None) -> None:
    """Tag the current flow run `docshift`, `db:<database>` (and `migration:<n>`, `phase:<phase>`, replacing an
    earlier one: the `migrate` run names the migration it is applying, for an alert about it), and the tags of
    `labelled`; no-op outside a run."""
    if not flow_run.id:
        return
    tags = {"docshift", f"db:{database}", *_labels.get()}
    if migration is not None:
        tags.add(f"migration:{migration}")
    if phase is not None:
        tags.add(f"phase:{phase}")
    replaced = tuple(prefix for prefix, given in (("migration:", migration), ("phase:", phase)) if given is not None)
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(flow_run.id)
        kept = {t for t in run.tags if not (replaced and t.startswith(replaced))}
        client.update_flow_run(run.id, tags=sorted(tags | kept))


def announce(event: str, database: str, migration: int | None, phase: str | None, reason: str = "",
             destructive: bool = False) -> None:
    """Emit `docshift.<event>` about the database; inside a flow run Prefect relates the run to it (for its link)."""
    emit_event(
        event=f"docshift.{event}",
        resource={
            "prefect.resource.id": f"docshift.database.{database}",
            "prefect.resource.name": database,
            "docshift.database": database,
            "docshift.migration": "" if migration is None else str(migration),
            "docshift.phase": phase or "",
            "docshift.destructive": "true" if destructive else "false",
        },
        payload={"reason": reason},
    )
