"""`docshift alerts setup` against the session's Prefect server, delivering to a Receiver; undone afterwards."""

from collections.abc import Iterator
from contextlib import contextmanager

from docshift.deployments.alerts import BLOCK, DESTRUCTIVE_PHASE, FLEET, MIGRATE_STARTED, ROLLED_BACK, RUN_FAILED, ZOMBIES

from .env import CLI_ENV, invoke
from .prefect_api import api_delete, api_post, remove_automations
from .receiver import Receiver

TOKEN = "s3cr3t-hook-token"  # part of the alert URLs: must never be printed
HOOK = f"/hook/{TOKEN}"  # the path of the URL in the Secret block, where notifications must arrive
SECRET = "docshift-alert-url"
HEARTBEAT = {"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30"}


@contextmanager
def alerts_set_up(receiver: Receiver, api: str) -> Iterator[list]:
    """`docshift alerts setup` (in-process) run twice, first with DOCSHIFT_ALERT_URL, then with DOCSHIFT_ALERT_SECRET
    naming a Secret block with another URL, which is the one that stays; yields both results. Automations and blocks
    are removed from the shared server afterwards."""
    from prefect.blocks.system import Secret

    Secret(value=receiver.url(HOOK)).save(SECRET, overwrite=True)
    runs = [invoke(["alerts", "setup"], {**CLI_ENV, **HEARTBEAT, **setting})
            for setting in ({"DOCSHIFT_ALERT_URL": receiver.url(f"/replaced/{TOKEN}")}, {"DOCSHIFT_ALERT_SECRET": SECRET})]
    try:
        yield runs
    finally:
        remove_automations(api, names=(RUN_FAILED, ROLLED_BACK, DESTRUCTIVE_PHASE, FLEET, MIGRATE_STARTED, ZOMBIES))
        for block in api_post(api, "/block_documents/filter", {"block_documents": {"name": {"any_": [BLOCK, SECRET]}}}):
            api_delete(api, f"/block_documents/{block['id']}")
