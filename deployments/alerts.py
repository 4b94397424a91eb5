"""The Prefect side of `docshift alerts setup`: one notification block and the automations that send through it.

Setup is idempotent: the block is saved over by name and each automation is updated in place by name, so
running it again (say after the alert URL changed) leaves exactly one of each.

Two Prefect 3.9.1 behaviours shape it. The server puts a flow run's tags into its state events from a cache
filled at the run's first state (`prefect/server/models/events.py`, `_flow_run_resource_data_cache`, TTL
PREFECT_SERVER_EVENTS_RELATED_RESOURCE_CACHE_TTL, 5 minutes): the `docshift` tag that `label_run` adds while the
run starts is missing from the Failed event of a run shorter than that unless the server runs with the TTL at 0,
which setup checks. And flow runs send heartbeats every PREFECT_FLOWS_HEARTBEAT_FREQUENCY seconds, 180 by default,
so the docs' zombie trigger (`within` 90 s) would mark every healthy run Crashed after 90 s: `within` is three
heartbeats instead, 90 s at the frequency of 30 that the docs assume.
"""

from datetime import timedelta
from uuid import UUID

from prefect import get_client
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.blocks.system import Secret
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState, SendNotification
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
from prefect.settings import PREFECT_API_URL, get_current_settings

from docshift.errors import AlertSetupError
from docshift.settings import Settings

BLOCK = "docshift-alerts"
RUN_FAILED = "docshift: run failed or crashed"
ROLLED_BACK = "docshift: rolled back"
DESTRUCTIVE_PHASE = "docshift: destructive phase completed"
FLEET = "docshift: fleet run"
MIGRATE_STARTED = "docshift: migrate run started"
FLEET_EVENTS = ("started", "wave-passed", "halted", "completed")
"""`docshift.fleet.*` events (flows/fleet.py): a fleet run, or a fleet rollback, started, passed a wave, halted, ended."""
ZOMBIES = "Crash zombie flows"  # the name Prefect's docs (detect-zombie-flows) give it: setup adopts one made by hand

# The URL lives in the block's secrets, not in its plain `url` field, so the Prefect UI and API never show it.
URL_KEY = "docshift_alert_url"
# One JSON body for chat webhooks (`text`: Slack, Mattermost) and for receivers that want the parts.
PAYLOAD = {"subject": "{{subject}}", "body": "{{body}}", "text": "{{subject}}\n{{body}}"}


def alert_url(settings: Settings) -> str:
    """The URL notifications go to: DOCSHIFT_ALERT_URL, else the value of the Prefect Secret DOCSHIFT_ALERT_SECRET."""
    if settings.alert_url is not None:
        url = settings.alert_url.get_secret_value()
    else:
        try:
            url = Secret.load(settings.alert_secret).get()
        except ValueError:
            raise AlertSetupError(f"there is no Prefect Secret block named {settings.alert_secret!r} "
                                  f"(DOCSHIFT_ALERT_SECRET) on {PREFECT_API_URL.value()}") from None
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise AlertSetupError("the alert URL is not an http(s) URL")
    return url


def _run_tag(prefix: str) -> str:
    """Jinja: the rest of the flow run's tag that starts with `prefix` (set by tasks.notify.label_run), or '-'."""
    return f'{{% for t in flow_run.tags if t.startswith("{prefix}") %}}{{{{ t[{len(prefix)}:] }}}}{{% else %}}-{{% endfor %}}'


def _event_label(label: str) -> str:
    """Jinja: a docshift.* label of the triggering event's resource (set by tasks.notify.announce), or '-'."""
    return f'{{{{ event.resource["docshift.{label}"] or "-" }}}}'


def notification(block_id: UUID, database: str, migration: str, phase: str, state: str, reason: str) -> SendNotification:
    """The one message shape of every docshift alert; the arguments are Jinja fragments that fill it in."""
    return SendNotification(
        block_document_id=block_id,
        subject=f"docshift: {state}: database {database}, migration {migration}, phase {phase}",
        body="\n".join([f"database: {database}", f"migration: {migration}", f"phase: {phase}", f"state: {state}",
                        f"reason: {reason}", "flow run: {{ flow_run.name }} {{ flow_run|ui_url }}"]),
    )


def automations(block_id: UUID, migrate_start: bool = False) -> list[AutomationCore]:
    """What alerts on what: failed/crashed docshift runs, rollbacks, destructive phases, fleet runs (and, with
    `migrate_start`, every migrate run's start); and crashing zombie runs."""
    run = dict(database=_run_tag("db:"), migration=_run_tag("migration:"), phase=_run_tag("phase:"),
               state="{{ flow_run.state.name }}", reason="{{ flow_run.state.message }}")
    event = dict(database=_event_label("database"), migration=_event_label("migration"), phase=_event_label("phase"),
                 reason='{{ event.payload.reason or "-" }}')
    docshift_events = {"prefect.resource.id": "docshift.database.*"}
    started = [AutomationCore(
        name=MIGRATE_STARTED, description="A docshift migrate run started to change a database (a fleet's too).",
        trigger=EventTrigger(expect={"docshift.migration.started"}, match=docshift_events, posture=Posture.Reactive,
                             threshold=1),
        actions=[notification(block_id, **event, state="migrate started")],
    )] if migrate_start else []
    return started + [
        AutomationCore(
            name=RUN_FAILED, description="A docshift flow run (tagged `docshift`) failed or crashed.",
            trigger=EventTrigger(expect={"prefect.flow-run.Failed", "prefect.flow-run.Crashed"},
                                 match={"prefect.resource.id": "prefect.flow-run.*"},
                                 match_related={"prefect.resource.role": "tag", "prefect.resource.id": "prefect.tag.docshift"},
                                 posture=Posture.Reactive, threshold=1),
            actions=[notification(block_id, **run)],
        ),
        AutomationCore(
            name=ROLLED_BACK, description="A failed migration was rolled back, or the rollback flow ran.",
            trigger=EventTrigger(expect={"docshift.migration.rolled-back"}, match=docshift_events,
                                 posture=Posture.Reactive, threshold=1),
            actions=[notification(block_id, **event, state="rolled back")],
        ),
        AutomationCore(
            name=DESTRUCTIVE_PHASE, description="A destructive phase (cleanup) of an expand-contract change completed.",
            trigger=EventTrigger(expect={"docshift.phase.completed"},
                                 match={**docshift_events, "docshift.destructive": "true"},
                                 posture=Posture.Reactive, threshold=1),
            actions=[notification(block_id, **event, state="destructive phase completed")],
        ),
        AutomationCore(
            name=FLEET, description="A fleet run (or fleet rollback) started, passed a wave, halted or completed; the "
                                    "reason has the counts.",
            trigger=EventTrigger(expect={f"docshift.fleet.{e}" for e in FLEET_EVENTS}, match=docshift_events,
                                 posture=Posture.Reactive, threshold=1),
            actions=[notification(block_id, **event, state="{{ event.event[9:] }}")],  # fleet.started, ...
        ),
        AutomationCore(  # as in Prefect's docs, detect-zombie-flows; needs PREFECT_FLOWS_HEARTBEAT_FREQUENCY on workers
            name=ZOMBIES, description="Mark a flow run Crashed when its heartbeats stop (its worker died).",
            trigger=EventTrigger(after={"prefect.flow-run.heartbeat"},
                                 expect={"prefect.flow-run.heartbeat", "prefect.flow-run.Completed", "prefect.flow-run.Failed",
                                         "prefect.flow-run.Cancelled", "prefect.flow-run.Crashed"},
                                 match={"prefect.resource.id": ["prefect.flow-run.*"]}, for_each={"prefect.resource.id"},
                                 posture=Posture.Proactive, threshold=1, within=3 * heartbeat()),
            actions=[ChangeFlowRunState(state=StateType.CRASHED, message="Flow run marked as crashed due to missing heartbeats.")],
        ),
    ]


def heartbeat() -> timedelta:
    """How often flow runs send heartbeats: PREFECT_FLOWS_HEARTBEAT_FREQUENCY, which workers must share with setup."""
    return timedelta(seconds=get_current_settings().flows.heartbeat_frequency or 30)


def setup(settings: Settings, migrate_start: bool = False) -> list[str]:
    """Save the notification block and create or update the automations (the migrate-start one only with
    `migrate_start`: set up without it, it is removed); says what was done (names, ids, warnings)."""
    if not PREFECT_API_URL.value():
        raise AlertSetupError("alerts live on a Prefect server: set PREFECT_API_URL to it")
    url = alert_url(settings)
    block = CustomWebhookNotificationBlock(name=BLOCK, url=f"{{{{{URL_KEY}}}}}", json_data=PAYLOAD,
                                           secrets={URL_KEY: url})
    block_id = block.save(BLOCK, overwrite=True)
    done = [f"saved    block {BLOCK!r} ({block_id})"]
    with get_client(sync_client=True) as client:
        if not migrate_start:
            for unwanted in client.read_automations_by_name(MIGRATE_STARTED):
                client.delete_automation(unwanted.id)
                done.append(f"removed  automation {MIGRATE_STARTED!r} ({unwanted.id})")
        for automation in automations(block_id, migrate_start):
            existing = client.read_automations_by_name(automation.name)
            if existing:
                keep, *extra = existing
                client.update_automation(keep.id, automation)
                for duplicate in extra:
                    client.delete_automation(duplicate.id)
                done.append(f"updated  automation {automation.name!r} ({keep.id})")
            else:
                done.append(f"created  automation {automation.name!r} ({client.create_automation(automation)})")
        cache_ttl = client.request("GET", "/admin/settings").json()["server"]["events"]["related_resource_cache_ttl"]
    if cache_ttl != "PT0S":
        done.append(f"warning: the Prefect server caches run tags in events for {cache_ttl}, so a docshift run that fails "
                    "sooner is not alerted: start it with PREFECT_SERVER_EVENTS_RELATED_RESOURCE_CACHE_TTL=0")
    done.append(f"zombie runs are crashed {3 * heartbeat().total_seconds():.0f} s after their last heartbeat: "
                "run workers with the same PREFECT_FLOWS_HEARTBEAT_FREQUENCY as this setup")
    return done
